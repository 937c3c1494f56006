"""The Entra ID sign-in in the console, superusers only (a mapping hands out roles and tenant grants):
which Entra groups and app roles give which console group, and the Entra accounts staff sign in with.
Every change is an audit row."""

from __future__ import annotations

from django.contrib import admin

from migrations_engine.audit.writer import record_staff_action
from msp_console.admin_base import SuperusersOnly
from msp_console.admin_site import site
from staff.models import EntraIdentity, EntraRoleMapping


def _describe(mapping: EntraRoleMapping) -> dict:
    return {"kind": mapping.kind, "value": mapping.value, "group": mapping.group.name, "note": mapping.note}


@admin.register(EntraRoleMapping, site=site)
class EntraRoleMappingAdmin(SuperusersOnly, admin.ModelAdmin):
    """Entra group or app role → console group; applied at each person's next Entra ID sign-in."""

    superusers_may = frozenset({"add", "change", "delete"})

    list_display = ("group", "kind", "value", "note", "created_at")
    list_filter = ("kind", "group")
    search_fields = ("value", "note", "group__name")
    fields = ("kind", "value", "group", "note")

    def save_model(self, request, obj, form, change) -> None:
        super().save_model(request, obj, form, change)
        record_staff_action(
            actor=request.user.get_username(),
            action="staff.entra_mapping_changed" if change else "staff.entra_mapping_added",
            detail=_describe(obj),
        )

    def delete_queryset(self, request, queryset) -> None:
        for mapping in queryset.select_related("group"):
            self.delete_model(request, mapping)

    def delete_model(self, request, obj) -> None:
        detail = _describe(obj)
        super().delete_model(request, obj)
        record_staff_action(
            actor=request.user.get_username(), action="staff.entra_mapping_removed", detail=detail
        )


@admin.register(EntraIdentity, site=site)
class EntraIdentityAdmin(SuperusersOnly, admin.ModelAdmin):
    """Made by the first Entra ID sign-in. Removing one unlinks it: the next sign-in of that Entra
    account is refused while a console account of the same name exists."""

    list_display = ("upn", "user", "object_id", "last_sign_in")
    search_fields = ("upn", "object_id", "user__username")
    readonly_fields = ("user", "tenant_id", "object_id", "upn", "last_sign_in")
    fields = readonly_fields
    superusers_may = frozenset({"delete"})

    def delete_queryset(self, request, queryset) -> None:
        for identity in queryset.select_related("user"):
            self.delete_model(request, identity)

    def delete_model(self, request, obj) -> None:
        detail = {"username": obj.user.get_username(), "upn": obj.upn, "object_id": obj.object_id}
        super().delete_model(request, obj)
        record_staff_action(actor=request.user.get_username(), action="staff.entra_unlinked", detail=detail)
