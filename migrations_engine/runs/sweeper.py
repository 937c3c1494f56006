"""The sweeper: reconcile run items (the source of truth, in the database) with their jobs in Redis.

A run is rows first, jobs second. When Redis loses a job (flushed, restarted without persistence) or a
worker dies mid-item (SIGKILL, OOM, a lost host), the item's row still says what should happen:

- a *queued* item whose job is not alive is enqueued again under the same deterministic job id;
- a *running* item whose job failed or stopped, or whose worker is dead, or whose job Redis lost while
  the process that claimed it is gone (or its heartbeat is older than `stale_after`: a flush does not
  stop a live worker), is re-queued under the next attempt's job id (like `services.resume_stalled`,
  one item at a time) and a `run.swept` staff action is recorded; it resumes at its checkpoint, and
  its steps reconcile writes left unknown;
- a running item whose job exists but is not started (queued again by RQ, finished) is re-queued only
  once its heartbeat is older than `stale_after`;
- an item whose job is alive (queued, scheduled, deferred, or started by a live worker) is never touched.

A started job's worker is dead when its RQ worker key has expired (workers refresh it every 30 s while
a job runs, with a 90 s TTL), or, sooner, when the worker ran on this host and its process is gone.
Run it with `manage.py sweep_runs`, or every 60 s through rq-scheduler (schedules.SWEEPER_ID, which
`manage.py schedule_sweeper` registers).
"""

from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import django_rq
from django.utils import timezone
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus
from rq.worker import Worker

from migrations_engine.audit.writer import record_staff_action
from migrations_engine.choices import ItemStatus, RunStatus
from migrations_engine.models import MigrationRun, RunItem
from migrations_engine.queueing import ALIVE_JOB_STATUSES
from migrations_engine.runs.queue import enqueue_item
from migrations_engine.runs.services import move_to_next_attempt
from msp_console.words import counted

logger = logging.getLogger(__name__)


@dataclass
class SweepAction:
    item_pk: int
    run_pk: int
    tenant: str
    action: str  # "enqueued" (queued item, same job id) or "requeued" (running item, next attempt)
    reason: str
    job_id: str

    def __str__(self) -> str:
        return f"run {self.run_pk} / {self.tenant}: {self.action} as {self.job_id} ({self.reason})"


@dataclass
class SweepReport:
    checked: int = 0
    actions: list[SweepAction] = field(default_factory=list)
    left_alone: int = 0

    @property
    def enqueued(self) -> list[SweepAction]:
        return [a for a in self.actions if a.action == "enqueued"]

    @property
    def requeued(self) -> list[SweepAction]:
        return [a for a in self.actions if a.action == "requeued"]

    def summary(self) -> str:
        return (
            f"checked {counted(self.checked, 'active item')}: {len(self.enqueued)} enqueued again, "
            f"{len(self.requeued)} stalled re-queued, {self.left_alone} left alone"
        )


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, belongs to someone else
        return True
    return True


def worker_alive(connection, worker_name: str | None) -> bool:
    """Whether the RQ worker that started a job still lives (see the module docstring)."""
    if not worker_name:
        return False
    key = f"{Worker.redis_worker_namespace_prefix}{worker_name}"
    hostname, pid = connection.hmget(key, "hostname", "pid")
    if hostname is None and pid is None and not connection.exists(key):
        return False  # its key expired: no heartbeat for longer than the worker TTL
    if hostname is not None and pid and hostname.decode() == socket.gethostname():
        return _pid_alive(int(pid))
    return True


def claimer_alive(claimed_by: str) -> bool | None:
    """Whether the process that claimed an item (`runner.worker_label()`, "host:pid") still runs:
    True or False on this host, None (cannot tell) on another."""
    host, _, pid = (claimed_by or "").rpartition(":")
    if not host or not pid.isdigit() or host != socket.gethostname():
        return None
    return _pid_alive(int(pid))


def job_state(connection, job_id: str) -> tuple[str, bool]:
    """(status, alive) of the job under `job_id`; status "missing" when Redis has no such job."""
    if not job_id:
        return "missing", False
    try:
        job = Job.fetch(job_id, connection=connection)
    except NoSuchJobError:
        return "missing", False
    status = job.get_status(refresh=True)
    if status is None:
        return "missing", False
    status = str(status.value if isinstance(status, JobStatus) else status)
    if status == JobStatus.STARTED:
        return status, worker_alive(connection, job.worker_name)
    return status, status in ALIVE_JOB_STATUSES


def sweep(
    *, now: datetime | None = None, stale_after: timedelta = timedelta(minutes=5), actor: str = "sweeper"
) -> SweepReport:
    """Re-enqueue queued items whose job vanished and re-queue running items whose job or worker died."""
    now = now or timezone.now()
    connection = django_rq.get_queue("default").connection
    report = SweepReport()
    items = (
        RunItem.objects.filter(status__in=[ItemStatus.QUEUED, ItemStatus.RUNNING])
        .exclude(run__status=RunStatus.AWAITING_APPROVAL)  # nothing may run before its approval
        .select_related("tenant")
        .order_by("pk")
    )
    for item in items:
        report.checked += 1
        status, alive = job_state(connection, item.rq_job_id)
        if item.status == ItemStatus.QUEUED:
            if alive:
                report.left_alone += 1
                continue
            if enqueue_item(item.pk, item.rq_job_id, replace_started=status == JobStatus.STARTED):
                report.actions.append(_action(item, "enqueued", f"job {status}", item.rq_job_id))
            else:
                report.left_alone += 1
            continue
        # running
        stale = item.heartbeat_at is None or item.heartbeat_at < now - stale_after
        claimer = claimer_alive(item.claimed_by)
        if status == JobStatus.STARTED:
            reason = None if alive else "its worker died"
        elif status in (JobStatus.FAILED, JobStatus.STOPPED, JobStatus.CANCELED):
            reason = f"job {status}"
        elif status == "missing":
            # Redis lost the job, but the worker running it may still be at work (a flush does not stop
            # it): wait for proof that it died, or for its heartbeat to go stale.
            if claimer is False:
                reason = "job missing and its worker died"
            elif stale:
                reason = f"job missing and no heartbeat since {item.heartbeat_at}"
            else:
                reason = None
        elif stale:
            reason = f"job {status} and no heartbeat since {item.heartbeat_at}"
        else:
            reason = None
        if reason is None:
            report.left_alone += 1
            continue
        action = _requeue_running(item, reason=reason, actor=actor)
        if action is None:
            report.left_alone += 1  # it moved on meanwhile (finished, or another sweeper got it)
        else:
            report.actions.append(action)
    for action in report.actions:
        logger.warning("sweeper: %s", action)
    return report


def _action(item: RunItem, action: str, reason: str, job_id: str) -> SweepAction:
    return SweepAction(
        item_pk=item.pk,
        run_pk=item.run_id,
        tenant=item.tenant.primary_domain,
        action=action,
        reason=reason,
        job_id=job_id,
    )


def _requeue_running(item: RunItem, *, reason: str, actor: str) -> SweepAction | None:
    """`services.requeue_items` for one running item: compare-and-set to queued under the next
    attempt's job id (a stale job of the old attempt can no longer claim it), then enqueue."""
    new_job = move_to_next_attempt(item, from_status=ItemStatus.RUNNING, rq_job_id=item.rq_job_id)
    if not new_job:
        return None
    record_staff_action(
        actor=actor,
        action="run.swept",
        tenant_id=item.tenant_id,
        run_id=item.run_id,
        detail={"from": ItemStatus.RUNNING, "old_job": item.rq_job_id, "job": new_job, "reason": reason},
    )
    MigrationRun.objects.filter(pk=item.run_id).update(status=RunStatus.RUNNING, finished_at=None)
    enqueue_item(item.pk, new_job)
    return _action(item, "requeued", reason, new_job)
