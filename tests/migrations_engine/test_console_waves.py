"""The waves' console: create (tenants chosen or filtered), the wave page, pause/resume/cancel, scoping."""

from __future__ import annotations

import datetime

import pytest
from django.contrib.auth.models import Group, Permission

from migrations_engine.choices import WaveStatus
from migrations_engine.models import AuditEvent, Wave
from migrations_engine.waves import services as waves
from tenants.models import Tag
from tests.migrations_engine.console_helpers import client_for, csrf_post, staff_user
from tests.migrations_engine.pipeline_helpers import seed, tenant_named

pytestmark = pytest.mark.django_db

ADD = "/migrations_engine/wave/add/"
LIST = "/migrations_engine/wave/"


def _start() -> str:
    return (datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=2)).strftime("%Y-%m-%dT22:00")


def _form(**fields) -> dict:
    base = {
        "name": "Console wave",
        "mode": "plan",
        "time_zone": "Europe/London",
        "start": _start(),
        "window_minutes": "120",
        "repeat_days": "1",
        "concurrency": "5",
        "rings": "1",
        "ring_delay_days": "1",
    }
    return {**base, **fields}


@pytest.fixture
def fleet(demo_sim, tmp_path):
    seed(demo_sim, tmp_path)
    return {name: tenant_named(name) for name in ("contoso", "fabrikam", "woodgrove")}


def test_a_superuser_schedules_a_wave_and_steers_it(fleet):
    boss = client_for(staff_user("boss", superuser=True), csrf=True)
    bad = csrf_post(boss, ADD, ADD, _form(time_zone="Nowhere/Land", tenants=[fleet["contoso"].pk]))
    assert bad.status_code == 200 and "Unknown time zone" in bad.content.decode()
    neither = csrf_post(boss, ADD, ADD, _form())
    assert "Choose tenants, or give at least one filter" in neither.content.decode()
    assert not Wave.objects.exists()

    response = csrf_post(
        boss, ADD, ADD, _form(tenants=[fleet["contoso"].pk, fleet["fabrikam"].pk], rings="2")
    )
    wave = Wave.objects.get(name="Console wave")
    assert response.status_code == 302 and response["Location"].endswith(f"/wave/{wave.pk}/change/")
    page = boss.get(response["Location"]).content.decode()
    local = waves.window(wave, 0).start.astimezone(waves.zone("Europe/London"))
    assert f"{local:%Y-%m-%d} 22:00 Europe/London" in page and "Ring 2" in page
    listing = boss.get(LIST).content.decode()
    assert "Console wave" in listing and "22:00 Europe/London" in listing

    page_url = f"/migrations_engine/wave/{wave.pk}/change/"
    assert boss.get(f"/migrations_engine/wave/{wave.pk}/pause/").status_code == 405
    # Each button asks first, saying what happens to how many tenants; only its Yes acts.
    question = csrf_post(boss, page_url, f"/migrations_engine/wave/{wave.pk}/cancel/").content.decode()
    assert "still waiting never start" in question and "cannot be undone" in question
    wave.refresh_from_db()
    assert wave.status == WaveStatus.SCHEDULED
    yes = {"confirm": "yes"}
    csrf_post(boss, page_url, f"/migrations_engine/wave/{wave.pk}/pause/", yes)
    wave.refresh_from_db()
    assert wave.status == WaveStatus.PAUSED
    csrf_post(boss, page_url, f"/migrations_engine/wave/{wave.pk}/resume/", yes)
    wave.refresh_from_db()
    assert wave.status == WaveStatus.SCHEDULED
    csrf_post(boss, page_url, f"/migrations_engine/wave/{wave.pk}/cancel/", yes)
    wave.refresh_from_db()
    assert wave.status == WaveStatus.CANCELLED
    again = csrf_post(boss, page_url, f"/migrations_engine/wave/{wave.pk}/pause/", yes)
    assert again.status_code == 302  # a clear message on the wave page, not a crash
    assert "is cancelled: it cannot be paused" in boss.get(page_url).content.decode()
    actions = set(AuditEvent.objects.filter(actor="boss").values_list("action", flat=True))
    assert {"wave.created", "wave.paused", "wave.resumed", "wave.cancelled"} <= actions


def test_a_wave_by_tag_takes_the_tagged_tenants(fleet):
    tag = Tag.objects.create(name="smb")
    for name in ("contoso", "woodgrove"):
        fleet[name].tags.add(tag)
    boss = client_for(staff_user("boss", superuser=True), csrf=True)
    both = csrf_post(boss, ADD, ADD, _form(tag=tag.pk, tenants=[fleet["fabrikam"].pk]))
    assert "not both" in both.content.decode()
    csrf_post(boss, ADD, ADD, _form(tag=tag.pk))
    wave = Wave.objects.get()
    assert set(wave.members.values_list("tenant__primary_domain", flat=True)) == {
        fleet["contoso"].primary_domain,
        fleet["woodgrove"].primary_domain,
    }
    assert wave.selection["filter"] == {"tag": "smb"}


def test_staff_see_and_steer_only_waves_of_their_tenants(fleet):
    eve = staff_user("eve", fleet["contoso"], fleet["fabrikam"], role="Administrator")
    eve.user_permissions.add(
        *Permission.objects.filter(codename__in=["view_wave", "add_wave", "change_wave"])
    )
    hidden = waves.create_wave(
        name="Not for Eve",
        mode="plan",
        tenants=[fleet["fabrikam"], fleet["woodgrove"]],
        time_zone="UTC",
        starts_at=datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=1),
        actor="boss",
    )
    client = client_for(eve, csrf=True)
    assert "Not for Eve" not in client.get(LIST).content.decode()
    assert client.get(f"/migrations_engine/wave/{hidden.pk}/change/").status_code == 404
    assert csrf_post(client, LIST, f"/migrations_engine/wave/{hidden.pk}/pause/").status_code == 404
    hidden.refresh_from_db()
    assert hidden.status == WaveStatus.SCHEDULED
    # Her form offers her tenants only, and refuses another's.
    form = client.get(ADD).content.decode()
    # The tenant picker lists nothing until typed into; what it offers is the staff member's tenants only.
    assert fleet["contoso"].primary_domain not in form and fleet["woodgrove"].primary_domain not in form
    picker = "/autocomplete/?app_label=migrations_engine&model_name=wavetenant&field_name=tenant&term="
    offered = " ".join(r["text"] for r in client.get(picker + "onmicrosoft").json()["results"])
    assert fleet["contoso"].primary_domain in offered and fleet["woodgrove"].primary_domain not in offered
    refused = csrf_post(client, ADD, ADD, _form(name="Eve's", tenants=[fleet["woodgrove"].pk]))
    assert "Select a valid choice" in refused.content.decode()
    # Fabrikam is in a wave she may not see: she is told so, without that wave's name.
    taken = csrf_post(client, ADD, ADD, _form(name="Eve's", tenants=[fleet["fabrikam"].pk])).content.decode()
    assert "is already in another wave" in taken and "Not for Eve" not in taken
    # A filter only ever matches tenants she may see.
    tag = Tag.objects.create(name="smb")
    for name in ("contoso", "woodgrove"):
        fleet[name].tags.add(tag)
    csrf_post(client, ADD, ADD, _form(name="Eve's", tag=tag.pk))
    mine = Wave.objects.get(name="Eve's")
    assert list(mine.members.values_list("tenant__primary_domain", flat=True)) == [
        fleet["contoso"].primary_domain
    ]
    assert client.get(f"/migrations_engine/wave/{mine.pk}/change/").status_code == 200
    # Without the role that steers waves there are no buttons and a POST is refused.
    eve.groups.set([Group.objects.get(name="Operator")])
    client = client_for(eve, csrf=True)
    page = f"/migrations_engine/wave/{mine.pk}/change/"
    assert "Pause" not in client.get(page).content.decode()
    assert csrf_post(client, page, f"/migrations_engine/wave/{mine.pk}/pause/").status_code == 403
