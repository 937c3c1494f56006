"""A second factor for local accounts: superusers always, everyone when required; enrolment with a QR
code and backup codes; codes checked by django-otp; audited."""

from __future__ import annotations

import re
import time

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django_otp.oath import totp
from django_otp.plugins.otp_static.models import StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from migrations_engine.models import AuditEvent
from tests.migrations_engine.console_helpers import PASSWORD, staff_user

pytestmark = pytest.mark.django_db
SECOND = "/account/second-factor/"


def _sign_in(username: str) -> Client:
    client = Client()
    response = client.post("/login/", {"username": username, "password": PASSWORD, "next": "/"})
    assert response.status_code == 302, response.content[:500]
    return client


def _code(device: TOTPDevice) -> str:
    return f"{totp(device.bin_key, step=device.step, t0=device.t0, digits=device.digits):06d}"


def test_a_superuser_enrols_an_authenticator_before_any_page():
    get_user_model().objects.create_superuser("root", "", PASSWORD)
    client = _sign_in("root")
    page = client.get("/tenants/customertenant/")
    assert page.status_code == 302 and page["Location"].startswith(SECOND)
    enrol = client.get(page["Location"])
    assert b"Scan the code" in enrol.content and b"data:image/svg+xml" in enrol.content
    device = TOTPDevice.objects.get(user__username="root", confirmed=False)
    assert client.post(SECOND, {"code": "000000", "next": "/"}).status_code == 400
    time.sleep(1.1)  # django-otp throttles: after a wrong code the next try waits 1 s, then 2, 4 ...
    done = client.post(SECOND, {"code": _code(device), "next": "/tenants/customertenant/"})
    codes = re.findall(r"<li>([a-z0-9]{8})</li>", done.content.decode())
    assert len(codes) == 10 and set(codes) == set(StaticToken.objects.values_list("token", flat=True))
    assert client.get("/tenants/customertenant/").status_code == 200
    actions = set(AuditEvent.objects.values_list("action", flat=True))
    assert "staff.second_factor_enrolled" in actions


def test_a_code_or_a_backup_code_passes_and_a_wrong_one_does_not(settings):
    settings.STAFF_SECOND_FACTOR_REQUIRED = True
    user = staff_user("ops")
    device = TOTPDevice.objects.create(user=user, name="phone", confirmed=True)
    client = _sign_in("ops")
    assert client.get("/").status_code == 302
    wrong = client.post(SECOND, {"code": "123456", "next": "/"})
    assert wrong.status_code == 400 and b"wrong or expired" in wrong.content
    assert client.get("/").status_code == 302
    throttled = client.post(SECOND, {"code": _code(device), "next": "/"})
    assert throttled.status_code == 400, "right after a wrong code, even the right one waits"
    time.sleep(2.1)
    assert client.post(SECOND, {"code": _code(device), "next": "/"}).status_code == 302
    assert client.get("/").status_code == 200
    assert {"staff.second_factor_failed", "staff.second_factor_passed"} <= set(
        AuditEvent.objects.values_list("action", flat=True)
    )


def test_a_backup_code_works_once(settings):
    settings.STAFF_SECOND_FACTOR_REQUIRED = True
    user = staff_user("ops")
    TOTPDevice.objects.create(user=user, name="phone", confirmed=True)
    static = user.staticdevice_set.create(name="Backup codes", confirmed=True)
    static.token_set.create(token="abcd1234")
    first = _sign_in("ops")
    assert first.post(SECOND, {"code": "abcd1234", "next": "/"}).status_code == 302
    assert first.get("/").status_code == 200
    again = _sign_in("ops")
    assert again.post(SECOND, {"code": "abcd1234", "next": "/"}).status_code == 400


def test_without_the_setting_a_staff_member_with_no_device_goes_straight_in(settings):
    settings.STAFF_SECOND_FACTOR_REQUIRED = False
    staff_user("ops")
    assert _sign_in("ops").get("/").status_code == 200


def test_an_off_site_next_is_not_followed(settings):
    settings.STAFF_SECOND_FACTOR_REQUIRED = True
    user = staff_user("ops")
    device = TOTPDevice.objects.create(user=user, name="phone", confirmed=True)
    client = _sign_in("ops")
    response = client.post(SECOND, {"code": _code(device), "next": "https://evil.example/"})
    assert response.status_code == 302 and response["Location"] == "/"
