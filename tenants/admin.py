"""The customer tenants in the admin: the census summary per tenant, consent and break-glass inline."""

from __future__ import annotations

from django.contrib import admin
from django.utils.html import format_html

from msp_console.admin_site import site
from tenants.access import visible_tenants
from tenants.models import BreakGlassConfig, CustomerTenant, TenantConsent


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


@admin.register(CustomerTenant, site=site)
class CustomerTenantAdmin(admin.ModelAdmin):
    list_display = (
        "display_name",
        "primary_domain",
        "licence",
        "sd_display",
        "mfa_policy_state",
        "users_total",
        "per_user_enabled",
        "per_user_enforced",
        "per_user_disabled",
        "registered_display",
        "consent_display",
        "census_status",
        "census_at",
    )
    list_filter = ("licence", "security_defaults", "mfa_policy_state", "census_status", "consent__status")
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
        "created_at",
        "updated_at",
    )
    fieldsets = (
        (None, {"fields": ("display_name", "primary_domain", "tenant_id", "notes")}),
        ("Last census", {"fields": readonly_fields[:-2]}),
        ("Record", {"fields": ("created_at", "updated_at")}),
    )
    inlines = (ConsentInline, BreakGlassInline)
    list_select_related = ("consent",)

    def get_queryset(self, request):
        return super().get_queryset(request).filter(pk__in=visible_tenants(request.user).values("pk"))

    @admin.display(description="Security defaults", boolean=True, ordering="security_defaults")
    def sd_display(self, obj: CustomerTenant) -> bool | None:
        return obj.security_defaults

    @admin.display(description="MFA registered", ordering="mfa_registered")
    def registered_display(self, obj: CustomerTenant) -> str:
        pct = obj.mfa_registered_pct
        return "—" if pct is None else f"{pct:.0f} %"

    @admin.display(description="Consent", ordering="consent__status")
    def consent_display(self, obj: CustomerTenant) -> str:
        consent = getattr(obj, "consent", None)
        if consent is None:
            return "—"
        if consent.missing_roles:
            return format_html(
                '{}<br><small title="{}">missing {}</small>',
                consent.get_status_display(),
                ", ".join(consent.missing_roles),
                len(consent.missing_roles),
            )
        return consent.get_status_display()
