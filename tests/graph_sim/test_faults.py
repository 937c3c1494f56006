"""Fault knobs per tenant: random 429 (with and without Retry-After), 5xx, commit-then-drop, replication
lag, latency and timeouts."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.graph_sim.conftest import CONTOSO, FABRIKAM


def _faults(sim, tenant: str, **knobs) -> dict:
    r = sim.admin_response("POST", f"/_sim/tenants/{tenant}/faults", json=knobs)
    assert r.status_code == 200, r.text
    return r.json()


def test_it_rejects_unknown_or_invalid_knobs(sim):
    assert sim.admin_response("POST", f"/_sim/tenants/{CONTOSO}/faults", json={"nope": 1}).status_code == 400
    assert (
        sim.admin_response("POST", f"/_sim/tenants/{CONTOSO}/faults", json={"rate_5xx": 2}).status_code == 400
    )


def test_it_injects_429_with_and_without_retry_after(sim, graph):
    c = graph(CONTOSO)
    _faults(sim, CONTOSO, rate_429=1, retry_after_s=2.5)
    r = c.get("/v1.0/organization")
    assert r.status_code == 429 and r.headers["Retry-After"] == "2.5"
    _faults(sim, CONTOSO, rate_429=0, rate_429_no_retry_after=1)
    r = c.get("/v1.0/organization")
    assert r.status_code == 429 and "Retry-After" not in r.headers
    assert graph(FABRIKAM).get("/v1.0/organization").status_code == 200  # per tenant


def test_it_injects_5xx_in_the_graph_error_shape(sim, graph):
    _faults(sim, CONTOSO, rate_5xx=1)
    c = graph(CONTOSO)
    statuses = set()
    for _ in range(12):
        r = c.get("/v1.0/organization")
        statuses.add(r.status_code)
        assert set(r.json()["error"]) == {"code", "message", "innerError"}
    assert statuses == {503, 504}


def test_it_commits_a_write_and_then_drops_the_response(sim, graph):
    user = next(u for u in sim.tenant(CONTOSO).users if u.per_user_state == "enforced")
    _faults(sim, CONTOSO, drop_after_commit_rate=1)
    with pytest.raises(httpx.RemoteProtocolError):
        graph(CONTOSO).patch(
            f"/beta/users/{user.id}/authentication/requirements", json={"perUserMfaState": "disabled"}
        )
    assert user.per_user_state == "disabled"
    entry = sim.admin_response("GET", f"/_sim/requests?tenant={CONTOSO}").json()["requests"][-1]
    assert entry["write_effective"] is True and entry["dropped"] is True and entry["status"] == 204
    # Reads are never dropped.
    assert graph(CONTOSO).get(f"/beta/users/{user.id}/authentication/requirements").status_code == 200


def test_it_hides_new_policies_during_replication_lag(sim, graph):
    _faults(sim, CONTOSO, replication_lag_s=0.6)
    c = graph(CONTOSO)
    body = {
        "displayName": "lagged",
        "state": "disabled",
        "conditions": {"users": {"includeUsers": ["All"]}, "applications": {"includeApplications": ["All"]}},
        "grantControls": {"operator": "OR", "builtInControls": ["mfa"]},
    }
    pid = c.post("/v1.0/identity/conditionalAccess/policies", json=body).json()["id"]
    assert c.get(f"/v1.0/identity/conditionalAccess/policies/{pid}").status_code == 404
    assert pid not in [p["id"] for p in c.get("/v1.0/identity/conditionalAccess/policies").json()["value"]]
    time.sleep(0.7)
    assert c.get(f"/v1.0/identity/conditionalAccess/policies/{pid}").status_code == 200


def test_it_adds_latency_and_holds_timeouts(sim, graph):
    c = graph(CONTOSO)
    _faults(sim, CONTOSO, latency_ms=150)
    t0 = time.monotonic()
    c.get("/v1.0/organization")
    assert time.monotonic() - t0 >= 0.15
    _faults(sim, CONTOSO, latency_ms=0, timeout_rate=1, timeout_hold_s=0.5)
    with pytest.raises(httpx.ReadTimeout):
        c.get("/v1.0/organization", timeout=0.2)
    t0 = time.monotonic()
    assert c.get("/v1.0/organization", timeout=5).status_code == 200  # answered after the hold
    assert time.monotonic() - t0 >= 0.5
