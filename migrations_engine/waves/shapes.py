"""What a wave is given and what it stores, checked for shape: `waves.create_wave` refuses arguments of the
wrong type in words (a command, a script or JSON may call it), and the tick stops a wave whose stored
options were written around it, rather than failing on every pass.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from django.core.exceptions import ValidationError

from migrations_engine.models import Wave
from migrations_engine.runs import options as run_options
from migrations_engine.runs.services import DEFAULT_OPTIONS
from tenants.models import CustomerTenant


def listed(value: Any) -> Any:
    """Any iterable of tenants (a queryset, a generator) as a list; anything else as it is, for
    `shape_errors` to name."""
    return list(value) if isinstance(value, Iterable) and not isinstance(value, str | bytes | dict) else value


def shape_errors(**given: Any) -> list[str]:
    """What `create_wave` was given of the wrong type, by argument (a command, a script or JSON may call
    it): refused in words before any of it is compared, counted or stored."""
    errors = []
    for field in ("name", "mode"):
        if given[field] is not None and not isinstance(given[field], str):
            errors.append(f"{field} must be text, not {given[field]!r}.")
    for field in ("window_minutes", "repeat_days", "concurrency", "rings", "ring_delay_days"):
        value = given[field]
        if isinstance(value, bool) or not isinstance(value, int):
            errors.append(f"{field} must be a whole number, not {value!r}.")
    for field in ("tenants", "pilot_tenants"):
        value = given[field]
        if not isinstance(value, list):
            errors.append(f"{field} must be a list of customer tenants, not {value!r}.")
        elif not all(isinstance(t, CustomerTenant) for t in value):
            errors.append(f"{field} must hold customer tenants only.")
    if not isinstance(given["starts_at"], datetime):
        errors.append(f"starts_at must be a date and time, not {given['starts_at']!r}.")
    for field in ("selection", "options"):
        if given[field] is not None and not isinstance(given[field], dict):
            errors.append(f"{field} must be an object (names and values), not {given[field]!r}.")
    return errors


def stored_options_problem(wave: Wave) -> str:
    """Why the wave's stored options cannot make its ring's run (a row written around `create_wave`), or
    "" when they can."""
    if not isinstance(wave.options, dict):
        return f"options must be an object (names and values), not {wave.options!r}"
    try:
        run_options.validate({**DEFAULT_OPTIONS, **wave.options})
    except ValidationError as exc:
        return " ".join(exc.messages)
    return ""
