"""Pickers and lists that scale, in Chromium: the wave form's tenant picker is typed into (never a list of
every tenant) and offers only the staff member's tenants; dates are typed and shown as ISO in the staff
member's own time zone; the audit list's tenant filter is a box to type in, and its columns fit."""

from __future__ import annotations

import datetime

import pytest
from django.utils import timezone

from migrations_engine.models import AuditEvent, Wave
from tenants.models import BreakGlassConfig, CustomerTenant, TenantConsent
from tenants.synthetic import add_fleet
from tests.browser.test_fleet_list import OVERFLOW
from tests.browser.test_fleet_truth import sign_in
from tests.migrations_engine.console_helpers import client_for, staff_user

pytestmark = pytest.mark.django_db(transaction=True)

AUTOCOMPLETE = "/autocomplete/?app_label=migrations_engine&model_name=wavetenant&field_name=tenant&term="


def test_the_tenant_picker_searches_only_the_staff_members_tenants():
    add_fleet(40)
    mine = list(CustomerTenant.objects.order_by("pk")[:2])
    client = client_for(staff_user("ops", *mine))
    found = client.get(AUTOCOMPLETE + mine[0].primary_domain[:6]).json()["results"]
    assert {r["id"] for r in found} <= {str(t.pk) for t in mine} and found
    everyone = client.get(AUTOCOMPLETE).json()["results"]
    assert {r["id"] for r in everyone} == {str(t.pk) for t in mine}


def test_a_wave_is_scheduled_by_typing_tenants_and_an_iso_time_in_the_browsers_zone(
    browser_page, live_server
):
    page, base = browser_page, live_server.url
    add_fleet(60)
    target = CustomerTenant.objects.order_by("display_name")[7]
    # Ready to be in a wave: break-glass accounts and a fresh census (the wave's pre-flight checks both).
    BreakGlassConfig.objects.update_or_create(tenant=target, defaults={"accounts": ["bg@example.com"]})
    CustomerTenant.objects.filter(pk=target.pk).update(
        census_at=timezone.now(), census_status="ok", licence="p1"
    )
    TenantConsent.objects.filter(tenant=target).update(status="granted", missing_roles=[])
    # A browser in Paris: its time zone fills the wave form and every time shown.
    context = page.context.browser.new_context(timezone_id="Europe/Paris", ignore_https_errors=True)
    page = context.new_page()
    sign_in(page, base)
    page.goto(f"{base}/migrations_engine/wave/add/")
    page.goto(f"{base}/migrations_engine/wave/add/")  # the first page set the time-zone cookie
    assert page.locator("select#id_tenants option").count() == 0  # nothing listed until typed
    assert page.input_value("#id_time_zone") == "Europe/Paris"
    page.fill("#id_name", "Paris night")
    page.click("#id_tenants + .select2 .select2-selection")
    page.fill(".select2-search__field", target.primary_domain[:12])
    page.click(f".select2-results__option >> text={target.display_name}")
    page.fill("#id_start", "2030-01-15 22:00")
    page.click("input[type=submit][value='Schedule the wave']")
    page.wait_for_url("**/wave/*/change/")
    wave = Wave.objects.get(name="Paris night")
    assert list(wave.members.values_list("tenant_id", flat=True)) == [target.pk]
    opens = datetime.datetime(2030, 1, 15, 21, 0, tzinfo=datetime.UTC)  # 22:00 in Paris, in winter
    assert wave.starts_at == opens
    assert page.evaluate(OVERFLOW) <= 0

    # The audit list shows ISO times in Paris time, and its tenant filter is typed into.
    page.goto(f"{base}/migrations_engine/auditevent/")
    first = page.locator("#result_list tbody tr .field-created_at").first.inner_text()
    paris = datetime.timezone(datetime.timedelta(hours=1))
    shown = {e.created_at.astimezone(paris).strftime("%Y-%m-%d %H:%M") for e in AuditEvent.objects.all()}
    assert first in shown, (first, shown)
    tenant_box = page.locator("#filter-bar .filter-search").first
    assert tenant_box.get_attribute("list")
    for width in (1440, 800):
        page.set_viewport_size({"width": width, "height": 900})
        page.goto(f"{base}/migrations_engine/auditevent/")
        assert page.evaluate(OVERFLOW) <= 0, width
    context.close()
