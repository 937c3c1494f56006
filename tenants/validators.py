"""Validators for what staff type about a customer tenant."""

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
