"""Each tenant's stored migration state: changed only by what changes the tenant (a real run's item
starting and ending, drift found or resolved, a census, consent and break-glass), never by a plan; and
filled from history for tenants that existed before the field."""

from __future__ import annotations

import csv
import importlib
import io
import uuid

import pytest
from django.apps import apps
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command

from migrations_engine.census.read import CensusResult
from migrations_engine.drift.services import check_tenant
from migrations_engine.models import AuditEvent
from migrations_engine.runs.services import start_rollback, start_run
from tenants.census_report import census_csv_rows
from tenants.choices import MigrationState
from tenants.migration_state import Readiness, RealRun, decide
from tenants.models import BreakGlassConfig, CensusUser, CustomerTenant
from tenants.services import (
    CensusWriter,
    VerifiedRead,
    record_census,
    record_verified_census,
    set_break_glass,
)
from tests.migrations_engine.console_helpers import client_for, staff_user
from tests.migrations_engine.pipeline_helpers import FAST, seed, tenant_named, work

pytestmark = pytest.mark.django_db(transaction=True)  # jobs are queued on commit


def state(tenant) -> tuple[str, str]:
    tenant.refresh_from_db()
    return tenant.migration_state, tenant.migration_state_reason


def census(*tenants) -> None:
    args = [arg for t in tenants for arg in ("--tenant", t.primary_domain)]
    call_command("census", *args, "--no-progress", stdout=open("/dev/null", "w"))


def sim_post(sim, tenant, path: str, body: dict) -> dict:
    return sim.admin("POST", f"/_sim/tenants/{tenant.tenant_id}{path}", json=body)


def run(mode, tenant, queue, **kwargs):
    started = start_run(mode=mode, tenants=[tenant], actor="test", options=FAST, **kwargs)
    work(queue)
    started.refresh_from_db()
    return started


def test_a_census_makes_a_tenant_ready_or_blocked_with_the_reasons(fast_graph, tmp_path, queue):
    seed(fast_graph, tmp_path)
    woodgrove, tailspin, litware = (tenant_named(n) for n in ("woodgrove", "tailspin", "litware"))
    assert state(woodgrove) == (MigrationState.NOT_STARTED, "No census yet")

    census(woodgrove, tailspin, litware)

    assert state(woodgrove)[0] == MigrationState.READY
    assert state(tailspin) == (
        MigrationState.BLOCKED,
        "Entra ID Free: Conditional Access needs Entra ID P1 or P2",
    )
    blocked, reason = state(litware)
    assert blocked == MigrationState.BLOCKED and "Policy.ReadWrite.AuthenticationMethod" in reason
    # Break-glass is part of being ready: taken away, the tenant is blocked; given back, ready again.
    BreakGlassConfig.objects.filter(tenant=woodgrove).delete()
    assert state(woodgrove) == (MigrationState.BLOCKED, "No break-glass accounts configured")
    set_break_glass(woodgrove, accounts=["breakglass1@woodgrove.onmicrosoft.com"], actor="test")
    assert state(woodgrove)[0] == MigrationState.READY


def test_a_plan_never_changes_what_a_migrated_tenant_is(fast_graph, tmp_path, queue):
    seed(fast_graph, tmp_path)
    tenant = tenant_named("woodgrove")
    census(tenant)
    full = run("full", tenant, queue)
    assert state(tenant) == (MigrationState.MIGRATED, f"Verified by run {full.pk}")

    plan = run("plan", tenant, queue)

    assert state(tenant) == (MigrationState.MIGRATED, f"Verified by run {full.pk}")
    planned = plan.items.get().plan_diff
    assert (tenant.last_plan_run_id, tenant.last_plan_changes) == (plan.pk, len(planned))
    census(tenant)  # a census of a migrated tenant does not change what it is either
    assert state(tenant)[0] == MigrationState.MIGRATED


def test_drift_opening_and_resolving_moves_a_migrated_tenant_and_back(fast_graph, tmp_path, queue):
    seed(fast_graph, tmp_path)
    tenant = tenant_named("woodgrove")
    run("full", tenant, queue)
    sim_post(fast_graph, tenant, "/security-defaults", {"enabled": True})

    check_tenant(tenant, actor="test")
    drift, reason = state(tenant)
    assert drift == MigrationState.MIGRATED_DRIFT and "Drift found" in reason

    sim_post(fast_graph, tenant, "/security-defaults", {"enabled": False})
    check_tenant(tenant, actor="test")
    assert state(tenant)[0] == MigrationState.MIGRATED


def test_a_rollback_and_a_census_after_it(fast_graph, tmp_path, queue):
    seed(fast_graph, tmp_path)
    tenant = tenant_named("woodgrove")
    full = run("full", tenant, queue)
    back = start_rollback(full, actor="test")
    work(queue)
    assert state(tenant) == (MigrationState.ROLLED_BACK, f"Rolled back by run {back.pk}")

    census(tenant)

    tenant.refresh_from_db()
    assert tenant.migration_state == MigrationState.ROLLED_BACK
    assert tenant.per_user_enforced or tenant.per_user_enabled  # per-user MFA is back, as the census read


def test_a_rollback_stopped_part_way_leaves_the_tenant_partly_rolled_back(fast_graph, tmp_path, queue):
    seed(fast_graph, tmp_path)
    tenant = tenant_named("woodgrove")
    full = run("full", tenant, queue)
    # Graph refuses turning the policy back: per-user MFA was restored already, the policy is still on.
    fast_graph.add_fault_rules(
        str(tenant.tenant_id),
        {"method": "PATCH", "path_contains": "conditionalAccess/policies", "status": 403, "times": 0},
        {"method": "DELETE", "path_contains": "conditionalAccess/policies", "status": 403, "times": 0},
    )
    back = start_rollback(full, actor="test")
    work(queue)

    partly, reason = state(tenant)
    assert partly == MigrationState.PARTLY_ROLLED_BACK, reason
    assert reason.startswith(f"Rollback run {back.pk} stopped part-way")


def test_a_real_run_that_changed_nothing_leaves_the_tenant_as_it_was(fast_graph, tmp_path, queue):
    seed(fast_graph, tmp_path)
    tenant = tenant_named("tailspin")  # Entra ID Free, not known yet: no census
    failed = run("full", tenant, queue)

    assert failed.items.get().status == "failed"
    not_started, reason = state(tenant)
    assert not_started == MigrationState.NOT_STARTED
    assert f"Run {failed.pk} failed before changing anything: Entra ID Free" in reason


def test_the_pre_flight_leaves_blocked_tenants_out_and_starts_nothing_when_none_remain(
    fast_graph, tmp_path, queue
):
    seed(fast_graph, tmp_path)
    woodgrove, fabrikam = tenant_named("woodgrove"), tenant_named("fabrikam")
    BreakGlassConfig.objects.filter(tenant=fabrikam).delete()

    started = start_run(mode="full", tenants=[woodgrove, fabrikam], actor="test", options=FAST)

    assert list(started.items.values_list("tenant_id", flat=True)) == [woodgrove.pk]
    [left] = started.preflight["left_out"]
    assert left["domain"] == fabrikam.primary_domain and "No break-glass accounts" in left["reasons"][0]
    work(queue)
    assert AuditEvent.objects.filter(
        action="run.tenant_left_out", tenant=fabrikam, run_id=started.pk
    ).exists()
    with pytest.raises(ValidationError, match="Nothing was started: every tenant is blocked"):
        start_run(mode="plan", tenants=[fabrikam], actor="test", options=FAST)
    with pytest.raises(CommandError, match="No break-glass accounts"):
        call_command("start_run", "--mode", "plan", "--tenants", fabrikam.primary_domain)


def test_a_run_that_stopped_part_way_needs_attention(fast_graph, tmp_path, queue):
    seed(fast_graph, tmp_path)
    tenant = tenant_named("woodgrove")
    census(tenant)
    fast_graph.add_fault_rules(
        str(tenant.tenant_id),
        {"method": "PATCH", "path_contains": "/authentication/", "status": 403, "times": 0},
    )
    failed = run("full", tenant, queue)

    attention, reason = state(tenant)
    assert attention == MigrationState.NEEDS_ATTENTION and reason.startswith(
        f"Run {failed.pk} stopped part-way"
    )


@pytest.mark.parametrize(
    ("history", "drift", "expected"),
    [
        ([], False, MigrationState.READY),
        ([RealRun(1, "full", "running")], False, MigrationState.MIGRATING),
        ([RealRun(1, "pilot", "succeeded")], False, MigrationState.PILOT_VERIFIED),
        ([RealRun(1, "full", "succeeded")], True, MigrationState.MIGRATED_DRIFT),
        (
            [RealRun(1, "full", "succeeded"), RealRun(2, "rollback", "running")],
            False,
            MigrationState.ROLLING_BACK,
        ),
        (
            [RealRun(1, "full", "succeeded"), RealRun(2, "rollback", "cancelled", wrote=True)],
            False,
            "partly_rolled_back",
        ),
        # A rollback cancelled before it wrote anything: still migrated.
        (
            [RealRun(1, "full", "succeeded"), RealRun(2, "rollback", "cancelled")],
            False,
            MigrationState.MIGRATED,
        ),
        (
            [RealRun(1, "full", "succeeded"), RealRun(2, "rollback", "succeeded")],
            True,
            MigrationState.ROLLED_BACK,
        ),
        ([RealRun(1, "full", "errored", wrote=True)], False, MigrationState.NEEDS_ATTENTION),
    ],
)
def test_every_state_follows_from_the_facts(history, drift, expected):
    ready = Readiness(census_status="ok", licence="p1", consent_status="granted", break_glass=True)
    assert decide(history, ready, drift).state == expected


def test_the_data_migration_fills_the_state_from_history(fast_graph, tmp_path, queue):
    seed(fast_graph, tmp_path)
    tenant = tenant_named("woodgrove")
    full = run("full", tenant, queue)
    CustomerTenant.objects.update(migration_state=MigrationState.NOT_STARTED, migration_state_reason="")

    fill = importlib.import_module("migrations_engine.migrations.0007_tenant_migration_states").fill
    fill(apps, None)

    assert state(tenant) == (MigrationState.MIGRATED, f"Verified by run {full.pk}")
    assert state(tenant_named("contoso")) == (MigrationState.NOT_STARTED, "No census yet")


def test_what_verify_read_is_the_census_the_moment_a_run_ends(fast_graph, tmp_path, queue):
    seed(fast_graph, tmp_path)
    tenant = tenant_named("contoso")
    census(tenant)
    tenant.refresh_from_db()
    before = (tenant.per_user_enabled, tenant.per_user_enforced, tenant.per_user_disabled)
    assert before[0] + before[1] > 0 and tenant.mfa_policy_state == "none"
    # A registered user put back to "enabled" becomes "enforced" (howto-mfa-userstates), as Graph does.
    registered_enabled = CensusUser.objects.filter(
        tenant=tenant, generation=tenant.census_generation, per_user_state="enabled", mfa_registered=True
    ).count()

    full = run("full", tenant, queue)

    tenant.refresh_from_db()
    break_glass = len(full.items.get().state["break_glass_ids"])
    assert tenant.per_user_enabled + tenant.per_user_enforced <= break_glass  # only break-glass kept theirs
    assert tenant.per_user_disabled >= sum(before) - break_glass
    assert (tenant.mfa_policy_state, tenant.security_defaults) == ("enabled", False)
    assert (
        tenant.census_detail["source"]["kind"] == "verify"
        and tenant.census_detail["source"]["run_id"] == full.pk
    )
    rows = list(csv.DictReader(io.StringIO("".join(census_csv_rows([tenant])))))
    states_in_csv = [row["per_user_mfa_state"] for row in rows]
    assert (
        len(states_in_csv) == tenant.users_total
        and states_in_csv.count("disabled") == tenant.per_user_disabled
    )

    back = start_rollback(full, actor="test")
    work(queue)
    tenant.refresh_from_db()
    assert (tenant.per_user_enabled, tenant.per_user_enforced, tenant.per_user_disabled) == (
        before[0] - registered_enabled,
        before[1] + registered_enabled,
        before[2],
    )
    assert tenant.mfa_policy_state == "none" and tenant.census_detail["source"]["run_id"] == back.pk


def test_the_tenant_page_says_what_the_tenant_is_and_who_read_its_census(fast_graph, tmp_path, queue):
    seed(fast_graph, tmp_path)
    tenant = tenant_named("woodgrove")
    full = run("full", tenant, queue)
    plan = run("plan", tenant, queue)

    page = client_for(staff_user("root", superuser=True)).get(f"/tenants/customertenant/{tenant.pk}/change/")

    text = page.content.decode()
    assert "Migrated (verified)" in text and f"Verified by run {full.pk}" in text
    assert "by verify of <a" in text and f"run {full.pk}</a>" in text
    assert f"run {plan.pk}</a>" in text and "a dry run: it changed nothing" in text


def test_a_census_streaming_while_verify_stores_its_read_neither_collides_nor_loses_rows(db):
    tenant = CustomerTenant.objects.create(
        tenant_id=uuid.uuid4(), primary_domain="both.onmicrosoft.com", display_name="Both"
    )
    users = [
        {"user_id": f"u{i}", "upn": f"u{i}@both.onmicrosoft.com", "user_type": "Member"}
        | {"account_enabled": True, "per_user_state": "enforced", "mfa_registered": True}
        for i in range(3)
    ]
    census_rows = [{**u, "display_name": f"User {i}", "methods": []} for i, u in enumerate(users)]
    census_rows = [
        {k: v for k, v in row.items() if k != "per_user_state"} | {"per_user_state": "enforced"}
        for row in census_rows
    ]
    writer = CensusWriter(tenant)  # a census starts streaming its rows...
    writer.write(census_rows[:2])
    # ...while a run's verify stores what it read: its generation must be another one.
    record_verified_census(
        tenant,
        VerifiedRead(run_id=1, what="verify", states={u["user_id"]: "disabled" for u in users}, users=users),
    )
    writer.write(census_rows[2:])
    tenant.refresh_from_db()
    assert tenant.per_user_disabled == 3

    record_census(tenant, CensusResult(users_total=3, per_user={"enforced": 3}), actor="test", writer=writer)

    tenant.refresh_from_db()
    current = CensusUser.objects.filter(tenant=tenant, generation=tenant.census_generation)
    assert current.count() == 3 and set(current.values_list("per_user_state", flat=True)) == {"enforced"}
