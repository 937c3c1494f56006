"""The drift watch: a tenant migrated for real (real rq worker, Redis, the simulator over HTTPS), then
drift injected through the simulator's /_sim API, checked, mailed, shown, and remediated by a run."""

from __future__ import annotations

import io
import re
import threading
import time
from pathlib import Path

import pytest
from django.contrib.auth.models import Permission
from django.core import mail
from django.core.management import call_command
from django.core.management.base import CommandError

from migrations_engine.choices import AuditKind, DriftCheckStatus, DriftKind
from migrations_engine.drift.services import (
    WATCH_ACTOR,
    NotCheckable,
    check_tenant,
    interval_seconds,
    plan_remediation,
    start_remediation,
)
from migrations_engine.drift.tasks import drift_watch_job
from migrations_engine.models import AuditEvent, DriftCheck, DriftFinding, MigrationRun
from migrations_engine.runs.migrated import migrated_item, migrated_tenants
from migrations_engine.runs.services import start_rollback, start_run
from migrations_engine.schedules import DRIFT_WATCH_ID as DRIFT_SCHEDULE_ID
from migrations_engine.schedules import ensure
from scripts.processes import free_port
from tests.migrations_engine.console_helpers import client_for, csrf_post, staff_user
from tests.migrations_engine.pipeline_helpers import (
    FAST,
    audit_matches_simulator,
    coverage_gaps,
    item_of,
    policies,
    seed,
    sim_clock,
    sim_log,
    sim_state,
    tenant_named,
    work,
    worker_process,
)

pytestmark = pytest.mark.django_db(transaction=True)

FINDINGS = "/migrations_engine/driftfinding/"
DRIFT_PERMISSIONS = ("view_driftfinding", "view_driftcheck")


# --- helpers -------------------------------------------------------------------------------------


def migrate(sim, tmp_path, queue, name: str = "woodgrove", **kwargs):
    """Seed the demo fleet and migrate one tenant for real; (tenant, run)."""
    seed(sim, tmp_path)
    tenant = tenant_named(name)
    run = start_run(mode=kwargs.pop("mode", "full"), tenants=[tenant], actor="test", options=FAST, **kwargs)
    work(queue)
    item = item_of(run)
    assert item.status == "succeeded", item.failure_reason
    tenant.refresh_from_db()
    return tenant, run


def the_policy(sim, tenant, run) -> dict:
    pid = item_of(run).state["policy_id"]
    return next(p for p in policies(sim, tenant) if p["id"] == pid)


def sim_post(sim, tenant, path: str, body: dict) -> dict:
    return sim.admin("POST", f"/_sim/tenants/{tenant.tenant_id}{path}", json=body)


def patch_policy(sim, tenant, run, patch: dict) -> None:
    sim_post(sim, tenant, f"/policies/{item_of(run).state['policy_id']}", patch)


def ordinary_user(sim, tenant, run) -> dict:
    """A user who is neither break-glass nor guest (the first, in the simulator's order)."""
    bg = set(item_of(run).state["break_glass_ids"])
    return next(u for u in sim_state(sim, tenant)["users"] if u["id"] not in bg and u["userType"] == "Member")


def open_findings(tenant) -> dict[str, DriftFinding]:
    return {f.kind: f for f in DriftFinding.objects.filter(tenant=tenant, resolved_at__isnull=True)}


def drift_staff(username: str, *tenants):
    user = staff_user(username, *tenants)
    user.user_permissions.add(*Permission.objects.filter(codename__in=DRIFT_PERMISSIONS))
    return user


# --- detection -----------------------------------------------------------------------------------


def test_it_finds_no_drift_on_a_freshly_migrated_tenant_and_writes_nothing(fast_graph, tmp_path, queue):
    tenant, run = migrate(fast_graph, tmp_path, queue)
    since = max(r["seq"] for r in sim_log(fast_graph, tenant))
    check = check_tenant(tenant, actor="test")
    assert check.status == DriftCheckStatus.CLEAN, check.error
    assert check.users_checked == len(sim_state(fast_graph, tenant)["users"])
    assert check.run_item == item_of(run) and check.policy_id == item_of(run).state["policy_id"]
    assert not DriftFinding.objects.filter(tenant=tenant).exists()
    tenant.refresh_from_db()
    assert tenant.drift_detected is False
    # pure reads: nothing but GETs (single or in a $batch) reached the tenant
    during = [r for r in sim_log(fast_graph, tenant, since_seq=since)]
    assert during and all(r["method"] == "GET" or r["path"].endswith("/$batch") for r in during)
    assert not any(r.get("write") or r.get("write_effective") for r in during)
    row = AuditEvent.objects.get(tenant=tenant, action="drift.checked")
    assert (
        row.kind == AuditKind.STAFF_ACTION and row.detail["status"] == "clean" and row.detail["found"] == {}
    )


def _per_user_on(sim, tenant, run):
    user = ordinary_user(sim, tenant, run)
    sim_post(sim, tenant, f"/users/{user['id']}/per-user-mfa", {"state": "enabled"})
    return user["userPrincipalName"], lambda: sim_post(
        sim, tenant, f"/users/{user['id']}/per-user-mfa", {"state": "disabled"}
    )


def _security_defaults_on(sim, tenant, run):
    sim_post(sim, tenant, "/security-defaults", {"enabled": True})
    return "isEnabled", lambda: sim_post(sim, tenant, "/security-defaults", {"enabled": False})


def _policy_disabled(sim, tenant, run):
    patch_policy(sim, tenant, run, {"state": "disabled"})
    return "disabled", lambda: patch_policy(sim, tenant, run, {"state": "enabled"})


def _policy_report_only(sim, tenant, run):
    patch_policy(sim, tenant, run, {"state": "enabledForReportingButNotEnforced"})
    return "enabledForReportingButNotEnforced", lambda: patch_policy(sim, tenant, run, {"state": "enabled"})


def _grant_changed(sim, tenant, run):
    was = the_policy(sim, tenant, run)["grantControls"]
    patch_policy(
        sim, tenant, run, {"grantControls": {"operator": "OR", "builtInControls": ["compliantDevice"]}}
    )
    return "grant", lambda: patch_policy(sim, tenant, run, {"grantControls": was})


def _exclusion_added(sim, tenant, run):
    user = ordinary_user(sim, tenant, run)
    was = the_policy(sim, tenant, run)["conditions"]["users"]["excludeUsers"]
    patch_policy(sim, tenant, run, {"conditions": {"users": {"excludeUsers": [*was, user["id"]]}}})
    return user["userPrincipalName"], lambda: patch_policy(
        sim, tenant, run, {"conditions": {"users": {"excludeUsers": was}}}
    )


def _apps_narrowed(sim, tenant, run):
    was = the_policy(sim, tenant, run)["conditions"]["applications"]
    exchange = "00000002-0000-0ff1-ce00-000000000000"
    patch_policy(sim, tenant, run, {"conditions": {"applications": {"includeApplications": [exchange]}}})
    return "applications", lambda: patch_policy(sim, tenant, run, {"conditions": {"applications": was}})


def _break_glass_unexcluded(sim, tenant, run):
    was = the_policy(sim, tenant, run)["conditions"]["users"]["excludeUsers"]
    bg = item_of(run).state["break_glass_ids"][0]
    upn = next(u["userPrincipalName"] for u in sim_state(sim, tenant)["users"] if u["id"] == bg)
    patch_policy(sim, tenant, run, {"conditions": {"users": {"excludeUsers": [x for x in was if x != bg]}}})
    return upn, lambda: patch_policy(sim, tenant, run, {"conditions": {"users": {"excludeUsers": was}}})


def _policy_deleted(sim, tenant, run):
    pid = item_of(run).state["policy_id"]
    sim.admin("DELETE", f"/_sim/tenants/{tenant.tenant_id}/policies/{pid}")
    return pid, None  # nothing brings the same id back: remediation re-creates it (tested below)


def _new_unregistered_user(sim, tenant, run):
    upn = f"new.hire@{tenant.primary_domain}"
    user = sim_post(sim, tenant, "/users", {"userPrincipalName": upn, "displayName": "New Hire"})
    return upn, lambda: sim_post(sim, tenant, f"/users/{user['id']}/register", {"methods": ["mobilePhone"]})


@pytest.mark.parametrize(
    ("inject", "kind", "named_in_detail"),
    [
        (_per_user_on, DriftKind.PER_USER_MFA, "users"),
        (_security_defaults_on, DriftKind.SECURITY_DEFAULTS, None),
        (_policy_disabled, DriftKind.POLICY_DISABLED, "state"),
        (_policy_report_only, DriftKind.POLICY_DISABLED, "state"),
        (_grant_changed, DriftKind.POLICY_CHANGED, "fields"),
        (_exclusion_added, DriftKind.POLICY_CHANGED, "changes"),
        (_apps_narrowed, DriftKind.POLICY_CHANGED, "fields"),
        (_break_glass_unexcluded, DriftKind.BREAK_GLASS_EXCLUSION, "accounts"),
        (_policy_deleted, DriftKind.POLICY_DELETED, "policy_id"),
        (_new_unregistered_user, DriftKind.UNREGISTERED_USERS, "users"),
    ],
    ids=lambda v: v.__name__.strip("_") if callable(v) else None,
)
def test_it_detects_each_kind_of_drift_and_resolves_it_when_undone(
    fast_graph, tmp_path, queue, inject, kind, named_in_detail
):
    tenant, run = migrate(fast_graph, tmp_path, queue)
    assert check_tenant(tenant, actor="test").status == DriftCheckStatus.CLEAN
    what, undo = inject(fast_graph, tenant, run)

    check = check_tenant(tenant, actor="test")
    assert check.status == DriftCheckStatus.DRIFT, check.error
    found = open_findings(tenant)
    assert set(found) == {kind}, {k: f.summary for k, f in found.items()}
    finding = found[kind]
    assert finding.first_check == check and finding.first_seen_at == finding.last_seen_at
    assert what in finding.summary or what in str(finding.detail), (finding.summary, finding.detail)
    if named_in_detail:
        assert what in str(finding.detail[named_in_detail]), finding.detail
    tenant.refresh_from_db()
    assert tenant.drift_detected is True
    counts = AuditEvent.objects.filter(tenant=tenant, action="drift.checked").order_by("-seq").first().detail
    assert set(counts["found"]) == {kind}

    # seen again: the same open finding is refreshed, not duplicated
    check_tenant(tenant, actor="test")
    assert DriftFinding.objects.filter(tenant=tenant, kind=kind).count() == 1
    assert DriftFinding.objects.get(pk=finding.pk).last_seen_at > finding.last_seen_at

    if undo is None:
        return
    undo()
    check = check_tenant(tenant, actor="test")
    assert check.status == DriftCheckStatus.CLEAN, open_findings(tenant)
    finding.refresh_from_db()
    assert finding.resolved_at is not None and open_findings(tenant) == {}
    tenant.refresh_from_db()
    assert tenant.drift_detected is False


def test_a_pilot_counts_only_its_group_and_is_remediated_with_the_same_group(fast_graph, tmp_path, queue):
    contoso = fast_graph.admin("GET", "/_sim/tenants/contoso.onmicrosoft.com/state")
    group = next(g for g in contoso["groups"] if "pilot" in g["displayName"].lower())
    tenant, run = migrate(fast_graph, tmp_path, queue, "contoso", mode="pilot", pilot_group_id=group["id"])
    # users outside the pilot kept per-user MFA: that is the pilot, not drift
    assert check_tenant(tenant, actor="test").status == DriftCheckStatus.CLEAN, open_findings(tenant)
    bg = set(item_of(run).state["break_glass_ids"])
    users = {u["id"]: u for u in sim_state(fast_graph, tenant)["users"]}
    member = next(uid for uid in group["members"] if uid not in bg)
    outsider = next(u for uid, u in users.items() if uid not in group["members"] and uid not in bg)
    sim_post(fast_graph, tenant, f"/users/{member}/per-user-mfa", {"state": "enforced"})
    sim_post(fast_graph, tenant, f"/users/{outsider['id']}/per-user-mfa", {"state": "enabled"})

    check_tenant(tenant, actor="test")
    found = open_findings(tenant)
    assert set(found) == {DriftKind.PER_USER_MFA}
    assert found[DriftKind.PER_USER_MFA].detail["users"] == [
        {"upn": users[member]["userPrincipalName"], "state": "enforced"}
    ]

    [plan] = plan_remediation(found.values())
    remediation = start_remediation(plan, actor="test")
    assert remediation.mode == "pilot" and str(remediation.pilot_group_id) == group["id"]
    work(queue)
    assert item_of(remediation).status == "succeeded", item_of(remediation).failure_reason
    assert check_tenant(tenant, actor="test").status == DriftCheckStatus.CLEAN, open_findings(tenant)
    assert {u["id"]: u["perUserMfaState"] for u in sim_state(fast_graph, tenant)["users"]}[
        outsider["id"]
    ] == ("enabled")

    # security defaults back on: a pilot run cannot turn them off, so no remediation is offered
    sim_post(fast_graph, tenant, "/security-defaults", {"enabled": True})
    check_tenant(tenant, actor="test")
    [plan] = plan_remediation(open_findings(tenant).values())
    assert "pilot run cannot turn them off" in plan.refused
    with pytest.raises(Exception, match="pilot run cannot turn them off"):
        start_remediation(plan, actor="test")


@pytest.mark.parametrize("cause", ["consent_revoked", "permission_missing", "graph_403", "throttled"])
def test_a_check_that_cannot_read_the_tenant_records_an_error_and_keeps_the_findings(
    fast_graph, tmp_path, queue, cause
):
    tenant, run = migrate(fast_graph, tmp_path, queue)
    upn, undo = _per_user_on(fast_graph, tenant, run)
    check_tenant(tenant, actor="test")
    before = open_findings(tenant)[DriftKind.PER_USER_MFA]
    undo()  # a check that could read the tenant would now resolve the finding
    tid = str(tenant.tenant_id)
    expected = {
        "consent_revoked": "consent is not granted, or was withdrawn",
        "permission_missing": "Policy.Read.All",
        "graph_403": "403",
        "throttled": "throttled",
    }[cause]
    if cause == "consent_revoked":
        sim_post(fast_graph, tenant, "/consent", {"granted": False})
    elif cause == "permission_missing":
        roles = [r for r in sim_state(fast_graph, tenant)["roles"] if r != "Policy.Read.All"]
        sim_post(fast_graph, tenant, "/consent", {"granted": True, "roles": roles})
    elif cause == "graph_403":
        fast_graph.add_fault_rules(
            tid, {"path_contains": "identitySecurityDefaults", "status": 403, "times": 0}
        )
    else:
        fast_graph.add_fault_rules(
            tid,
            {"path_contains": "conditionalAccess/policies/", "status": 429, "retry_after": 0.01, "times": 0},
        )

    check = check_tenant(tenant, actor="test")
    assert check.status == DriftCheckStatus.ERROR and expected in check.error, check.error
    after = open_findings(tenant)[DriftKind.PER_USER_MFA]
    assert after.pk == before.pk and after.last_seen_at == before.last_seen_at and after.resolved_at is None
    tenant.refresh_from_db()
    assert tenant.drift_detected is True
    row = AuditEvent.objects.filter(tenant=tenant, action="drift.checked").order_by("-seq").first()
    assert row.detail["status"] == "error"


def test_it_does_not_check_a_tenant_that_is_not_migrated_or_was_rolled_back(fast_graph, tmp_path, queue):
    tenant, run = migrate(fast_graph, tmp_path, queue)
    other = tenant_named("contoso")
    assert list(migrated_tenants().values_list("pk", flat=True)) == [tenant.pk]
    with pytest.raises(NotCheckable, match="not migrated"):
        check_tenant(other, actor="test")
    start_rollback(run, actor="test")
    work(queue)
    assert migrated_item(tenant) is None
    with pytest.raises(NotCheckable, match="not migrated"):
        check_tenant(tenant, actor="test")
    assert not DriftCheck.objects.exists()


# --- e-mail --------------------------------------------------------------------------------------


def test_new_findings_are_mailed_once_and_not_again_while_open(fast_graph, tmp_path, queue, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.DRIFT_EMAIL_TO = ["ops@msp.example"]
    settings.SITE_URL = "https://console.msp.example"
    tenant, run = migrate(fast_graph, tmp_path, queue)
    check_tenant(tenant, actor="test")
    assert mail.outbox == []  # a clean check mails nobody

    upn, _ = _per_user_on(fast_graph, tenant, run)
    check_tenant(tenant, actor="test")
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["ops@msp.example"] and message.from_email == settings.DEFAULT_FROM_EMAIL
    assert tenant.display_name in message.subject and "Per-user MFA back on" in message.subject
    assert upn in message.body
    assert f"https://console.msp.example/tenants/customertenant/{tenant.pk}/change/" in message.body
    fleet = fast_graph.fleet
    for secret in (fleet["client_secret"], Path(fleet["client_private_key"]).read_text()[40:80]):
        assert secret not in message.body and secret not in message.subject
    assert open_findings(tenant)[DriftKind.PER_USER_MFA].notified_at is not None

    check_tenant(tenant, actor="test")
    assert len(mail.outbox) == 1  # the same open finding is not mailed again

    _security_defaults_on(fast_graph, tenant, run)
    check_tenant(tenant, actor="test")
    assert len(mail.outbox) == 2  # only the new finding
    assert "Security defaults back on" in mail.outbox[1].subject
    assert "Per-user MFA" not in mail.outbox[1].subject


def test_a_mail_that_fails_is_logged_and_sent_by_the_next_check(
    fast_graph, tmp_path, queue, settings, caplog
):
    settings.DRIFT_EMAIL_TO = ["ops@msp.example"]
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", free_port(), 2
    tenant, run = migrate(fast_graph, tmp_path, queue)
    _per_user_on(fast_graph, tenant, run)

    check = check_tenant(tenant, actor="test")  # nothing listens on EMAIL_PORT
    assert check.status == DriftCheckStatus.DRIFT
    assert open_findings(tenant)[DriftKind.PER_USER_MFA].notified_at is None
    assert "drift mail about" in caplog.text and "not sent" in caplog.text

    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    check_tenant(tenant, actor="test")
    assert len(mail.outbox) == 1 and "Per-user MFA back on" in mail.outbox[0].subject
    assert open_findings(tenant)[DriftKind.PER_USER_MFA].notified_at is not None


# --- remediation ---------------------------------------------------------------------------------


def test_remediate_starts_an_audited_run_that_repairs_every_kind_it_can(fast_graph, tmp_path, queue):
    tenant, run = migrate(fast_graph, tmp_path, queue)
    policy_id = item_of(run).state["policy_id"]
    policy = the_policy(fast_graph, tenant, run)
    bg = item_of(run).state["break_glass_ids"]
    extra = ordinary_user(fast_graph, tenant, run)
    _per_user_on(fast_graph, tenant, run)
    _security_defaults_on(fast_graph, tenant, run)
    _new_unregistered_user(fast_graph, tenant, run)
    excluded = [x for x in policy["conditions"]["users"]["excludeUsers"] if x != bg[0]] + [extra["id"]]
    patch_policy(
        fast_graph,
        tenant,
        run,
        {
            "state": "disabled",
            "grantControls": {"operator": "OR", "builtInControls": ["compliantDevice"]},
            "conditions": {"users": {"excludeUsers": excluded}},
        },
    )
    check_tenant(tenant, actor="test")
    findings = open_findings(tenant)
    assert set(findings) == {
        DriftKind.PER_USER_MFA,
        DriftKind.SECURITY_DEFAULTS,
        DriftKind.POLICY_DISABLED,
        DriftKind.POLICY_CHANGED,
        DriftKind.BREAK_GLASS_EXCLUSION,
        DriftKind.UNREGISTERED_USERS,
    }
    changed = findings[DriftKind.POLICY_CHANGED].detail
    assert set(changed["fields"]) == {"grant", "exclusions"}
    assert changed["changes"]["exclusions"]["added"] == [f"users: {extra['userPrincipalName']}"]

    ops = drift_staff("ops", tenant)
    client = client_for(ops, csrf=True)
    selected = [f.pk for f in findings.values()]
    confirm = csrf_post(client, FINDINGS, FINDINGS, {"action": "remediate", "_selected_action": selected})
    page = confirm.content.decode()
    assert confirm.status_code == 200 and "a full run" in page and "register at their next sign-in" in page
    assert not MigrationRun.objects.exclude(pk=run.pk).exists()  # the first POST only asks

    t0 = sim_clock(fast_graph)
    response = csrf_post(
        client, FINDINGS, FINDINGS, {"action": "remediate", "_selected_action": selected, "confirm": "yes"}
    )
    remediation = MigrationRun.objects.exclude(pk=run.pk).get()
    assert response.status_code == 302 and response["Location"].endswith(
        f"/migrationrun/{remediation.pk}/change/"
    )
    assert remediation.mode == "full" and remediation.actor == "ops" and remediation.started_by == ops
    for kind, finding in open_findings(tenant).items():
        expected = None if kind == DriftKind.UNREGISTERED_USERS else remediation.pk
        assert finding.remediation_run_id == expected, kind
    started = AuditEvent.objects.get(tenant=tenant, action="drift.remediation_started")
    assert started.actor == "ops" and started.run_id == remediation.pk
    assert started.detail["not_remediated"] == [DriftKind.UNREGISTERED_USERS]

    work(queue)
    item = item_of(remediation)
    assert item.status == "succeeded", item.failure_reason
    state = sim_state(fast_graph, tenant)
    [restored] = [p for p in state["policies"] if p["displayName"] == policy["displayName"]]
    assert restored["id"] == policy_id and restored["state"] == "enabled"  # patched by id, no second policy
    assert restored["grantControls"]["builtInControls"] == ["mfa"]
    assert set(restored["conditions"]["users"]["excludeUsers"]) == set(bg)
    assert AuditEvent.objects.filter(tenant=tenant, action="policy.restore", outcome="succeeded").exists()
    assert coverage_gaps(fast_graph, tenant, since=t0) == []
    audit_matches_simulator(fast_graph, tenant)

    check = check_tenant(tenant, actor="test")
    assert check.run_item == item  # the remediation is the new baseline
    assert set(open_findings(tenant)) == {DriftKind.UNREGISTERED_USERS}  # no Graph write registers users


def test_remediate_creates_a_deleted_policy_again(fast_graph, tmp_path, queue):
    tenant, run = migrate(fast_graph, tmp_path, queue)
    old_id, _ = _policy_deleted(fast_graph, tenant, run)
    check_tenant(tenant, actor="test")
    [plan] = plan_remediation(open_findings(tenant).values())
    remediation = start_remediation(plan, actor="test")
    work(queue)
    assert item_of(remediation).status == "succeeded", item_of(remediation).failure_reason
    new_id = item_of(remediation).state["policy_id"]
    assert new_id != old_id and item_of(remediation).state.get("policy_created")
    assert [p["state"] for p in policies(fast_graph, tenant) if p["id"] == new_id] == ["enabled"]
    assert check_tenant(tenant, actor="test").status == DriftCheckStatus.CLEAN
    assert open_findings(tenant) == {}


def test_unregistered_users_alone_start_no_run(fast_graph, tmp_path, queue):
    tenant, run = migrate(fast_graph, tmp_path, queue)
    _new_unregistered_user(fast_graph, tenant, run)
    check_tenant(tenant, actor="test")
    [plan] = plan_remediation(open_findings(tenant).values())
    assert plan.repair == [] and "nothing here that a run can repair" in plan.refused
    ops = drift_staff("ops", tenant)
    client = client_for(ops)
    finding = open_findings(tenant)[DriftKind.UNREGISTERED_USERS]
    response = client.post(
        FINDINGS, {"action": "remediate", "_selected_action": [finding.pk], "confirm": "yes"}, follow=True
    )
    assert "nothing here that a run can repair" in response.content.decode()
    assert MigrationRun.objects.count() == 1


def test_remediate_on_a_busy_tenant_says_so_and_starts_nothing(fast_graph, tmp_path, queue):
    tenant, run = migrate(fast_graph, tmp_path, queue)
    _per_user_on(fast_graph, tenant, run)
    check_tenant(tenant, actor="test")
    busy = start_run(mode="plan", tenants=[tenant], actor="test", options=FAST)  # queued, not worked
    finding = open_findings(tenant)[DriftKind.PER_USER_MFA]
    client = client_for(drift_staff("ops", tenant))
    response = client.post(
        FINDINGS, {"action": "remediate", "_selected_action": [finding.pk], "confirm": "yes"}, follow=True
    )
    assert f"already has run {busy.pk} in progress" in response.content.decode()
    assert set(MigrationRun.objects.values_list("pk", flat=True)) == {run.pk, busy.pk}
    finding.refresh_from_db()
    assert finding.remediation_run is None
    with pytest.raises(NotCheckable, match="in progress"):  # nor is a busy tenant checked
        check_tenant(tenant, actor="test")


# --- console and access --------------------------------------------------------------------------


def test_findings_show_on_the_fleet_page_the_tenant_page_and_the_dashboard(fast_graph, tmp_path, queue):
    tenant, run = migrate(fast_graph, tmp_path, queue)
    upn, _ = _per_user_on(fast_graph, tenant, run)
    check_tenant(tenant, actor="test")
    client = client_for(drift_staff("ops", tenant))

    fleet = client.get("/tenants/customertenant/?drift=open").content.decode()
    # The count of open findings, their kinds on hover.
    assert tenant.display_name in fleet and re.search(r'title="Per-user MFA back on: [^"]*">⚠ 1<', fleet)
    assert f"?tenant__id__exact={tenant.pk}&amp;status=open" in fleet
    assert tenant.display_name not in client.get("/tenants/customertenant/?drift=clean").content.decode()

    page = client.get(f"/tenants/customertenant/{tenant.pk}/change/").content.decode()
    assert 'data-drift-kind="per_user_mfa"' in page and upn in page

    dashboard = client.get("/").content.decode()
    assert 'data-drift-open="1"' in dashboard
    assert 'data-drift-kind="per_user_mfa"' in dashboard and 'data-count="1"' in dashboard
    assert f'data-drift-tenant="{tenant.display_name}"' in dashboard

    findings = client.get(f"{FINDINGS}?status=open").content.decode()
    assert upn in findings and "Remediate" in findings
    finding = open_findings(tenant)[DriftKind.PER_USER_MFA]
    assert upn in client.get(f"{FINDINGS}{finding.pk}/change/").content.decode()

    client.post(FINDINGS, {"action": "check_again", "_selected_action": [finding.pk]})
    assert queue.job_ids == [f"drift-check-tenant-{tenant.pk}"]
    work(queue)
    assert DriftCheck.objects.order_by("-started_at").first().actor == "ops"


def test_staff_without_a_grant_cannot_see_or_remediate_another_tenants_finding(fast_graph, tmp_path, queue):
    tenant, run = migrate(fast_graph, tmp_path, queue)
    upn, _ = _per_user_on(fast_graph, tenant, run)
    check = check_tenant(tenant, actor="test")
    finding = open_findings(tenant)[DriftKind.PER_USER_MFA]
    eve = drift_staff("eve", tenant_named("contoso"))
    client = client_for(eve, csrf=True)

    for url in (FINDINGS, f"{FINDINGS}?status=open", "/migrations_engine/driftcheck/", "/"):
        page = client.get(url)
        assert page.status_code == 200, url
        assert tenant.display_name not in page.content.decode() and upn not in page.content.decode(), url
    for url in (f"{FINDINGS}{finding.pk}/change/", f"/migrations_engine/driftcheck/{check.pk}/change/"):
        assert client.get(url).status_code in (302, 404), url

    response = csrf_post(
        client,
        FINDINGS,
        FINDINGS,
        {"action": "remediate", "_selected_action": [finding.pk], "confirm": "yes"},
    )
    assert response.status_code in (200, 302)
    assert MigrationRun.objects.count() == 1
    finding.refresh_from_db()
    assert finding.remediation_run is None
    assert not AuditEvent.objects.filter(action="drift.remediation_started").exists()


# --- scheduling and the command ------------------------------------------------------------------


def test_the_watch_queues_one_check_per_migrated_tenant_and_a_worker_runs_them(fast_graph, tmp_path, queue):
    tenant, _ = migrate(fast_graph, tmp_path, queue)
    assert drift_watch_job() == "1 migrated tenant: 1 drift check queued"
    assert drift_watch_job() == "1 migrated tenant: 0 drift checks queued"  # deterministic id: once
    assert queue.count == 1
    work(queue)
    [check] = DriftCheck.objects.all()
    assert check.tenant == tenant and check.actor == WATCH_ACTOR and check.status == DriftCheckStatus.CLEAN


def test_the_watch_is_scheduled_once_every_interval(queue, settings):
    import django_rq

    settings.DRIFT_WATCH_INTERVAL_HOURS = 24
    first = ensure(DRIFT_SCHEDULE_ID)
    assert ensure(DRIFT_SCHEDULE_ID).id == first.id == DRIFT_SCHEDULE_ID
    jobs = [j for j in django_rq.get_scheduler("default").get_jobs() if j.id == DRIFT_SCHEDULE_ID]
    assert len(jobs) == 1 and jobs[0].meta["interval"] == 24 * 3600
    assert jobs[0].func_name == "migrations_engine.drift.tasks.drift_watch_job"
    ensure(DRIFT_SCHEDULE_ID, interval=interval_seconds(6))
    jobs = [j for j in django_rq.get_scheduler("default").get_jobs() if j.id == DRIFT_SCHEDULE_ID]
    assert len(jobs) == 1 and jobs[0].meta["interval"] == 6 * 3600
    with pytest.raises(Exception, match="more than 0"):
        ensure(DRIFT_SCHEDULE_ID, interval=interval_seconds(0))


def _command(*args) -> tuple[int, str]:
    out = io.StringIO()
    with pytest.raises(SystemExit) as exited:
        call_command("drift_watch", *args, stdout=out)
    return exited.value.code, out.getvalue()


def test_the_command_prints_findings_and_exits_with_the_drift_status(fast_graph, tmp_path, queue, redis_url):
    tenant, run = migrate(fast_graph, tmp_path, queue)
    code, out = _command()
    assert code == 0 and f"{tenant.primary_domain}: no drift" in out

    upn, _ = _per_user_on(fast_graph, tenant, run)
    code, out = _command("--tenant", tenant.primary_domain)
    assert code == 1 and "Per-user MFA back on" in out and upn in out

    for name, message in (("contoso.onmicrosoft.com", "not migrated"), ("nowhere.example", "No customer")):
        with pytest.raises(CommandError, match=message) as refused:
            call_command("drift_watch", "--tenant", name, stdout=io.StringIO())
        assert refused.value.returncode == 2

    # --wait: the checks go to the queue and a real worker process runs them
    def worker_once_queued():
        deadline = time.monotonic() + 60
        while queue.count == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        worker_process(redis_url)

    helper = threading.Thread(target=worker_once_queued)
    helper.start()
    code, out = _command("--wait", "--timeout", "120")
    helper.join()
    assert code == 1 and "Per-user MFA back on" in out
    assert DriftCheck.objects.order_by("-started_at").first().actor == "cli"

    sim_post(fast_graph, tenant, "/consent", {"granted": False})
    code, out = _command()
    assert code == 2 and "could not check" in out and "consent" in out
