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
