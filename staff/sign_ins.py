"""Every sign-in, by password (Django's login view) or through Entra ID (whose view says what Entra ID
proved and which console groups the account got): an audit row, and the session counts as just signed
in (for re-authentication)."""

from __future__ import annotations

import time

from django_otp import user_has_device

from migrations_engine.audit.writer import record_staff_action
from staff.lockout import client_ip
from staff.second_factor import ENTRA_MFA
from staff.sessions import mark_signed_in

SIGN_IN_DETAIL = "staff_sign_in_detail"  # request attribute set by the Entra ID callback before login()


def on_signed_in(sender, request=None, user=None, **kwargs) -> None:
    """django.contrib.auth's `user_logged_in` signal.

    How recent the proof is: a password counts as just proven for someone without a second factor (who
    has one proves it next, on the second-factor page: a password alone never refreshes a session whose
    code was passed earlier); an Entra ID sign-in counts from the token's `auth_time`, so a sign-in that
    Entra ID's own session answered without asking anything is not a fresh proof.
    """
    if request is None or user is None:
        return
    detail = dict(getattr(request, SIGN_IN_DETAIL, None) or {"method": "password"})
    detail["ip_address"] = client_ip(request)
    if detail["method"] == "entra":
        proven_at = detail.pop("auth_time", None)
    else:
        proven_at = None if user_has_device(user) else time.time()
    request.session.pop(ENTRA_MFA, None)  # the Entra ID callback marks it again when this sign-in proved it
    mark_signed_in(request, proven_at=proven_at)
    record_staff_action(actor=user.get_username(), action="staff.signed_in", detail=detail)
