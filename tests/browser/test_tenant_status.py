"""A tenant's status page in Chromium at 1440 and 800 px: read-only, where the tenant stands and what blocks
it at the top, the next action as one button (which asks before it does anything), the per-user report
searchable and paged, and the few editable fields on a small form of their own."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from migrations_engine.models import MigrationRun
from tenants.models import BreakGlassConfig, CensusUser, CustomerTenant, TenantConsent
from tenants.synthetic import add_fleet
from tests.browser.test_console_journey import snap
from tests.browser.test_fleet_list import OVERFLOW
from tests.browser.test_fleet_truth import sign_in

pytestmark = pytest.mark.django_db(transaction=True)


def _ready_tenant() -> CustomerTenant:
    add_fleet(3)
    tenant = CustomerTenant.objects.order_by("pk").first()
    CustomerTenant.objects.filter(pk=tenant.pk).update(
        migration_state="ready", migration_state_reason="Ready: nothing blocks a migration",
        census_status="ok", census_at=timezone.now() - timedelta(hours=2), licence="p1",
        last_plan_run_id=None,
    )  # fmt: skip
    TenantConsent.objects.filter(tenant=tenant).update(status="granted", missing_roles=[])
    BreakGlassConfig.objects.update_or_create(tenant=tenant, defaults={"accounts": ["bg1@example.com"]})
    CensusUser.objects.bulk_create(
        CensusUser(
            tenant=tenant, generation=tenant.census_generation, user_id=f"u{n}",
            upn=f"user{n:03d}@example.com", display_name=f"User {n}", per_user_state="enabled",
            mfa_registered=n % 3 != 0,
        )
        for n in range(60)
    )  # fmt: skip
    tenant.refresh_from_db()
    return tenant


def test_the_status_page_says_where_the_tenant_stands_and_offers_the_next_step(browser_page, live_server):
    page, base = browser_page, live_server.url
    tenant = _ready_tenant()
    sign_in(page, base)
    url = f"{base}/tenants/customertenant/{tenant.pk}/change/"

    for width in (1440, 800):
        page.set_viewport_size({"width": width, "height": 900})
        page.goto(url)
        assert page.evaluate(OVERFLOW) <= 0, width
        pill = page.locator("#state-pill")
        assert pill.inner_text() == "Ready" and "pill-info" in pill.get_attribute("class")
        assert page.locator("#next-action-button").is_visible()
    snap(page, "tenant-status")

    # Read-only: no form fields but the search and the buttons; the editable fields are one click away.
    assert page.locator("#content-main input[type=text], #content-main textarea").count() == 0
    assert page.locator("#blockers").count() == 0  # nothing blocks it
    assert "2 hours ago" in page.inner_text("#census-age").replace("\xa0", " ")
    assert "20 users not MFA-registered" in page.inner_text("#unregistered")

    # The per-user report: 25 a page, searchable.
    assert page.locator("#users-table tbody tr").count() == 25
    assert "Page 1 of 3" in page.inner_text("#users-pages")
    page.click("#users-pages >> text=next ›")
    assert page.locator("#users-table tbody tr").first.inner_text().startswith("user025@example.com")
    page.fill("input[name=users_q]", "user05")
    page.click("#users button[type=submit]")
    assert page.locator("#users-table tbody tr").count() == 10  # user050 .. user059
    assert "matching “user05”" in page.inner_text("#users h2")

    # The next action is a plan, and it asks first: nothing starts from this page.
    page.goto(url)
    runs_before = MigrationRun.objects.count()  # the synthetic fleet's own plan
    assert page.inner_text("#next-action-button") == "Plan the migration"
    page.click("#next-action-button")
    page.wait_for_selector("#confirm-yes")
    assert MigrationRun.objects.count() == runs_before

    # A tenant that lacks consent says so, and its next step is the consent page.
    TenantConsent.objects.filter(tenant=tenant).update(status="pending")
    page.goto(url)
    assert "has not consented" in page.inner_text("#blockers")
    assert page.inner_text("#next-action-button") == "Get admin consent"
    assert page.get_attribute("#next-action-button", "href").endswith(f"/customers/{tenant.pk}/consent-link/")

    # The edit form holds only what staff set by hand, and saving goes back to the status page.
    page.click("#edit-link")
    page.wait_for_selector("#id_display_name")
    assert page.locator("#id_primary_domain").count() == 0
    page.fill("#id_display_name", "Renamed Ltd")
    page.click("input[name=_save]")
    page.wait_for_selector("#state-pill")
    assert page.inner_text("h1") == "Renamed Ltd"
