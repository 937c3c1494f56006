"""Every sign-in, by password (Django's login view) or through Entra ID (whose view says what Entra ID
proved and which console groups the account got): an audit row, and the session counts as just signed
in (for re-authentication)."""

from __future__ import annotations

from migrations_engine.audit import record_staff_action
from staff.lockout import client_ip
from staff.sessions import mark_signed_in

SIGN_IN_DETAIL = "staff_sign_in_detail"  # request attribute set by the Entra ID callback before login()


def on_signed_in(sender, request=None, user=None, **kwargs) -> None:
    """django.contrib.auth's `user_logged_in` signal."""
    if request is None or user is None:
        return
    detail = dict(getattr(request, SIGN_IN_DETAIL, None) or {"method": "password"})
    detail["ip_address"] = client_ip(request)
    mark_signed_in(request)
    record_staff_action(actor=user.get_username(), action="staff.signed_in", detail=detail)
