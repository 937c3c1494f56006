"""Personas and request helpers for the console tests: staff users with model permissions and grants."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.test import Client
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.plugins.otp_totp.models import TOTPDevice

from staff.sessions import mark_authenticated
from tenants.models import TenantGrant

STAFF_PERMISSIONS = ("view_migrationrun", "view_runitem", "view_auditevent", "view_customertenant")
PASSWORD = "pw-for-tests-only"


def staff_user(username: str, *tenants, superuser: bool = False, role: str | None = "Operator"):
    """A staff user in a role group (Viewer, Operator, Approver, Administrator; None: only the view
    permissions on runs, audit rows and tenants), granted `tenants` only."""
    User = get_user_model()
    if superuser:
        return User.objects.create_superuser(username, "", PASSWORD)
    user = User.objects.create_user(username, "", PASSWORD, is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(codename__in=STAFF_PERMISSIONS))
    if role:
        user.groups.add(Group.objects.get(name=role))
    for tenant in tenants:
        TenantGrant.objects.create(tenant=tenant, user=user)
    return user


def client_for(user, *, csrf: bool = False) -> Client:
    """A signed-in test client (password, second factor, just now: see tests/conftest.py); with `csrf`
    it enforces CSRF checks like a browser session would."""
    client = Client(enforce_csrf_checks=csrf)
    client.force_login(user)
    return client


def complete_sign_in(client: Client, user) -> None:
    """Mark the client's session as having passed a second factor and signed in just now."""
    session = client.session
    verify_second_factor(session, user)
    mark_authenticated(_Request(session))
    session.save()


class _Request:
    """What `mark_authenticated` needs of a request: its session."""

    def __init__(self, session) -> None:
        self.session = session


def verify_second_factor(session, user) -> None:
    """Mark `session` as having passed a TOTP device of `user` (made if missing), as django-otp does."""
    device = TOTPDevice.objects.filter(user=user, confirmed=True).first() or TOTPDevice.objects.create(
        user=user, name="test authenticator", confirmed=True
    )
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id


def csrf_post(client: Client, page: str, url: str, data: dict | None = None):
    """POST as a browser does: load a page to get the CSRF cookie, send its token with the form."""
    assert client.get(page).status_code == 200
    token = client.cookies["csrftoken"].value
    return client.post(url, {**(data or {}), "csrfmiddlewaretoken": token})
