"""The pipeline and rollback with Graph's automatic enabled -> enforced move, at once and after a lag.

strongAuthenticationRequirements resource page
(https://learn.microsoft.com/graph/api/resources/strongauthenticationrequirements): a user set to
`enabled` who has already registered an MFA method "changes automatically to enforced". The page gives no
timing, so both are run: the simulator's `enforce_after_s` knob at 0 (at once) and at a lag. The bridge,
the read-back of a write whose answer was lost, rollback and its verify must take `enforced` as meeting a
wanted `enabled`: nothing re-sent, nothing failed for it.
"""

from __future__ import annotations

import pytest

from migrations_engine.models import UserOutcome
from migrations_engine.runs.services import start_rollback, start_run
from tests.migrations_engine.pipeline_helpers import (
    FAST,
    audit_matches_simulator,
    coverage_gaps,
    item_of,
    seed,
    sim_clock,
    sim_log,
    sim_state,
    tenant_named,
    work,
)

pytestmark = pytest.mark.django_db(transaction=True)

TIMINGS = pytest.mark.parametrize("enforce_after_s", [0, 20], ids=["at-once", "after-a-lag"])


@TIMINGS
def test_the_bridge_takes_enforced_as_done_even_when_its_answer_was_lost(
    fast_graph, tmp_path, queue, enforce_after_s
):
    seed(fast_graph, tmp_path)
    tenant = tenant_named("fabrikam")  # security defaults on: the run bridges SD-only users
    before = sim_state(fast_graph, tenant)
    assert before["security_defaults"]
    target = next(
        u
        for u in before["users"]
        if u["perUserMfaState"] == "disabled" and u["isMfaRegistered"] and not u["breakGlass"]
    )
    fast_graph.admin(
        "POST", f"/_sim/tenants/{tenant.tenant_id}/faults", json={"enforce_after_s": enforce_after_s}
    )
    # the batch holding this user's bridge write is applied, then its answer is lost
    fast_graph.add_fault_rules(
        tenant.tenant_id,
        {
            "method": "PATCH",
            "path_contains": f"/users/{target['id']}/authentication/requirements",
            "body_contains": {"perUserMfaState": "enabled"},
            "drop_after_commit": True,
        },
    )
    t0 = sim_clock(fast_graph)
    run = start_run(mode="full", tenants=[tenant], actor="test", options=FAST)
    work(queue)
    item = item_of(run)
    assert item.status == "succeeded", item.failure_reason
    assert fast_graph.fault_rules(tenant.tenant_id)[0]["fired"] == 1
    bridged = UserOutcome.objects.get(item=item, purpose="bridge", user_id=target["id"])
    assert bridged.status == "succeeded", bridged.error
    enabling = [
        r
        for r in sim_log(fast_graph, tenant)
        if r["method"] == "PATCH" and target["id"] in r["path"] and r.get("write_effective")
    ]
    # one bridge write (read back, enforced or enabled, taken as done), then the one disable write
    assert len(enabling) == 2, enabling
    assert all(
        u["perUserMfaState"] == "disabled"
        for u in sim_state(fast_graph, tenant)["users"]
        if not u["breakGlass"]
    )
    assert coverage_gaps(fast_graph, tenant, since=t0) == []
    audit_matches_simulator(fast_graph, tenant)


@TIMINGS
def test_rollback_restores_enabled_users_who_registered_and_verifies_them_as_enforced(
    fast_graph, tmp_path, queue, enforce_after_s
):
    seed(fast_graph, tmp_path)
    tenant = tenant_named("contoso")
    before = sim_state(fast_graph, tenant)
    was = {u["id"]: u["perUserMfaState"] for u in before["users"]}
    enabled_registered = {
        u["id"] for u in before["users"] if u["perUserMfaState"] == "enabled" and u["isMfaRegistered"]
    }
    enforced = {
        u["id"] for u in before["users"] if u["perUserMfaState"] == "enforced" and not u["breakGlass"]
    }
    assert enabled_registered and enforced, "the fleet has users of both kinds"
    fast_graph.admin(
        "POST", f"/_sim/tenants/{tenant.tenant_id}/faults", json={"enforce_after_s": enforce_after_s}
    )
    run = start_run(mode="full", tenants=[tenant], actor="test", options=FAST)
    work(queue)
    assert item_of(run).status == "succeeded", item_of(run).failure_reason
    rollback = start_rollback(run, actor="test")
    work(queue)
    rb_item = item_of(rollback)
    assert rb_item.status == "succeeded", rb_item.failure_reason
    after = {u["id"]: u["perUserMfaState"] for u in sim_state(fast_graph, tenant)["users"]}
    for user_id, state in was.items():
        if user_id in enabled_registered:
            # restored as enabled; Graph moves them on to enforced (at once, or once the lag is over)
            assert after[user_id] in ({"enforced"} if enforce_after_s == 0 else {"enabled", "enforced"})
        else:
            assert after[user_id] == state
    # enforced users were written back as enforced directly, each once
    restores = UserOutcome.objects.filter(item=rb_item, purpose="restore")
    assert {o.user_id for o in restores.filter(wanted="enforced")} == enforced
    assert restores.exclude(status="succeeded").count() == 0
    for user_id in list(enabled_registered)[:3]:
        writes = [
            r
            for r in sim_log(fast_graph, tenant)
            if r["method"] == "PATCH" and user_id in r["path"] and r.get("write_effective")
        ]
        assert len(writes) == 2, writes  # disable in the run, enable in the rollback: none re-sent
    audit_matches_simulator(fast_graph, tenant)
