"""`manage.py check --deploy` for staff sign-in: a production console asks every local account for a
second factor, locks out repeated failed sign-ins, and keeps sessions short."""

from __future__ import annotations

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
    return problems
