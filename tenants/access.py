"""Which tenants a staff user may see and act on. Every view, action, export and job asks here.

Deny by default: a user sees the tenants granted to them or to one of their groups; superusers see all.
"""

from __future__ import annotations

from django.db.models import Q, QuerySet
from django.http import Http404

from tenants.models import CustomerTenant

# What a clash with a tenant the user may not see says: that it is managed here, never which tenant it is
# (no name, domain, id or pk), and what to do about it.
NOT_YOURS = (
    "This tenant is already managed by this console, but you have no access to it: ask an administrator "
    "to grant it to you."
)


def visible_tenants(user) -> QuerySet[CustomerTenant]:
    """The tenants `user` may see (an empty queryset for anonymous or inactive users)."""
    if user is None or not getattr(user, "is_active", False) or not getattr(user, "is_staff", False):
        return CustomerTenant.objects.none()
    if user.is_superuser:
        return CustomerTenant.objects.all()
    return CustomerTenant.objects.filter(
        Q(grants__user=user) | Q(grants__group__in=user.groups.all())
    ).distinct()


def can_access(user, tenant: CustomerTenant | int) -> bool:
    """True when `user` may see and act on `tenant` (a tenant or its pk)."""
    pk = tenant.pk if isinstance(tenant, CustomerTenant) else tenant
    return visible_tenants(user).filter(pk=pk).exists()


def get_tenant_for_user(user, pk) -> CustomerTenant:
    """The tenant with this pk if `user` may see it; 404 otherwise (never reveal that it exists)."""
    try:
        return visible_tenants(user).get(pk=pk)
    except (CustomerTenant.DoesNotExist, ValueError) as exc:
        raise Http404("No such customer tenant") from exc
