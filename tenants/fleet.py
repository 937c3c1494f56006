"""The fleet list's columns and saved views: one line a tenant, its state as a coloured pill.

The migration state itself is stored on the tenant (`CustomerTenant.migration_state`, decided by
tenants/migration_state.py): the fleet list, its filter, the dashboard and the exports read that field.
This module only says how each column reads (CIPP's tenant table is the yardstick: one line, colour for
what asks for attention, the detail on hover).
"""

from __future__ import annotations

from django.contrib import admin
from django.db.models import Count, OuterRef, Q, QuerySet, Subquery
from django.urls import reverse
from django.utils.html import format_html

from msp_console.words import ago
from tenants.choices import ConsentStatus, LicenceTier, MigrationState, PolicyState
from tenants.models import CustomerTenant

MIGRATION_STATES = dict(MigrationState.choices)

# What each state asks of the engineer, as a colour: green done, blue ready or busy, amber watch, red act.
STATE_TONES = {
    MigrationState.NOT_STARTED: "none",
    MigrationState.READY: "info",
    MigrationState.BLOCKED: "bad",
    MigrationState.MIGRATING: "busy",
    MigrationState.PILOT_VERIFIED: "warn",
    MigrationState.MIGRATED: "ok",
    MigrationState.MIGRATED_DRIFT: "warn",
    MigrationState.ROLLING_BACK: "busy",
    MigrationState.ROLLED_BACK: "none",
    MigrationState.PARTLY_ROLLED_BACK: "bad",
    MigrationState.NEEDS_ATTENTION: "bad",
}

# Saved views: (key, label, filter on the tenants).
SAVED_VIEWS = (
    ("attention", "Needs attention", Q(migration_state__in=("needs_attention", "partly_rolled_back"))),
    ("blocked", "Blocked", Q(migration_state="blocked")),
    ("ready", "Ready", Q(migration_state="ready")),
    ("drift", "Drift", Q(drift_detected=True)),
    ("migrated", "Migrated", Q(migration_state__in=("migrated", "migrated_drift"))),
)
VIEW_FILTERS = {key: q for key, _, q in SAVED_VIEWS}

POLICY_WORDS = {
    PolicyState.NONE: ("none", "none", "No Conditional Access policy requires MFA for all users"),
    PolicyState.DISABLED: ("off", "none", "The MFA policy exists but is off"),
    PolicyState.REPORT_ONLY: ("report-only", "warn", "The MFA policy is in report-only: it enforces nothing"),
    PolicyState.ENABLED: ("on", "ok", "The MFA policy is on"),
}
LICENCE_SHORT = {
    LicenceTier.FREE: "Free", LicenceTier.P1: "P1", LicenceTier.P2: "P2", LicenceTier.UNKNOWN: "?"
}  # fmt: skip
CONSENT_WORDS = {
    ConsentStatus.GRANTED: "granted",
    ConsentStatus.PARTIAL: "partial",
    ConsentStatus.PENDING: "not granted",
    ConsentStatus.ERROR: "unverified",
}
CONSENT_TONES = {
    ConsentStatus.GRANTED: "ok",
    ConsentStatus.PARTIAL: "warn",
    ConsentStatus.PENDING: "none",
    ConsentStatus.ERROR: "bad",
}


def with_latest_run(queryset: QuerySet) -> QuerySet:
    """Annotate each tenant with its latest run item's run id, mode, status and when it was created."""
    # Why here: the engine's models import this app's; this module is imported by the admin at start.
    from migrations_engine.models import RunItem

    latest = RunItem.objects.filter(tenant=OuterRef("pk")).order_by("-run__created_at", "-pk")
    return queryset.annotate(
        last_run_id=Subquery(latest.values("run_id")[:1]),
        last_run_mode=Subquery(latest.values("run__mode")[:1]),
        last_run_status=Subquery(latest.values("status")[:1]),
        last_run_at=Subquery(latest.values("run__created_at")[:1]),
    )


def view_counts(visible: QuerySet) -> dict[str, int]:
    """How many of the visible tenants each saved view holds, in one query."""
    return visible.aggregate(
        all=Count("pk"), **{key: Count("pk", filter=q) for key, q in VIEW_FILTERS.items()}
    )


class SavedViewFilter(admin.SimpleListFilter):
    """The saved views, shown as tabs over the table (the fleet template draws them, not the bar)."""

    title = "view"
    parameter_name = "view"

    def lookups(self, request, model_admin):
        return [(key, label) for key, label, _ in SAVED_VIEWS]

    def queryset(self, request, queryset):
        q = VIEW_FILTERS.get(self.value() or "")
        return queryset.filter(q) if q is not None else queryset


@admin.display(description="Tenant", ordering="display_name")
def tenant_display(obj: CustomerTenant) -> str:
    url = reverse("admin:tenants_customertenant_change", args=[obj.pk])
    return format_html(
        '<div class="tenant-cell" title="{} ({})"><a href="{}"><strong>{}</strong></a>'
        '<span class="quiet">{}</span></div>',
        obj.display_name,
        obj.primary_domain,
        url,
        obj.display_name,
        obj.primary_domain,
    )


@admin.display(description="State", ordering="migration_state")
def migration_display(obj: CustomerTenant) -> str:
    """The state as a pill, its reason (and the last plan, which never changes the state) on hover."""
    label = MIGRATION_STATES.get(obj.migration_state, obj.migration_state)
    hover = obj.migration_state_reason or label
    if obj.last_plan_run_id:
        changes = obj.last_plan_changes or 0
        hover += f" — last plan: {changes} change{'' if changes == 1 else 's'}, {ago(obj.last_plan_at)}"
    return format_html(
        '<span class="pill pill-{} migration-state state-{}" title="{}">{}</span>',
        STATE_TONES.get(obj.migration_state, "none"),
        obj.migration_state,
        hover,
        label,
    )


@admin.display(description="MFA reg.", ordering="mfa_registered")
def readiness_display(obj: CustomerTenant) -> str:
    pct = obj.mfa_registered_pct
    if pct is None:
        return format_html('<span class="quiet" title="{}">—</span>', "No registration report read yet")
    level = "low" if pct < 50 else "mid" if pct < 90 else "high"
    return format_html(
        '<span class="nowrap" title="{} of {} users have registered a method for MFA">'
        '<span class="meter {}"><span style="width:{}%"></span></span>{} %</span>',
        obj.mfa_registered or 0,
        obj.registration_known,
        level,
        f"{pct:.0f}",
        f"{pct:.0f}",
    )


@admin.display(description="Per-user on", ordering="per_user_enabled")
def per_user_display(obj: CustomerTenant) -> str:
    """Users whose legacy per-user MFA is still enabled or enforced: the number the migration takes to 0."""
    if obj.census_at is None:
        return format_html('<span class="quiet">—</span>')
    still_on = (obj.per_user_enabled or 0) + (obj.per_user_enforced or 0)
    return format_html(
        '<span class="{}" title="enabled {}, enforced {}, disabled {} of {} users">{}</span>',
        "quiet" if still_on == 0 else "",
        obj.per_user_enabled or 0,
        obj.per_user_enforced or 0,
        obj.per_user_disabled or 0,
        obj.users_total or 0,
        still_on,
    )


@admin.display(description="Policy", ordering="mfa_policy_state")
def policy_display(obj: CustomerTenant) -> str:
    word, tone, meaning = POLICY_WORDS.get(obj.mfa_policy_state, (obj.mfa_policy_state, "none", ""))
    return format_html('<span class="pill pill-{}" title="{}">{}</span>', tone, meaning, word)


@admin.display(description="Licence", ordering="licence")
def licence_display(obj: CustomerTenant) -> str:
    return format_html(
        '<span title="{}">{}</span>', obj.get_licence_display(), LICENCE_SHORT.get(obj.licence, obj.licence)
    )


@admin.display(description="SD", ordering="security_defaults")
def sd_display(obj: CustomerTenant) -> str:
    """Neutral words: on before a migration and off after one are both normal."""
    if obj.security_defaults is None:
        return format_html('<span class="quiet">—</span>')
    return format_html('<span class="quiet">{}</span>', "on" if obj.security_defaults else "off")


@admin.display(description="Census", ordering="census_at")
def census_display(obj: CustomerTenant) -> str:
    if obj.census_at is None:
        return format_html('<span class="quiet">{}</span>', obj.get_census_status_display())
    return format_html(
        '<span class="{}" title="{}: {}">{}</span>',
        "" if obj.census_status == "ok" else "pill pill-warn",
        obj.get_census_status_display(),
        obj.census_message or obj.census_at.strftime("%Y-%m-%d %H:%M"),
        ago(obj.census_at),
    )


@admin.display(description="Last run", ordering="last_run_at")
def last_run_display(obj: CustomerTenant) -> str:
    if not obj.last_run_id:
        return format_html('<span class="quiet">—</span>')
    url = reverse("admin:migrations_engine_migrationrun_change", args=[obj.last_run_id])
    failed = obj.last_run_status in ("failed", "errored", "cancelled")
    return format_html(
        '<a href="{}" class="{}" title="Run {} ({}): {}">{} #{}</a> <span class="quiet">{}</span>',
        url,
        "pill pill-bad" if failed else "",
        obj.last_run_id,
        obj.last_run_mode,
        obj.last_run_status,
        (obj.last_run_mode or "").capitalize(),
        obj.last_run_id,
        ago(obj.last_run_at),
    )


@admin.display(description="Drift", ordering="drift_detected")
def drift_display(obj: CustomerTenant) -> str:
    """The count of open drift findings, linked to them; their kinds on hover."""
    found = getattr(obj, "open_drift", None) or []
    if not found:
        return format_html('<span class="quiet">—</span>')
    url = reverse("admin:migrations_engine_driftfinding_changelist")
    return format_html(
        '<a href="{}?tenant__id__exact={}&amp;status=open" class="pill pill-warn" title="{}">⚠ {}</a>',
        url,
        obj.pk,
        "; ".join(f"{f.get_kind_display()}: {f.summary}" for f in found),
        len(found),
    )


@admin.display(description="Consent", ordering="consent__status")
def consent_display(obj: CustomerTenant) -> str:
    consent = getattr(obj, "consent", None)
    if consent is None:
        return format_html('<span class="quiet">—</span>')
    if consent.missing_roles:
        return format_html(
            '<span class="pill pill-warn" title="{}: {}">missing {}</span>',
            consent.get_status_display(),
            ", ".join(consent.missing_roles),
            len(consent.missing_roles),
        )
    label = CONSENT_WORDS.get(consent.status, consent.status)
    return format_html(
        '<span class="pill pill-{}" title="{}">{}</span>',
        CONSENT_TONES.get(consent.status, "none"),
        consent.last_error or consent.get_status_display(),
        label,
    )


COLUMNS = (
    tenant_display,
    migration_display,
    readiness_display,
    per_user_display,
    policy_display,
    licence_display,
    sd_display,
    census_display,
    last_run_display,
    drift_display,
    consent_display,
)
