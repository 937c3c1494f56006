"""The console's words: counted nouns agree with their number, lists are titled by what they list, one
breadcrumb root, times are ISO in the staff member's time zone, and /favicon.ico exists."""

from __future__ import annotations

import datetime

import pytest
from django.utils import timezone

from migrations_engine.audit.writer import record_staff_action
from migrations_engine.models import AuditEvent
from msp_console.words import counted
from tests.migrations_engine.console_helpers import client_for, staff_user

pytestmark = pytest.mark.django_db


def test_a_count_agrees_with_its_noun():
    assert counted(1, "tenant") == "1 tenant"
    assert counted(0, "tenant") == "0 tenants"
    assert counted(3, "break-glass account") == "3 break-glass accounts"
    assert counted(2, "policy", "policies") == "2 policies"


def test_favicon_ico_leads_to_the_consoles_icon(client):
    answer = client.get("/favicon.ico")
    assert answer.status_code == 301 and answer["Location"].endswith("/console/favicon.svg")


@pytest.mark.parametrize(
    ("url", "heading"),
    [
        ("/tenants/customertenant/", "Customer tenants"),
        ("/migrations_engine/migrationrun/", "Migration runs"),
        ("/migrations_engine/auditevent/", "Audit events"),
        ("/migrations_engine/wave/", "Waves"),
    ],
)
def test_a_list_is_titled_by_what_it_lists_under_one_root(url, heading):
    page = client_for(staff_user("root", superuser=True)).get(url).content.decode()
    assert f"<h1>{heading}</h1>" in page and "Select " not in page.split("<h1>")[1][:60]
    assert '<div class="breadcrumbs">' in page and ">Dashboard<" not in page
    assert '<a href="/">Home</a>' in page


def test_times_are_iso_in_the_staff_members_zone_and_a_bad_zone_falls_back(settings):
    settings.TIME_ZONE = "UTC"
    record_staff_action(actor="root", action="test.words")
    moment = AuditEvent.objects.get().created_at
    client = client_for(staff_user("root", superuser=True))
    for zone, offset in (("Asia/Tokyo", 9), ("Not/AZone", 0), ("", 0)):
        client.cookies["console_tz"] = zone
        page = client.get("/migrations_engine/auditevent/").content.decode()
        shown = (moment + datetime.timedelta(hours=offset)).strftime("%Y-%m-%d %H:%M")
        assert shown in page, (zone, shown)
    assert timezone.get_current_timezone_name() == "UTC"  # nothing leaks out of the request
