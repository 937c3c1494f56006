"""Who does something: a staff user, or a short string naming a process ("cli", "demo", "scheduler:…").

Every service that changes state takes `actor: Actor` (keyword-only); audit rows and logs name it with
`actor_label`. Whether it may act is `staff.roles.may` (a process acts with the host's authority).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Union

if TYPE_CHECKING:  # the user model is only for type checkers: this module loads before the apps do
    from django.contrib.auth.models import AbstractBaseUser

Actor = Union["AbstractBaseUser", str]


def actor_label(actor: Actor) -> str:
    """How an actor is named in audit rows, logs and job arguments: a user's username, or the string."""
    return getattr(actor, "username", None) or str(actor)
