"""Words the console writes everywhere: counted nouns ("1 tenant", "3 tenants") and ages ("3 hours ago")."""

from __future__ import annotations

from django.utils import timezone
from django.utils.timesince import timesince


def counted(n: int, noun: str, plural: str | None = None) -> str:
    """`n` and `noun`, in the plural unless n is 1 (`plural` for irregular nouns: "policy", "policies")."""
    return f"{n} {noun if n == 1 else plural or noun + 's'}"


def ago(moment, never: str = "never") -> str:
    """How long ago, in the largest unit: "3 hours ago", "just now"; `never` when there is no moment."""
    if moment is None:
        return never
    if (timezone.now() - moment).total_seconds() < 60:
        return "just now"
    return f"{timesince(moment, depth=1)} ago"
