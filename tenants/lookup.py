"""Finding customer tenants by what staff type: a tenant id or a domain."""

from __future__ import annotations

import uuid

from django.db.models import Q

from tenants.models import CustomerTenant


def find_tenant(text: str) -> CustomerTenant | None:
    """The tenant whose Entra tenant id or primary domain is `text` (case-insensitive), or None."""
    text = text.strip()
    match = Q(primary_domain__iexact=text)
    try:
        match |= Q(tenant_id=uuid.UUID(text))
    except ValueError:
        pass
    return CustomerTenant.objects.filter(match).first()
