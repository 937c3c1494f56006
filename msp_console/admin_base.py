"""What the console's admins share, in one place: read-only rows, access scoping to the user's tenants,
the search and tenant filter that never reveal a tenant the user may not see, the role permissions that
admin actions name, and the superusers-only pages.

An admin of any app builds on these; a new shared base goes here, not in the app that first needs it."""

from __future__ import annotations

from django.contrib import admin
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db.models import Q
from django.http import Http404
from django.utils.text import smart_split, unescape_string_literal

from staff import roles
from tenants.access import visible_tenants


class ReadOnlyAdmin(admin.ModelAdmin):
    """Nothing here is edited by hand: runs change through their services, audit rows never change."""

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def get_scoped_object(self, request, object_id):
        """The object if the user's (access-scoped) queryset holds it; 404 otherwise, never a redirect
        that would tell apart "exists elsewhere" from "does not exist"."""
        obj = self.get_object(request, unquote(object_id))
        if obj is None:
            raise Http404("No such object")
        if not self.has_view_permission(request, obj):
            raise PermissionDenied
        return obj


def visible_pks(request):
    return visible_tenants(request.user).values("pk")


def _search_terms(search_term: str) -> list[str]:
    """The words of a changelist search as Django's admin splits them ("quoted phrases" stay whole)."""
    terms = []
    for bit in smart_split(search_term):
        if bit[:1] in ('"', "'") and bit[-1:] == bit[:1] and len(bit) > 1:
            bit = unescape_string_literal(bit)
        terms.append(bit)
    return terms


def search_visible_tenants(request, queryset, search_term: str, *, own: tuple[str, ...], members, link: str):
    """A changelist search over rows that hold several tenants (a run's items, a wave's members): every
    word must match one of the row's `own` fields or the domain of one of its tenants *that the user may
    see* (`members`: the per-tenant model, `link`: its key to the row). Django's own search through
    `items__tenant__primary_domain` matches every tenant of the row, so a staff user could find the run
    that also holds a customer they may not see, and learn that it is a customer. Returns what
    `ModelAdmin.get_search_results` does."""
    visible = visible_pks(request)
    for term in _search_terms(search_term):
        holding = members.objects.filter(tenant__in=visible, tenant__primary_domain__icontains=term)
        match = Q(pk__in=holding.values(link))
        for field in own:
            match |= Q(**{f"{field}__icontains": term})
        queryset = queryset.filter(match)
    return queryset, False


class TenantScopedAdmin(ReadOnlyAdmin):
    """Read-only rows that each belong to one tenant (`tenant` field): lists and pages show only rows of
    tenants the user may see; another tenant's row is a 404."""

    def get_queryset(self, request):
        return super().get_queryset(request).filter(tenant__in=visible_pks(request))

    def change_view(self, request, object_id, form_url="", extra_context=None):
        self.get_scoped_object(request, object_id)
        return super().change_view(request, object_id, form_url, extra_context)


class VisibleTenantFilter(admin.RelatedFieldListFilter):
    """The tenant filter lists only tenants the user may see; "no tenant" (fleet rows) only superusers."""

    def __init__(self, field, request, params, model, model_admin, field_path):
        self._superuser = request.user.is_superuser
        super().__init__(field, request, params, model, model_admin, field_path)

    @property
    def include_empty_choice(self) -> bool:
        return self._superuser

    def has_output(self) -> bool:
        return True  # with one visible tenant Django would drop the filter and ignore its parameter

    def field_choices(self, field, request, model_admin):
        return [(t.pk, str(t)) for t in visible_tenants(request.user).order_by("display_name")]


class RolePermissions:
    """The `has_<name>_permission` methods that admin actions' `allowed_permissions` name: Django offers
    an action, and runs it, only when the method says the user's role may (on top of the tenant grant)."""

    def has_census_permission(self, request) -> bool:
        return roles.may(request.user, roles.CENSUS)

    def has_plan_permission(self, request) -> bool:
        return roles.may(request.user, roles.PLAN)

    def has_migrate_permission(self, request) -> bool:
        return roles.may(request.user, roles.MIGRATE)

    def has_rollback_permission(self, request) -> bool:
        return roles.may(request.user, roles.ROLLBACK)

    def has_customers_permission(self, request) -> bool:
        return roles.may(request.user, roles.CUSTOMERS)


class SuperusersOnly:
    """An admin only active superusers see; `superusers_may` names what they may do beyond viewing
    (of "add", "change", "delete"). Everyone else finds neither the app list entry nor its pages."""

    superusers_may: frozenset[str] = frozenset()

    def has_module_permission(self, request) -> bool:
        return request.user.is_active and request.user.is_superuser

    def has_view_permission(self, request, obj=None) -> bool:
        return self.has_module_permission(request)

    def has_add_permission(self, request) -> bool:
        return "add" in self.superusers_may and self.has_module_permission(request)

    def has_change_permission(self, request, obj=None) -> bool:
        return "change" in self.superusers_may and self.has_module_permission(request)

    def has_delete_permission(self, request, obj=None) -> bool:
        return "delete" in self.superusers_may and self.has_module_permission(request)


def titled(title: str, base: type[admin.FieldListFilter] = admin.ChoicesFieldListFilter):
    """A field's list filter under a title of our own (the field's verbose name is for its form)."""

    class Titled(base):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.title = title

    return Titled


COMPACT_LIST = "admin/compact_change_list.html"  # filters in a bar over the table, one line a row
