"""No hints across tenants: a search, or a clash with an existing name, never tells a staff member about a
customer they may not see.

Eve is an administrator granted Contoso only; Woodgrove is another staff member's customer. Searches
match only among Eve's tenants, and a clash with Woodgrove (adding it, importing it, or naming a schedule
or a wave like one of Woodgrove's) says that the thing is taken without naming it, its tenant or its scope.
"""

from __future__ import annotations

import datetime
import uuid

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from migrations_engine.choices import ItemStatus, RunStatus
from migrations_engine.exports.services import create_schedule
from migrations_engine.models import DriftCheck, DriftFinding, MigrationRun, RunItem, Wave, WaveTenant
from tenants.access import NOT_YOURS
from tenants.models import CustomerTenant
from tenants.services import add_tenant
from tests.migrations_engine.console_helpers import client_for, staff_user
from tests.migrations_engine.pipeline_helpers import seed, tenant_named

pytestmark = pytest.mark.django_db

RUNS = "/migrations_engine/migrationrun/"


def _tenant(name: str) -> CustomerTenant:
    return add_tenant(
        tenant_id=str(uuid.uuid4()), domain=f"{name}.onmicrosoft.com", display_name=name.title(), actor="test"
    )


def _run(*tenants) -> MigrationRun:
    """A finished plan holding every one of `tenants` (a mixed run, as a fleet-wide start makes)."""
    run = MigrationRun.objects.create(mode="plan", status=RunStatus.SUCCEEDED, actor="boss")
    for tenant in tenants:
        RunItem.objects.create(run=run, tenant=tenant, status=ItemStatus.SUCCEEDED)
    return run


def _wave(name: str, *tenants) -> Wave:
    wave = Wave.objects.create(
        name=name,
        mode="plan",
        time_zone="UTC",
        starts_at=timezone.now() + datetime.timedelta(days=2),
        actor="boss",
    )
    WaveTenant.objects.bulk_create(WaveTenant(wave=wave, tenant=t) for t in tenants)
    return wave


def _hints(text: str, tenant: CustomerTenant) -> list[str]:
    """What of `tenant` appears in `text`: its name, domain, tenant id."""
    return [
        value
        for value in (tenant.display_name, tenant.primary_domain, str(tenant.tenant_id))
        if value.lower() in text.lower()
    ]


def _errors(response) -> str:
    """Every error message of the page's form (the console's own form, or an admin change form)."""
    form = response.context["adminform"].form if "adminform" in response.context else response.context["form"]
    return " ".join(str(message) for messages in form.errors.values() for message in messages)


@pytest.fixture
def world():
    contoso, woodgrove = _tenant("contoso"), _tenant("woodgrove")
    eve = staff_user("eve", contoso, role="Administrator")
    return {"mine": contoso, "other": woodgrove, "eve": eve, "client": client_for(eve)}


def test_the_run_search_matches_only_the_users_own_tenants_in_a_mixed_run(world):
    run = _run(world["mine"], world["other"])
    eve = world["client"]
    found = eve.get(RUNS, {"q": "woodgrove"})
    assert found.status_code == 200
    assert found.context["cl"].result_count == 0
    assert f"{RUNS}{run.pk}/change/" not in found.content.decode()
    # Her own tenant's domain and the starter still find it; the words of a search all have to match.
    assert list(eve.get(RUNS, {"q": "contoso"}).context["cl"].result_list) == [run]
    assert list(eve.get(RUNS, {"q": "boss contoso"}).context["cl"].result_list) == [run]
    assert eve.get(RUNS, {"q": "boss woodgrove"}).context["cl"].result_count == 0
    everyone = client_for(staff_user("root", superuser=True))
    assert list(everyone.get(RUNS, {"q": "woodgrove"}).context["cl"].result_list) == [run]


def test_no_other_changelist_search_finds_a_row_by_another_tenants_domain(world):
    mine, other = world["mine"], world["other"]
    _run(mine, other)
    _wave("Mine", mine)
    _wave("Theirs", other)
    now = timezone.now()
    for tenant in (mine, other):
        check = DriftCheck.objects.create(tenant=tenant, actor="drift", started_at=now, status="error")
        DriftFinding.objects.create(
            tenant=tenant,
            kind="policy_changed",
            summary="x",
            first_seen_at=now,
            last_seen_at=now,
            first_check=check,
        )
    eve = world["client"]
    for url in (
        "/migrations_engine/runitem/",
        "/migrations_engine/wave/",
        "/migrations_engine/driftfinding/",
        "/migrations_engine/driftcheck/",
        "/tenants/customertenant/",
    ):
        page = eve.get(url, {"q": "woodgrove"})
        assert page.status_code == 200, url
        assert page.context["cl"].result_count == 0, url
        assert eve.get(url, {"q": "contoso"}).context["cl"].result_count >= 1, url


def test_adding_another_staff_members_customer_names_nothing_of_it(demo_graph, tmp_path):
    seed(demo_graph, tmp_path)
    mine, other = tenant_named("contoso"), tenant_named("woodgrove")
    eve = client_for(staff_user("eve", mine, role="Administrator"))
    before = CustomerTenant.objects.count()
    for form in (
        {"text": other.primary_domain, "display_name": "Someone"},
        {"text": str(other.tenant_id), "domain": other.primary_domain, "display_name": "Someone"},
    ):
        response = eve.post("/customers/add/", form)
        assert response.status_code == 200
        said = _errors(response)
        assert NOT_YOURS in said
        assert _hints(said, other) == [] and str(other.pk) not in said
        assert f"/customers/{other.pk}/" not in response.content.decode()
    own = _errors(eve.post("/customers/add/", {"text": mine.primary_domain, "display_name": "Again"}))
    assert mine.display_name in own and "is already a customer" in own  # her own customer is named
    assert CustomerTenant.objects.count() == before


def test_an_export_schedule_name_clash_names_neither_the_schedule_nor_its_scope(world):
    create_schedule(
        name="Woodgrove — Audit!", tenant=world["other"], frequency="daily", fmt="csv", actor="test"
    )
    create_schedule(name="Fleet evidence", tenant=None, frequency="daily", fmt="csv", actor="test")
    eve = world["client"]
    for name, theirs in (("woodgrove audit", "Woodgrove — Audit!"), ("fleet  EVIDENCE", "Fleet evidence")):
        response = eve.post(
            "/migrations_engine/exportschedule/add/",
            {
                "name": name,
                "tenant": world["mine"].pk,
                "frequency": "daily",
                "format": "csv",
                "enabled": "on",
            },
        )
        assert response.status_code == 200
        said = _errors(response)
        assert "already writes to the folder" in said
        # The folder is her own name slugified (so "woodgrove" may appear); the schedule and its scope not.
        assert theirs not in said and "fleet (every chain)" not in said
        assert world["other"].primary_domain not in said and str(world["other"].tenant_id) not in said


def test_importing_another_staff_members_customer_names_nothing_of_it(world):
    other = world["other"]
    rows = [
        "tenant_id,domain,display_name,notes,break_glass_accounts,break_glass_minimum",
        f"{other.tenant_id},new-name.com,Renamed,,,",
        f"{uuid.uuid4()},{other.primary_domain},Renamed,,,",
    ]
    upload = SimpleUploadedFile("tenants.csv", "\n".join(rows).encode(), content_type="text/csv")
    response = world["client"].post("/customers/import/", {"file": upload})
    assert response.status_code == 400
    said = " ".join(str(error) for error in response.context["errors"])
    assert said.count(NOT_YOURS) == 2
    assert _hints(said, other) == []
    assert CustomerTenant.objects.count() == 2


def test_a_wave_name_clash_with_another_staff_members_wave_names_nothing(world):
    _wave("Woodgrove pilot", world["other"])
    start = (timezone.now() + datetime.timedelta(days=2)).strftime("%Y-%m-%dT22:00")
    response = world["client"].post(
        "/migrations_engine/wave/add/",
        {
            "name": "Woodgrove pilot",
            "mode": "plan",
            "tenants": [world["mine"].pk],
            "time_zone": "Europe/London",
            "start": start,
            "window_minutes": "120",
            "repeat_days": "1",
            "concurrency": "5",
            "rings": "1",
            "ring_delay_days": "1",
        },
    )
    assert response.status_code == 200
    said = _errors(response)
    assert "Another wave already has this name" in said
    assert "Woodgrove" not in said
    assert Wave.objects.count() == 1
