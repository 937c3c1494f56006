"""Sessions: signed out after the idle time (polling does not count), ended at browser close, and the
riskiest actions ask for the password and code again when the sign-in is not recent."""

from __future__ import annotations

import time

import pytest
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django_otp.oath import totp

from migrations_engine.choices import ItemStatus, RunStatus
from migrations_engine.models import AuditEvent, MigrationRun, RunItem
from staff.sessions import AUTHENTICATED_AT, LAST_SEEN, SIGNED_IN_AT
from tenants.models import CustomerTenant
from tests.migrations_engine.console_helpers import PASSWORD, client_for, staff_user

pytestmark = pytest.mark.django_db


def _age(client, key: str, seconds: float) -> None:
    session = client.session
    session[key] = time.time() - seconds
    session.save()


def test_it_signs_out_after_the_idle_time_but_polling_is_not_activity(settings):
    settings.STAFF_IDLE_MINUTES = 30
    client = client_for(staff_user("ops"))
    assert client.get("/").status_code == 200
    _age(client, LAST_SEEN, 29 * 60)
    client.get("/runs/1/progress.json", HTTP_X_CONSOLE_POLL="1")  # a poll: the clock is not reset
    assert time.time() - client.session[LAST_SEEN] >= 29 * 60
    assert client.get("/").status_code == 200  # a click: reset
    _age(client, LAST_SEEN, 31 * 60)
    response = client.get("/")
    assert response.status_code == 302 and "/login/" in response["Location"]
    assert "_auth_user_id" not in client.session


def test_sessions_end_with_the_browser_and_last_at_most_the_set_age(settings):
    assert settings.SESSION_EXPIRE_AT_BROWSER_CLOSE is True
    assert settings.SESSION_COOKIE_AGE <= 12 * 3600
    client = client_for(staff_user("ops"))
    cookie = client.cookies["sessionid"]
    assert not cookie["max-age"] and not cookie["expires"]


def test_a_busy_session_still_ends_its_set_age_after_the_sign_in(settings):
    settings.SESSION_COOKIE_AGE = 12 * 3600
    client = client_for(staff_user("ops"))
    assert client.get("/").status_code == 200
    _age(client, SIGNED_IN_AT, 12 * 3600 - 60)
    assert client.get("/").status_code == 200  # busy all day: still signed in
    _age(client, SIGNED_IN_AT, 12 * 3600 + 60)
    response = client.get("/")
    assert response.status_code == 302 and "/login/" in response["Location"]
    assert "_auth_user_id" not in client.session


def _awaiting(tenant_name: str = "Contoso"):
    import uuid

    tenant = CustomerTenant.objects.create(
        tenant_id=uuid.uuid4(),
        primary_domain=f"{tenant_name.lower()}.onmicrosoft.com",
        display_name=tenant_name,
    )
    run = MigrationRun.objects.create(mode="full", status=RunStatus.AWAITING_APPROVAL, actor="boss")
    RunItem.objects.create(run=run, tenant=tenant, status=ItemStatus.QUEUED, rq_job_id=f"r{run.pk}")
    return tenant, run


def test_approving_after_a_stale_sign_in_asks_for_password_and_code_again(settings, queue):
    tenant, run = _awaiting()
    approver = staff_user("approver", tenant, role="Approver")
    client = client_for(approver)
    device = approver.totpdevice_set.get()
    _age(client, AUTHENTICATED_AT, settings.STAFF_REAUTH_MINUTES * 60 + 5)
    url = f"/runs/{run.pk}/approve/"
    ask = client.post(url, {"confirm": "yes"})  # the confirmation page's "Yes"
    assert ask.status_code == 200 and b"Confirm it is you" in ask.content
    run.refresh_from_db()
    assert run.status == RunStatus.AWAITING_APPROVAL
    wrong = client.post(url, {"confirm": "yes", "reauth_password": "not-it", "reauth_code": "000000"})
    assert wrong.status_code == 403
    code = f"{totp(device.bin_key, step=device.step, t0=device.t0, digits=device.digits):06d}"
    done = client.post(url, {"confirm": "yes", "reauth_password": PASSWORD, "reauth_code": code})
    assert done.status_code == 302
    run.refresh_from_db()
    assert run.status == RunStatus.PENDING and run.approved_by == approver
    actions = list(AuditEvent.objects.values_list("action", flat=True))
    assert "staff.reauthentication_failed" in actions and "staff.reauthenticated" in actions


def test_a_recent_sign_in_approves_at_once(queue):
    tenant, run = _awaiting()
    client = client_for(staff_user("approver", tenant, role="Approver"))
    assert client.post(f"/runs/{run.pk}/approve/", {"confirm": "yes"}).status_code == 302
    run.refresh_from_db()
    assert run.status == RunStatus.PENDING


@pytest.mark.parametrize(
    "password",
    [
        "Summer2024",
        "Winter2025!",
        "P@ssw0rd123",
        "Welcome1234",
        "qwerty123456",
        "ops-is-my-name-2024",
        "12345678901234",
    ],
)
def test_guessable_passwords_are_refused(password):
    user = staff_user("ops")
    with pytest.raises(ValidationError):
        validate_password(password, user)


def test_a_passphrase_is_accepted():
    validate_password("tangerine ostrich lamppost", staff_user("ops"))
