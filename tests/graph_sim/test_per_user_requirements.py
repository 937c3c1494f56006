"""PATCH /beta/users/{id}/authentication/requirements as Graph documents it.

strongAuthenticationRequirements resource page
(https://learn.microsoft.com/graph/api/resources/strongauthenticationrequirements): "When you update a
user's MFA state to enabled and the user has already registered an MFA method, their state changes
automatically to enforced." The page does not say how soon, so the tenant's `enforce_after_s` fault knob
picks: 0 (the default) at once, or after that many seconds.
"""

from __future__ import annotations

import time

import pytest

from tests.graph_sim.conftest import CONTOSO

REQ = "/beta/users/{id}/authentication/requirements"


def _users(sim, *, registered: bool, state: str):
    return [
        u
        for u in sim.tenant(CONTOSO).users
        if u.is_mfa_registered is registered and u.per_user_state == state and not u.break_glass
    ]


def _patch_and_read(client, user_id: str, state: str) -> str:
    r = client.patch(REQ.format(id=user_id), json={"perUserMfaState": state})
    assert r.status_code == 204, r.text
    return client.get(REQ.format(id=user_id)).json()["perUserMfaState"]


def test_enabled_for_a_registered_user_reads_back_enforced_at_once_by_default(sim, graph):
    client = graph(CONTOSO)
    user = _users(sim, registered=True, state="disabled")[0]
    assert _patch_and_read(client, user.id, "enabled") == "enforced"
    # the timeline holds both moves: the write, then Graph's own
    moves = [(e.new, e.source) for e in sim.tenant(CONTOSO).timeline if e.subject == user.id]
    assert moves == [("enabled", "graph"), ("enforced", "auto")]


def test_enabled_for_a_user_without_a_method_stays_enabled(sim, graph):
    client = graph(CONTOSO)
    user = _users(sim, registered=False, state="disabled")[0]
    assert _patch_and_read(client, user.id, "enabled") == "enabled"


@pytest.mark.parametrize("state", ["disabled", "enforced"])
def test_other_states_are_taken_as_written(sim, graph, state):
    client = graph(CONTOSO)
    user = _users(sim, registered=True, state="enabled" if state == "disabled" else "disabled")[0]
    assert _patch_and_read(client, user.id, state) == state


def test_with_the_lag_knob_the_move_to_enforced_comes_later(sim, graph):
    sim.admin("POST", f"/_sim/tenants/{CONTOSO}/faults", json={"enforce_after_s": 0.5})
    client = graph(CONTOSO)
    user = _users(sim, registered=True, state="disabled")[0]
    assert _patch_and_read(client, user.id, "enabled") == "enabled"
    time.sleep(0.6)
    assert client.get(REQ.format(id=user.id)).json()["perUserMfaState"] == "enforced"


def test_a_later_write_cancels_a_pending_move(sim, graph):
    sim.admin("POST", f"/_sim/tenants/{CONTOSO}/faults", json={"enforce_after_s": 30})
    client = graph(CONTOSO)
    user = _users(sim, registered=True, state="disabled")[0]
    assert _patch_and_read(client, user.id, "enabled") == "enabled"
    assert _patch_and_read(client, user.id, "disabled") == "disabled"
    assert user.id not in sim.tenant(CONTOSO).enforce_due
