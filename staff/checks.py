"""`manage.py check --deploy` for staff sign-in: a production console asks every local account for a
second factor, locks out repeated failed sign-ins, keeps sessions short, and (when set up) has the Entra
ID sign-in prove MFA."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.core.checks import Error, Warning, register

# Past these a session outlives a person's attention or a shared machine's user.
IDLE_MINUTES_MAX = 60
SESSION_SECONDS_MAX = 24 * 3600


def _production() -> bool:
    return getattr(settings, "PRODUCTION", not settings.DEBUG)


@register(deploy=True)
def staff_sign_in_is_hardened(app_configs, **kwargs):
    """Second factor required, lockout on, idle timeout and session age within bounds (production)."""
    if not _production():
        return []
    problems = []
    if not settings.STAFF_SECOND_FACTOR_REQUIRED:
        problems.append(
            Error(
                "STAFF_SECOND_FACTOR_REQUIRED is off: a guessed password alone opens the console.",
                hint="Set STAFF_SECOND_FACTOR_REQUIRED=True (superusers need one in any case).",
                id="staff.E001",
            )
        )
    if not settings.AXES_ENABLED:
        problems.append(
            Error(
                "AXES_ENABLED is off: failed sign-ins are not counted and never locked out.",
                hint="Set AXES_ENABLED=True.",
                id="staff.E002",
            )
        )
    if settings.STAFF_IDLE_MINUTES > IDLE_MINUTES_MAX:
        problems.append(
            Warning(
                f"STAFF_IDLE_MINUTES is {settings.STAFF_IDLE_MINUTES}: a session stays signed in that long "
                "unattended.",
                hint=f"Use {IDLE_MINUTES_MAX} minutes or fewer (30 by default).",
                id="staff.W001",
            )
        )
    if settings.SESSION_COOKIE_AGE > SESSION_SECONDS_MAX or not settings.SESSION_EXPIRE_AT_BROWSER_CLOSE:
        problems.append(
            Warning(
                f"Sessions last {settings.SESSION_COOKIE_AGE} s"
                + ("" if settings.SESSION_EXPIRE_AT_BROWSER_CLOSE else " and survive closing the browser")
                + ".",
                hint=f"SESSION_COOKIE_AGE at most {SESSION_SECONDS_MAX} s, ending when the browser closes.",
                id="staff.W002",
            )
        )
    return problems + _entra_problems()


def _entra_problems() -> list:
    """The Entra ID sign-in, when set up: it must prove MFA, and be able to."""
    if not (settings.STAFF_ENTRA_TENANT_ID and settings.STAFF_ENTRA_CLIENT_ID):
        return []
    problems = []
    try:
        uuid.UUID(settings.STAFF_ENTRA_TENANT_ID)
    except ValueError:
        problems.append(
            Error(
                f"STAFF_ENTRA_TENANT_ID is {settings.STAFF_ENTRA_TENANT_ID!r}, not a tenant id: every "
                "sign-in would be refused as another organisation's.",
                hint="Set the MSP tenant's id (a GUID: Entra admin centre › Overview › Tenant ID), not a "
                "domain, 'organizations' or 'common'.",
                id="staff.E005",
            )
        )
    if not settings.STAFF_ENTRA_CLIENT_SECRET:
        problems.append(
            Error(
                "STAFF_ENTRA_CLIENT_ID is set without STAFF_ENTRA_CLIENT_SECRET: no Entra ID sign-in can "
                "finish.",
                hint="Set STAFF_ENTRA_CLIENT_SECRET (or STAFF_ENTRA_CLIENT_SECRET_FILE).",
                id="staff.E003",
            )
        )
    if not settings.STAFF_ENTRA_REQUIRE_MFA:
        problems.append(
            Warning(
                "STAFF_ENTRA_REQUIRE_MFA is off: an Entra ID sign-in with a password alone opens the console "
                "(people who need a second factor are then asked for the console's own).",
                hint="Set STAFF_ENTRA_REQUIRE_MFA=True and protect STAFF_ENTRA_AUTH_CONTEXT with MFA.",
                id="staff.W003",
            )
        )
    elif not settings.STAFF_ENTRA_AUTH_CONTEXT:
        problems.append(
            Error(
                "STAFF_ENTRA_REQUIRE_MFA is on but STAFF_ENTRA_AUTH_CONTEXT is empty: v2.0 ID tokens carry "
                "no amr, so no Entra ID sign-in could prove MFA and every one would be refused.",
                hint="Set STAFF_ENTRA_AUTH_CONTEXT to an authentication context (c1…c99) that a Conditional "
                "Access policy protects with MFA.",
                id="staff.E004",
            )
        )
    return problems
