"""A tenant's status page: where it stands, what blocks it, the one thing to do next, and every section an
engineer checks before and after a migration (census, readiness, policy, break-glass, consent, runs,
drift, audit trail, the per-user report). Read-only; the few editable fields have their own small form.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.core.paginator import Paginator
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from migrations_engine.models import AuditEvent, DriftCheck, DriftFinding, RunItem, TenantSnapshot
from msp_console.words import ago
from staff import roles
from tenants.choices import ConsentStatus, LicenceTier, MigrationState
from tenants.fleet import POLICY_WORDS, STATE_TONES
from tenants.models import BreakGlassConfig, CensusUser, CustomerTenant

CENSUS_STALE = timedelta(days=7)
USERS_PER_PAGE = 25


@dataclass(frozen=True)
class NextAction:
    """The one thing to do next: a link, or an admin action on this tenant posted to the fleet list
    (it asks for confirmation there, as from the list). `why` says why this is next."""

    label: str
    why: str
    url: str = ""
    action: str = ""  # a fleet action's name (start_plan, start_full), posted to the fleet list
    post: bool = False  # `url` takes a POST (the census, read-only, starts without a question)


def blockers(tenant: CustomerTenant, consent, glass: BreakGlassConfig | None) -> list[str]:
    """What stops a migration of this tenant today, in words (empty: nothing)."""
    found = []
    if consent is None or consent.status == ConsentStatus.PENDING:
        found.append("The customer's admin has not consented to the console's app yet.")
    elif consent.status == ConsentStatus.ERROR:
        found.append(f"Consent could not be verified: {consent.last_error or 'the last check failed'}.")
    elif consent.missing_roles:
        found.append(
            f"Consent lacks {len(consent.missing_roles)} permission(s): {', '.join(consent.missing_roles)}."
        )
    if tenant.licence == LicenceTier.FREE:
        found.append(
            "Entra ID Free: Conditional Access needs Entra ID P1 or P2 (or Microsoft 365 Business Premium)."
        )
    if not (glass and (glass.accounts or glass.group_id)):
        found.append(
            "No break-glass accounts: the policy must exclude emergency accounts before anything runs."
        )
    if tenant.census_at is None:
        found.append("No census yet: nothing is known about the tenant's users and policies.")
    return found


def next_action(tenant: CustomerTenant, consent, glass, user) -> NextAction | None:
    """The next step for this tenant and this staff member (None when their role offers none)."""
    state, pk = tenant.migration_state, tenant.pk
    run_url = (
        reverse("admin:migrations_engine_migrationrun_change", args=[tenant.migration_state_run_id])
        if tenant.migration_state_run_id
        else ""
    )
    if state in (MigrationState.MIGRATING, MigrationState.ROLLING_BACK) and run_url:
        return NextAction("Follow the run live", "A run is changing this tenant now.", url=run_url)
    if state in (MigrationState.NEEDS_ATTENTION, MigrationState.PARTLY_ROLLED_BACK) and run_url:
        return NextAction("Open the run", tenant.migration_state_reason, url=run_url)
    if consent is None or consent.status != ConsentStatus.GRANTED or consent.missing_roles:
        if roles.may(user, roles.CUSTOMERS):
            url = reverse("admin:tenants_consent_link", args=[pk])
            return NextAction("Get admin consent", "Nothing can be read or changed without it.", url=url)
        return None
    if not (glass and (glass.accounts or glass.group_id)) and roles.may(user, roles.CUSTOMERS):
        url = reverse("admin:tenants_customertenant_edit", args=[pk]) + "#break_glass-group"
        return NextAction("Add break-glass accounts", "Every run is blocked until they are set.", url=url)
    stale = tenant.census_at is None or timezone.now() - tenant.census_at > CENSUS_STALE
    if (stale or state == MigrationState.BLOCKED) and roles.may(user, roles.CENSUS):
        why = "The last census is over a week old." if tenant.census_at else "Nothing has been read yet."
        if state == MigrationState.BLOCKED and not stale:
            why = "Read the tenant again once what blocks it is fixed."
        return NextAction("Run a census", why, url=reverse("admin:tenants_census_now", args=[pk]), post=True)
    if state == MigrationState.MIGRATED_DRIFT:
        url = (
            reverse("admin:migrations_engine_driftfinding_changelist")
            + f"?tenant__id__exact={pk}&status=open"
        )
        return NextAction("Review the drift", "The tenant changed since it was migrated.", url=url)
    if state in (MigrationState.READY, MigrationState.NOT_STARTED, MigrationState.ROLLED_BACK):
        if not tenant.last_plan_run_id and roles.may(user, roles.PLAN):
            return NextAction(
                "Plan the migration", "A dry run shows every change first.", action="start_plan"
            )
        if roles.may(user, roles.MIGRATE):
            return NextAction(
                "Start the full migration", "The last plan shows what it will change.", action="start_full"
            )
    if state == MigrationState.PILOT_VERIFIED and roles.may(user, roles.MIGRATE):
        return NextAction("Start the full migration", "The pilot verified.", action="start_full")
    return None


def per_user_page(tenant: CustomerTenant, query: str, page: str | None):
    """The current census's users, searched by UPN or name and paged."""
    users = CensusUser.objects.filter(tenant=tenant, generation=tenant.census_generation).order_by("upn")
    if query:
        users = users.filter(Q(upn__icontains=query) | Q(display_name__icontains=query))
    return Paginator(users, USERS_PER_PAGE).get_page(page)


def status_context(tenant: CustomerTenant, request) -> dict:
    consent = getattr(tenant, "consent", None)
    glass = BreakGlassConfig.objects.filter(tenant=tenant).first()
    query = request.GET.get("users_q", "").strip()
    users = per_user_page(tenant, query, request.GET.get("users_page"))
    unregistered = CensusUser.objects.filter(
        tenant=tenant, generation=tenant.census_generation, mfa_registered=False
    )
    policy_word, policy_tone, policy_meaning = POLICY_WORDS.get(
        tenant.mfa_policy_state, (tenant.mfa_policy_state, "none", "")
    )
    run_items = list(
        RunItem.objects.filter(tenant=tenant).select_related("run").order_by("-run__created_at")[:20]
    )
    return {
        "tenant": tenant,
        "consent": consent,
        "glass": glass,
        "state_tone": STATE_TONES.get(tenant.migration_state, "none"),
        # The reason often names its run already ("Verified by run 2"): link it once.
        "state_run_linked": f"run {tenant.migration_state_run_id}" in (tenant.migration_state_reason or ""),
        "blockers": blockers(tenant, consent, glass),
        "next_action": next_action(tenant, consent, glass, request.user),
        "census_ago": ago(tenant.census_at),
        "census_stale": tenant.census_at is not None and timezone.now() - tenant.census_at > CENSUS_STALE,
        "policy_word": policy_word,
        "policy_tone": policy_tone,
        "policy_meaning": policy_meaning,
        "census_policies": (tenant.census_detail or {}).get("policies") or [],
        "unregistered_count": unregistered.count(),
        "users": users,
        "users_q": query,
        "snapshot": TenantSnapshot.objects.filter(tenant=tenant, complete=True).order_by("-taken_at").first(),
        "run_items": run_items,
        "readiness_item": next((i for i in run_items if (i.state or {}).get("readiness")), None),
        "drift_findings": DriftFinding.objects.filter(tenant=tenant, resolved_at__isnull=True).order_by(
            "kind"
        ),
        "drift_check": DriftCheck.objects.filter(tenant=tenant).order_by("-started_at").first(),
        "drift_url": reverse("admin:migrations_engine_driftfinding_changelist")
        + f"?tenant__id__exact={tenant.pk}",
        "audit_rows": AuditEvent.objects.filter(chain=str(tenant.tenant_id)).order_by("-seq")[
            :10
        ],  # (chain, seq) index
        "audit_url": reverse("admin:migrations_engine_auditevent_changelist")
        + f"?tenant__id__exact={tenant.pk}",
        "census_csv_url": reverse("admin:tenants_tenant_census_csv", args=[tenant.pk]),
        "edit_url": reverse("admin:tenants_customertenant_edit", args=[tenant.pk]),
        "consent_url": reverse("admin:tenants_consent_link", args=[tenant.pk]),
        "fleet_url": reverse("admin:tenants_customertenant_changelist"),
        "may_edit": roles.may(request.user, roles.CUSTOMERS),
        "may_census": roles.may(request.user, roles.CENSUS),
    }
