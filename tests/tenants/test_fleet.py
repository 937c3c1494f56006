"""The fleet changelist: columns, confirmed actions, census CSV, and staff access through grants."""

from __future__ import annotations

import csv
import io

import pytest
from django.contrib.auth.models import Group, Permission, User
from django.core.management import call_command
from django.test import Client

from migrations_engine.models import MigrationRun
from tenants.models import CustomerTenant, TenantGrant
from tests.migrations_engine.pipeline_helpers import seed, tenant_named, work

pytestmark = pytest.mark.django_db(transaction=True)
CHANGELIST = "/tenants/customertenant/"


@pytest.fixture
def staff(client):
    user = User.objects.create_superuser("root", "", "pw-for-tests-only")
    client.force_login(user)
    return user


def staff_user(name: str) -> User:
    user = User.objects.create_user(name, "", "pw-for-tests-only", is_staff=True)
    for codename in ("view_customertenant", "change_customertenant", "view_migrationrun", "view_auditevent"):
        user.user_permissions.add(Permission.objects.get(codename=codename))
    user.groups.add(Group.objects.get(name="Operator"))  # starts censuses and runs
    return user


def act(client, action: str, tenants, **extra):
    data = {"action": action, "_selected_action": [t.pk for t in tenants], **extra}
    return client.post(CHANGELIST, data)


def test_it_confirms_then_starts_a_plan_and_shows_the_migration_state(
    client, staff, fast_graph, tmp_path, queue
):
    seed(fast_graph, tmp_path)
    tenants = [tenant_named("contoso"), tenant_named("woodgrove")]
    page = act(client, "start_plan", tenants)
    assert page.status_code == 200 and b"affects <strong>2 tenants</strong>" in page.content
    assert not MigrationRun.objects.exists()
    done = act(client, "start_plan", tenants, confirm="yes")
    run = MigrationRun.objects.get()
    assert done.status_code == 302 and done["Location"].endswith(f"/migrationrun/{run.pk}/change/")
    work(queue)
    fleet = client.get(CHANGELIST).content.decode()
    # A plan is a dry run: the tenants are what they were (not started), and the plan shows beside it.
    assert "Planned" not in fleet and f"Run {run.pk} (plan)" in fleet and "last plan: " in fleet
    assert {t.migration_state for t in CustomerTenant.objects.filter(pk__in=[t.pk for t in tenants])} == {
        "not_started"
    }
    assert "Contoso" in client.get(CHANGELIST + "?migration=not_started").content.decode()
    assert "Contoso" not in client.get(CHANGELIST + "?migration=migrated").content.decode()


def test_it_asks_for_the_pilot_group_and_one_tenant(client, staff, fast_graph, tmp_path, queue):
    seed(fast_graph, tmp_path)
    contoso = tenant_named("contoso")
    two = act(client, "start_pilot", [contoso, tenant_named("woodgrove")], confirm="yes")
    assert MigrationRun.objects.count() == 0
    bad = act(client, "start_pilot", [contoso], confirm="yes", pilot_group_id="pilot-group")
    assert b"Enter the pilot group" in bad.content and MigrationRun.objects.count() == 0
    group = next(
        g
        for g in fast_graph.admin("GET", f"/_sim/tenants/{contoso.tenant_id}/state")["groups"]
        if "pilot" in g["displayName"].lower()
    )
    act(client, "start_pilot", [contoso], confirm="yes", pilot_group_id=group["id"])
    run = MigrationRun.objects.get()
    assert (run.mode, str(run.pilot_group_id)) == ("pilot", group["id"])
    assert two.status_code in (200, 302)


def test_it_queues_a_census_and_exports_the_per_user_report(client, staff, fast_graph, tmp_path, queue):
    seed(fast_graph, tmp_path)
    woodgrove = tenant_named("woodgrove")
    act(client, "census", [woodgrove], confirm="yes")
    assert queue.count == 1
    work(queue)
    woodgrove.refresh_from_db()
    assert woodgrove.census_status == "ok"
    response = client.get(f"{CHANGELIST}{woodgrove.pk}/census.csv")
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert len(rows) == woodgrove.users_total
    state = fast_graph.admin("GET", f"/_sim/tenants/{woodgrove.tenant_id}/state")
    truth = {u["userPrincipalName"]: u for u in state["users"]}
    for row in rows:
        user = truth[row["upn"]]
        assert row["per_user_mfa_state"] == user["perUserMfaState"]
        assert row["mfa_registered"] == ("yes" if user["isMfaRegistered"] else "no")
    detail = client.get(f"{CHANGELIST}{woodgrove.pk}/change/").content.decode()
    unregistered = sum(1 for u in state["users"] if not u["isMfaRegistered"])
    assert f"{unregistered} users not MFA-registered" in detail


def test_it_rolls_back_from_the_fleet(client, staff, fast_graph, tmp_path, queue):
    seed(fast_graph, tmp_path)
    woodgrove = tenant_named("woodgrove")
    act(client, "start_full", [woodgrove], confirm="yes")
    work(queue)
    assert MigrationRun.objects.get().status == "succeeded"
    act(client, "rollback", [woodgrove], confirm="yes")
    work(queue)
    rollback = MigrationRun.objects.get(mode="rollback")
    assert rollback.status == "succeeded"
    assert "Rolled back" in client.get(CHANGELIST).content.decode()


def test_a_staff_member_sees_and_acts_only_on_granted_tenants(fast_graph, tmp_path, queue):
    seed(fast_graph, tmp_path)
    mine, theirs = tenant_named("woodgrove"), tenant_named("contoso")
    alice = staff_user("alice")
    TenantGrant.objects.create(tenant=mine, user=alice)
    client = Client()
    client.force_login(alice)
    fleet = client.get(CHANGELIST).content.decode()
    assert mine.display_name in fleet and theirs.display_name not in fleet
    assert client.get(f"{CHANGELIST}{theirs.pk}/change/").status_code in (302, 403, 404)
    assert client.get(f"{CHANGELIST}{theirs.pk}/census.csv").status_code == 404
    assert (
        theirs.display_name not in b"".join(client.get(f"{CHANGELIST}census.csv").streaming_content).decode()
    )
    act(client, "start_full", [theirs], confirm="yes")
    assert not MigrationRun.objects.exists()
    act(client, "start_plan", [mine], confirm="yes")
    assert MigrationRun.objects.get().items.get().tenant == mine


def test_a_job_refuses_to_run_when_the_starters_grant_was_revoked(fast_graph, tmp_path, queue):
    seed(fast_graph, tmp_path)
    woodgrove = tenant_named("woodgrove")
    bob = staff_user("bob")
    grant = TenantGrant.objects.create(tenant=woodgrove, user=bob)
    client = Client()
    client.force_login(bob)
    act(client, "start_full", [woodgrove], confirm="yes")
    grant.delete()
    work(queue)
    item = MigrationRun.objects.get().items.get()
    assert item.status == "failed" and "lost access" in item.failure_reason
    log = fast_graph.admin("GET", f"/_sim/requests?tenant={woodgrove.tenant_id}")["requests"]
    assert log == []


def test_actions_need_post_and_csrf(fast_graph, tmp_path, queue):
    seed(fast_graph, tmp_path)
    user = User.objects.create_superuser("csrf", "", "pw-for-tests-only")
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    woodgrove = tenant_named("woodgrove")
    data = {"action": "start_full", "_selected_action": [woodgrove.pk], "confirm": "yes"}
    assert client.post(CHANGELIST, data).status_code == 403
    client.get(
        CHANGELIST + "?" + "&".join(f"{k}={v}" for k, v in [("action", "start_full"), ("confirm", "yes")])
    )
    assert not MigrationRun.objects.exists()
    assert CustomerTenant.objects.count() == 7
    call_command("check")


def test_it_exports_the_selected_tenants_audit_log(client, staff, fast_graph, tmp_path, queue):
    from migrations_engine.models import AuditEvent

    seed(fast_graph, tmp_path)
    woodgrove = tenant_named("woodgrove")
    act(client, "start_full", [woodgrove], confirm="yes")
    work(queue)
    expected = AuditEvent.objects.filter(tenant=woodgrove).count()
    response = act(client, "export_audit", [woodgrove])
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert len(rows) == expected > 0
    assert {r["chain"] for r in rows} == {str(woodgrove.tenant_id)}
    assert AuditEvent.objects.filter(tenant=woodgrove, action="audit.exported").count() == 1


def test_a_census_job_refuses_when_the_askers_grant_was_revoked(fast_graph, tmp_path, queue):
    seed(fast_graph, tmp_path)
    woodgrove = tenant_named("woodgrove")
    carol = staff_user("carol")
    grant = TenantGrant.objects.create(tenant=woodgrove, user=carol)
    client = Client()
    client.force_login(carol)
    act(client, "census", [woodgrove], confirm="yes")
    grant.delete()
    work(queue)
    woodgrove.refresh_from_db()
    assert woodgrove.census_status == "never"
    assert fast_graph.admin("GET", f"/_sim/requests?tenant={woodgrove.tenant_id}")["requests"] == []


def test_the_full_migration_page_shows_what_blocks_each_tenant_before_anything_starts(
    client, staff, fast_graph, tmp_path, queue
):
    seed(fast_graph, tmp_path)
    tailspin, litware, woodgrove = (tenant_named(n) for n in ("tailspin", "litware", "woodgrove"))
    call_command(
        "census",
        *[a for t in (tailspin, litware, woodgrove) for a in ("--tenant", t.primary_domain)],
        "--no-progress",
        stdout=io.StringIO(),
    )

    page = act(client, "start_full", [tailspin, litware, woodgrove]).content.decode()

    assert 'id="preflight"' in page and 'id="confirm-yes"' in page
    row = lambda t: page.split(f'data-preflight-tenant="{t.primary_domain}"')[1].split("</tr>")[0]  # noqa: E731
    assert 'data-blocked="true"' in row(tailspin) and "Entra ID Free" in row(tailspin)
    assert 'data-blocked="true"' in row(litware) and "Policy.ReadWrite.AuthenticationMethod" in row(litware)
    assert 'data-blocked="false"' in row(woodgrove)
    # Only blocked tenants chosen: nothing can start, and there is no Yes to press.
    blocked = act(client, "start_full", [tailspin, litware]).content.decode()
    assert 'id="nothing-starts"' in blocked and 'id="confirm-yes"' not in blocked
    assert not MigrationRun.objects.exists()
