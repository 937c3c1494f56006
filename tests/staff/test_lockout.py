"""Lockout: five wrong passwords in a row for one username, or from one address, lock it out; the page
says until when; the right password is refused meanwhile; an audited unlock ends it."""

from __future__ import annotations

import pytest
from axes.models import AccessAttempt
from django.test import Client

from migrations_engine.models import AuditEvent
from tests.migrations_engine.console_helpers import PASSWORD, client_for, staff_user

pytestmark = pytest.mark.django_db


def _try(password: str, username: str = "ops", ip: str = "127.0.0.9"):
    return Client(REMOTE_ADDR=ip).post("/login/", {"username": username, "password": password, "next": "/"})


def test_five_failures_lock_the_account_until_a_stated_time(settings):
    staff_user("ops")
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert _try("wrong-password").status_code == 200
    locked = _try("wrong-password")
    assert locked.status_code == 429
    assert b"Signing in is locked until" in locked.content and b"15 minutes" in locked.content
    right = _try(PASSWORD)
    assert right.status_code == 429, "the right password must not get in during a lockout"
    from_elsewhere = _try(PASSWORD, ip="127.0.0.10")
    assert from_elsewhere.status_code == 429, "the username is locked whatever the address"
    row = AuditEvent.objects.filter(action="staff.locked_out").order_by("id").first()  # one per refused try
    assert row.detail["username"] == "ops" and row.detail["until"]


def test_one_address_trying_many_usernames_is_locked_out(settings):
    staff_user("ops")
    for n in range(settings.AXES_FAILURE_LIMIT):
        _try("wrong-password", username=f"guess{n}", ip="127.0.0.20")
    assert _try(PASSWORD, ip="127.0.0.20").status_code == 429
    assert _try(PASSWORD, ip="127.0.0.21").status_code == 302


def test_a_superuser_unlocks_and_it_is_audited(settings):
    staff_user("ops")
    for _ in range(settings.AXES_FAILURE_LIMIT):
        _try("wrong-password")
    assert _try(PASSWORD).status_code == 429
    admin = client_for(staff_user("root", superuser=True))
    listing = admin.get("/axes/accessattempt/")
    assert listing.status_code == 200 and b"ops" in listing.content
    ids = list(AccessAttempt.objects.values_list("pk", flat=True))
    response = admin.post("/axes/accessattempt/", {"action": "unlock_selected", "_selected_action": ids})
    assert response.status_code == 302 and not AccessAttempt.objects.exists()
    assert AuditEvent.objects.filter(action="staff.unlocked", actor="root").exists()
    assert _try(PASSWORD).status_code == 302


def test_staff_who_are_not_superusers_cannot_see_or_unlock(settings):
    staff_user("ops")
    _try("wrong-password")
    operator = client_for(staff_user("op2", role="Administrator"))
    assert operator.get("/axes/accessattempt/").status_code == 403
    ids = list(AccessAttempt.objects.values_list("pk", flat=True))
    operator.post("/axes/accessattempt/", {"action": "unlock_selected", "_selected_action": ids})
    assert AccessAttempt.objects.count() == len(ids)


def test_failures_spread_over_addresses_still_show_as_a_lockout_with_its_end(settings):
    staff_user("ops")
    for n in range(settings.AXES_FAILURE_LIMIT):
        _try("wrong-password", ip=f"127.0.1.{n}")  # one record per address, each below the limit
    locked = _try(PASSWORD, ip="127.0.1.99")
    assert locked.status_code == 429 and b"Signing in is locked until" in locked.content
    assert (
        max(AccessAttempt.objects.values_list("failures_since_start", flat=True))
        < settings.AXES_FAILURE_LIMIT
    )
    listing = client_for(staff_user("root", superuser=True)).get("/axes/accessattempt/").content.decode()
    assert "not locked" not in listing and "UTC" in listing
