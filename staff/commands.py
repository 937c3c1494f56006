"""Management commands act as a person or as the host: `--actor USERNAME` of an active staff user acts
with that user's role and tenant grants (refused in words when they do not allow it); any other name is
recorded as a process of the host, which holds the database credentials anyway."""

from __future__ import annotations

import functools

from django.core.exceptions import PermissionDenied
from django.core.management.base import CommandError

from staff.roles import require, resolve_actor


def acting(handle):
    """Wraps a command's `handle`: `options["actor"]` becomes the staff user it names, if any, and a
    refusal of that user's role or grants ends the command with its reason, having changed nothing."""

    @functools.wraps(handle)
    def wrapped(self, *args, **options):
        options["actor"] = resolve_actor(options.get("actor") or "cli")
        try:
            return handle(self, *args, **options)
        except PermissionDenied as exc:
            raise CommandError(f"{exc} Nothing was changed.") from exc

    return wrapped


def require_for_command(actor, permission: str) -> None:
    """A command's own check before it starts work (e.g. a census, which calls no service that checks)."""
    try:
        require(actor, permission)
    except PermissionDenied as exc:
        raise CommandError(f"{exc} Nothing was changed.") from exc
