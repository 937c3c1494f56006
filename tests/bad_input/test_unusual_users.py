"""Unusual UPNs end to end, and Graph answers with unknown enum values or missing fields."""

from __future__ import annotations

import csv
import io

import pytest
from django.core.management import call_command

from migrations_engine.models import AuditEvent, UserOutcome
from migrations_engine.runs.services import start_run
from tenants.census_report import census_csv_rows
from tenants.services import set_break_glass
from tests.migrations_engine.pipeline_helpers import (
    FAST,
    audit_matches_simulator,
    coverage_gaps,
    item_of,
    seed,
    sim_clock,
    sim_state,
    tenant_named,
    work,
)

pytestmark = pytest.mark.django_db(transaction=True)

WOODGROVE = "woodgrove.onmicrosoft.com"
GUEST = f"ravi_partner.example#EXT#@{WOODGROVE}"
APOSTROPHE = f"o'brien@{WOODGROVE}"
UNICODE_NAME = "Zoë Ångström 李雷"


def census_csv(tenant) -> list[dict]:
    tenant.refresh_from_db()
    return list(csv.DictReader(io.StringIO("".join(census_csv_rows([tenant])))))


def test_guests_apostrophes_and_unicode_names_migrate_end_to_end(fast_graph, tmp_path, queue):
    seed(fast_graph, tmp_path)
    tenant = tenant_named("woodgrove")
    call_command("census", "--tenant", WOODGROVE)
    before = {row["upn"]: row for row in census_csv(tenant)}
    assert before[GUEST]["per_user_mfa_state"] == "enforced" and before[GUEST]["user_type"] == "Guest"
    assert before[APOSTROPHE]["display_name"] == "Siobhán O'Brien"
    assert any(row["display_name"] == UNICODE_NAME for row in before.values())

    t0 = sim_clock(fast_graph)
    run = start_run(mode="full", tenants=[tenant], actor="test", options=FAST)
    work(queue)
    item = item_of(run)
    assert item.status == "succeeded", (item.failure_reason, item.traceback)
    state = {u["userPrincipalName"]: u for u in sim_state(fast_graph, tenant)["users"]}
    for upn in (GUEST, APOSTROPHE):
        assert state[upn]["perUserMfaState"] == "disabled"
        outcome = UserOutcome.objects.get(item=item, upn=upn, purpose="migrate")
        assert outcome.status == "succeeded"
        intent = AuditEvent.objects.get(
            item_id=item.pk, target=upn, action="per_user_mfa.set", outcome="intent"
        )
        assert intent.outcomes.get().outcome == "succeeded"
    assert coverage_gaps(fast_graph, tenant, since=t0) == []
    audit_matches_simulator(fast_graph, tenant)

    call_command("census", "--tenant", WOODGROVE)
    after = {row["upn"]: row for row in census_csv(tenant)}
    assert set(after) == set(before)
    assert after[GUEST]["per_user_mfa_state"] == after[APOSTROPHE]["per_user_mfa_state"] == "disabled"
    assert (
        next(r for r in after.values() if r["display_name"] == UNICODE_NAME)["per_user_mfa_state"]
        == "disabled"
    )


def test_break_glass_accounts_named_by_guest_and_apostrophe_upns_resolve(fast_graph, tmp_path, queue):
    seed(fast_graph, tmp_path)
    tenant = tenant_named("woodgrove")
    set_break_glass(tenant, accounts=[GUEST, APOSTROPHE], minimum_count=2, actor="test")
    tenant.refresh_from_db()
    run = start_run(mode="plan", tenants=[tenant], actor="test", options=FAST)
    work(queue)
    item = item_of(run)
    assert item.status == "succeeded", item.failure_reason
    assert sorted(item.state["break_glass_upns"]) == sorted([GUEST, APOSTROPHE])
    guard = next(s for s in item.step_log if s["key"] == "guard_break_glass")
    assert "2 break-glass accounts resolved" in guard["message"]


# --- unknown enum values and missing fields ----------------------------------------------------


def oddify(sim, domain: str, *, with_policy: bool = True) -> dict:
    """Put Graph's future-proofing into a tenant: an `unknownFutureValue` per-user state, a user without
    a UPN, a CA policy in state `unknownFutureValue` and one without `conditions`."""
    sim_tenant = sim.tenant(domain)
    users = [u for u in sim_tenant.users if not u.break_glass and u.per_user_state != "disabled"]
    odd_state, no_upn = users[0], users[1]

    def change():
        odd_state.per_user_state = "unknownFutureValue"
        no_upn.upn = ""
        if with_policy:
            sim_tenant.policies["odd-1"] = {
                "id": "odd-1",
                "displayName": "From the future",
                "state": "unknownFutureValue",
                "conditions": {
                    "users": {"includeUsers": ["All"]},
                    "applications": {"includeApplications": ["All"]},
                },
                "grantControls": {"operator": "OR", "builtInControls": ["mfa"]},
            }
            sim_tenant.policies["odd-2"] = {
                "id": "odd-2",
                "displayName": "No conditions",
                "state": "disabled",
            }

    sim.call(change)
    return {"odd_state": odd_state.id, "no_upn": no_upn.id}


def test_the_census_counts_unknown_states_and_tolerates_missing_fields(fast_graph, tmp_path):
    seed(fast_graph, tmp_path)
    odd = oddify(fast_graph, "contoso.onmicrosoft.com")
    call_command("census", "--tenant", "contoso.onmicrosoft.com")
    tenant = tenant_named("contoso")
    tenant.refresh_from_db()
    assert tenant.census_status == "ok", tenant.census_message
    assert tenant.census_detail["per_user"]["unknown"] == 1
    assert "1 users' per-user MFA state was unknown" in tenant.census_message
    total = tenant.per_user_enabled + tenant.per_user_enforced + tenant.per_user_disabled
    assert total + 1 == tenant.users_total
    states = {p["id"]: p["state"] for p in tenant.census_detail["policies"]}
    assert states["odd-1"] == "unknownFutureValue" and states["odd-2"] == "disabled"
    assert tenant.mfa_policy_state == "none"  # an unknown state is never counted as enabled
    rows = {row["user_id"]: row for row in census_csv(tenant)}
    assert rows[odd["odd_state"]]["per_user_mfa_state"] == "unknown"
    assert rows[odd["no_upn"]]["upn"] == ""


def test_the_pipeline_leaves_a_user_in_an_unknown_state_alone_and_finishes(fast_graph, tmp_path, queue):
    seed(fast_graph, tmp_path)
    odd = oddify(fast_graph, "contoso.onmicrosoft.com", with_policy=False)
    tenant = tenant_named("contoso")
    t0 = sim_clock(fast_graph)
    run = start_run(mode="full", tenants=[tenant], actor="test", options=FAST)
    work(queue)
    item = item_of(run)
    assert item.status == "succeeded", (item.failure_reason, item.traceback)
    assert "1 users in an unknown per-user MFA state were left as they are" in item.verdict
    census = next(s for s in item.step_log if s["key"] == "census")
    assert "1 in an unknown state" in census["message"]
    users = {u["id"]: u for u in sim_state(fast_graph, tenant)["users"]}
    assert users[odd["odd_state"]]["perUserMfaState"] == "unknownFutureValue"  # never written
    assert users[odd["no_upn"]]["perUserMfaState"] == "disabled"
    assert not AuditEvent.objects.filter(path__contains=odd["odd_state"]).exists()
    assert coverage_gaps(fast_graph, tenant, since=t0) == []


def test_the_pipeline_adopts_nothing_odd_and_ignores_a_policy_without_conditions(fast_graph, tmp_path, queue):
    seed(fast_graph, tmp_path)
    oddify(fast_graph, "contoso.onmicrosoft.com")
    fast_graph.call(lambda: fast_graph.tenant("contoso.onmicrosoft.com").policies.pop("odd-1"))
    tenant = tenant_named("contoso")
    run = start_run(mode="full", tenants=[tenant], actor="test", options=FAST)
    work(queue)
    item = item_of(run)
    assert item.status == "succeeded", (item.failure_reason, item.traceback)
    assert sim_state(fast_graph, tenant)["policies"][-1]["id"] != "odd-2"


def test_a_security_defaults_tenant_with_an_unknown_state_stops_before_the_hand_off(
    fast_graph, tmp_path, queue
):
    seed(fast_graph, tmp_path)
    odd = oddify(fast_graph, "fabrikam.onmicrosoft.com", with_policy=False)
    tenant = tenant_named("fabrikam")
    run = start_run(mode="full", tenants=[tenant], actor="test", options=FAST)
    work(queue)
    item = item_of(run)
    assert item.status == "failed" and not item.retryable
    assert "cannot be bridged: security defaults stay on" in item.failure_reason
    state = sim_state(fast_graph, tenant)
    assert state["security_defaults"] is True
    assert all(p["state"] != "enabled" for p in state["policies"])
    assert {u["id"]: u for u in state["users"]}[odd["odd_state"]]["perUserMfaState"] == "unknownFutureValue"
