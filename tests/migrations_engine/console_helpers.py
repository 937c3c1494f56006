"""Personas and request helpers for the console tests: staff users with model permissions and grants."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.test import Client

from tenants.models import TenantGrant

STAFF_PERMISSIONS = ("view_migrationrun", "view_runitem", "view_auditevent", "view_customertenant")
PASSWORD = "pw-for-tests-only"


def staff_user(username: str, *tenants, superuser: bool = False):
    """A staff user with view permissions on runs, audit rows and tenants, granted `tenants` only."""
    User = get_user_model()
    if superuser:
        return User.objects.create_superuser(username, "", PASSWORD)
    user = User.objects.create_user(username, "", PASSWORD, is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(codename__in=STAFF_PERMISSIONS))
    for tenant in tenants:
        TenantGrant.objects.create(tenant=tenant, user=user)
    return user


def client_for(user, *, csrf: bool = False) -> Client:
    """A logged-in test client; with `csrf` it enforces CSRF checks like a browser session would."""
    client = Client(enforce_csrf_checks=csrf)
    client.force_login(user)
    return client


def csrf_post(client: Client, page: str, url: str, data: dict | None = None):
    """POST as a browser does: load a page to get the CSRF cookie, send its token with the form."""
    assert client.get(page).status_code == 200
    token = client.cookies["csrftoken"].value
    return client.post(url, {**(data or {}), "csrfmiddlewaretoken": token})
