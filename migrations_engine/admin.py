"""Runs and the audit log in the admin: read-only views (state changes go through the services)."""

from __future__ import annotations

from django.contrib import admin

from migrations_engine.models import AuditEvent, MigrationRun, RunItem
from msp_console.admin_site import site
from tenants.access import visible_tenants


class ReadOnlyAdmin(admin.ModelAdmin):
    """Nothing here is edited by hand: runs change through their services, audit rows never change."""

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


def _visible(request):
    return visible_tenants(request.user).values("pk")


class RunItemInline(admin.TabularInline):
    model = RunItem
    fields = ("tenant", "status", "current_step", "next_step_index", "verdict", "failure_reason", "attempt")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def get_queryset(self, request):
        return super().get_queryset(request).filter(tenant__in=_visible(request))


@admin.register(MigrationRun, site=site)
class MigrationRunAdmin(ReadOnlyAdmin):
    list_display = ("id", "mode", "status", "actor", "created_at", "finished_at")
    list_filter = ("mode", "status")
    search_fields = ("actor", "items__tenant__primary_domain")
    inlines = (RunItemInline,)

    def get_queryset(self, request):
        return super().get_queryset(request).filter(items__tenant__in=_visible(request)).distinct()


@admin.register(RunItem, site=site)
class RunItemAdmin(ReadOnlyAdmin):
    list_display = ("id", "run", "tenant", "status", "current_step", "verdict", "failure_reason")
    list_filter = ("status", "run__mode")
    search_fields = ("tenant__primary_domain", "tenant__display_name")
    list_select_related = ("run", "tenant")

    def get_queryset(self, request):
        return super().get_queryset(request).filter(tenant__in=_visible(request))


@admin.register(AuditEvent, site=site)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = (
        "created_at",
        "tenant",
        "actor",
        "kind",
        "action",
        "method",
        "target",
        "outcome",
        "http_status",
        "request_id",
    )
    list_filter = ("kind", "outcome", "action")
    search_fields = ("tenant__primary_domain", "actor", "target", "client_request_id", "request_id")
    list_select_related = ("tenant",)
    show_full_result_count = False  # counting 10M rows on every page load is not worth it

    def get_queryset(self, request):
        rows = super().get_queryset(request)
        if request.user.is_superuser:
            return rows
        return rows.filter(tenant__in=_visible(request))
