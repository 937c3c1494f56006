"""`tasks.py screenshots [DIR]`: full-page pictures of every console page of the running demo, at a desktop
width (1440 px) and a narrow window (800 px), for people reviewing a change by eye.

Called by scripts/demo.py once the demo is up (census, plan, full run, wave and export schedule done):
it signs in as the demo admin with the password and a code of its authenticator, starts one more plan to
catch a run page while it is live, and writes `<page>-<width>.png` files into the folder.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

WIDTHS = (1440, 800)
HEIGHT = 900


def photograph_demo(env: dict[str, str], port: int, admin: tuple[str, str, str], out: Path) -> list[Path]:
    """Sign in, visit every page, save the pictures; returns the files written."""
    os.environ.update(env)
    # Playwright's sync API keeps an event loop running in this thread; the ORM calls between pages
    # are still plain synchronous code.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    import django

    django.setup()
    # Why here: Django is set up just above, from the demo's environment.
    from playwright.sync_api import sync_playwright

    out.mkdir(parents=True, exist_ok=True)
    base = f"http://127.0.0.1:{port}"
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(chromium).exists():
        raise RuntimeError("screenshots need Debian's chromium (apt-get install chromium)")
    written: list[Path] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": WIDTHS[0], "height": HEIGHT})
        page.set_default_timeout(30_000)
        written += _shoot(page, f"{base}/login/", "login", out)
        _sign_in(page, base, admin)
        live_run = _start_plan()
        written += _shoot(page, _admin_url("migrationrun", live_run), "run-live", out)
        for name, url in _pages(base):
            written += _shoot(page, url, name, out)
        _wait_finished(live_run)
        written += _shoot(page, _admin_url("migrationrun", live_run), "run-plan-finished", out)
        browser.close()
    print(f"\n{len(written)} screenshots in {out}:")
    for path in written:
        print(f"  {path.name}")
    return written


def _sign_in(page, base: str, admin: tuple[str, str, str]) -> None:
    # Why here: django_otp's models need the app registry photograph_demo has set up.
    from django_otp.oath import totp

    username, password, totp_key = admin
    page.goto(f"{base}/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("input[type=submit]")
    page.wait_for_selector("#id_code")
    page.fill("#id_code", f"{totp(bytes.fromhex(totp_key)):06d}")
    page.click("input[type=submit]")
    page.wait_for_selector("#site-name")


def _admin_url(model: str, pk: int | None = None, app: str = "migrations_engine") -> str:
    from django.urls import reverse  # after django.setup(), like every import below

    site = os.environ["SITE_URL"]
    if pk is None:
        return site + reverse(f"admin:{app}_{model}_changelist")
    return site + reverse(f"admin:{app}_{model}_change", args=[pk])


def _pages(base: str) -> list[tuple[str, str]]:
    """(name, URL) of every page worth a look, with the demo's own rows."""
    # Why here: models import only after photograph_demo's django.setup().
    from migrations_engine.models import AuditEvent, MigrationRun, Wave
    from tenants.models import CustomerTenant

    contoso = CustomerTenant.objects.filter(primary_domain__startswith="contoso").first()
    full = MigrationRun.objects.filter(mode="full").order_by("-pk").first()
    plan = MigrationRun.objects.filter(mode="plan").order_by("pk").first()
    wave = Wave.objects.order_by("pk").first()
    audit = AuditEvent.objects.order_by("-seq").first()
    pages = [
        ("dashboard", f"{base}/"),
        ("fleet", _admin_url("customertenant", app="tenants")),
        ("fleet-blocked", _admin_url("customertenant", app="tenants") + "?migration=blocked"),
        ("tenant", _admin_url("customertenant", contoso.pk if contoso else None, app="tenants")),
        ("runs", _admin_url("migrationrun")),
        ("run-full-finished", _admin_url("migrationrun", full.pk if full else None)),
        ("run-plan-diff", _admin_url("migrationrun", plan.pk if plan else None)),
        ("waves", _admin_url("wave")),
        ("wave", _admin_url("wave", wave.pk if wave else None)),
        ("wave-add", _admin_url("wave") + "add/"),
        ("drift", _admin_url("driftfinding")),
        ("audit", _admin_url("auditevent")),
        ("audit-row", _admin_url("auditevent", audit.pk if audit else None)),
        ("audit-verify", f"{base}/audit/verify/"),
        ("audit-exports", _admin_url("exportschedule")),
        ("add-customer", f"{base}/customers/add/"),
    ]
    return pages


def _start_plan() -> int:
    """One more plan of the ready demo tenants, for a picture of a run page while it runs."""
    # Why here: models import only after photograph_demo's django.setup().
    from migrations_engine.choices import ACTIVE_ITEM_STATUSES
    from migrations_engine.runs.services import start_run
    from tenants.models import CustomerTenant

    tenants = CustomerTenant.objects.filter(census_status="ok", licence__in=("p1", "p2")).exclude(
        run_items__status__in=ACTIVE_ITEM_STATUSES  # the demo's wave may be planning some of them right now
    )
    return start_run(mode="plan", tenants=tenants, actor="screenshots").pk


def _wait_finished(run_pk: int, timeout: float = 120) -> None:
    # Why here: models import only after photograph_demo's django.setup().
    from migrations_engine.models import MigrationRun

    deadline = time.monotonic() + timeout
    while MigrationRun.objects.get(pk=run_pk).finished_at is None:
        if time.monotonic() > deadline:
            raise RuntimeError(f"run {run_pk} did not finish within {timeout:.0f} s")
        time.sleep(0.5)


def _shoot(page, url: str, name: str, out: Path) -> list[Path]:
    written = []
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": HEIGHT})
        response = page.goto(url)
        if response is not None and response.status >= 400:
            raise RuntimeError(f"{name}: {url} answered {response.status}")
        page.wait_for_timeout(500)  # the live parts' first poll
        path = out / f"{name}-{width}.png"
        page.screenshot(path=str(path), full_page=True)
        written.append(path)
    return written
