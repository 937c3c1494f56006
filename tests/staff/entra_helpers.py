"""Signing staff in through the simulator's Entra ID: settings, role mappings, and a person's steps on
the sign-in pages (over HTTPS with httpx, as a browser would, keeping the login side's cookies)."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import httpx
from django.contrib.auth.models import Group

from staff.models import EntraRoleMapping

REDIRECT_URI = "http://localhost/account/entra/callback/"


def point_entra_at(settings, sim, **overrides) -> dict:
    """Set the console's Entra ID sign-in to the simulator's MSP tenant; the tenant's summary."""
    staff = sim.fleet["staff_sign_in"]
    settings.STAFF_ENTRA_TENANT_ID = staff["tenant_id"]
    settings.STAFF_ENTRA_CLIENT_ID = staff["client_id"]
    settings.STAFF_ENTRA_CLIENT_SECRET = staff["client_secret"]
    settings.STAFF_ENTRA_AUTHORITY_HOST = sim.authority_host
    settings.STAFF_ENTRA_CA_BUNDLE = sim.ca_bundle
    settings.STAFF_ENTRA_REDIRECT_URI = REDIRECT_URI
    settings.STAFF_ENTRA_REQUIRE_MFA = True
    settings.STAFF_ENTRA_AUTH_CONTEXT = "c1"
    settings.STAFF_SECOND_FACTOR_REQUIRED = True
    for name, value in overrides.items():
        setattr(settings, name, value)
    return staff


def entra_group_id(staff: dict, name: str) -> str:
    return next(g["id"] for g in staff["groups"] if g["displayName"] == name)


def map_roles(staff: dict) -> None:
    """Console Operators → Operator, Console Administrators → Administrator, app role Console.Approver →
    Approver, Helpdesk → the team "North desk" (which holds tenant grants)."""
    for entra, group in (("Console Operators", "Operator"), ("Console Administrators", "Administrator")):
        EntraRoleMapping.objects.create(
            kind="group", value=entra_group_id(staff, entra), group=Group.objects.get(name=group)
        )
    EntraRoleMapping.objects.create(
        kind="app_role", value="Console.Approver", group=Group.objects.get(name="Approver")
    )
    team, _ = Group.objects.get_or_create(name="North desk")
    EntraRoleMapping.objects.create(kind="group", value=entra_group_id(staff, "Helpdesk"), group=team)


def person(staff: dict, alias: str) -> dict:
    return next(m for m in staff["members"] if m["upn"].startswith(f"{alias}@"))


def login_browser(sim) -> httpx.Client:
    """The person's browser as the login side sees it (it keeps the sign-in session cookie)."""
    return httpx.Client(verify=sim.ssl_context, trust_env=False, timeout=30)


def at_entra(browser: httpx.Client, authorize_url: str, who: dict | None, *, mfa: str = "approve"):
    """Open the authorize URL and go through the pages; the login side's last response (a 302 back to
    the console, or a page)."""
    page = browser.get(authorize_url)
    if page.status_code != 200 or who is None:
        return page
    login = str(
        page.url.copy_with(
            path=urlsplit(authorize_url).path.replace("/oauth2/v2.0/authorize", "/login"), query=None
        )
    )
    txn = re.search(r'name="txn" value="([^"]+)"', page.text).group(1)
    page = browser.post(
        login, data={"txn": txn, "step": "password", "username": who["upn"], "password": who["password"]}
    )
    if page.status_code == 200 and 'value="mfa"' in page.text:
        page = browser.post(login, data={"txn": txn, "step": "mfa", "action": mfa})
    elif page.status_code == 200 and 'value="register"' in page.text:
        page = browser.post(login, data={"txn": txn, "step": "register", "action": "cancel"})
    return page


def callback_path(answer) -> str:
    """The console path (with query) the login side sent the browser back to."""
    assert answer.status_code == 302, answer.text[:500]
    location = urlsplit(answer.headers["location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == REDIRECT_URI
    return f"{location.path}?{location.query}"


def sign_in_with_entra(client, browser, who: dict, *, start: str = "/account/entra/login/", mfa="approve"):
    """The whole journey; the console's answer to the callback."""
    started = client.get(start)
    assert started.status_code == 302, started.content[:500]
    return client.get(callback_path(at_entra(browser, started["Location"], who, mfa=mfa)))
