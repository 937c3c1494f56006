"""RQ entry points of the drift watch: the repeating watch (schedules.DRIFT_WATCH_ID) and one tenant's
check."""

from __future__ import annotations

from migrations_engine.drift.services import WATCH_ACTOR, NotCheckable, check_tenant, enqueue_drift_check
from migrations_engine.queueing import actor_may_act
from migrations_engine.runs.migrated import migrated_tenants
from msp_console.words import counted
from tenants.models import CustomerTenant


def drift_watch_job() -> str:
    """RQ job: queue a drift check of every migrated tenant, one job per tenant under a deterministic id."""
    tenant_pks = list(migrated_tenants().order_by("pk").values_list("pk", flat=True))
    queued = sum(enqueue_drift_check(pk, actor=WATCH_ACTOR)[1] for pk in tenant_pks)
    return f"{counted(len(tenant_pks), 'migrated tenant')}: {counted(queued, 'drift check')} queued"


def drift_check_job(tenant_pk: int, actor: str = WATCH_ACTOR) -> str:
    """RQ job: check one migrated tenant for drift (a recorded DriftCheck). Returns a one-line outcome."""
    tenant = CustomerTenant.objects.filter(pk=tenant_pk).first()
    if tenant is None:
        return "skipped: the tenant no longer exists"
    if not actor_may_act(actor, tenant):
        return "refused: the staff member who asked for this check no longer has access to the tenant"
    try:
        check = check_tenant(tenant, actor=actor)
    except NotCheckable as exc:
        return f"skipped: {exc}"
    return f"{check.status}: {check.error}" if check.error else str(check.status)
