"""Validators for what staff type about a customer tenant, and for what is stored of it."""

from __future__ import annotations

import re
import uuid

from django.core.exceptions import ValidationError

_LABEL = r"(?!-)[a-z0-9-]{1,63}(?<!-)"
_DOMAIN_RE = re.compile(rf"^(?:{_LABEL}\.)+[a-z]{{2,63}}$")


def validate_domain(value: str) -> None:
    """A DNS domain such as contoso.onmicrosoft.com (lowercase letters, digits, hyphens)."""
    if not _DOMAIN_RE.match(value.strip().lower()) or len(value) > 253:
        raise ValidationError(f"{value!r} is not a domain name such as contoso.onmicrosoft.com.")


def validate_upn(value: str) -> None:
    """A user principal name: something@domain. Guests' #EXT# names and apostrophes are valid."""
    local, sep, domain = value.rpartition("@")
    if not sep or not local or any(ch.isspace() for ch in value):
        raise ValidationError(f"{value!r} is not a user principal name (name@domain).")
    validate_domain(domain)


def parse_tenant_id(value: str) -> uuid.UUID:
    """A tenant id as a UUID; anything else is a clear error."""
    try:
        return uuid.UUID(value.strip())
    except (ValueError, AttributeError) as exc:
        raise ValidationError(f"{value!r} is not a tenant id (a GUID).") from exc


def json_kind(value) -> str:
    """What a JSON value is, in words (for messages about a value of the wrong shape)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    return type(value).__name__


def break_glass_account_problems(accounts) -> list[str]:
    """Why a break-glass configuration's `accounts` is not a list of UPNs or object ids (empty when it is)."""
    if not isinstance(accounts, list):
        return [f"A list of UPNs or object ids is needed, not {json_kind(accounts)}."]
    problems = []
    for number, account in enumerate(accounts, 1):
        if not isinstance(account, str):
            problems.append(f"Entry {number} is {json_kind(account)}, not a UPN or object id.")
            continue
        try:
            uuid.UUID(account.strip())
        except ValueError:
            try:
                validate_upn(account.strip())
            except ValidationError as exc:
                problems.extend(exc.messages)
    return problems


def break_glass_problems(accounts, minimum_count) -> dict[str, list[str]]:
    """What makes a stored break-glass configuration unusable, by field (empty when it can be used).

    The model refuses these at save time; this is for code that reads a row written around the model (by
    hand in the database, an old release): it must fail with these words, never crash or pass unchecked.
    """
    errors = {}
    if problems := break_glass_account_problems(accounts):
        errors["accounts"] = problems
    if isinstance(minimum_count, bool) or not isinstance(minimum_count, int) or minimum_count < 1:
        # 0 would let a run past the guard with no account resolved: fail closed.
        errors["minimum_count"] = [f"A whole number of at least 1 is needed, not {minimum_count!r}."]
    return errors


def describe_problems(errors: dict[str, list[str]]) -> str:
    """Field errors in one line, to go inside a sentence: "accounts: …; minimum_count: …"."""
    return "; ".join(f"{field}: {' '.join(messages).rstrip('.')}" for field, messages in errors.items())
