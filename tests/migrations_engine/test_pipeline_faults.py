"""The pipeline under crashes and Graph faults: resumes without gaps, duplicates or lost audit."""

from __future__ import annotations

import threading
from collections import Counter

import httpx
import pytest
from django.db import connection

from migrations_engine.graph.resources.mfa_policy import POLICY_NAME
from migrations_engine.models import AuditEvent, RunItem, UserOutcome
from migrations_engine.runs.pipeline import step_keys
from migrations_engine.runs.services import RunConflict, resume_stalled, retry_failed, start_run
from tests.migrations_engine.pipeline_helpers import (
    FAST,
    audit_matches_simulator,
    coverage_gaps,
    effective_writes,
    item_of,
    seed,
    sim_clock,
    sim_state,
    tenant_named,
    work,
    worker_process,
)

pytestmark = pytest.mark.django_db(transaction=True)

CRASH_POINTS = [f"after_step:{key}" for key in step_keys("full")] + [
    "after_write:policy.create",
    "after_write:sd.disable",
    "after_write:policy.enable",
    "after_write:per_user_mfa.set",
]


def assert_migrated_once(sim, tenant, before, t0):
    """Verified end state, no gap, one tool policy, each write applied once, audit = simulator."""
    state = sim_state(sim, tenant)
    assert not state["security_defaults"]
    assert all(u["perUserMfaState"] == "disabled" for u in state["users"] if not u["breakGlass"])
    assert [p["displayName"] for p in state["policies"]].count(POLICY_NAME) == 1
    assert coverage_gaps(sim, tenant, since=t0) == []
    writes = Counter((w["method"], w["path"].split("?")[0]) for w in effective_writes(sim, tenant))
    assert writes[("POST", "/v1.0/identity/conditionalAccess/policies")] == 1
    sd_patches = writes[("PATCH", "/v1.0/policies/identitySecurityDefaultsEnforcementPolicy")]
    assert sd_patches == (1 if before["security_defaults"] else 0)
    for user in before["users"]:
        if user["breakGlass"]:
            continue
        path = ("PATCH", f"/beta/users/{user['id']}/authentication/requirements")
        bridged = before["security_defaults"] and user["perUserMfaState"] == "disabled"
        expected = 2 if bridged else (0 if user["perUserMfaState"] == "disabled" else 1)
        assert writes[path] == expected, (user["userPrincipalName"], writes[path], expected)
    audit_matches_simulator(sim, tenant)


@pytest.mark.parametrize("point", CRASH_POINTS)
def test_it_resumes_after_a_worker_dies_and_changes_nothing_twice(
    fast_graph, tmp_path, queue, redis_url, point
):
    seed(fast_graph, tmp_path)
    tenant = tenant_named("fabrikam")  # security defaults on: the bridge, the hand-off and the per-user step
    before = sim_state(fast_graph, tenant)
    t0 = sim_clock(fast_graph)
    run = start_run(mode="full", tenants=[tenant], actor="test", options=FAST)
    assert worker_process(redis_url, crash_points=point) == 137, f"no crash at {point}"
    item = item_of(run)
    assert item.status == "running"
    assert resume_stalled(run, actor="test") == 1
    assert worker_process(redis_url) == 0
    item.refresh_from_db()
    assert item.status == "succeeded", (point, item.failure_reason, item.traceback)
    assert_migrated_once(fast_graph, tenant, before, t0)


def test_it_finds_a_created_policy_whose_answer_was_lost_instead_of_creating_another(
    fast_graph, tmp_path, queue
):
    seed(fast_graph, tmp_path)
    tenant = tenant_named("woodgrove")
    tid = str(tenant.tenant_id)
    fast_graph.admin("POST", f"/_sim/tenants/{tid}/faults", json={"replication_lag_s": 3})
    fast_graph.add_fault_rules(
        tid, {"method": "POST", "path_contains": "conditionalAccess/policies", "drop_after_commit": True}
    )
    before = sim_state(fast_graph, tenant)
    t0 = sim_clock(fast_graph)
    run = start_run(mode="full", tenants=[tenant], actor="test", options=FAST)
    work(queue)
    item = item_of(run)
    assert item.status == "succeeded", item.failure_reason
    assert fast_graph.fault_rules(tid)[0]["fired"] == 1
    assert_migrated_once(fast_graph, tenant, before, t0)


def test_it_stops_for_a_human_when_two_policies_could_be_adopted(fast_graph, tmp_path, queue):
    seed(fast_graph, tmp_path)
    tenant = tenant_named("northwind")  # already holds a Microsoft-managed MFA policy in report-only
    second = {
        "displayName": "Require MFA (made by hand)",
        "state": "enabledForReportingButNotEnforced",
        "conditions": {
            "users": {"includeUsers": ["All"]},
            "applications": {"includeApplications": ["All"]},
            "clientAppTypes": ["all"],
        },
        "grantControls": {"operator": "OR", "builtInControls": ["mfa"]},
    }
    token = fast_graph.token(str(tenant.tenant_id))
    created = httpx.post(
        f"{fast_graph.graph_base_url}/v1.0/identity/conditionalAccess/policies",
        json=second,
        headers={"Authorization": f"Bearer {token}"},
        verify=fast_graph.ssl_context,
        trust_env=False,
    )
    assert created.status_code == 201, created.text
    writes_before = len(effective_writes(fast_graph, tenant))
    run = start_run(mode="full", tenants=[tenant], actor="test", options=FAST)
    work(queue)
    item = item_of(run)
    assert item.status == "failed" and "A human must choose" in item.failure_reason
    assert "Require MFA (made by hand)" in item.failure_reason
    assert len(effective_writes(fast_graph, tenant)) == writes_before


def test_it_turns_security_defaults_back_on_when_the_policy_cannot_be_enabled(fast_graph, tmp_path, queue):
    seed(fast_graph, tmp_path)
    tenant = tenant_named("fabrikam")
    tid = str(tenant.tenant_id)
    fast_graph.add_fault_rules(
        tid,
        {
            "method": "PATCH",
            "path_contains": "conditionalAccess/policies/",
            "body_contains": {"state": "enabled"},
            "status": 503,
            "times": 0,
        },
    )
    t0 = sim_clock(fast_graph)
    run = start_run(mode="full", tenants=[tenant], actor="test", options=FAST)
    work(queue)
    item = item_of(run)
    assert item.status == "failed" and "security defaults were turned back on" in item.failure_reason
    assert item.retryable
    state = sim_state(fast_graph, tenant)
    assert state["security_defaults"] is True
    assert not UserOutcome.objects.filter(item=item, purpose="migrate").exists()
    disabling = AuditEvent.objects.filter(
        tenant=tenant, action="per_user_mfa.set", outcome="intent", request_body__perUserMfaState="disabled"
    )
    assert not disabling.exists()
    assert coverage_gaps(fast_graph, tenant, since=t0) == []
    audit_matches_simulator(fast_graph, tenant)

    # Once Graph lets the policy be enabled, retrying the item finishes the job from the cut-over.
    fast_graph.clear_fault_rules(tid)
    assert retry_failed(run, actor="test") == 1
    work(queue)
    item.refresh_from_db()
    assert item.status == "succeeded", item.failure_reason
    assert coverage_gaps(fast_graph, tenant, since=t0) == []


def test_it_retries_only_throttled_batch_items_and_records_each_user(fast_graph, tmp_path, queue):
    seed(fast_graph, tmp_path)
    tenant = tenant_named("woodgrove")
    tid = str(tenant.tenant_id)
    users = [u for u in sim_state(fast_graph, tenant)["users"] if not u["breakGlass"]]
    on = [u for u in users if u["perUserMfaState"] != "disabled"]
    denied, throttled, flaky = on[0], on[1], on[2]
    fast_graph.add_fault_rules(
        tid,
        {"method": "PATCH", "path_contains": f"{denied['id']}/authentication", "status": 403, "times": 0},
        {
            "method": "PATCH",
            "path_contains": f"{throttled['id']}/authentication",
            "status": 429,
            "retry_after": 0.5,
            "times": 1,
        },
        {"method": "PATCH", "path_contains": f"{flaky['id']}/authentication", "status": 503, "times": 1},
    )
    run = start_run(mode="full", tenants=[tenant], actor="test", options=FAST)
    work(queue)
    item = item_of(run)
    assert item.status == "failed" and "1 users could not be changed" in item.failure_reason
    outcomes = {o.user_id: o for o in UserOutcome.objects.filter(item=item, purpose="migrate")}
    assert (outcomes[denied["id"]].status, outcomes[denied["id"]].http_status) == ("failed", 403)
    assert outcomes[throttled["id"]].status == "succeeded"
    assert outcomes[flaky["id"]].status == "succeeded"
    attempts = Counter(
        w["path"]
        for w in fast_graph.admin("GET", f"/_sim/requests?tenant={tid}&limit=100000")["requests"]
        if w["method"] == "PATCH"
    )
    assert attempts[f"/beta/users/{denied['id']}/authentication/requirements"] == 1  # a 403 is not retried
    assert attempts[f"/beta/users/{throttled['id']}/authentication/requirements"] == 2
    assert attempts[f"/beta/users/{flaky['id']}/authentication/requirements"] == 2  # read back, then resent
    others = [u for u in on if u["id"] not in {denied["id"], throttled["id"], flaky["id"]}]
    assert all(attempts[f"/beta/users/{u['id']}/authentication/requirements"] == 1 for u in others)
    assert all(outcomes[u["id"]].status == "succeeded" for u in others)
    audit_matches_simulator(fast_graph, tenant)


def test_two_concurrent_starts_for_one_tenant_make_one_run(fast_graph, tmp_path, queue):
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL (DATABASE_URL): SQLite serialises writers, so starts cannot race")
    seed(fast_graph, tmp_path)
    tenant = tenant_named("contoso")
    barrier = threading.Barrier(2)
    results: list[object] = []

    def start():
        from django.db import connections

        barrier.wait()
        try:
            results.append(start_run(mode="plan", tenants=[tenant], actor="test", options=FAST))
        except RunConflict as exc:
            results.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=start) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    runs = [r for r in results if not isinstance(r, RunConflict)]
    conflicts = [r for r in results if isinstance(r, RunConflict)]
    assert len(runs) == 1 and len(conflicts) == 1
    assert conflicts[0].existing.pk == runs[0].pk
    assert RunItem.objects.filter(tenant=tenant, status__in=["queued", "running"]).count() == 1


def test_it_fails_with_the_graph_error_not_a_traceback_when_graph_refuses_a_read(fast_graph, tmp_path, queue):
    seed(fast_graph, tmp_path)
    tenant = tenant_named("woodgrove")
    fast_graph.add_fault_rules(
        str(tenant.tenant_id), {"method": "GET", "path_contains": "/v1.0/users", "status": 403, "times": 0}
    )
    run = start_run(mode="full", tenants=[tenant], actor="test", options=FAST)
    work(queue)
    item = item_of(run)
    assert item.status == "failed" and not item.traceback
    assert "403 Authorization_RequestDenied" in item.failure_reason and "request-id" in item.failure_reason
    assert not item.retryable
    assert effective_writes(fast_graph, tenant) == []


def test_verify_turns_per_user_mfa_off_again_when_a_late_write_turned_it_back_on(
    fast_graph, tmp_path, queue, redis_url
):
    """A bridge write that Graph applied after we had given up on it lands after the disable step:
    verify must put the user back to disabled (audited) instead of waiting for the settle time."""
    seed(fast_graph, tmp_path)
    tenant = tenant_named("fabrikam")
    t0 = sim_clock(fast_graph)
    run = start_run(mode="full", tenants=[tenant], actor="test", options=FAST)
    assert worker_process(redis_url, crash_points="after_step:disable_per_user") == 137
    late = [u for u in sim_state(fast_graph, tenant)["users"] if not u["breakGlass"]][:2]
    for user in late:  # what the late-landing bridge writes do
        fast_graph.admin(
            "POST",
            f"/_sim/tenants/{tenant.tenant_id}/users/{user['id']}/per-user-mfa",
            json={"state": "enabled"},
        )
    assert resume_stalled(run, actor="test") == 1
    assert worker_process(redis_url) == 0
    item = item_of(run)
    assert item.status == "succeeded", item.failure_reason
    state = {u["id"]: u["perUserMfaState"] for u in sim_state(fast_graph, tenant)["users"]}
    assert all(state[u["id"]] == "disabled" for u in late)
    redone = UserOutcome.objects.filter(item=item, purpose="straggler", status="succeeded")
    assert sorted(redone.values_list("user_id", flat=True)) == sorted(u["id"] for u in late)
    assert coverage_gaps(fast_graph, tenant, since=t0) == []


def test_an_item_checkpointed_by_another_release_is_refused_without_a_write(fast_graph, tmp_path, queue):
    """An upgrade that changed the steps met a run in flight: the checkpoint (an index) cannot be trusted."""
    seed(fast_graph, tmp_path)
    tenant = tenant_named("contoso")
    run = start_run(mode="full", tenants=[tenant], actor="test", options=FAST)
    keys = step_keys("full")
    # As a release without the readiness gate left it: six steps done, its sixth being ensure_policy.
    older = [key for key in keys if key != "readiness"][:6]
    RunItem.objects.filter(run=run).update(
        next_step_index=6, step_log=[{"key": key, "title": key, "status": "done"} for key in older]
    )
    work(queue)
    item = item_of(run)
    assert item.status == "failed" and not item.retryable
    assert "upgraded" in item.failure_reason and "ensure_policy" in item.failure_reason
    assert effective_writes(fast_graph, tenant) == []
    run.refresh_from_db()
    assert run.status == "failed"


def test_a_step_logged_done_before_its_checkpoint_moved_is_not_taken_for_an_upgrade(
    fast_graph, tmp_path, queue
):
    """A worker killed between logging a step done and moving the checkpoint: that step runs again."""
    seed(fast_graph, tmp_path)
    tenant = tenant_named("contoso")
    run = start_run(mode="plan", tenants=[tenant], actor="test", options=FAST)
    keys = step_keys("plan")
    RunItem.objects.filter(run=run).update(
        next_step_index=2, step_log=[{"key": key, "title": key, "status": "done"} for key in keys[:3]]
    )
    work(queue)
    item = item_of(run)
    assert item.status == "succeeded", item.failure_reason


def test_unusable_graph_settings_fail_the_item_and_the_census_in_words(fast_graph, tmp_path, queue, settings):
    """The app certificate expired (or its key was swapped): a run's tenant and a census say so, retryably,
    and nothing reaches Graph; no job ends in a traceback."""
    import datetime

    from migrations_engine.census.services import enqueue_census
    from tests.migrations_engine.pipeline_helpers import sim_log
    from tests.security.test_deploy_settings import app_certificate

    seed(fast_graph, tmp_path)
    tenant = tenant_named("contoso")
    run = start_run(mode="plan", tenants=[tenant], actor="test", options=FAST)
    expired = datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC)
    settings.GRAPH_CLIENT_PRIVATE_KEY_FILE, settings.GRAPH_CLIENT_CERTIFICATE_FILE = app_certificate(
        tmp_path, name="expired", not_after=expired
    )
    census = enqueue_census(tenant.pk, actor="test")
    work(queue)
    item = item_of(run)
    assert item.status == "failed" and item.retryable and not item.traceback
    assert item.failure_reason.startswith("The console's Graph settings are unusable")
    assert "expired on 2020-01-01" in item.failure_reason
    assert census.get_status(refresh=True) == "finished"
    tenant.refresh_from_db()
    assert tenant.census_status == "error" and "expired on 2020-01-01" in tenant.census_message
    assert sim_log(fast_graph, tenant) == []
