"""Runs and the audit log in the admin: read-only views (state changes go through the services).

A run's change view is its live run page (`console.run_page_context`); the audit changelist filters,
searches and exports (streamed, the filtered set) what the user may see.
"""

from __future__ import annotations

import json

from django.contrib import admin
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.utils import unquote
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Q
from django.http import Http404, HttpResponseBadRequest, HttpResponseNotAllowed, StreamingHttpResponse
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.text import smart_split, unescape_string_literal

from migrations_engine.audit.export import COLUMNS, CONTENT_TYPES, FORMATS, iter_lines
from migrations_engine.audit.writer import record_staff_action
from migrations_engine.models import AuditEvent, MigrationRun, RunItem
from migrations_engine.runs import views as console
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

    def get_scoped_object(self, request, object_id):
        """The object if the user's (access-scoped) queryset holds it; 404 otherwise, never a redirect
        that would tell apart "exists elsewhere" from "does not exist"."""
        obj = self.get_object(request, unquote(object_id))
        if obj is None:
            raise Http404("No such object")
        if not self.has_view_permission(request, obj):
            raise PermissionDenied
        return obj


def _visible(request):
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
    visible = _visible(request)
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
        return super().get_queryset(request).filter(tenant__in=_visible(request))

    def change_view(self, request, object_id, form_url="", extra_context=None):
        self.get_scoped_object(request, object_id)
        return super().change_view(request, object_id, form_url, extra_context)


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
    list_display = ("id", "mode", "status", "tenant_count", "started_by_label", "created_at", "finished_at")
    list_filter = ("mode", "status")
    search_fields = ("actor",)  # and the domains of the user's tenants in it: see get_search_results
    search_help_text = "Who started the run, or the domain of one of your tenants in it."
    run_page_template = "admin/migrations_engine/migrationrun/run_page.html"

    def get_queryset(self, request):
        visible = _visible(request)
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
        run = console.get_run_for_user(request.user, pk)
        context = {
            **self.admin_site.each_context(request),
            **console.run_page_context(run, request.user),
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


# --- the audit log ---------------------------------------------------------------------------------


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


class RunFilter(admin.SimpleListFilter):
    """Rows of one run (`?run=<id>`; the run page links here). Lists the latest runs the user may see."""

    title = "run"
    parameter_name = "run"

    def lookups(self, request, model_admin):
        runs = MigrationRun.objects.filter(
            pk__in=RunItem.objects.filter(tenant__in=_visible(request)).values("run_id")
        ).order_by("-created_at")[:20]
        return [(str(run.pk), f"#{run.pk} {run.get_mode_display()}") for run in runs]

    def has_output(self) -> bool:
        return True  # a `?run=` from the run page applies even when the lookups list no run

    def queryset(self, request, queryset):
        value = self.value()
        if value is None:
            return queryset
        if not value.isdigit():
            return queryset.none()
        return queryset.filter(run_id=int(value))


class ActorFilter(admin.SimpleListFilter):
    """Rows by one actor. Lookups come from staff users and run starters (cheap tables), not from a
    DISTINCT over millions of audit rows; any `?actor=` value filters."""

    title = "actor"
    parameter_name = "actor"

    def lookups(self, request, model_admin):
        staff = get_user_model().objects.filter(is_staff=True).values_list("username", flat=True)
        starters = (
            MigrationRun.objects.filter(
                pk__in=RunItem.objects.filter(tenant__in=_visible(request)).values("run_id")
            )
            .order_by()
            .values_list("actor", flat=True)
            .distinct()
        )
        return [(name, name) for name in sorted({*staff, *starters, "cli"})]

    def queryset(self, request, queryset):
        return queryset if self.value() is None else queryset.filter(actor=self.value())


def _pretty(value) -> str:
    return "" if value is None else json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False)


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
    list_filter = (("tenant", VisibleTenantFilter), RunFilter, ActorFilter, "outcome", "kind")
    date_hierarchy = "created_at"
    search_fields = ("target", "client_request_id", "request_id")
    list_select_related = ("tenant",)
    show_full_result_count = False  # counting 10M rows on every page load is not worth it
    change_list_template = "admin/migrations_engine/auditevent/change_list.html"
    change_form_template = "admin/migrations_engine/auditevent/change_form.html"
    fieldsets = (
        ("Row", {"fields": ("created_at", "tenant", "chain", "seq", "kind", "actor", "action", "outcome")}),
        ("Run", {"fields": ("run_id", "item_id", "step")}),
        (
            "Graph request",
            {
                "fields": (
                    "method",
                    "path",
                    "target",
                    "http_status",
                    "request_id",
                    "client_request_id",
                    "intent",
                    "error",
                )
            },
        ),
        ("Chain", {"fields": ("prev_hash", "row_hash")}),
    )

    def get_queryset(self, request):
        rows = super().get_queryset(request)
        if request.user.is_superuser:
            return rows
        return rows.filter(tenant__in=_visible(request))

    def get_urls(self):
        info = self.opts.app_label, self.opts.model_name
        return [
            path(
                "export/<str:fmt>/",
                self.admin_site.admin_view(self.export_view),
                name="{}_{}_export".format(*info),
            ),
        ] + super().get_urls()

    def change_view(self, request, object_id, form_url="", extra_context=None):
        """Evidence fields, then the request body, before and after side by side (pretty JSON)."""
        event = self.get_scoped_object(request, object_id)
        extra = {
            "json_panels": [
                ("Request body (redacted)", _pretty(event.request_body)),
                ("Before", _pretty(event.before)),
                ("After", _pretty(event.after)),
            ],
            "detail_json": _pretty(event.detail),
            **(extra_context or {}),
        }
        return super().change_view(request, object_id, form_url, extra)

    def changelist_view(self, request, extra_context=None):
        query = request.GET.urlencode()
        extra = {
            "export_links": [
                (
                    label,
                    reverse("admin:migrations_engine_auditevent_export", args=[fmt])
                    + (f"?{query}" if query else ""),
                )
                for fmt, label in zip(FORMATS, ("Export CSV", "Export JSON lines"), strict=True)
            ],
            "verify_url": reverse("admin:migrations_engine_audit_verify"),
            **(extra_context or {}),
        }
        return super().changelist_view(request, extra)

    def export_view(self, request, fmt: str):
        """Stream the changelist's filtered set (same filters, search and dates) as CSV or JSON lines."""
        if request.method != "GET":
            return HttpResponseNotAllowed(["GET"])
        if fmt not in FORMATS:
            raise Http404("Unknown export format")
        if not self.has_view_permission(request):
            raise PermissionDenied
        try:
            changelist = self.get_changelist_instance(request)
        except IncorrectLookupParameters:
            return HttpResponseBadRequest("These filters do not apply to the audit log.")
        # Rows up to now only: not the export's own row below, nor rows appended while streaming.
        last_id = AuditEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0
        rows = (
            changelist.get_queryset(request)
            .filter(id__lte=last_id)
            .order_by("id")
            .values_list(*COLUMNS)
            .iterator(chunk_size=2000)
        )
        tenant_filter = request.GET.get("tenant__id__exact")
        tenant_id = int(tenant_filter) if tenant_filter and tenant_filter.isdigit() else None
        if tenant_id is not None and not visible_tenants(request.user).filter(pk=tenant_id).exists():
            tenant_id = None
        record_staff_action(
            actor=request.user.username,
            action="audit.exported",
            tenant_id=tenant_id,
            detail={"format": fmt, "filters": dict(request.GET.lists()), "output": "console download"},
        )
        stamp = timezone.now().strftime("%Y%m%dT%H%M%SZ")
        response = StreamingHttpResponse(iter_lines(fmt, rows), content_type=CONTENT_TYPES[fmt])
        response["Content-Disposition"] = f'attachment; filename="audit-{stamp}.{fmt}"'
        return response


# The scheduled work's admins live in their own modules; importing them registers them on the site.
from migrations_engine.waves import admin as wave_admin  # noqa: E402, F401
