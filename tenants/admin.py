"""The customer tenants in the admin: the census summary per tenant, consent and break-glass inline."""

from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Count, OuterRef, Prefetch, Q, Subquery
from django.http import HttpResponseRedirect, StreamingHttpResponse
from django.template.response import TemplateResponse
from django.urls import path, reverse

from msp_console.admin_base import RolePermissions, titled
from msp_console.admin_site import site
from tenants import admin_actions, fleet
from tenants.access import get_tenant_for_user, visible_tenants
from tenants.census_report import census_csv_rows
from tenants.choices import ConsentStatus
from tenants.fleet import MIGRATION_STATES, with_latest_run
from tenants.models import BreakGlassConfig, CustomerTenant, Tag, TenantConsent
from tenants.status_page import status_context


class ConsentInline(admin.StackedInline):
    model = TenantConsent
    can_delete = False
    readonly_fields = (
        "status",
        "granted_at",
        "granted_by",
        "roles",
        "missing_roles",
        "last_verified_at",
        "last_error",
    )
    extra = 0


class BreakGlassInline(admin.StackedInline):
    model = BreakGlassConfig
    can_delete = False
    extra = 0


class MigrationStateFilter(admin.SimpleListFilter):
    """Filter the fleet by each tenant's stored migration state (an indexed column)."""

    title = "state"
    parameter_name = "migration"

    def lookups(self, request, model_admin):
        return list(MIGRATION_STATES.items())

    def queryset(self, request, queryset):
        value = self.value()
        return queryset.filter(migration_state=value) if value in MIGRATION_STATES else queryset


class DriftFilter(admin.SimpleListFilter):
    """Filter the fleet by what the drift watch found: open findings, none, or a last check that failed."""

    title = "drift"
    parameter_name = "drift"

    def lookups(self, request, model_admin):
        return [("open", "Drift found"), ("clean", "No open drift"), ("error", "Last drift check failed")]

    def queryset(self, request, queryset):
        from migrations_engine.models import DriftCheck

        if self.value() == "open":
            return queryset.filter(drift_detected=True)
        if self.value() == "clean":
            return queryset.filter(drift_detected=False)
        if self.value() == "error":
            latest = DriftCheck.objects.filter(tenant=OuterRef("pk")).order_by("-started_at")
            return queryset.annotate(last_drift_status=Subquery(latest.values("status")[:1])).filter(
                last_drift_status="error"
            )
        return queryset


class ConsentFilter(admin.SimpleListFilter):
    """Filter the fleet by where each tenant's admin consent stands."""

    title = "consent"
    parameter_name = "consent"

    def lookups(self, request, model_admin):
        return ConsentStatus.choices

    def queryset(self, request, queryset):
        return queryset.filter(consent__status=self.value()) if self.value() else queryset


@admin.register(CustomerTenant, site=site)
class CustomerTenantAdmin(RolePermissions, admin.ModelAdmin):
    """The MSP's home page: one row per customer tenant, with what the last census and run found."""

    # One line a tenant (tenants/fleet.py says how each column reads); the tenant's name is the link.
    list_display = fleet.COLUMNS
    list_display_links = None
    # Drawn as a bar of drop-downs over the table (and the saved views as tabs), not a sidebar.
    list_filter = (
        fleet.SavedViewFilter,
        MigrationStateFilter,
        "licence",
        ("mfa_policy_state", titled("policy")),
        ConsentFilter,
        ("census_status", titled("census")),
        DriftFilter,
        ("security_defaults", titled("security defaults", admin.BooleanFieldListFilter)),
        "tags",
    )
    search_fields = ("display_name", "primary_domain", "tenant_id", "notes")
    # The edit form: the few fields staff set by hand (the census and the consent flow set the rest);
    # the tenant's status page (tenants/status_page.py) shows everything, read-only.
    fields = ("display_name", "tags", "notes")
    filter_horizontal = ("tags",)
    inlines = (ConsentInline, BreakGlassInline)
    list_select_related = ("consent",)
    actions = admin_actions.ACTIONS
    change_form_template = "admin/tenants/customertenant/change_form.html"

    def get_queryset(self, request):
        from migrations_engine.models import DriftFinding

        visible = super().get_queryset(request).filter(pk__in=visible_tenants(request.user).values("pk"))
        open_drift = DriftFinding.objects.filter(resolved_at__isnull=True).order_by("kind")
        return with_latest_run(visible).prefetch_related(
            Prefetch("drift_findings", queryset=open_drift, to_attr="open_drift")
        )

    def get_urls(self):
        extra = [
            path(
                "census.csv",
                self.admin_site.admin_view(self.fleet_census_csv),
                name="tenants_fleet_census_csv",
            ),
            path(
                "<path:object_id>/edit/",
                self.admin_site.admin_view(self.edit_view),
                name="tenants_customertenant_edit",
            ),
            path(
                "<int:pk>/census.csv",
                self.admin_site.admin_view(self.tenant_census_csv),
                name="tenants_tenant_census_csv",
            ),
        ]
        return extra + super().get_urls()

    def fleet_census_csv(self, request):
        """Every visible tenant's per-user census in one CSV."""
        return _csv_response(census_csv_rows(list(self.get_queryset(request))), "fleet-census.csv")

    def tenant_census_csv(self, request, pk):
        tenant = get_tenant_for_user(request.user, pk)
        return _csv_response(census_csv_rows([tenant]), f"{tenant.primary_domain}-census.csv")

    def change_view(self, request, object_id, form_url="", extra_context=None):
        """GET: the tenant's status page. POST: the edit form's save (its own URL posts here too)."""
        tenant = get_tenant_for_user(request.user, object_id)
        if request.method == "POST":
            return self.edit_view(request, object_id, extra_context)
        if not self.has_view_or_change_permission(request, tenant):
            raise PermissionDenied
        context = {
            **self.admin_site.each_context(request),
            "title": tenant.display_name,
            "opts": self.opts,
            **status_context(tenant, request),
        }
        return TemplateResponse(request, "admin/tenants/customertenant/status.html", context)

    def edit_view(self, request, object_id, extra_context=None):
        """The small form: name, tags, notes, break-glass accounts; consent shown, never edited here."""
        tenant = get_tenant_for_user(request.user, object_id)
        context = {
            **(extra_context or {}),
            "title": f"Edit {tenant.display_name}",
            "show_save_and_add_another": False,
            "show_save_and_continue": False,
            "show_delete": False,
            "status_url": reverse("admin:tenants_customertenant_change", args=[tenant.pk]),
        }
        return super().change_view(request, object_id, "", context)

    def response_change(self, request, obj):
        """After a save, back to the tenant's status page."""
        self.message_user(request, f"{obj.display_name} saved.", messages.SUCCESS)
        return HttpResponseRedirect(reverse("admin:tenants_customertenant_change", args=[obj.pk]))

    def changelist_view(self, request, extra_context=None):
        """The saved views' counts, over the tenants this staff member may see."""
        counts = fleet.view_counts(visible_tenants(request.user))
        views = [(key, label, counts[key]) for key, label, _ in fleet.SAVED_VIEWS]
        context = {
            "title": "Customer tenants",
            **(extra_context or {}),
            "saved_views": views,
            "saved_views_all": counts["all"],
        }
        return super().changelist_view(request, context)


def _csv_response(rows, filename: str) -> StreamingHttpResponse:
    response = StreamingHttpResponse(rows, content_type="text/csv")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


@admin.register(Tag, site=site)
class TagAdmin(admin.ModelAdmin):
    """Labels for tenants (a segment, a region, a ring) that waves and the fleet list filter on. The tenant
    count is of the tenants the staff user may see."""

    list_display = ("name", "tenant_count")
    search_fields = ("name",)

    def get_queryset(self, request):
        mine = Q(tenants__in=visible_tenants(request.user).values("pk"))
        return super().get_queryset(request).annotate(visible_count=Count("tenants", filter=mine))

    @admin.display(description="tenants you may see", ordering="visible_count")
    def tenant_count(self, tag: Tag) -> int:
        return tag.visible_count
