"""The drift watch in the admin: findings and checks, read-only and scoped to the tenants a user may see.

Two actions on the findings list: "Remediate" (a confirmation page, then a normal audited run of the
migration's scope through `drift.start_remediation`) and "Check again now" (queues a drift check).
"""

from __future__ import annotations

import json

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import ValidationError
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html

from migrations_engine.drift import services as drift
from migrations_engine.drift.services import enqueue_drift_check
from migrations_engine.models import DriftCheck, DriftFinding
from migrations_engine.runs.services import RunConflict
from msp_console.admin_base import COMPACT_LIST, TenantScopedAdmin, VisibleTenantFilter
from msp_console.admin_site import site
from msp_console.words import counted
from staff import roles
from staff.reauth import require_fresh


class TenantFilter(VisibleTenantFilter):
    """The visible tenants (every finding and check has one: no "empty" choice)."""

    @property
    def include_empty_choice(self) -> bool:
        return False


class FindingStatusFilter(admin.SimpleListFilter):
    """Open findings (still seen by the last check) or resolved ones."""

    title = "status"
    parameter_name = "status"

    def lookups(self, request, model_admin):
        return [("open", "Open"), ("resolved", "Resolved")]

    def queryset(self, request, queryset):
        if self.value() == "open":
            return queryset.filter(resolved_at__isnull=True)
        if self.value() == "resolved":
            return queryset.filter(resolved_at__isnull=False)
        return queryset


def _run_link(run_id: int | None) -> str:
    if not run_id:
        return "—"
    url = reverse("admin:migrations_engine_migrationrun_change", args=[run_id])
    return format_html('<a href="{}">Run {}</a>', url, run_id)


def _tenant_link(tenant) -> str:
    url = reverse("admin:tenants_customertenant_change", args=[tenant.pk])
    return format_html('<a href="{}">{}</a>', url, tenant.display_name)


@admin.register(DriftFinding, site=site)
class DriftFindingAdmin(TenantScopedAdmin):
    list_display = (
        "tenant_display",
        "kind",
        "summary",
        "first_seen_at",
        "last_seen_at",
        "status_display",
        "notified_at",
        "remediation_display",
    )
    list_filter = (FindingStatusFilter, "kind", ("tenant", TenantFilter))
    change_list_template = COMPACT_LIST
    search_fields = ("tenant__primary_domain", "tenant__display_name", "summary")
    list_select_related = ("tenant",)
    actions = ["remediate", "check_again"]
    fields = (
        "tenant_display",
        "kind",
        "summary",
        "detail_display",
        "first_seen_at",
        "last_seen_at",
        "resolved_at",
        "notified_at",
        "remediation_display",
    )
    readonly_fields = fields

    @admin.display(description="tenant", ordering="tenant__display_name")
    def tenant_display(self, finding: DriftFinding) -> str:
        return _tenant_link(finding.tenant)

    @admin.display(description="status", ordering="resolved_at")
    def status_display(self, finding: DriftFinding) -> str:
        if finding.resolved_at is None:
            return "Open"
        return f"Resolved {finding.resolved_at:%Y-%m-%d %H:%M}"

    @admin.display(description="remediation run")
    def remediation_display(self, finding: DriftFinding) -> str:
        if finding.kind in drift.NOT_REMEDIABLE:
            return "none (no Graph change fixes it)"
        return _run_link(finding.remediation_run_id)

    @admin.display(description="detail")
    def detail_display(self, finding: DriftFinding) -> str:
        text = json.dumps(finding.detail, indent=2, sort_keys=True, ensure_ascii=False)
        return format_html("<pre>{}</pre>", text)

    def has_migrate_permission(self, request) -> bool:
        return roles.may(request.user, roles.MIGRATE)

    def has_census_permission(self, request) -> bool:
        return roles.may(request.user, roles.CENSUS)

    @admin.action(description="Remediate (re-run the migration's steps)", permissions=["migrate"])
    def remediate(self, request, queryset):
        """First POST: what would run for which tenant; second (with `confirm`): start the runs."""
        plans = drift.plan_remediation(queryset.select_related("tenant").order_by("tenant__display_name"))
        if "confirm" not in request.POST:
            context = {
                **self.admin_site.each_context(request),
                "title": "Remediate drift",
                "plans": plans,
                "findings": queryset,
                "opts": self.opts,
                "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            }
            return TemplateResponse(
                request, "admin/migrations_engine/driftfinding/confirm_remediate.html", context
            )
        if ask := require_fresh(request, "remediate drift (a full run)", self.admin_site):
            return ask
        started = []
        for plan in plans:
            try:
                run = drift.start_remediation(plan, actor=request.user)
            except RunConflict as exc:
                self.message_user(request, f"{exc}. Nothing was started for it.", messages.ERROR)
            except ValidationError as exc:
                self.message_user(request, "; ".join(exc.messages), messages.ERROR)
            else:
                started.append(run)
                waiting = (
                    " (awaiting a second staff member's approval)"
                    if run.status == "awaiting_approval"
                    else ""
                )
                self.message_user(
                    request,
                    f"Run {run.pk} ({run.get_mode_display()}) started for {plan.tenant.primary_domain}"
                    f"{waiting}: it repairs {', '.join(f.get_kind_display() for f in plan.repair)}.",
                )
            for finding, why in plan.left:
                self.message_user(
                    request,
                    f"{plan.tenant.primary_domain}: {finding.get_kind_display()}: {why}",
                    messages.WARNING,
                )
        if len(started) == 1:
            return HttpResponseRedirect(
                reverse("admin:migrations_engine_migrationrun_change", args=[started[0].pk])
            )
        return None

    @admin.action(description="Check again now", permissions=["census"])
    def check_again(self, request, queryset):
        tenant_pks = sorted(set(queryset.values_list("tenant_id", flat=True)))
        for pk in tenant_pks:
            enqueue_drift_check(pk, actor=request.user.get_username())
        self.message_user(request, f"Drift check queued for {counted(len(tenant_pks), 'tenant')}.")


@admin.register(DriftCheck, site=site)
class DriftCheckAdmin(TenantScopedAdmin):
    list_display = (
        "started_at",
        "tenant_display",
        "status",
        "users_checked",
        "error",
        "actor",
        "run_display",
    )
    list_filter = ("status", ("tenant", TenantFilter))
    search_fields = ("tenant__primary_domain", "tenant__display_name", "error")
    list_select_related = ("tenant", "run_item")
    fields = (
        "tenant_display",
        "actor",
        "started_at",
        "finished_at",
        "status",
        "error",
        "users_checked",
        "run_display",
        "policy_id",
    )
    readonly_fields = fields

    @admin.display(description="tenant", ordering="tenant__display_name")
    def tenant_display(self, check: DriftCheck) -> str:
        return _tenant_link(check.tenant)

    @admin.display(description="compared with")
    def run_display(self, check: DriftCheck) -> str:
        return _run_link(check.run_item.run_id if check.run_item else None)
