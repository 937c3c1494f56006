"""The pipeline end to end on a real rq worker and Redis, against the simulator over HTTPS."""

from __future__ import annotations

import pytest

from migrations_engine.choices import AuditOutcome
from migrations_engine.models import AuditEvent, UserOutcome
from migrations_engine.runs.services import RunConflict, start_rollback, start_run
from tenants.models import BreakGlassConfig
from tests.migrations_engine.pipeline_helpers import (
    FAST,
    audit_matches_simulator,
    coverage_gaps,
    effective_writes,
    item_of,
    policies,
    seed,
    sim_clock,
    sim_log,
    sim_state,
    tenant_named,
    work,
)

pytestmark = pytest.mark.django_db(transaction=True)

MIGRATABLE = ["contoso", "fabrikam", "northwind", "woodgrove"]


def non_break_glass(state):
    return [u for u in state["users"] if not u.get("breakGlass")]


def test_it_migrates_every_migratable_demo_tenant_without_a_gap(fast_graph, tmp_path, queue):
    seed(fast_graph, tmp_path)
    tenants = [tenant_named(name) for name in MIGRATABLE]
    before = {t.pk: sim_state(fast_graph, t) for t in tenants}
    t0 = sim_clock(fast_graph)
    run = start_run(mode="full", tenants=tenants, actor="test", options=FAST)
    work(queue)
    run.refresh_from_db()
    assert run.status == "succeeded", [(i.tenant, i.failure_reason) for i in run.items.all()]
    for tenant in tenants:
        item = run.items.get(tenant=tenant)
        state = sim_state(fast_graph, tenant)
        assert item.verdict.startswith("Verified"), item.verdict
        assert not state["security_defaults"]
        assert all(u["perUserMfaState"] == "disabled" for u in non_break_glass(state))
        # break-glass accounts' per-user state is never touched
        bg_before = {u["id"]: u["perUserMfaState"] for u in before[tenant.pk]["users"] if u.get("breakGlass")}
        assert {u["id"]: u["perUserMfaState"] for u in state["users"] if u.get("breakGlass")} == bg_before
        mfa_policies = [p for p in state["policies"] if p["state"] == "enabled"]
        assert len(mfa_policies) == 1
        excluded = set(mfa_policies[0]["conditions"]["users"].get("excludeUsers", []))
        assert set(bg_before) <= excluded or mfa_policies[0]["conditions"]["users"].get("excludeGroups")
        assert coverage_gaps(fast_graph, tenant, since=t0) == []
        audit_matches_simulator(fast_graph, tenant)
    # Northwind had a Microsoft-managed MFA policy in report-only: it was adopted, not duplicated.
    northwind = tenant_named("northwind")
    assert len(policies(fast_graph, northwind)) == len(before[northwind.pk]["policies"])


@pytest.mark.parametrize(
    ("name", "step", "reason"),
    [
        ("tailspin", "check_licence", "Buy P1/P2"),
        ("adatum", "verify_consent", "consent is not granted, or was withdrawn (AADSTS"),
        ("litware", "verify_consent", "Policy.ReadWrite.AuthenticationMethod"),
    ],
)
def test_it_stops_tenants_that_cannot_be_migrated_with_a_reason_and_no_writes(
    fast_graph, tmp_path, queue, name, step, reason
):
    seed(fast_graph, tmp_path)
    tenant = tenant_named(name)
    run = start_run(mode="full", tenants=[tenant], actor="test", options=FAST)
    work(queue)
    item = item_of(run)
    assert item.status == "failed" and reason in item.failure_reason
    assert item.step_log[-1]["key"] == step and item.step_log[-1]["status"] == "failed"
    assert effective_writes(fast_graph, tenant) == []


def test_it_plans_without_writing_and_shows_the_diff(fast_graph, tmp_path, queue):
    seed(fast_graph, tmp_path)
    tenant = tenant_named("fabrikam")
    run = start_run(mode="plan", tenants=[tenant], actor="test", options=FAST)
    work(queue)
    item = item_of(run)
    assert item.status == "succeeded", item.failure_reason
    assert [r for r in sim_log(fast_graph, tenant) if r["method"] != "GET" and "$batch" not in r["path"]] == [
        r for r in sim_log(fast_graph, tenant) if r["path"].endswith("/evaluate")
    ]
    assert effective_writes(fast_graph, tenant) == []
    changes = [d["change"] for d in item.plan_diff]
    assert (
        "create policy" in changes and "turn security defaults off" in changes and "enable policy" in changes
    )
    disable = next(d for d in item.plan_diff if d["step"] == "migrate")
    state = sim_state(fast_graph, tenant)
    # the plan counts every non-break-glass user that per-user MFA or the bridge would leave enabled
    assert disable["users"] == len(non_break_glass(state))
    assert AuditEvent.objects.filter(tenant=tenant, outcome=AuditOutcome.DRY_RUN).exists()
    assert not AuditEvent.objects.filter(tenant=tenant, outcome=AuditOutcome.INTENT).exists()


def test_a_plan_of_a_migrated_tenant_plans_no_enabling_of_its_enabled_policy(fast_graph, tmp_path, queue):
    seed(fast_graph, tmp_path)
    tenant = tenant_named("contoso")
    run = start_run(mode="full", tenants=[tenant], actor="test", options=FAST)
    work(queue)
    assert item_of(run).status == "succeeded", item_of(run).failure_reason
    writes_before = len(effective_writes(fast_graph, tenant))
    plan = start_run(mode="plan", tenants=[tenant], actor="test", options=FAST)
    work(queue)
    item = item_of(plan)
    assert item.status == "succeeded", item.failure_reason
    changes = [d["change"] for d in item.plan_diff]
    assert "enable policy" not in changes and "create policy" not in changes, changes
    cut_over = next(e for e in item.step_log if e["key"] == "cut_over")
    assert "already enabled" in str(cut_over), cut_over
    assert len(effective_writes(fast_graph, tenant)) == writes_before


def test_it_stops_with_zero_writes_when_break_glass_is_missing(fast_graph, tmp_path, queue):
    seed(fast_graph, tmp_path)
    tenant = tenant_named("contoso")
    BreakGlassConfig.objects.filter(tenant=tenant).update(accounts=["nobody@contoso.onmicrosoft.com"])
    tenant.refresh_from_db()
    run = start_run(mode="full", tenants=[tenant], actor="test", options=FAST)
    work(queue)
    item = item_of(run)
    assert item.status == "failed" and "No change was made" in item.failure_reason
    assert "nobody@contoso.onmicrosoft.com" in item.failure_reason
    non_get = [
        r for r in sim_log(fast_graph, tenant) if r["method"] != "GET" and not r["path"].endswith("$batch")
    ]
    assert non_get == []
    assert not AuditEvent.objects.filter(tenant=tenant, kind="graph_write").exists()


def test_it_runs_a_pilot_for_the_group_only_and_rolls_it_back_exactly(fast_graph, tmp_path, queue):
    seed(fast_graph, tmp_path)
    tenant = tenant_named("contoso")
    before = sim_state(fast_graph, tenant)
    group = next(g for g in before["groups"] if "pilot" in g["displayName"].lower())
    members = set(group["members"])
    run = start_run(mode="pilot", tenants=[tenant], actor="test", pilot_group_id=group["id"], options=FAST)
    work(queue)
    item = item_of(run)
    assert item.status == "succeeded", item.failure_reason
    during = sim_state(fast_graph, tenant)
    was = {u["id"]: u["perUserMfaState"] for u in before["users"]}
    for user in during["users"]:
        if user["id"] in members and not user["breakGlass"]:
            assert user["perUserMfaState"] == "disabled"
        else:
            assert user["perUserMfaState"] == was[user["id"]], user["userPrincipalName"]
    policy = next(p for p in during["policies"] if p["state"] == "enabled")
    assert policy["conditions"]["users"]["includeGroups"] == [group["id"]]

    t0 = sim_clock(fast_graph)
    rollback = start_rollback(run, actor="test")
    work(queue)
    rb_item = item_of(rollback)
    assert rb_item.status == "succeeded", rb_item.failure_reason
    after = sim_state(fast_graph, tenant)
    assert {u["id"]: u["perUserMfaState"] for u in after["users"]} == was
    assert after["security_defaults"] == before["security_defaults"]
    assert next(p for p in after["policies"] if p["id"] == policy["id"])["state"] == "disabled"
    # Everyone who had MFA before the pilot kept it throughout the rollback (pilot members through the
    # policy until their per-user state was back). Only users who had none before the pilot lose it again.
    had_none_before = {u["id"] for u in before["users"] if u["perUserMfaState"] == "disabled"}
    gaps = coverage_gaps(fast_graph, tenant, since=t0)
    assert gaps and {g["user_id"] for g in gaps} <= had_none_before & members


def test_it_rolls_back_a_security_defaults_tenant_without_a_gap(fast_graph, tmp_path, queue):
    seed(fast_graph, tmp_path)
    tenant = tenant_named("fabrikam")
    before = sim_state(fast_graph, tenant)
    assert before["security_defaults"]
    run = start_run(mode="full", tenants=[tenant], actor="test", options=FAST)
    work(queue)
    assert item_of(run).status == "succeeded", item_of(run).failure_reason
    t0 = sim_clock(fast_graph)
    rollback = start_rollback(run, actor="test")
    work(queue)
    assert item_of(rollback).status == "succeeded", item_of(rollback).failure_reason
    after = sim_state(fast_graph, tenant)
    assert after["security_defaults"] is True
    assert {u["id"]: u["perUserMfaState"] for u in after["users"]} == {
        u["id"]: u["perUserMfaState"] for u in before["users"]
    }
    assert coverage_gaps(fast_graph, tenant, since=t0) == []
    audit_matches_simulator(fast_graph, tenant)


def test_it_refuses_a_second_run_for_a_busy_tenant(fast_graph, tmp_path, queue):
    seed(fast_graph, tmp_path)
    tenant = tenant_named("contoso")
    first = start_run(mode="plan", tenants=[tenant], actor="test", options=FAST)
    with pytest.raises(RunConflict) as caught:
        start_run(mode="full", tenants=[tenant, tenant_named("fabrikam")], actor="test", options=FAST)
    assert caught.value.existing == first
    assert first.items.count() == 1
    assert UserOutcome.objects.count() == 0
