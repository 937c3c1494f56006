"""Roles: every state-changing URL, admin action and command, tried by each persona (viewer, operator,
approver, administrator), with and without a grant on the tenants it touches. Allowed exactly where the
role says so; refused everywhere else with nothing changed (no run, no audit row, no job, no row edited).
"""

from __future__ import annotations

import datetime
import io
import json
import re
import uuid

import pytest
from django.contrib.auth.models import Group
from django.core.management import CommandError, call_command
from django.db.models import Max
from django.utils import timezone

from migrations_engine.audit.writer import record_staff_action
from migrations_engine.choices import ItemStatus, RunStatus
from migrations_engine.models import (
    AuditEvent,
    DriftFinding,
    ExportSchedule,
    MigrationRun,
    RunItem,
    TenantSnapshot,
    Wave,
)
from migrations_engine.runs.runner import run_item
from staff import roles
from tenants.models import ConsentRequest, CustomerTenant, TenantConsent, TenantGrant
from tests.migrations_engine.console_helpers import client_for, staff_user
from tests.migrations_engine.pipeline_helpers import seed, tenant_named

pytestmark = pytest.mark.django_db(transaction=True)  # jobs are queued on commit

PERSONAS = ("Viewer", "Operator", "Approver", "Administrator")
OPERATE = {"Operator", "Administrator"}
APPROVE = {"Approver", "Administrator"}
ADMIN = {"Administrator"}
FLEET = "/tenants/customertenant/"


def _run(tenant, *, mode="full", status=RunStatus.RUNNING, item_status=ItemStatus.QUEUED, **item):
    run = MigrationRun.objects.create(mode=mode, status=status, actor="boss", options={"settle_seconds": 0})
    return run, RunItem.objects.create(
        run=run, tenant=tenant, status=item_status, rq_job_id=f"r{run.pk}", **item
    )


@pytest.fixture
def world(demo_graph, tmp_path, queue):
    """The demo fleet, and one run on each of five tenants in the state a button acts on."""
    seed(demo_graph, tmp_path)
    t = {name: tenant_named(name) for name in ("contoso", "fabrikam", "tailspin", "northwind", "woodgrove")}
    t.update(adatum=tenant_named("adatum"), litware=tenant_named("litware"))
    old = timezone.now() - datetime.timedelta(hours=1)
    runs = {
        "cancel": _run(t["fabrikam"], item_status=ItemStatus.RUNNING, heartbeat_at=timezone.now())[0],
        "retry": _run(t["tailspin"], status=RunStatus.FAILED, item_status=ItemStatus.FAILED)[0],
        "resume": _run(t["northwind"], item_status=ItemStatus.RUNNING, heartbeat_at=old)[0],
        "approve": _run(t["adatum"], status=RunStatus.AWAITING_APPROVAL)[0],
        "decline": _run(t["litware"], status=RunStatus.AWAITING_APPROVAL)[0],
    }
    done, item = _run(
        t["woodgrove"],
        status=RunStatus.SUCCEEDED,
        item_status=ItemStatus.SUCCEEDED,
        started_at=old,
        finished_at=old,
    )
    TenantSnapshot.objects.create(item=item, tenant=t["woodgrove"], complete=True, security_defaults=False)
    runs["rollback"] = done
    DriftFinding.objects.create(
        tenant=t["woodgrove"],
        kind="security_defaults",
        summary="Security defaults are on again",
        first_seen_at=old,
        last_seen_at=old,
    )
    return {"tenants": t, "runs": runs, "queue": queue}


def _persona(world, role: str, granted: bool):
    user = staff_user(f"{role.lower()}-{granted}", role=role)
    for tenant in CustomerTenant.objects.all() if granted else []:
        TenantGrant.objects.create(tenant=tenant, user=user)
    if not granted:  # a colleague of another customer's: some tenant, not these
        TenantGrant.objects.create(
            tenant=CustomerTenant.objects.create(
                tenant_id=uuid.uuid4(), primary_domain="elsewhere.onmicrosoft.com", display_name="Elsewhere"
            ),
            user=user,
        )
    return user


def fingerprint(world) -> tuple:
    """Everything an action could change: rows made, statuses moved, jobs queued, edits."""
    return (
        MigrationRun.objects.count(),
        tuple(MigrationRun.objects.order_by("pk").values_list("status", "cancel_requested", "approved_by")),
        tuple(RunItem.objects.order_by("pk").values_list("status", "attempt")),
        AuditEvent.objects.aggregate(n=Max("id"))["n"],
        tuple(Wave.objects.order_by("pk").values_list("status")),
        ExportSchedule.objects.count(),
        CustomerTenant.objects.count(),
        tuple(CustomerTenant.objects.order_by("pk").values_list("display_name")),
        ConsentRequest.objects.count(),
        tuple(TenantConsent.objects.order_by("pk").values_list("last_verified_at")),
        world["queue"].count,
    )


def _fleet_action(action: str, tenants, **extra):
    def act(client, world):
        data = {"action": action, "_selected_action": [t.pk for t in tenants(world)], "confirm": "yes"}
        return client.post(FLEET, {**data, **extra})

    return act


def _button(name: str):
    def act(client, world):
        run = world["runs"][name]
        return client.post(f"/runs/{run.pk}/{name if name != 'decline' else 'cancel'}/", {"confirm": "yes"})

    return act


def _wave(world) -> Wave:
    from migrations_engine.waves import services as waves

    return waves.create_wave(
        name="Friday night",
        mode="plan",
        tenants=[world["tenants"]["contoso"]],
        time_zone="UTC",
        starts_at=timezone.now() + datetime.timedelta(days=2),
        actor="cli",
    )


def _wave_button(name: str):
    def act(client, world):
        wave = _wave(world)
        if name == "resume":
            from migrations_engine.waves import services as waves

            waves.pause_wave(wave, actor="cli")
        world["before"] = fingerprint(world)
        return client.post(f"/migrations_engine/wave/{wave.pk}/{name}/", {"confirm": "yes"})

    return act


def _wave_add(client, world):
    start = (timezone.now() + datetime.timedelta(days=2)).strftime("%Y-%m-%dT22:00")
    form = {
        "name": "Console wave",
        "mode": "full",
        "time_zone": "UTC",
        "start": start,
        "window_minutes": "120",
        "repeat_days": "1",
        "concurrency": "5",
        "rings": "1",
        "ring_delay_days": "1",
        "tenants": [world["tenants"]["contoso"].pk],
    }
    return client.post("/migrations_engine/wave/add/", form)


def _drift(action: str):
    def act(client, world):
        ids = list(DriftFinding.objects.values_list("pk", flat=True))
        return client.post(
            "/migrations_engine/driftfinding/",
            {"action": action, "_selected_action": ids, "confirm": "yes"},
        )

    return act


def _export_add(client, world):
    form = {
        "name": "Contoso daily",
        "tenant": world["tenants"]["contoso"].pk,
        "frequency": "daily",
        "format": "csv",
        "enabled": "on",
    }
    return client.post("/migrations_engine/exportschedule/add/", form)


def _add_customer(client, world):
    contoso = world["tenants"]["contoso"]  # a real tenant at the login service, no longer a customer
    CustomerTenant.objects.filter(pk=contoso.pk).delete()
    world["before"] = fingerprint(world)
    return client.post("/customers/add/", {"text": contoso.primary_domain, "display_name": "Contoso again"})


def _import(client, world):
    csv = (
        "tenant_id,domain,display_name,notes,break_glass_accounts,break_glass_minimum\n"
        f"{uuid.uuid4()},imported.onmicrosoft.com,Imported,,,\n"
    )
    upload = io.BytesIO(csv.encode())
    upload.name = "tenants.csv"
    return client.post("/customers/import/", {"file": upload})


def _consent_link(client, world):
    return client.post(f"/customers/{world['tenants']['contoso'].pk}/consent-link/")


def _edit_tenant(client, world):
    tenant = world["tenants"]["contoso"]
    TenantConsent.objects.filter(tenant=tenant).delete()
    tenant.break_glass.delete() if hasattr(tenant, "break_glass") else None
    world["before"] = fingerprint(world)
    form = {
        "display_name": "Renamed",
        "primary_domain": tenant.primary_domain,
        "tenant_id": str(tenant.tenant_id),
        "notes": "",
        **{
            f"{prefix}-{key}": value
            for prefix in ("consent", "break_glass")
            for key, value in {
                "TOTAL_FORMS": "0",
                "INITIAL_FORMS": "0",
                "MIN_NUM_FORMS": "0",
                "MAX_NUM_FORMS": "1",
            }.items()
        },
    }
    return client.post(f"{FLEET}{tenant.pk}/change/", form)


def _contoso(world):
    return [world["tenants"]["contoso"]]


def _woodgrove(world):
    return [world["tenants"]["woodgrove"]]


# Not about one tenant: a grant does not matter, the role does.
UNSCOPED = {"customer: add", "customer: import"}

# (what is tried, how, the roles that may do it)
ACTIONS = {
    "fleet: census": (_fleet_action("census", _contoso), OPERATE),
    "fleet: plan": (_fleet_action("start_plan", _contoso), OPERATE),
    "fleet: pilot": (_fleet_action("start_pilot", _contoso, pilot_group_id=str(uuid.uuid4())), OPERATE),
    "fleet: full": (_fleet_action("start_full", _contoso), OPERATE),
    "fleet: rollback": (_fleet_action("rollback", _woodgrove), OPERATE),
    "fleet: re-check consent": (_fleet_action("recheck_consent_action", _contoso), ADMIN),
    "run: cancel": (_button("cancel"), OPERATE),
    "run: retry": (_button("retry"), OPERATE),
    "run: resume": (_button("resume"), OPERATE),
    "run: roll back": (_button("rollback"), OPERATE),
    "run: approve": (_button("approve"), APPROVE),
    "run: decline an unapproved run": (_button("decline"), OPERATE | APPROVE),
    "wave: schedule": (_wave_add, ADMIN),
    "wave: pause": (_wave_button("pause"), ADMIN),
    "wave: resume": (_wave_button("resume"), ADMIN),
    "wave: cancel": (_wave_button("cancel"), ADMIN),
    "drift: remediate": (_drift("remediate"), OPERATE),
    "drift: check again": (_drift("check_again"), OPERATE),
    "export: schedule": (_export_add, ADMIN),
    "customer: add": (_add_customer, ADMIN),
    "customer: import": (_import, ADMIN),
    "customer: new consent link": (_consent_link, ADMIN),
    "customer: edit": (_edit_tenant, ADMIN),
}


@pytest.mark.parametrize("granted", [True, False], ids=["granted", "not granted"])
@pytest.mark.parametrize("role", PERSONAS)
@pytest.mark.parametrize("name", list(ACTIONS))
def test_each_persona_may_do_exactly_what_its_role_allows(world, name, role, granted):
    act, allowed_roles = ACTIONS[name]
    client = client_for(_persona(world, role, granted))
    world["before"] = fingerprint(world)
    response = act(client, world)
    changed = fingerprint(world) != world["before"]
    should = (granted or name in UNSCOPED) and role in allowed_roles
    errors = re.findall(r'class="errorlist[^"]*"[^>]*>(.*?)</ul>', response.content.decode(), re.S)
    assert changed == should, (name, role, granted, response.status_code, errors)
    if not should:
        assert response.status_code in (200, 302, 403, 404), response.status_code


@pytest.mark.parametrize("role", PERSONAS)
def test_commands_act_with_the_named_staff_users_role(world, role):
    user = _persona(world, role, granted=True)
    contoso = world["tenants"]["contoso"]
    commands = {
        "start_run": (["start_run", "--mode", "full", "--tenants", contoso.primary_domain], OPERATE),
        "cancel_run": (["cancel_run", str(world["runs"]["cancel"].pk)], OPERATE),
        "rollback_run": (["rollback_run", str(world["runs"]["rollback"].pk)], OPERATE),
    }
    for name, (argv, allowed_roles) in commands.items():
        before = fingerprint(world)
        if role in allowed_roles:
            call_command(*argv, "--actor", user.username, stdout=io.StringIO())
            assert fingerprint(world) != before, name
        else:
            with pytest.raises(CommandError, match="Your role does not allow"):
                call_command(*argv, "--actor", user.username, stdout=io.StringIO())
            assert fingerprint(world) == before, name


def test_approval_needs_the_role_every_tenant_and_another_person(world):
    run = world["runs"]["approve"]
    fabrikam = world["tenants"]["fabrikam"]
    RunItem.objects.create(run=run, tenant=world["tenants"]["contoso"], rq_job_id="second")
    half = staff_user("half", world["tenants"]["adatum"], role="Approver")  # one of the run's two tenants
    assert client_for(half).post(f"/runs/{run.pk}/approve/").status_code == 403
    own = staff_user("own", world["tenants"]["adatum"], world["tenants"]["contoso"], role="Approver")
    MigrationRun.objects.filter(pk=run.pk).update(started_by=own, actor="own")
    client_for(own).post(f"/runs/{run.pk}/approve/", {"confirm": "yes"})
    run.refresh_from_db()
    assert run.status == RunStatus.AWAITING_APPROVAL and run.approved_by is None
    other = staff_user("other", world["tenants"]["adatum"], world["tenants"]["contoso"], role="Approver")
    assert client_for(other).post(f"/runs/{run.pk}/approve/", {"confirm": "yes"}).status_code == 302
    run.refresh_from_db()
    assert run.status == RunStatus.PENDING and run.approved_by == other
    assert fabrikam.pk not in run.items.values_list("tenant_id", flat=True)


def test_a_viewer_is_offered_no_action_and_no_button(world):
    viewer = client_for(_persona(world, "Viewer", granted=True))
    page = viewer.get(FLEET).content.decode()
    assert 'value="export_census"' in page
    for action in ("census", "start_plan", "start_pilot", "start_full", "rollback", "recheck_consent_action"):
        assert f'value="{action}"' not in page, action
    for name, run in world["runs"].items():
        html = viewer.get(f"/migrations_engine/migrationrun/{run.pk}/change/").content.decode()
        assert "data-action=" not in html, name


def test_a_job_stops_when_its_starters_role_was_taken_away(world):
    operator = staff_user("op", world["tenants"]["contoso"], role="Operator")
    run, item = _run(world["tenants"]["contoso"], status=RunStatus.PENDING)
    MigrationRun.objects.filter(pk=run.pk).update(started_by=operator)
    operator.groups.set([Group.objects.get(name="Viewer")])
    assert run_item(item.pk, item.rq_job_id) == ItemStatus.FAILED
    item.refresh_from_db()
    assert "role no longer allows" in item.failure_reason


def test_the_shipped_role_groups_match_the_roles_module():
    for name, perms in roles.ROLES.items():
        group = Group.objects.get(name=name)
        got = {f"{p.content_type.app_label}.{p.codename}" for p in group.permissions.all()}
        assert got == set(perms), name


def test_an_audit_export_as_a_staff_member_holds_only_the_rows_they_see(world, tmp_path):
    contoso, fabrikam = world["tenants"]["contoso"], world["tenants"]["fabrikam"]
    viewer = staff_user("exporting-viewer", contoso, role="Viewer")
    for tenant in (contoso, fabrikam):
        record_staff_action(actor="boss", action="test.marker", tenant_id=tenant.pk)
    out = tmp_path / "audit.jsonl"

    call_command("export_audit", "--actor", viewer.username, "--format", "jsonl", "--output", str(out))

    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert rows and {row["tenant_id"] for row in rows} == {contoso.pk}
    with pytest.raises(CommandError, match="No customer tenant"):
        call_command("export_audit", "--actor", viewer.username, "--tenant", fabrikam.primary_domain)
    # The host (no staff user named) exports every row.
    call_command("export_audit", "--format", "jsonl", "--output", str(out))
    assert {json.loads(line)["tenant_id"] for line in out.read_text().splitlines()} >= {
        contoso.pk,
        fabrikam.pk,
    }


def test_an_export_schedule_by_command_covers_only_the_staff_members_tenants(world):
    admin = staff_user("scheduling-admin", world["tenants"]["contoso"], role="Administrator")
    base = [
        "audit_export_schedule",
        "--actor",
        admin.username,
        "add",
        "--frequency",
        "daily",
        "--format",
        "csv",
    ]
    before = ExportSchedule.objects.count()
    for scope, refusal in (
        (["--tenant", world["tenants"]["fabrikam"].primary_domain], "may not act on"),
        (["--fleet"], "Only a superuser may export the whole fleet"),
    ):
        with pytest.raises(CommandError, match=refusal):
            call_command(*base, "--name", f"n{len(scope)}", *scope, stdout=io.StringIO())
    assert ExportSchedule.objects.count() == before
    call_command(
        *base, "--name", "mine", "--tenant", world["tenants"]["contoso"].primary_domain, stdout=io.StringIO()
    )
    assert ExportSchedule.objects.count() == before + 1
