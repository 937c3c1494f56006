"""System checks for the engine's settings."""

from __future__ import annotations

import os

from django.core.checks import Warning, register


@register()
def crash_points_unset(app_configs, **kwargs):
    """MSP_CRASH_POINTS makes workers exit on purpose; it belongs in reliability tests only."""
    if os.environ.get("MSP_CRASH_POINTS"):
        return [
            Warning(
                "MSP_CRASH_POINTS is set: workers will exit at the named points.",
                hint="Unset it; it exists for reliability tests.",
                id="migrations_engine.W001",
            )
        ]
    return []


@register()
def drift_watch_settings(app_configs, **kwargs):
    """The drift watch needs a positive period, and its mail real addresses (or none: no mail)."""
    from django.conf import settings
    from django.core.checks import Error
    from django.core.exceptions import ValidationError
    from django.core.validators import validate_email

    errors = []
    hours = getattr(settings, "DRIFT_WATCH_INTERVAL_HOURS", 24)
    if not isinstance(hours, int | float) or hours <= 0:
        errors.append(
            Error(
                f"DRIFT_WATCH_INTERVAL_HOURS must be a number of hours above 0, not {hours!r}.",
                id="migrations_engine.E001",
            )
        )
    for address in getattr(settings, "DRIFT_EMAIL_TO", []):
        try:
            validate_email(address)
        except ValidationError:
            errors.append(
                Error(
                    f"DRIFT_EMAIL_TO holds {address!r}, which is not an e-mail address.",
                    hint="A comma-separated list of addresses, or empty for no drift mail.",
                    id="migrations_engine.E002",
                )
            )
    return errors
