"""RQ entry points and the only helpers that enqueue them. Jobs take primary keys, never objects."""

from __future__ import annotations

import asyncio

import django_rq
from redis.exceptions import LockError
from rq import Retry
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus

from migrations_engine.census.read import CensusResult, take_census
from migrations_engine.graph import GraphClient, GraphConfig, GraphConfigError
from migrations_engine.graph.config import unusable

CENSUS_JOB_TIMEOUT = 3600  # seconds; a 100,000-user census at the documented limits fits well inside
ITEM_JOB_TIMEOUT = 6 * 3600  # 100,000 users at 20 writes/s is ~1.5 h; verify may wait 10 min more


def census_job_id(tenant_pk: int) -> str:
    return f"census-tenant-{tenant_pk}"


def _actor_may_act(actor: str, tenant) -> bool:
    """Jobs re-check access when they run: a staff actor must still be granted the tenant. Process
    actors ("cli", "scheduler", "demo") are not staff users and are not scoped."""
    from django.contrib.auth import get_user_model

    from tenants.access import can_access

    user = get_user_model().objects.filter(username=actor).first()
    return user is None or can_access(user, tenant)


def census_tenant(tenant_pk: int, actor: str = "system") -> str:
    """RQ job: census one tenant and store it. Returns the census status."""
    from rq import get_current_job

    from tenants.choices import CensusStatus
    from tenants.models import CustomerTenant
    from tenants.services import CensusWriter, record_census

    tenant = CustomerTenant.objects.get(pk=tenant_pk)
    if not _actor_may_act(actor, tenant):
        return "refused: the staff member who asked for this census no longer has access to the tenant"
    try:
        config = GraphConfig.from_settings()
    except GraphConfigError as exc:  # e.g. the app certificate expired: shown like a login error
        result = CensusResult(status=CensusStatus.ERROR, message=unusable(exc))
        return record_census(tenant, result, actor=actor).census_status
    writer = CensusWriter(tenant)
    job = get_current_job()

    def progress(n: int) -> None:
        if job is not None:
            job.meta["users_done"] = job.meta.get("users_done", 0) + n
            job.save_meta()

    async def run():
        async with GraphClient(str(tenant.tenant_id), config, user_count=tenant.users_total) as client:
            try:
                return await take_census(
                    client, progress=progress, sink=writer.awrite, registration_sink=writer.aregistration
                )
            finally:
                await writer.aclose()

    result = asyncio.run(run())
    record_census(tenant, result, actor=actor, writer=writer)
    return result.status


def ping() -> str:
    """RQ job: proves the scheduler → queue → worker round trip (used by health checks)."""
    return "pong"


ALIVE_JOB_STATUSES = {JobStatus.QUEUED, JobStatus.STARTED, JobStatus.SCHEDULED, JobStatus.DEFERRED}


def _enqueue_once(
    job_id: str, func, *args, replace_started: bool = False, **options
) -> tuple[Job | None, bool]:
    """Enqueue `func(*args)` under `job_id` unless a job under that id is alive: (the job, whether it
    was enqueued now). A short Redis lock per job id keeps two callers (the run services on commit and
    the sweeper, or two staff asking for one census) from pushing the same id twice. `replace_started`
    replaces a job still marked started (the sweeper, when its worker is known dead). The job is None
    when another caller held the lock."""
    queue = django_rq.get_queue("default")
    lock = queue.connection.lock(f"msp:enqueue:{job_id}", timeout=30, blocking_timeout=10)
    if not lock.acquire():
        return None, False
    try:
        try:
            existing = Job.fetch(job_id, connection=queue.connection)
            status = existing.get_status(refresh=True)
            if status in ALIVE_JOB_STATUSES and not (replace_started and status == JobStatus.STARTED):
                return existing, False
            existing.delete()
        except NoSuchJobError:
            pass
        return queue.enqueue(func, *args, job_id=job_id, **options), True
    finally:
        try:
            lock.release()
        except LockError:  # it expired meanwhile: nothing to release
            pass


def enqueue_census(tenant_pk: int, *, actor: str = "system") -> Job:
    """Queue a census of one tenant, or return the one already queued or running for it."""
    job_id = census_job_id(tenant_pk)
    job, _ = _enqueue_once(
        job_id,
        census_tenant,
        tenant_pk,
        actor,
        job_timeout=CENSUS_JOB_TIMEOUT,
        retry=Retry(max=2, interval=[30, 120]),
        result_ttl=86400,
    )
    return job or Job.fetch(job_id, connection=django_rq.get_queue("default").connection)


def enqueue_item(item_pk: int, job_id: str, *, replace_started: bool = False) -> bool:
    """Enqueue one run item's job under its deterministic id unless a job under that id is alive (two
    jobs for one item would let two workers run it). True when a job was enqueued."""
    _, enqueued = _enqueue_once(
        job_id,
        run_item_job,
        item_pk,
        job_id,
        replace_started=replace_started,
        job_timeout=ITEM_JOB_TIMEOUT,
        retry=Retry(max=3, interval=[10, 60, 300]),
        result_ttl=7 * 86400,
        failure_ttl=30 * 86400,
    )
    return enqueued


def enqueue_items(run_pk: int) -> int:
    """Enqueue every queued item of a run under its deterministic job id (a job already queued or
    running under that id is left alone). Called on commit by the run services.

    Largest job first, as the last census sized it (users, twice over with security defaults on, whose
    users are bridged before they are disabled): each tenant is bound to Graph's 20 writes/s, so a
    large tenant started last would finish alone long after the others."""
    from migrations_engine.choices import ItemStatus
    from migrations_engine.models import RunItem

    items = largest_first(RunItem.objects.filter(run_id=run_pk, status=ItemStatus.QUEUED))
    count = 0
    for item_pk, job_id in items.values_list("pk", "rq_job_id"):
        count += enqueue_item(item_pk, job_id)
    return count


def largest_first(items):
    """Run items ordered by the work their tenant's last census sized (users, twice over with security
    defaults on), largest first; tenants never counted last."""
    from django.db.models import Case, F, IntegerField, When

    work = Case(
        When(tenant__security_defaults=True, then=F("tenant__users_total") * 2),
        default=F("tenant__users_total"),
        output_field=IntegerField(),
    )
    return items.annotate(work=work).order_by(F("work").desc(nulls_last=True), "pk")


def sweep_runs_job(stale_minutes: float = 5.0) -> str:
    """RQ job (repeated by rq-scheduler, see `sweeper.ensure_scheduled`): reconcile items with Redis."""
    from datetime import timedelta

    from migrations_engine.runs.sweeper import sweep

    return sweep(stale_after=timedelta(minutes=stale_minutes), actor="sweeper").summary()


def wave_fire_job(wave_pk: int) -> str:
    """RQ job (scheduled by rq-scheduler at the wave's next fire time, see `waves.schedule_fire`): fire the
    open window's slot if nobody has (the slot row decides) and release waiting tenants."""
    from migrations_engine.waves.services import tick

    return str(tick(wave_pk))


def wave_tick_job() -> str:
    """RQ job (repeated by rq-scheduler, see `waves.ensure_tick_scheduled`): tick every live wave, which
    catches a wave whose own scheduled job Redis lost."""
    from migrations_engine.waves.services import tick_all

    return "; ".join(str(r) for r in tick_all()) or "no live wave"


DRIFT_CHECK_JOB_TIMEOUT = 3600  # seconds; a check reads what a census reads, plus the policy and groups


def drift_check_job_id(tenant_pk: int) -> str:
    return f"drift-check-tenant-{tenant_pk}"


def drift_watch_job() -> str:
    """RQ job (repeated by rq-scheduler, see `drift.ensure_drift_scheduled`): queue a drift check of
    every migrated tenant, one job per tenant under a deterministic id."""
    from migrations_engine.drift.services import WATCH_ACTOR
    from migrations_engine.runs.migrated import migrated_tenants

    tenant_pks = list(migrated_tenants().order_by("pk").values_list("pk", flat=True))
    queued = sum(enqueue_drift_check(pk, actor=WATCH_ACTOR)[1] for pk in tenant_pks)
    return f"{len(tenant_pks)} migrated tenants: {queued} drift checks queued"


def enqueue_drift_check(tenant_pk: int, *, actor: str) -> tuple[Job | None, bool]:
    """Queue a drift check of one tenant unless one is queued or running: (the job, whether queued now)."""
    return _enqueue_once(
        drift_check_job_id(tenant_pk),
        drift_check_job,
        tenant_pk,
        actor,
        job_timeout=DRIFT_CHECK_JOB_TIMEOUT,
        result_ttl=7 * 86400,
        failure_ttl=30 * 86400,
    )


def drift_check_job(tenant_pk: int, actor: str = "scheduler:drift-watch") -> str:
    """RQ job: check one migrated tenant for drift (a recorded DriftCheck). Returns a one-line outcome."""
    from migrations_engine.drift.services import NotCheckable, check_tenant
    from tenants.models import CustomerTenant

    tenant = CustomerTenant.objects.filter(pk=tenant_pk).first()
    if tenant is None:
        return "skipped: the tenant no longer exists"
    if not _actor_may_act(actor, tenant):
        return "refused: the staff member who asked for this check no longer has access to the tenant"
    try:
        check = check_tenant(tenant, actor=actor)
    except NotCheckable as exc:
        return f"skipped: {exc}"
    return f"{check.status}: {check.error}" if check.error else str(check.status)


def run_item_job(item_pk: int, job_id: str) -> str:
    """RQ job: take one tenant through its run's pipeline, from its checkpoint."""
    from migrations_engine.runs.runner import run_item

    return run_item(item_pk, job_id)
