"""Runs in the admin: read-only views (state changes go through the services). A run's change view is
its live run page (`runs.run_page.run_page_context`)."""

from __future__ import annotations

from django.contrib import admin
from django.contrib.admin.utils import unquote
from django.db.models import Count, Q
from django.http import Http404
from django.template.response import TemplateResponse

from migrations_engine.models import MigrationRun, RunItem
from migrations_engine.runs import run_page
from msp_console.admin_base import (
    COMPACT_LIST,
    ReadOnlyAdmin,
    TenantScopedAdmin,
    search_visible_tenants,
    visible_pks,
)
from msp_console.admin_site import site


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
        return super().get_queryset(request).filter(tenant__in=visible_pks(request))


@admin.register(MigrationRun, site=site)
class MigrationRunAdmin(ReadOnlyAdmin):
    list_display = ("id", "mode", "status", "tenant_count", "started_by_label", "created_at", "finished_at")
    change_list_template = COMPACT_LIST
    list_filter = ("mode", "status")
    search_fields = ("actor",)  # and the domains of the user's tenants in it: see get_search_results
    search_help_text = "Who started the run, or the domain of one of your tenants in it."
    run_page_template = "admin/migrations_engine/migrationrun/run_page.html"

    def get_queryset(self, request):
        visible = visible_pks(request)
        # A subquery, not a join: no duplicate rows to `distinct()` away, and the count stays right.
        return (
            super()
            .get_queryset(request)
            .filter(pk__in=RunItem.objects.filter(tenant__in=visible).values("run_id"))
            .annotate(visible_tenants=Count("items", filter=Q(items__tenant__in=visible)))
        )

    def get_search_results(self, request, queryset, search_term):
        return search_visible_tenants(
            request, queryset, search_term, own=self.search_fields, members=RunItem, link="run_id"
        )

    @admin.display(description="tenants", ordering="visible_tenants")
    def tenant_count(self, run: MigrationRun) -> int:
        return run.visible_tenants

    @admin.display(description="started by", ordering="actor")
    def started_by_label(self, run: MigrationRun) -> str:
        return run.actor

    def change_view(self, request, object_id, form_url="", extra_context=None):
        """The run page: one line per visible tenant with its step timeline, live (read-only)."""
        try:
            pk = int(unquote(object_id))
        except ValueError as exc:
            raise Http404("No such run") from exc
        run = run_page.get_run_for_user(request.user, pk)
        context = {
            **self.admin_site.each_context(request),
            **run_page.run_page_context(run, request.user, request.GET),
            "opts": self.opts,
            "title": str(run),
            "subtitle": None,
            **(extra_context or {}),
        }
        return TemplateResponse(request, self.run_page_template, context)


@admin.register(RunItem, site=site)
class RunItemAdmin(TenantScopedAdmin):
    list_display = ("id", "run", "tenant", "status", "current_step", "verdict", "failure_reason")
    list_filter = ("status", "run__mode")
    search_fields = ("tenant__primary_domain", "tenant__display_name")
    list_select_related = ("run", "tenant")
