"""Pre-flight: what will block a tenant's run, and what will only warn, known before anything starts.

Blocks (the tenant is left out of the run, with the reason shown and recorded): Entra ID Free; admin
consent that a census or run found missing, or partial (the missing permissions named); no break-glass
accounts; a census older than PREFLIGHT_CENSUS_MAX_AGE_HOURS; open drift (except for the run that
remediates it, and a plan, which only reads); another run active on it. Warnings: no census yet (the
run reads the tenant itself), users not registered for MFA, security defaults on (the run bridges them).
The confirmation pages show the same checks `start_run` and wave creation apply.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field

from django.conf import settings
from django.utils import timezone

from migrations_engine.choices import ACTIVE_ITEM_STATUSES
from migrations_engine.models import DriftFinding, RunItem
from tenants.choices import CensusStatus, ConsentStatus, LicenceTier
from tenants.models import BreakGlassConfig, CustomerTenant, TenantConsent


@dataclass
class TenantCheck:
    """One tenant's pre-flight: `blocks` keep it out of the run, `warnings` only inform."""

    tenant: CustomerTenant
    blocks: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    busy_run_id: int | None = None

    @property
    def blocked(self) -> bool:
        return bool(self.blocks)


def _census_age_limit() -> datetime.timedelta:
    return datetime.timedelta(hours=getattr(settings, "PREFLIGHT_CENSUS_MAX_AGE_HOURS", 72))


def check_tenants(
    tenants: list[CustomerTenant], *, mode: str = "full", remediation: bool = False
) -> list[TenantCheck]:
    """The pre-flight of each tenant for a run of `mode`, in the order given (a few queries in all). Open
    drift blocks a pilot or full run (the drift's remediation aside), not a plan, which only reads."""
    pks = [t.pk for t in tenants]
    consents = {c.tenant_id: c for c in TenantConsent.objects.filter(tenant_id__in=pks)}
    glass = {g.tenant_id: g for g in BreakGlassConfig.objects.filter(tenant_id__in=pks)}
    drift = set(
        DriftFinding.objects.filter(tenant_id__in=pks, resolved_at__isnull=True).values_list(
            "tenant_id", flat=True
        )
    )
    busy = dict(
        RunItem.objects.filter(tenant_id__in=pks, status__in=ACTIVE_ITEM_STATUSES).values_list(
            "tenant_id", "run_id"
        )
    )
    oldest = timezone.now() - _census_age_limit()
    checks = []
    for tenant in tenants:
        check = TenantCheck(tenant)
        consent = consents.get(tenant.pk)
        if tenant.licence == LicenceTier.FREE or tenant.census_status == CensusStatus.FREE:
            check.blocks.append("Entra ID Free: Conditional Access needs Entra ID P1 or P2")
        if tenant.census_status == CensusStatus.NO_CONSENT or (
            consent and consent.last_verified_at and consent.status == ConsentStatus.PENDING
        ):
            check.blocks.append("Admin consent not given: send the consent link")
        elif consent and consent.missing_roles:
            check.blocks.append(f"Consent is missing permissions: {', '.join(sorted(consent.missing_roles))}")
        config = glass.get(tenant.pk)
        if config is None or not (config.accounts or config.group_id):
            check.blocks.append("No break-glass accounts configured: add them on the tenant's page")
        if tenant.census_at is None:
            check.warnings.append("No census yet: the run reads the tenant first")
        elif tenant.census_at < oldest:
            days = (timezone.now() - tenant.census_at).days
            check.blocks.append(f"Census is {days} days old: run a census first")
        if tenant.census_status == CensusStatus.ERROR:
            check.blocks.append(f"Census failed: {tenant.census_message or 'see the tenant page'}")
        if tenant.pk in drift and mode != "plan" and not remediation:
            check.blocks.append("Drift is open: remediate it from Drift findings, or resolve it first")
        if tenant.pk in busy:
            check.busy_run_id = busy[tenant.pk]
            check.blocks.append(f"Run {busy[tenant.pk]} is active on this tenant")
        pct = tenant.mfa_registered_pct
        if pct is not None and pct < 100:
            unregistered = (tenant.registration_known or 0) - (tenant.mfa_registered or 0)
            check.warnings.append(f"{unregistered} users not registered for MFA ({100 - pct:.0f} %)")
        if tenant.security_defaults:
            check.warnings.append("Security defaults are on: the run bridges them")
        checks.append(check)
    return checks


def summary(checks: list[TenantCheck]) -> str:
    """The blocked tenants and why, in one line each (for messages and the CLI)."""
    return "; ".join(f"{c.tenant.primary_domain}: {', '.join(c.blocks)}" for c in checks if c.blocked)
