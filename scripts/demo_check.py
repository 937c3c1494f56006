"""`tasks.py demo --once`: check that every demo process works and the census matches the fleet."""

from __future__ import annotations

import os
import re
import time
import urllib.error
import urllib.request
from datetime import timedelta

import requests


def _wait_job(job, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = job.get_status(refresh=True)
        if status in ("finished", "failed", "stopped", "canceled"):
            return status
        time.sleep(0.2)
    return "timed out"


def check_demo(env: dict[str, str], fleet: dict, port: int) -> list[str]:
    """Every problem found, in words; an empty list means the demo is right."""
    os.environ.update(env)
    import django

    django.setup()
    import django_rq

    from migrations_engine.census.services import enqueue_census
    from migrations_engine.graph import REQUIRED_ROLES
    from migrations_engine.queueing import ping
    from tenants.models import CustomerTenant

    problems: list[str] = []
    try:
        url = f"http://127.0.0.1:{port}/tenants/customertenant/"
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - loopback
            if "/login/" not in response.url:
                problems.append("the tenant list answered without a login")
    except urllib.error.URLError as exc:
        problems.append(f"the console did not answer: {exc}")

    scheduled = django_rq.get_scheduler("default").enqueue_in(timedelta(seconds=1), ping)
    if _wait_job(scheduled, 30) != "finished":
        problems.append("a job scheduled through rq-scheduler did not run on the worker within 30 s")

    wanted = {"msp-sweeper", "msp-wave-tick", "msp-drift-watch", "msp-audit-exports"}
    registered = {job.id for job in django_rq.get_scheduler("default").get_jobs()}
    if not wanted <= registered:
        problems.append(f"the scheduler process did not register {', '.join(sorted(wanted - registered))}")

    tenants = {str(t.tenant_id): t for t in CustomerTenant.objects.select_related("consent")}
    for entry in fleet["tenants"]:
        t = tenants.get(entry["tenant_id"])
        name = entry["domain"]
        if t is None:
            problems.append(f"{name}: not in the console")
            continue
        if not entry["consent_granted"]:
            if t.census_status != "no_consent" or t.consent.missing_roles != list(REQUIRED_ROLES):
                problems.append(f"{name}: not flagged as missing consent with every role")
            continue
        missing = [r for r in REQUIRED_ROLES if r not in entry["roles"]]
        if t.consent.missing_roles != missing:
            problems.append(f"{name}: missing roles {t.consent.missing_roles}, expected {missing}")
        if t.licence != entry["licence"].lower():
            problems.append(f"{name}: licence {t.licence}, expected {entry['licence']}")
        if entry["licence"] == "Free" and t.census_status != "free":
            problems.append(f"{name}: Entra ID Free not flagged")
        if t.migration_state == "migrated":
            # Its census is what the run's verify read: security defaults off, the policy enabled.
            if t.security_defaults is not False or t.mfa_policy_state != "enabled":
                problems.append(f"{name}: migrated, but its census shows the state from before")
        elif t.security_defaults is not None and t.security_defaults != entry["security_defaults"]:
            problems.append(
                f"{name}: security defaults {t.security_defaults}, expected {entry['security_defaults']}"
            )
        if t.users_total is not None and t.users_total != entry["user_count"]:
            problems.append(f"{name}: {t.users_total} users counted, fleet has {entry['user_count']}")

    from migrations_engine.models import MigrationRun

    full = MigrationRun.objects.filter(mode="full").first()
    if full is None or full.status != "succeeded":
        problems.append("the full demo run did not succeed")
    else:
        for item in full.items.select_related("tenant"):
            if not item.verdict.startswith("Verified"):
                problems.append(f"{item.tenant.primary_domain}: not verified ({item.failure_reason})")

    p2 = next((t for t in tenants.values() if t.licence == "p2"), None)
    if p2 is None:
        problems.append("no P2 tenant to run a census job for")
    else:
        job = enqueue_census(p2.pk, actor="demo-check")
        if _wait_job(job, 120) != "finished" or job.return_value() != "ok":
            problems.append(f"the census job for {p2.primary_domain} did not finish ok on the worker")
    problems.extend(_check_wave())
    if full is not None:
        # The nightly plan wave ran over the migrated tenants: a dry run never changes what they are.
        for item in full.items.select_related("tenant"):
            item.tenant.refresh_from_db()
            if item.tenant.migration_state != "migrated":
                problems.append(
                    f"{item.tenant.primary_domain}: {item.tenant.migration_state} after the plan wave"
                )
    problems.extend(_check_entra_sign_in(fleet, port))
    return problems


def _check_entra_sign_in(fleet: dict, port: int) -> list[str]:
    """Sign the demo MSP's operator in with Microsoft, as a browser would: console → the simulator's
    sign-in and MFA pages → back to the console, signed in."""
    staff = fleet.get("staff_sign_in")
    if not staff:
        return []
    ada = next(m for m in staff["members"] if m["upn"].startswith("ada@"))
    console, login = requests.Session(), requests.Session()
    console.trust_env = login.trust_env = False
    login.verify = fleet["ca_bundle"]
    base = f"http://127.0.0.1:{port}"
    try:
        started = console.get(f"{base}/account/entra/login/", allow_redirects=False, timeout=15)
        authorize = started.headers.get("location", "")
        page = login.get(authorize, timeout=15)
        txn = re.search(r'name="txn" value="([^"]+)"', page.text)
        if not txn:
            return [
                f"the Entra ID sign-in did not reach the sign-in page ({started.status_code} {authorize})"
            ]
        action = authorize.split("/oauth2/v2.0/authorize")[0] + "/login"
        form = {"txn": txn.group(1), "step": "password", "username": ada["upn"], "password": ada["password"]}
        login.post(action, data=form, timeout=15)
        back = login.post(
            action,
            data={"txn": txn.group(1), "step": "mfa", "action": "approve"},
            timeout=15,
            allow_redirects=False,
        ).headers.get("location", "")
        console.get(back, timeout=15)
        home = console.get(f"{base}/", allow_redirects=False, timeout=15)
    except requests.RequestException as exc:
        return [f"the Entra ID sign-in failed: {exc}"]
    if home.status_code != 200 or ada["upn"].split("@")[0].capitalize() not in home.text:
        return [
            f"the Entra ID sign-in did not sign {ada['upn']} in (the dashboard answered {home.status_code})"
        ]
    return []


def _check_wave(timeout: float = 120) -> list[str]:
    """The demo wave: rq-scheduler fires its slot, both rings run, each slot fired once."""
    from migrations_engine.models import Wave

    wave = Wave.objects.get(name="Nightly plan (demo)")
    deadline = time.monotonic() + timeout
    while wave.status not in ("completed", "halted", "cancelled") and time.monotonic() < deadline:
        time.sleep(1)
        wave.refresh_from_db()
    if wave.status != "completed":
        note = wave.status_message or "no message"
        return [f"the demo wave is {wave.status} after {timeout:.0f} s ({note})"]
    problems = []
    runs = list(wave.runs.order_by("ring"))
    if [r.status for r in runs] != ["succeeded", "succeeded"]:
        problems.append(f"the demo wave's rings ended {[r.status for r in runs]}")
    slots = list(wave.slots.values_list("ring", flat=True))
    if sorted(slots) != [0, 1]:
        problems.append(f"the demo wave fired slots for rings {slots}, expected one each for rings 0 and 1")
    return problems
