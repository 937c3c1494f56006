"""The fleet list read at a glance with 500 tenants, in Chromium at 1440x900 and 800x900: one line a tenant,
every column in the window without a sideways scroll, 25 tenants a screen on a desktop, the state as a
coloured pill with its reason on hover, saved views with their counts, filters as one bar."""

from __future__ import annotations

import pytest

from migrations_engine.models import AuditEvent, MigrationRun
from tenants.models import CustomerTenant
from tenants.synthetic import add_fleet
from tests.browser.test_console_journey import snap
from tests.browser.test_fleet_truth import sign_in

pytestmark = pytest.mark.django_db(transaction=True)

FLEET = "/tenants/customertenant/"
# How far the page or the results table scrolls sideways, and how many rows are fully in the window.
OVERFLOW = (
    "Math.max(...[...document.querySelectorAll('html, #content, .results')]"
    ".map(e => e.scrollWidth - e.clientWidth))"
)
ROWS_IN_VIEW = (
    "[...document.querySelectorAll('#result_list tbody tr')]"
    ".filter(r => r.getBoundingClientRect().bottom <= window.innerHeight).length"
)


def visible_headers(page) -> list[str]:
    return page.eval_on_selector_all(
        "#result_list thead th",
        "ths => ths.filter(th => th.offsetParent !== null && th.getBoundingClientRect().right <= innerWidth)"
        ".map(th => th.innerText.trim().toLowerCase())",
    )


def test_500_tenants_read_at_a_glance_on_a_desktop_and_a_narrow_window(browser_page, live_server):
    page, base = browser_page, live_server.url
    add_fleet(500)
    sign_in(page, base)

    page.set_viewport_size({"width": 1440, "height": 900})
    page.goto(base + FLEET)
    assert page.inner_text("h1") == "Customer tenants"
    assert page.evaluate(OVERFLOW) <= 0
    assert page.evaluate(ROWS_IN_VIEW) >= 25
    headers = visible_headers(page)
    for column in ("tenant", "state", "mfa reg.", "per-user on", "policy", "last run", "drift", "consent"):
        assert column in headers, headers
    assert page.locator("#changelist-filter").count() == 0  # no sidebar listing every value
    assert page.locator("#filter-bar select").count() >= 6

    # A blocked tenant: a red pill, its reason on hover.
    blocked = CustomerTenant.objects.filter(migration_state="blocked").order_by("display_name").first()
    row = page.locator("#result_list tbody tr", has_text=blocked.primary_domain)
    page.goto(base + FLEET + f"?q={blocked.primary_domain}")
    pill = row.locator(".migration-state")
    assert pill.inner_text() == "Blocked"
    assert "pill-bad" in pill.get_attribute("class")
    assert pill.get_attribute("title").startswith(blocked.migration_state_reason)
    snap(page, "fleet-500-searched")

    # Saved views: each count is what the view then lists.
    page.goto(base + FLEET)
    ready = CustomerTenant.objects.filter(migration_state="ready").count()
    tab = page.locator('#saved-views [data-view="ready"]')
    assert tab.inner_text().split() == ["Ready", str(ready)]
    tab.click()
    page.wait_for_url("**view=ready")
    assert page.locator("#result_list tbody tr").count() == min(ready, 100)
    assert set(page.locator("#result_list .migration-state").all_inner_texts()) == {"Ready"}
    assert "current" in page.locator('#saved-views [data-view="ready"]').get_attribute("class")

    # Security defaults are a neutral word, never a red cross.
    page.goto(base + FLEET)
    assert page.locator("#result_list .field-sd_display img").count() == 0
    assert set(page.locator("#result_list .field-sd_display").all_inner_texts()) <= {"on", "off", "—"}
    snap(page, "fleet-500")

    # A narrow window drops the least-read columns instead of scrolling sideways.
    page.set_viewport_size({"width": 800, "height": 900})
    page.goto(base + FLEET)
    assert page.evaluate(OVERFLOW) <= 0
    headers = visible_headers(page)
    for column in ("tenant", "state", "per-user on", "drift"):
        assert column in headers, headers
    assert page.evaluate(ROWS_IN_VIEW) >= 15


def test_the_dashboard_summarises_500_tenants_in_tiles_that_lead_to_the_list(browser_page, live_server):
    page, base = browser_page, live_server.url
    add_fleet(500)
    sign_in(page, base)
    for width in (1440, 800):
        page.set_viewport_size({"width": width, "height": 900})
        page.goto(base + "/")
        assert page.evaluate(OVERFLOW) <= 0, width
        # Full width, and a histogram instead of a bar per tenant: the page stays short.
        assert (
            page.evaluate("document.querySelector('#dashboard').getBoundingClientRect().width") > width * 0.9
        )
        assert page.evaluate("document.documentElement.scrollHeight") < 2600, width
    snap(page, "dashboard-500")
    assert page.locator("#app-list, .app-migrations_engine").count() == 0
    assert page.locator("#chart-readiness [data-bucket]").count() == 10
    blocked = CustomerTenant.objects.filter(migration_state="blocked").count()
    tile = page.locator('#state-tiles [data-state="blocked"]')
    assert tile.locator(".number").inner_text() == str(blocked)
    assert "tone-bad" in tile.get_attribute("class")
    tile.click()
    page.wait_for_url("**migration=blocked")
    assert f"{blocked} customer tenant" in page.inner_text(".paginator")


@pytest.mark.parametrize(
    ("path", "words"),
    [
        ("/migrations_engine/migrationrun/", "Migration runs"),
        ("/migrations_engine/migrationrun/{run}/change/", "Dry run."),
        ("/migrations_engine/driftfinding/", "Security defaults are on again"),
        ("/migrations_engine/wave/", "Waves"),
        ("/migrations_engine/wave/add/", "Schedule a wave"),
        ("/migrations_engine/auditevent/", "Audit events"),
        ("/migrations_engine/auditevent/{audit}/change/", "staff.signed_in"),
        ("/census/progress/?tenants={tenants}&since=0", "tenants read"),
        ("/", "Fleet overview"),
    ],
)
def test_the_other_pages_fit_a_desktop_and_a_narrow_window(browser_page, live_server, path, words):
    page, base = browser_page, live_server.url
    add_fleet(200)
    sign_in(page, base)
    ids = {
        "run": MigrationRun.objects.get().pk,
        "audit": AuditEvent.objects.order_by("pk").first().pk,
        "tenants": ",".join(str(pk) for pk in CustomerTenant.objects.values_list("pk", flat=True)[:30]),
    }
    url = base + path.format(**ids)
    for width in (1440, 800):
        page.set_viewport_size({"width": width, "height": 900})
        answer = page.goto(url)
        assert answer.status == 200
        assert words in page.inner_text("#content")
        assert page.evaluate(OVERFLOW) <= 0, (path, width)
