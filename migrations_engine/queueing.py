"""Putting work on the RQ queue: job ids, timeouts, retries, the enqueue-once lock and rq-scheduler
registration. It imports no feature code: a job is named by its task's dotted path (each feature's
`tasks.py` holds its thin RQ entry points and imports its feature at the top), so a feature that queues
work never imports another feature's tasks, and no import cycle runs through the queue.

Jobs take primary keys, never objects.
"""

from __future__ import annotations

from datetime import UTC, datetime

import django_rq
from django.contrib.auth import get_user_model
from redis.exceptions import LockError
from rq import Retry
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus

from tenants.access import can_access

# The tasks, by dotted path (rq imports them in the worker). tests/test_layout.py resolves every one.
RUN_ITEM_TASK = "migrations_engine.runs.tasks.run_item_job"
SWEEP_TASK = "migrations_engine.runs.tasks.sweep_runs_job"
CENSUS_TASK = "migrations_engine.census.tasks.census_tenant"
DRIFT_CHECK_TASK = "migrations_engine.drift.tasks.drift_check_job"
DRIFT_WATCH_TASK = "migrations_engine.drift.tasks.drift_watch_job"
WAVE_FIRE_TASK = "migrations_engine.waves.tasks.wave_fire_job"
WAVE_TICK_TASK = "migrations_engine.waves.tasks.wave_tick_job"
EXPORT_DUE_TASK = "migrations_engine.exports.tasks.export_due_job"
PING_TASK = "migrations_engine.queueing.ping"
AUDIT_VERIFY_TASK = "migrations_engine.audit.tasks.verify_chain_job"

CENSUS_JOB_TIMEOUT = 3600  # seconds; a 100,000-user census at the documented limits fits well inside
ITEM_JOB_TIMEOUT = 6 * 3600  # 100,000 users at 20 writes/s is ~1.5 h; verify may wait 10 min more
DRIFT_CHECK_JOB_TIMEOUT = 3600  # seconds; a check reads what a census reads, plus the policy and groups
CENSUS_RETRY = (2, [30, 120])  # (max, intervals in seconds)
ITEM_RETRY = (3, [10, 60, 300])

AUDIT_VERIFY_JOB_TIMEOUT = 3600  # seconds; a full walk of a million-row chain takes about a minute

ALIVE_JOB_STATUSES = {JobStatus.QUEUED, JobStatus.STARTED, JobStatus.SCHEDULED, JobStatus.DEFERRED}


def census_job_id(tenant_pk: int) -> str:
    return f"census-tenant-{tenant_pk}"


def drift_check_job_id(tenant_pk: int) -> str:
    return f"drift-check-tenant-{tenant_pk}"


def retry(policy: tuple[int, list[int]]) -> Retry:
    return Retry(max=policy[0], interval=policy[1])


def actor_may_act(actor: str, tenant) -> bool:
    """Jobs re-check access when they run: a staff actor must still be granted the tenant. Process
    actors ("cli", "scheduler", "demo") are not staff users and are not scoped."""
    user = get_user_model().objects.filter(username=actor).first()
    return user is None or can_access(user, tenant)


def ping() -> str:
    """RQ job: proves the scheduler → queue → worker round trip (used by health checks)."""
    return "pong"


def enqueue_once(
    job_id: str, task: str, *args, replace_started: bool = False, **options
) -> tuple[Job | None, bool]:
    """Enqueue `task(*args)` under `job_id` unless a job under that id is alive: (the job, whether it
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
        return queue.enqueue(task, *args, job_id=job_id, **options), True
    finally:
        try:
            lock.release()
        except LockError:  # it expired meanwhile: nothing to release
            pass


def enqueue_each(task: str, calls: list[tuple], *, job_id: str, timeout: int) -> int:
    """Enqueue `task(*args)` for each args tuple in one Redis round trip (`job_id` is formatted with the
    first argument); how many were queued. For many small idempotent jobs (chain checks): running one
    twice costs a little time, never a wrong result, so there is no enqueue-once lock."""
    queue = django_rq.get_queue("default")
    datas = [
        queue.prepare_data(task, args, job_id=job_id.format(args[0]), timeout=timeout, result_ttl=600)
        for args in calls
    ]
    with queue.connection.pipeline() as pipe:
        jobs = queue.enqueue_many(datas, pipeline=pipe)
        pipe.execute()
    return len(jobs)


def fetch(job_id: str) -> Job:
    return Job.fetch(job_id, connection=django_rq.get_queue("default").connection)


def repeat(
    job_id: str, task: str, *, interval: int, timeout: int, result_ttl: int = 600, keep_same: bool = False
):
    """Register `task` as a repeating rq-scheduler job under `job_id`, every `interval` s, first run now.

    An earlier registration is replaced; with `keep_same` one with the same interval is kept as it is
    (so re-registering, as every scheduler start does, does not run the job at once)."""
    scheduler = django_rq.get_scheduler("default")
    for job in scheduler.get_jobs():
        if job.id != job_id:
            continue
        if keep_same and job.meta.get("interval") == interval:
            return job
        scheduler.cancel(job)
    return scheduler.schedule(
        scheduled_time=datetime.now(tz=UTC),
        func=task,
        interval=interval,
        repeat=None,
        id=job_id,
        timeout=timeout,
        result_ttl=result_ttl,
    )


def schedule_once(job_id: str, task: str, *args, at: datetime | None, timeout: int, result_ttl: int) -> None:
    """(Re)schedule `task(*args)` under `job_id` at `at` in rq-scheduler; `at` None only cancels it."""
    scheduler = django_rq.get_scheduler("default")
    scheduler.cancel(job_id)
    if at is not None:
        scheduler.enqueue_at(at, task, *args, job_id=job_id, timeout=timeout, job_result_ttl=result_ttl)
