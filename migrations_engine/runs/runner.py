"""Claims one run item and takes it through its pipeline from its checkpoint. Owns item status.

Every status change is a compare-and-set update (`filter(pk=…, status=old).update(…)`), so two
workers can never both run an item, and a finished item cannot be reopened by a stale job.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import traceback
from typing import Any

from asgiref.sync import sync_to_async
from django.core.exceptions import ValidationError
from django.db import connections, transaction
from django.db.models.functions import Coalesce
from django.utils import timezone

from migrations_engine.audit.writer import AuditContext, WriteOutcome, record_outcomes
from migrations_engine.choices import (
    ACTIVE_ITEM_STATUSES,
    RUNNABLE_ITEM_STATUSES,
    AuditKind,
    AuditOutcome,
    ItemStatus,
    RunMode,
    RunStatus,
)
from migrations_engine.faults import crash_point
from migrations_engine.graph import (
    GraphClient,
    GraphConfig,
    GraphConfigError,
    GraphError,
    GraphUnavailable,
    TokenError,
)
from migrations_engine.graph.config import unusable
from migrations_engine.models import AuditEvent, MigrationRun, RunItem
from migrations_engine.runs import options as run_options
from migrations_engine.runs.pipeline import steps_for
from migrations_engine.runs.tenant_state import record_plan, refresh_quietly
from migrations_engine.steps.base import StepContext, StepFailed, graph_failure
from msp_console.log_context import working_on
from staff import roles
from tenants.access import can_access

logger = logging.getLogger(__name__)


def worker_label() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def run_item(item_pk: int, job_id: str) -> str:
    """Run one item (the RQ job's body). Returns the item's final status, or "not claimed"."""
    now = timezone.now()
    claimed = (
        RunItem.objects.filter(pk=item_pk, rq_job_id=job_id, status__in=RUNNABLE_ITEM_STATUSES)
        # A stray job must not bypass the second staff member's approval.
        .exclude(run__status=RunStatus.AWAITING_APPROVAL)
        .update(
            status=ItemStatus.RUNNING,
            claimed_by=worker_label(),
            heartbeat_at=now,
            started_at=Coalesce("started_at", now),
        )
    )
    if not claimed:
        logger.info("item %s not claimed by job %s (finished, cancelled or re-queued)", item_pk, job_id)
        return "not claimed"
    item = RunItem.objects.select_related("run", "run__started_by", "tenant", "tenant__break_glass").get(
        pk=item_pk
    )
    with working_on(item.run_id, item.pk):  # every log line of this item carries its run and item ids
        if item.run.mode != RunMode.PLAN:
            refresh_quietly(item.tenant_id)  # migrating, or rolling back, from now
        return _run_claimed(item, job_id)


def _run_claimed(item: RunItem, job_id: str) -> str:
    run = item.run
    close_dangling_intents(item)
    if run.started_by_id and not can_access(run.started_by, item.tenant):
        # Access is checked again when the job runs: a grant revoked after the start stops it here.
        reason = f"{run.started_by} started this run but lost access to this tenant: nothing was done"
        _finish(item, job_id, ItemStatus.FAILED, reason=reason)
        finalize_run(run.pk)
        return ItemStatus.FAILED
    if run.started_by_id and not roles.may(run.started_by, roles.FOR_MODE[run.mode]):
        # So is the role: a starter whose role was taken away after the start stops here too.
        reason = f"{run.started_by}'s role no longer allows this kind of run: nothing was done"
        _finish(item, job_id, ItemStatus.FAILED, reason=reason)
        finalize_run(run.pk)
        return ItemStatus.FAILED
    MigrationRun.objects.filter(pk=run.pk, status=RunStatus.PENDING).update(status=RunStatus.RUNNING)
    try:
        status = _run_steps(item, run, job_id)
    finally:
        finalize_run(run.pk)
    return status


PIPELINE_CHANGED = (
    "The console was upgraded while this tenant was part-way through a run, and the steps changed: its "
    "checkpoint ({done}) is not the start of today's steps ({expected}), so its next step cannot be known. "
    "Nothing was changed now; start a new run for this tenant (each step reads Graph's state first)."
)


def _pipeline_changed(item: RunItem, steps) -> str:
    """The reason to refuse an item whose finished steps are not the first steps of today's pipeline (its
    checkpoint, an index, was made by another release), else ""."""
    done = [entry["key"] for entry in item.step_log if entry.get("status") == "done"]
    keys = [step.key for step in steps]
    expected = keys[: item.next_step_index]
    # A worker killed between logging a step done and moving the checkpoint leaves that one step extra.
    if done in (expected, keys[: item.next_step_index + 1]):
        return ""
    return PIPELINE_CHANGED.format(done=", ".join(done) or "none", expected=", ".join(expected) or "none")


def _run_steps(item: RunItem, run: MigrationRun, job_id: str) -> str:
    steps = steps_for(run.mode)
    changed = _pipeline_changed(item, steps)
    if changed:
        logger.error("item %s: %s", item.pk, changed)
        return _finish(item, job_id, ItemStatus.FAILED, reason=changed, retryable=False)
    try:
        # Checked when the run was made; a row written around that (or by an older release) stops here,
        # in words, before a step meets a value of the wrong type.
        run_options.validate(run.options or {})
    except ValidationError as exc:
        reason = (
            f"The run's options cannot be used ({' '.join(exc.messages)}): no step was run; start a new run."
        )
        logger.error("item %s: %s", item.pk, reason)
        return _finish(item, job_id, ItemStatus.FAILED, reason=reason, retryable=False)
    try:
        config = GraphConfig.from_settings()
    except GraphConfigError as exc:  # e.g. the app certificate expired: fix the settings, then retry
        logger.error("item %s: %s", item.pk, unusable(exc))
        return _finish(item, job_id, ItemStatus.FAILED, reason=unusable(exc), retryable=True)
    audit = AuditContext(actor=run.actor, tenant_id=item.tenant_id, run_id=run.pk, item_id=item.pk)
    loop = asyncio.new_event_loop()
    graph = GraphClient(
        str(item.tenant.tenant_id),
        config,
        audit=audit,
        dry_run=run.mode == "plan",
        user_count=item.tenant.users_total,
    )
    ctx = None
    try:
        loop.run_until_complete(graph.__aenter__())
        ctx = StepContext(
            item=item, run=run, tenant=item.tenant, graph=graph, loop=loop, settings=run.options or {}
        )
        while item.next_step_index < len(steps):
            at = item.next_step_index
            ctx.start_early_reads(steps[at:], {step.key for step in steps[:at]})
            if MigrationRun.objects.filter(pk=run.pk, cancel_requested=True).exists():
                return _finish(item, job_id, ItemStatus.CANCELLED, reason="Cancelled by staff between steps")
            index = item.next_step_index
            step = steps[index]
            audit.step = step.key
            _log(item, step.key, step.title, "running")
            crash_point(f"before_step:{step.key}")
            try:
                message = step.run(ctx)
            except (GraphError, GraphUnavailable, TokenError) as exc:
                # Graph or login trouble that outlived the client's retries: expected, not a bug.
                failure = graph_failure(exc)
                _log(item, step.key, step.title, "failed", failure.reason)
                return _finish(
                    item, job_id, ItemStatus.FAILED, reason=failure.reason, retryable=failure.retryable
                )
            except StepFailed as exc:
                _log(item, step.key, step.title, "failed", exc.reason)
                return _finish(item, job_id, ItemStatus.FAILED, reason=exc.reason, retryable=exc.retryable)
            except Exception as exc:  # a bug or an unexpected answer: keep the traceback for a human
                _log(item, step.key, step.title, "errored", f"{type(exc).__name__}: {exc}")
                return _finish(
                    item,
                    job_id,
                    ItemStatus.ERRORED,
                    reason=f"{type(exc).__name__}: {exc}",
                    tb=traceback.format_exc(),
                )
            _log(item, step.key, step.title, "done", message)
            advanced = RunItem.objects.filter(pk=item.pk, next_step_index=index, rq_job_id=job_id).update(
                next_step_index=index + 1, step_log=item.step_log, heartbeat_at=timezone.now()
            )
            if not advanced:
                raise RuntimeError(f"item {item.pk} checkpoint moved under this job: another job owns it")
            item.next_step_index = index + 1
            crash_point(f"after_step:{step.key}")
        return _finish(item, job_id, ItemStatus.SUCCEEDED)
    finally:
        try:
            if ctx is not None:
                ctx.cancel_early_reads()
            loop.run_until_complete(graph.__aexit__(None, None, None))
            # The audit rows were written from asgiref's shared thread: close its database connection.
            loop.run_until_complete(sync_to_async(connections.close_all, thread_sensitive=True)())
        finally:
            loop.close()


def close_dangling_intents(item: RunItem) -> int:
    """A worker that died between a Graph write and its outcome row left an intent without an outcome:
    record it as `unknown`, so the resumed steps reconcile it by reading (check-then-act)."""
    dangling = list(
        AuditEvent.objects.filter(item_id=item.pk, kind=AuditKind.GRAPH_WRITE, outcome=AuditOutcome.INTENT)
        .exclude(outcomes__kind=AuditKind.GRAPH_WRITE)
        .order_by("seq")
    )
    if dangling:
        ctx = AuditContext(
            actor=item.run.actor,
            tenant_id=item.tenant_id,
            run_id=item.run_id,
            item_id=item.pk,
            step=dangling[0].step,
        )
        record_outcomes(
            ctx,
            [
                WriteOutcome(
                    intent=row, outcome="unknown", error="the worker stopped before the outcome was recorded"
                )
                for row in dangling
            ],
        )
    return len(dangling)


def _log(item: RunItem, key: str, title: str, status: str, message: str = "") -> None:
    """Record a step's progress in the item's step log (one entry per step, latest attempt wins)."""
    now = timezone.now().isoformat()
    entry: dict[str, Any] = next((e for e in item.step_log if e["key"] == key), None) or {}
    if not entry:
        item.step_log.append(entry)
    if status == "running":
        entry.clear()
        entry.update(key=key, title=title, status="running", started_at=now, attempt=item.attempt)
    else:
        entry.update(key=key, title=title, status=status, finished_at=now, message=message)
    RunItem.objects.filter(pk=item.pk).update(
        step_log=item.step_log, current_step=key if status == "running" else ""
    )


def _finish(
    item: RunItem, job_id: str, status: str, *, reason: str = "", retryable: bool = False, tb: str = ""
) -> str:
    finished = RunItem.objects.filter(pk=item.pk, rq_job_id=job_id, status=ItemStatus.RUNNING).update(
        status=status,
        failure_reason=reason,
        retryable=retryable,
        traceback=tb,
        current_step="",
        finished_at=timezone.now(),
        heartbeat_at=timezone.now(),
    )
    logger.info("item %s (%s) %s %s", item.pk, item.tenant, status, reason)
    if finished:
        item.status = status
        _tenant_changed(item)
    return status


def _tenant_changed(item: RunItem) -> None:
    """What the tenant is follows its real runs; a plan is only remembered as its last plan."""
    if item.run.mode == RunMode.PLAN:
        record_plan(item)
    else:
        refresh_quietly(item.tenant_id)


def finalize_run(run_pk: int) -> str:
    """Set the run's status from its items (the only place a run's status changes after start).

    Two workers finishing the run's last two items call this at once: each reads the items only once it
    holds the run's row lock, so the one that runs last sees both items finished and its answer stands
    (read outside the lock, a stale "running" could be written after "succeeded").
    """
    with transaction.atomic():
        run = MigrationRun.objects.select_for_update().get(pk=run_pk)
        items = list(RunItem.objects.filter(run_id=run_pk).values_list("status", flat=True))
        if run.status == RunStatus.AWAITING_APPROVAL:
            return run.status  # nothing of it has run; approval or cancel moves it on
        if any(s in ACTIVE_ITEM_STATUSES for s in items):
            started = any(s not in (ItemStatus.QUEUED, ItemStatus.WAITING) for s in items)
            status = RunStatus.RUNNING if started else run.status
            if run.status != status:
                MigrationRun.objects.filter(pk=run_pk).update(status=status, finished_at=None)
            return status
        if run.cancel_requested and any(s == ItemStatus.CANCELLED for s in items):
            status = RunStatus.CANCELLED
        elif items and all(s == ItemStatus.SUCCEEDED for s in items):
            status = RunStatus.SUCCEEDED
        else:
            status = RunStatus.FAILED
        MigrationRun.objects.filter(pk=run_pk).update(status=status, finished_at=timezone.now())
        return status
