"""An MSP engineer's first hour, in a real browser: log in, onboard a customer through the consent page,
run a census, start a pilot from the fleet page and watch it verify without reloading, export the audit.

Live dev server (pytest-django's live_server) + a real rq worker process + the simulator over HTTPS.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import os

import pytest
from django.contrib.auth.models import User
from django_otp.oath import totp

from migrations_engine.models import AuditEvent
from tenants.models import CustomerTenant, TenantConsent

pytestmark = pytest.mark.django_db(transaction=True)


def snap(page, name: str) -> None:
    """With MSP_SCREENSHOTS=DIR, keep a picture of each stage (for looking at the console by eye)."""
    folder = os.environ.get("MSP_SCREENSHOTS")
    if folder:
        size = page.viewport_size
        for width in (1440, 800):  # a desktop and a narrow window
            page.set_viewport_size({"width": width, "height": size["height"] if size else 900})
            page.screenshot(path=os.path.join(folder, f"{name}-{width}.png"), full_page=True)
        if size:
            page.set_viewport_size(size)


def select_and_act(page, base: str, domain: str, action: str) -> None:
    """On the fleet page: tick one tenant's row, choose an action, press Go."""
    page.goto(f"{base}/tenants/customertenant/")
    row = page.locator("#result_list tbody tr", has_text=domain)
    row.locator("input.action-select").check()
    page.select_option("select[name=action]", action)
    page.click("button[name=index]")


def test_an_engineer_onboards_runs_a_pilot_and_exports_the_audit(
    browser_page, live_server, fast_graph, live_worker, settings, tmp_path
):
    from django.core.management import call_command

    page, base = browser_page, live_server.url
    settings.SITE_URL = base
    settings.CONSENT_REDIRECT_URI = f"{base}/consent/callback/"
    fleet = dict(fast_graph.fleet)
    newcomer = next(t for t in fleet["tenants"] if not t["consent_granted"])
    fleet["tenants"] = [t for t in fleet["tenants"] if t is not newcomer]
    (tmp_path / "fleet.json").write_text(json.dumps(fleet))
    call_command("seed_demo", "--fleet", str(tmp_path / "fleet.json"))
    User.objects.create_superuser("engineer", "", "a-long-password-for-tests")

    # Log in.
    page.goto(f"{base}/login/")
    page.fill("#id_username", "engineer")
    page.fill("#id_password", "a-long-password-for-tests")
    page.click("input[type=submit]")
    # A superuser always needs a second factor: enrol an authenticator from the page's key, as an app would.
    page.wait_for_selector("text=Scan the code")
    snap(page, "second-factor-enrol")
    secret = page.inner_text("code").replace(" ", "")
    key = base64.b32decode(secret + "=" * (-len(secret) % 8))
    page.fill("#id_code", f"{totp(key):06d}")
    page.click("input[type=submit]")
    page.wait_for_selector("ul.backup-codes")
    assert len(page.query_selector_all("ul.backup-codes li")) == 10
    snap(page, "second-factor-backup-codes")
    page.click("text=Continue to the console")
    page.wait_for_selector("#site-name")

    # Onboard the customer whose admin has not consented yet, through the (simulated) Microsoft page.
    page.goto(f"{base}/customers/add/")
    page.fill("#id_text", newcomer["domain"])
    page.fill("#id_display_name", newcomer["display_name"])
    page.click("input[type=submit]")
    consent_url = page.input_value("#consent-url")
    assert consent_url.startswith(fast_graph.authority_host)
    snap(page, "consent-link")
    page.goto(consent_url)
    snap(page, "microsoft-consent")
    page.click("#accept")
    page.wait_for_selector("#consent-granted")
    snap(page, "consent-granted")
    tenant = CustomerTenant.objects.get(tenant_id=newcomer["tenant_id"])
    assert TenantConsent.objects.get(tenant=tenant).status == "granted"

    # Census of the new customer from the fleet page (a confirmation page first).
    select_and_act(page, base, newcomer["domain"], "census")
    page.click("input[type=submit][value^='Yes']")
    page.wait_for_selector("text=Census queued for 1 tenant.")
    # The census progress page follows it live, in words, without a reload.
    census_url = page.url
    row = page.locator(f'#census-tenants [data-tenant-id="{tenant.pk}"]')
    assert row.get_attribute("data-census-state") in ("queued", "running", "done")
    page.wait_for_selector(f'[data-tenant-id="{tenant.pk}"][data-census-state="done"]', timeout=60_000)
    assert page.url == census_url
    tenant.refresh_from_db()
    assert tenant.census_status in ("ok", "partial")
    assert row.locator('[data-field="words"]').inner_text() == tenant.get_census_status_display()
    assert f"{tenant.users_total} users, per-user MFA still on for" in row.inner_text()
    assert "1 of 1 tenant read" in page.inner_text("#census-summary")
    snap(page, "census-progress")
    page.goto(f"{base}/tenants/customertenant/")
    row = page.locator("#result_list tbody tr", has_text=newcomer["domain"])
    licence = row.locator(".field-licence_display span")
    assert licence.inner_text() in ("P1", "P2") and licence.get_attribute("title").startswith("Entra ID P")

    # A pilot on Contoso from the fleet page; the run page follows it live to "Verified".
    contoso = CustomerTenant.objects.get(primary_domain__startswith="contoso")
    state = fast_graph.admin("GET", f"/_sim/tenants/{contoso.tenant_id}/state")
    group = next(g for g in state["groups"] if "pilot" in g["displayName"].lower())
    select_and_act(page, base, contoso.primary_domain, "start_pilot")
    page.fill("#pilot_group_id", group["id"])
    page.click("input[type=submit][value^='Yes']")
    page.wait_for_url("**/migrationrun/*/change/")
    url_before = page.url
    page.wait_for_selector('[data-item-status="succeeded"]', timeout=90_000)
    page.wait_for_selector("text=Verified")
    assert page.url == url_before  # followed live, no navigation
    # The finished run replaces the live one in place: its buttons appear without a reload, times and
    # counters are in words.
    page.wait_for_selector('#run-actions [data-action="rollback"]')
    assert page.url == url_before
    assert page.inner_text("#run-finished").replace("\xa0", " ").startswith(("just now", "1 minute ago"))
    labels = page.locator(".counters dt").all_inner_texts()
    assert labels and not any("_" in label for label in labels), labels
    assert "Per-user MFA turned off" in labels
    assert not page.locator(".step-state", has_text="pending").count()
    snap(page, "run-page")
    page.goto(f"{base}/")
    snap(page, "dashboard")
    page.goto(f"{base}/tenants/customertenant/")
    snap(page, "fleet")

    # Export the audit log of Contoso and check the file's rows.
    page.goto(f"{base}/migrations_engine/auditevent/?tenant__id__exact={contoso.pk}")
    expected = AuditEvent.objects.filter(tenant=contoso)
    count_before = expected.count()
    with page.expect_download() as download:
        page.click("text=Export CSV")
    rows = list(csv.DictReader(io.StringIO(open(download.value.path()).read())))
    assert len(rows) == count_before > 0
    # Each row names the customer as people know it: its Entra tenant id and domain, not a row number.
    assert {(r["tenant_entra_id"], r["tenant_domain"]) for r in rows} == {
        (str(contoso.tenant_id), contoso.primary_domain)
    }
    assert expected.filter(action="audit.exported").count() == 1  # the export is itself on the record
    assert {r["client_request_id"] for r in rows if r["outcome"] == "intent"} == set(
        expected.filter(outcome="intent").values_list("client_request_id", flat=True)
    )
