"""Counted nouns in messages: "1 tenant", "3 tenants" (every message the console writes uses this)."""

from __future__ import annotations


def counted(n: int, noun: str, plural: str | None = None) -> str:
    """`n` and `noun`, in the plural unless n is 1 (`plural` for irregular nouns: "policy", "policies")."""
    return f"{n} {noun if n == 1 else plural or noun + 's'}"
