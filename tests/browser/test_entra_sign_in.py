"""A staff member signs in with Microsoft in a real browser: the console's sign-in page, the (simulated)
Entra ID pages over HTTPS, MFA, back in the console with the mapped role; signing out signs out of Entra
ID too; then a sign-in that did not prove MFA is refused with the reason on the page."""

from __future__ import annotations

import pytest

from migrations_engine.models import AuditEvent
from tests.browser.test_console_journey import snap
from tests.staff.entra_helpers import map_roles, person, point_entra_at

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_staff_member_signs_in_with_microsoft_and_mfa(browser_page, live_server, fresh_sim, settings):
    page, base = browser_page, live_server.url
    assert base.startswith("http://localhost:")  # a registered reply URL, whatever the port
    staff = point_entra_at(settings, fresh_sim, STAFF_ENTRA_REDIRECT_URI="")
    map_roles(staff)
    ada = person(staff, "ada")

    page.goto(f"{base}/login/")
    snap(page, "login-with-microsoft")
    page.click("#entra-sign-in")
    page.wait_for_selector("#i0116")
    assert page.url.startswith(f"{fresh_sim.authority_host}/{staff['tenant_id']}/oauth2/v2.0/authorize")
    snap(page, "entra-sign-in")
    page.fill("#i0116", ada["upn"])
    page.fill("#i0118", "not her password")
    page.click("#idSIButton9")
    assert "Your account or password is incorrect." in page.inner_text("#passwordError")
    page.fill("#i0118", ada["password"])
    page.click("#idSIButton9")
    page.wait_for_selector("#approve")
    page.click("#approve")

    page.wait_for_selector("#site-name")
    assert page.url.rstrip("/") == base and "ADA OPERATOR" in page.inner_text("#user-tools").upper()
    snap(page, "signed-in-with-microsoft")
    assert AuditEvent.objects.filter(action="staff.signed_in", actor=ada["upn"]).count() == 1

    # Signing out signs out of Entra ID too, back to the console's sign-in page. The console now asks
    # for a context nobody can satisfy: after the password and MFA again, it refuses, saying why.
    page.click("#logout-form button, #logout-form input[type=submit]")
    page.wait_for_selector("#entra-sign-in")
    assert page.url == f"{base}/login/"
    settings.STAFF_ENTRA_AUTH_CONTEXT = "c9"
    page.click("#entra-sign-in")
    page.fill("#i0116", ada["upn"])
    page.fill("#i0118", ada["password"])
    page.click("#idSIButton9")
    page.wait_for_selector("#entra-refusal")
    assert "did not prove multi-factor authentication" in page.inner_text("#entra-refusal")
    snap(page, "entra-refused")
    page.goto(f"{base}/")
    assert "/login/" in page.url
