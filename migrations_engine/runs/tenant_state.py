"""Keeps each tenant's stored migration state true: gathers the facts (its started real runs, whether
their writes may have reached the tenant, open drift, readiness) and stores what
`tenants.migration_state.decide` makes of them. Called after every event that changes what a tenant
is; a plan only records itself as the tenant's last plan."""

from __future__ import annotations

import logging

from django.db import transaction
from django.db.models.signals import post_delete, post_save
from django.utils import timezone

from migrations_engine.choices import AuditKind, AuditOutcome, ItemStatus, RunMode
from migrations_engine.models import AuditEvent, DriftFinding, RunItem
from tenants.migration_state import Decision, Readiness, RealRun, decide
from tenants.models import BreakGlassConfig, CustomerTenant, TenantConsent

logger = logging.getLogger(__name__)

REAL_MODES = (RunMode.PILOT, RunMode.FULL, RunMode.ROLLBACK)
# A write whose outcome was success or unknown may have changed the tenant.
MAY_HAVE_WRITTEN = (AuditOutcome.SUCCEEDED, AuditOutcome.UNKNOWN)
ENDED_UNFINISHED = (ItemStatus.FAILED, ItemStatus.ERRORED, ItemStatus.CANCELLED)


def readiness_of(tenant: CustomerTenant) -> Readiness:
    consent = TenantConsent.objects.filter(tenant=tenant).first()
    glass = BreakGlassConfig.objects.filter(tenant=tenant).first()
    return Readiness(
        census_status=tenant.census_status,
        census_message=tenant.census_message,
        licence=tenant.licence,
        consent_status=consent.status if consent else None,
        missing_roles=list(consent.missing_roles or []) if consent else [],
        break_glass=bool(glass and (glass.accounts or glass.group_id)),
    )


def history_of(tenant_pk: int) -> list[RealRun]:
    """The tenant's pilot, full and rollback items that started, oldest first."""
    rows = list(
        RunItem.objects.filter(tenant_id=tenant_pk, run__mode__in=REAL_MODES, started_at__isnull=False)
        .order_by("started_at", "pk")
        .values("pk", "run_id", "run__mode", "status", "failure_reason")
    )
    unfinished = [r for r in rows if r["status"] in ENDED_UNFINISHED]
    wrote = set()
    for row in unfinished:
        if AuditEvent.objects.filter(
            run_id=row["run_id"], item_id=row["pk"], kind=AuditKind.GRAPH_WRITE, outcome__in=MAY_HAVE_WRITTEN
        ).exists():
            wrote.add(row["pk"])
    return [
        RealRun(
            run_id=r["run_id"],
            mode=r["run__mode"],
            status=r["status"],
            wrote=r["pk"] in wrote,
            reason=r["failure_reason"] or "",
        )
        for r in rows
    ]


def refresh_migration_state(tenant_pk: int) -> Decision:
    """Decide the tenant's state from its facts now and store it (a no-op write when unchanged)."""
    with transaction.atomic():
        tenant = CustomerTenant.objects.select_for_update().get(pk=tenant_pk)
        drift_open = DriftFinding.objects.filter(tenant_id=tenant_pk, resolved_at__isnull=True).exists()
        decision = decide(history_of(tenant_pk), readiness_of(tenant), drift_open)
        current = (tenant.migration_state, tenant.migration_state_reason, tenant.migration_state_run_id)
        if current != (decision.state, decision.reason, decision.run_id):
            CustomerTenant.objects.filter(pk=tenant_pk).update(
                migration_state=decision.state,
                migration_state_reason=decision.reason,
                migration_state_run_id=decision.run_id,
                migration_state_at=timezone.now(),
            )
            logger.info("tenant %s is now %s (%s)", tenant, decision.state, decision.reason)
    return decision


def refresh_quietly(tenant_pk: int) -> None:
    """For callers whose own work must not fail on this bookkeeping (the next event corrects it)."""
    try:
        refresh_migration_state(tenant_pk)
    except Exception:  # noqa: BLE001 - logged; the state is decided again at the next event
        logger.exception("could not refresh the migration state of tenant %s", tenant_pk)


def record_plan(item: RunItem) -> None:
    """A plan finished for its tenant: remember it as the tenant's last plan (its state is untouched)."""
    if item.status != ItemStatus.SUCCEEDED:
        return
    CustomerTenant.objects.filter(pk=item.tenant_id).update(
        last_plan_run_id=item.run_id, last_plan_at=timezone.now(), last_plan_changes=len(item.plan_diff or [])
    )


def _on_fact_saved(sender, instance, **kwargs) -> None:
    """A tenant, its consent or its break-glass settings were saved: readiness may have changed."""
    tenant_pk = instance.pk if isinstance(instance, CustomerTenant) else instance.tenant_id
    if kwargs.get("raw") or tenant_pk is None:
        return  # loading fixtures
    if CustomerTenant.objects.filter(pk=tenant_pk).exists():
        refresh_quietly(tenant_pk)


def connect_receivers() -> None:
    """The tenants app's saves that change a tenant's readiness (a census, consent, break-glass)."""
    for model in (CustomerTenant, TenantConsent, BreakGlassConfig):
        uid = f"tenant_state.{model.__name__}"
        post_save.connect(_on_fact_saved, sender=model, dispatch_uid=uid)
        post_delete.connect(_on_fact_saved, sender=model, dispatch_uid=f"{uid}.delete")
