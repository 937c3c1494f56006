"""The fleet tells the truth and no click does harm, as an MSP engineer meets it in Chromium:

1. after a verified full migration a plan leaves the tenant "Migrated (verified)" (a dry run never changes
   what a tenant is), and the plan's timeline says what it *would* do, never "done";
2. the tenant's per-user counts and policy column are what verify read, the moment the run ends;
3. open drift shows as "Migrated, drift found";
4. Roll back asks first; cancelling the rollback warns and offers to let it finish, and the rolled-back
   run says so;
5. the full-migration page names what blocks each tenant (Entra ID Free, a missing permission, no
   break-glass) and offers no Yes when none could start.
"""

from __future__ import annotations

import io
import threading

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.db import connections
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice

from migrations_engine.drift.services import check_tenant
from migrations_engine.models import MigrationRun
from migrations_engine.runs.services import start_run
from tenants.models import BreakGlassConfig
from tests.browser.test_console_journey import select_and_act, snap
from tests.migrations_engine.pipeline_helpers import FAST, seed, tenant_named

pytestmark = pytest.mark.django_db(transaction=True)
PASSWORD = "a-long-password-for-tests"


def sign_in(page, base: str) -> None:
    user = User.objects.create_superuser("engineer", "", PASSWORD)
    device = TOTPDevice.objects.create(user=user, name="phone", confirmed=True)
    page.goto(f"{base}/login/")
    page.fill("#id_username", "engineer")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.fill("#id_code", f"{totp(device.bin_key, step=device.step, t0=device.t0, digits=device.digits):06d}")
    page.click("input[type=submit]")
    page.wait_for_selector("#site-name")


def off_the_loop(fn, *args, **kwargs):
    """Run `fn` in a thread of its own: Playwright's event loop runs in the test's thread, and the census
    and the drift check run their own."""
    result, failure = [], []

    def body():
        try:
            result.append(fn(*args, **kwargs))
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test's thread
            failure.append(exc)
        finally:
            connections.close_all()

    thread = threading.Thread(target=body)
    thread.start()
    thread.join(300)
    if failure:
        raise failure[0]
    return result[0] if result else None


def census(*tenants) -> None:
    args = [a for t in tenants for a in ("--tenant", t.primary_domain)]
    off_the_loop(call_command, "census", *args, "--no-progress", stdout=io.StringIO())


def fleet_row(page, base: str, domain: str) -> str:
    page.goto(f"{base}/tenants/customertenant/")
    return page.locator("#result_list tbody tr", has_text=domain).inner_text()


def wait_for_run(page, status: str = "succeeded") -> None:
    page.wait_for_selector(f'[data-item-status="{status}"]', timeout=90_000)


def test_a_plan_after_a_migration_leaves_it_migrated_and_the_counts_are_what_verify_read(
    browser_page, live_server, fast_graph, live_worker, tmp_path
):
    page, base = browser_page, live_server.url
    seed(fast_graph, tmp_path)
    woodgrove = tenant_named("woodgrove")
    census(woodgrove)
    sign_in(page, base)
    before = fleet_row(page, base, woodgrove.primary_domain)
    assert "Ready" in before

    select_and_act(page, base, woodgrove.primary_domain, "start_full")
    assert (
        page.locator('[data-preflight-tenant="woodgrove.onmicrosoft.com"]').get_attribute("data-blocked")
        == "false"
    )
    page.click("#confirm-yes")
    wait_for_run(page)
    row = fleet_row(page, base, woodgrove.primary_domain)
    woodgrove.refresh_from_db()
    assert "Migrated (verified)" in row
    cells = page.locator("#result_list tbody tr", has_text=woodgrove.primary_domain)
    assert cells.locator(".field-policy_display").inner_text() == "on"
    assert (woodgrove.per_user_enabled, woodgrove.per_user_enforced) == (0, 0)
    still_on = cells.locator(".field-per_user_display span")
    assert still_on.inner_text() == "0"
    assert f"disabled {woodgrove.per_user_disabled} of" in still_on.get_attribute("title")

    select_and_act(page, base, woodgrove.primary_domain, "start_plan")
    page.click("#confirm-yes")
    wait_for_run(page)
    assert page.locator("#run-dry-run").is_visible()
    assert page.locator('[data-step-key="cut_over"]').get_attribute("data-step-state") == "would"
    assert page.locator('[data-step-key="disable_per_user"]').get_attribute("data-step-state") == "would"
    snap(page, "plan-run-page")
    row = fleet_row(page, base, woodgrove.primary_domain)
    assert "Migrated (verified)" in row and "Planned" not in row and "Plan #" in row
    cells = page.locator("#result_list tbody tr", has_text=woodgrove.primary_domain)
    pill = cells.locator(".migration-state")
    assert "last plan:" in pill.get_attribute("title") and "pill-ok" in pill.get_attribute("class")
    snap(page, "fleet-after-plan")
    page.goto(f"{base}/")
    assert "Migrated (verified)" in page.inner_text("#content")

    fast_graph.admin("POST", f"/_sim/tenants/{woodgrove.tenant_id}/security-defaults", json={"enabled": True})
    off_the_loop(check_tenant, woodgrove, actor="test")
    assert "Migrated, drift found" in fleet_row(page, base, woodgrove.primary_domain)


def test_roll_back_asks_and_cancelling_a_rollback_offers_to_let_it_finish(
    browser_page, live_server, fast_graph, live_worker, tmp_path
):
    page, base = browser_page, live_server.url
    seed(fast_graph, tmp_path)
    woodgrove = tenant_named("woodgrove")
    run = start_run(mode="full", tenants=[woodgrove], actor="test", options={**FAST, "settle_seconds": 30})
    sign_in(page, base)
    page.goto(f"{base}/migrations_engine/migrationrun/{run.pk}/change/")
    wait_for_run(page)
    page.reload()  # the buttons of a finished run
    # Slow Graph down for this tenant, so that the rollback is still running when we look at it.
    fast_graph.admin("POST", f"/_sim/tenants/{woodgrove.tenant_id}/faults", json={"latency_ms": 400})

    page.click('[data-action="rollback"]')
    page.wait_for_selector("#confirm-what")
    assert (
        "1 tenant" in page.inner_text("#confirm-what")
        and not MigrationRun.objects.filter(rollback_of=run).exists()
    )
    snap(page, "confirm-rollback")
    page.click("#confirm-yes")
    page.wait_for_url("**/migrationrun/*/change/")
    rollback = MigrationRun.objects.get(rollback_of=run)
    page.click('[data-action="cancel"]')
    page.wait_for_selector("#confirm-warning")
    assert "leaves tenants part-way" in page.inner_text("#confirm-warning")
    snap(page, "confirm-cancel-rollback")
    page.click("#confirm-alternative")  # Let the rollback finish
    rollback.refresh_from_db()
    assert not rollback.cancel_requested
    fast_graph.admin("POST", f"/_sim/tenants/{woodgrove.tenant_id}/faults", json={"latency_ms": 0})
    wait_for_run(page)
    page.goto(f"{base}/migrations_engine/migrationrun/{run.pk}/change/")
    assert "all 1 tenant" in page.inner_text(f"#rolled-back-by-{rollback.pk}")
    assert "Rolled back" in fleet_row(page, base, woodgrove.primary_domain)


def test_the_full_migration_page_names_what_blocks_each_tenant(
    browser_page, live_server, fast_graph, tmp_path
):
    page, base = browser_page, live_server.url
    seed(fast_graph, tmp_path)
    tailspin, litware, fabrikam = (tenant_named(n) for n in ("tailspin", "litware", "fabrikam"))
    census(tailspin, litware, fabrikam)
    BreakGlassConfig.objects.filter(tenant=fabrikam).delete()
    sign_in(page, base)
    page.goto(f"{base}/tenants/customertenant/")
    for tenant in (tailspin, litware, fabrikam):
        page.locator("#result_list tbody tr", has_text=tenant.primary_domain).locator(
            "input.action-select"
        ).check()
    page.select_option("select[name=action]", "start_full")
    page.click("button[name=index]")

    page.wait_for_selector("#preflight")
    text = page.inner_text("#preflight")
    assert "Entra ID Free" in text and "Policy.ReadWrite.AuthenticationMethod" in text
    assert "No break-glass accounts configured" in text
    assert page.locator("#nothing-starts").is_visible() and page.locator("#confirm-yes").count() == 0
    snap(page, "preflight-all-blocked")
    assert not MigrationRun.objects.exists()
