"""The customer tenants in the admin: the census summary per tenant, consent and break-glass inline."""

from __future__ import annotations

from django.contrib import admin
from django.db.models import Count, OuterRef, Prefetch, Q, Subquery
from django.http import StreamingHttpResponse
from django.urls import path, reverse

from msp_console.admin_base import RolePermissions, titled
from msp_console.admin_site import site
from tenants import admin_actions, fleet
from tenants.access import get_tenant_for_user, visible_tenants
from tenants.census_report import census_csv_rows
from tenants.choices import ConsentStatus
from tenants.fleet import MIGRATION_STATES, with_latest_run
from tenants.models import BreakGlassConfig, CensusUser, CustomerTenant, Tag, TenantConsent


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
    readonly_fields = (
        "census_status",
        "census_at",
        "census_message",
        "licence",
        "licence_plans",
        "security_defaults",
        "ca_policy_count",
        "mfa_policy_state",
        "users_total",
        "per_user_enabled",
        "per_user_enforced",
        "per_user_disabled",
        "mfa_registered",
        "registration_known",
        "census_detail",
        "drift_detected",
        "created_at",
        "updated_at",
    )
    fieldsets = (
        (None, {"fields": ("display_name", "primary_domain", "tenant_id", "tags", "notes")}),
        ("Last census", {"fields": readonly_fields[:-3]}),
        ("Record", {"fields": ("drift_detected", "created_at", "updated_at")}),
    )
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
        tenant = get_tenant_for_user(request.user, object_id)
        return super().change_view(request, object_id, form_url, {**(extra_context or {}), **_detail(tenant)})

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


def _detail(tenant: CustomerTenant) -> dict:
    """The tenant page's sections below the form: registration gaps, snapshot, runs, audit trail."""
    from migrations_engine.models import AuditEvent, DriftCheck, DriftFinding, RunItem, TenantSnapshot

    unregistered = CensusUser.objects.filter(
        tenant=tenant, generation=tenant.census_generation, mfa_registered=False
    ).order_by("upn")
    return {
        "unregistered_users": unregistered[:50],
        "unregistered_count": unregistered.count(),
        "snapshot": TenantSnapshot.objects.filter(tenant=tenant, complete=True).order_by("-taken_at").first(),
        "run_items": RunItem.objects.filter(tenant=tenant)
        .select_related("run")
        .order_by("-run__created_at")[:20],
        "audit_rows": AuditEvent.objects.filter(tenant=tenant).order_by("-seq")[:25],
        "census_csv_url": reverse("admin:tenants_tenant_census_csv", args=[tenant.pk]),
        "drift_findings": DriftFinding.objects.filter(tenant=tenant, resolved_at__isnull=True).order_by(
            "kind"
        ),
        "drift_check": DriftCheck.objects.filter(tenant=tenant).order_by("-started_at").first(),
        "drift_url": reverse("admin:migrations_engine_driftfinding_changelist")
        + f"?tenant__id__exact={tenant.pk}",
        "census_policies": (tenant.census_detail or {}).get("policies") or [],
        "readiness_item": RunItem.objects.filter(tenant=tenant, state__has_key="readiness")
        .select_related("run")
        .order_by("-run__created_at")
        .first(),
    }


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
