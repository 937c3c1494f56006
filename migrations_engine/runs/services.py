"""State changes for runs: start, approve, cancel, retry, resume, roll back. Callers parse input, call one.

A run is rows first, jobs second: the run and its items are created and committed, then one RQ job
per item is enqueued on commit with a deterministic id.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from migrations_engine.audit.writer import record_staff_action
from migrations_engine.choices import ACTIVE_ITEM_STATUSES, ItemStatus, RunMode, RunStatus
from migrations_engine.models import MigrationRun, RunItem
from migrations_engine.runs import options as run_options
from migrations_engine.runs import preflight
from migrations_engine.runs.queue import enqueue_items
from migrations_engine.runs.runner import finalize_run
from staff import roles
from staff.actors import Actor, actor_label
from tenants.access import can_access
from tenants.models import CustomerTenant

DEFAULT_OPTIONS: dict[str, Any] = {
    "settle_seconds": 600,  # verify polls this long for changes to take effect (the article: 5-10 min)
    "replication_wait_seconds": 60,  # how long a just-created policy may stay invisible
    "whatif_sample": 3,
    **run_options.EXTRA_DEFAULTS,  # optional steps, the grant, the readiness gate (run_options.py)
}


class RunConflict(Exception):
    """A tenant already has a run in progress; `existing` is that run."""

    def __init__(self, tenant: CustomerTenant, existing: MigrationRun) -> None:
        self.tenant = tenant
        self.existing = existing
        super().__init__(
            f"{tenant.primary_domain} already has run {existing.pk} in progress "
            f"({existing.get_mode_display()}, started by {existing.actor})"
        )


def job_id_for(item: RunItem, attempt: int) -> str:
    """Deterministic RQ job id: one per item and attempt (a re-queued item gets the next one)."""
    return f"run{item.run_id}-tenant{item.tenant_id}-attempt{attempt}"


def start_run(
    *,
    mode: str,
    tenants: Iterable[CustomerTenant],
    actor: Actor,
    pilot_group_id: str | None = None,
    options: dict[str, Any] | None = None,
    rollback_of: MigrationRun | None = None,
    remediation: bool = False,
) -> MigrationRun:
    """Create a run with one item per tenant and enqueue them once committed.

    Pre-flight first (migrations_engine/runs/preflight.py): a tenant that would be blocked (Entra ID Free,
    consent missing or partial, no break-glass, a stale census, open drift unless `remediation`) is left
    out, its reasons recorded on the run and in the audit log; when none remains, ValidationError names
    each tenant's reasons and nothing starts.

    With `RUN_APPROVAL_REQUIRED`, a full run is created `awaiting_approval` and nothing is enqueued
    until `approve_run`; its items are queued already, so its tenants stay reserved meanwhile.
    Raises ValidationError for bad input, PermissionDenied when a staff actor's role may not start this
    mode or a tenant is not granted to them, and RunConflict when a tenant is busy (checked here, and
    enforced by the database's one-active-item-per-tenant constraint when two starts race).
    """
    tenants = list(dict.fromkeys(tenants))
    if mode not in RunMode.values:
        raise ValidationError(f"Unknown mode {mode!r}; choose one of {', '.join(RunMode.values)}.")
    roles.require(actor, roles.FOR_MODE[mode])
    require_tenants(actor, tenants)
    if not tenants:
        raise ValidationError("Choose at least one tenant.")
    if mode == RunMode.PILOT:
        try:
            pilot_group_id = str(uuid.UUID(str(pilot_group_id)))
        except ValueError as exc:
            raise ValidationError("Pilot mode needs the pilot group's object id (a GUID).") from exc
    elif pilot_group_id:
        raise ValidationError("A pilot group only makes sense in pilot mode.")
    if (mode == RunMode.ROLLBACK) != (rollback_of is not None):
        raise ValidationError("Rollback runs are started with rollback_run (they name the run to undo).")
    unknown = set(options or {}) - set(DEFAULT_OPTIONS)
    if unknown:
        raise ValidationError(f"Unknown options: {', '.join(sorted(unknown))}.")
    merged = run_options.validate({**DEFAULT_OPTIONS, **(options or {})})
    tenants, left_out = _preflight(tenants, mode, remediation=remediation)
    user = actor if hasattr(actor, "username") else None
    needs_approval = mode == RunMode.FULL and settings.RUN_APPROVAL_REQUIRED
    try:
        with transaction.atomic():
            for tenant in tenants:
                _refuse_if_busy(tenant)
            run = MigrationRun.objects.create(
                mode=mode,
                pilot_group_id=pilot_group_id,
                options=merged,
                rollback_of=rollback_of,
                started_by=user,
                actor=actor_label(actor),
                status=RunStatus.AWAITING_APPROVAL if needs_approval else RunStatus.PENDING,
                preflight={"left_out": left_out},
            )
            for tenant in tenants:
                item = RunItem(run=run, tenant=tenant, attempt=1)
                item.rq_job_id = job_id_for(item, 1)
                with transaction.atomic():
                    item.save()
            transaction.on_commit(lambda: _after_start(run))
    except IntegrityError:
        for tenant in tenants:
            _refuse_if_busy(tenant)
        raise
    return run


def _preflight(
    tenants: list[CustomerTenant], mode: str, *, remediation: bool
) -> tuple[list[CustomerTenant], list[dict[str, Any]]]:
    """The tenants that may go, and the ones left out with their reasons. A busy tenant is not left out
    here: `_refuse_if_busy` refuses the whole start, pointing at the run that holds it."""
    if mode == RunMode.ROLLBACK:
        return tenants, []
    checks = preflight.check_tenants(tenants, mode=mode, remediation=remediation)
    go, left_out = [], []
    for check in checks:
        blocks = [
            b
            for b in check.blocks
            if check.busy_run_id is None or not b.startswith(f"Run {check.busy_run_id} ")
        ]
        if blocks:
            left_out.append(
                {"tenant_id": check.tenant.pk, "domain": check.tenant.primary_domain, "reasons": blocks}
            )
        else:
            go.append(check.tenant)
    if not go:
        raise ValidationError(
            "Nothing was started: every tenant is blocked. "
            + "; ".join(f"{row['domain']}: {', '.join(row['reasons'])}" for row in left_out)
        )
    return go, left_out


def require_tenants(actor: Actor, tenants: Iterable[CustomerTenant | int]) -> None:
    """PermissionDenied unless a staff actor may act on every one of `tenants` (a process may)."""
    if roles.is_person(actor) and not all(can_access(actor, tenant) for tenant in tenants):
        raise PermissionDenied("This touches a tenant you may not act on: nothing was done.")


def require_run_permission(run: MigrationRun, actor: Actor) -> None:
    """A staff actor may cancel, retry or resume a run only with the role that starts its mode and a
    grant on every one of its tenants."""
    roles.require(actor, roles.FOR_MODE[run.mode])
    require_tenants(actor, run.items.values_list("tenant_id", flat=True))


def _refuse_if_busy(tenant: CustomerTenant) -> None:
    busy = (
        RunItem.objects.filter(tenant=tenant, status__in=ACTIVE_ITEM_STATUSES).select_related("run").first()
    )
    if busy is not None:
        raise RunConflict(tenant, busy.run)


def _after_start(run: MigrationRun) -> None:
    awaiting = run.status == RunStatus.AWAITING_APPROVAL
    for row in (run.preflight or {}).get("left_out", []):
        record_staff_action(
            actor=run.actor,
            action="run.tenant_left_out",
            tenant_id=row["tenant_id"],
            run_id=run.pk,
            detail={"reasons": row["reasons"]},
        )
    for item in run.items.select_related("tenant"):
        record_staff_action(
            actor=run.actor,
            action="run.started",
            tenant_id=item.tenant_id,
            run_id=run.pk,
            detail={
                "mode": run.mode,
                "pilot_group_id": str(run.pilot_group_id or ""),
                "awaiting_approval": awaiting,
            },
        )
    if not awaiting:
        enqueue_items(run.pk)


def approve_run(run: MigrationRun, *, actor: Actor) -> MigrationRun:
    """A second staff member approves a run awaiting approval: it becomes pending and is enqueued.

    Refused (ValidationError) when the run is not awaiting approval or the approver started it;
    PermissionDenied when the approver may not act on every one of its tenants.
    """
    run.refresh_from_db()
    if run.status != RunStatus.AWAITING_APPROVAL:
        raise ValidationError(f"Run {run.pk} is {run.get_status_display().lower()}, not awaiting approval.")
    if not hasattr(actor, "username"):
        raise ValidationError("A run is approved by a staff member, not by a process.")
    roles.require(actor, roles.APPROVE)
    if (run.started_by_id is not None and run.started_by_id == actor.pk) or run.actor == actor.username:
        raise ValidationError(
            f"You started run {run.pk}: a second staff member must approve it, not the one who started it."
        )
    tenant_ids = list(run.items.values_list("tenant_id", flat=True))
    if not all(can_access(actor, tenant_id) for tenant_id in tenant_ids):
        raise PermissionDenied(f"You may not act on every tenant of run {run.pk}, so you cannot approve it.")
    now = timezone.now()
    # Compare-and-set: a concurrent cancel or second approval cannot both win.
    if not MigrationRun.objects.filter(pk=run.pk, status=RunStatus.AWAITING_APPROVAL).update(
        status=RunStatus.PENDING, approved_by=actor, approved_at=now
    ):
        raise ValidationError(f"Run {run.pk} is no longer awaiting approval.")
    run.refresh_from_db()

    def after_approval() -> None:
        for tenant_id in tenant_ids:
            record_staff_action(
                actor=actor_label(actor),
                action="run.approved",
                tenant_id=tenant_id,
                run_id=run.pk,
                detail={"mode": run.mode, "started_by": run.actor},
            )
        enqueue_items(run.pk)

    transaction.on_commit(after_approval)
    return run


def start_rollback(
    run: MigrationRun, *, actor: Actor, tenants: Iterable[CustomerTenant] | None = None
) -> MigrationRun:
    """Roll back `run` for its tenants that have a complete snapshot (or the ones given)."""
    if run.mode not in (RunMode.PILOT, RunMode.FULL):
        raise ValidationError(
            f"Run {run.pk} is a {run.get_mode_display()} run: only pilot and full runs "
            "changed anything to roll back."
        )
    eligible = CustomerTenant.objects.filter(run_items__run=run, run_items__snapshot__complete=True)
    if tenants is not None:
        wanted = {t.pk for t in tenants}
        eligible = eligible.filter(pk__in=wanted)
    eligible = list(eligible.distinct())
    if not eligible:
        raise ValidationError(f"Run {run.pk} took no complete snapshot: there is nothing to roll back.")
    return start_run(
        mode=RunMode.ROLLBACK,
        tenants=eligible,
        actor=actor,
        rollback_of=run,
        options={"settle_seconds": run.options.get("settle_seconds", 600)},
    )


def cancel_run(run: MigrationRun, *, actor: Actor) -> int:
    """Ask the run to stop between steps (cooperative). Returns how many items were still active.

    A run still awaiting approval never ran: it and its items are cancelled at once, which frees its
    tenants for another run. An approver may cancel (decline) a run awaiting their approval.
    """
    if run.status == RunStatus.AWAITING_APPROVAL and roles.may(actor, roles.APPROVE):
        require_tenants(actor, run.items.values_list("tenant_id", flat=True))
    else:
        require_run_permission(run, actor)
    now = timezone.now()
    if MigrationRun.objects.filter(pk=run.pk, status=RunStatus.AWAITING_APPROVAL).update(
        status=RunStatus.CANCELLED, cancel_requested=True, finished_at=now
    ):
        # No job was ever enqueued for these items, so no runner owns them: they end here.
        active = RunItem.objects.filter(run_id=run.pk, status=ItemStatus.QUEUED).update(
            status=ItemStatus.CANCELLED,
            failure_reason="Cancelled before it was approved",
            finished_at=now,
        )
    else:
        MigrationRun.objects.filter(pk=run.pk).update(cancel_requested=True)
        active = run.items.filter(status__in=ACTIVE_ITEM_STATUSES).count()
        # A wave's items still waiting for their window have no job: they end here.
        if RunItem.objects.filter(run_id=run.pk, status=ItemStatus.WAITING).update(
            status=ItemStatus.CANCELLED, failure_reason="Cancelled before its window", finished_at=now
        ):
            finalize_run(run.pk)
    for tenant_id in run.items.values_list("tenant_id", flat=True):
        record_staff_action(
            actor=actor_label(actor), action="run.cancelled", tenant_id=tenant_id, run_id=run.pk
        )
    return active


def move_to_next_attempt(item: RunItem, *, from_status: str, **match: Any) -> str | None:
    """Compare-and-set an item from `from_status` back to queued under the next attempt's job id (a job
    of the old attempt can no longer claim it). Returns the new job id, or None if the item moved on."""
    new_job = job_id_for(item, item.attempt + 1)
    moved = RunItem.objects.filter(pk=item.pk, status=from_status, attempt=item.attempt, **match).update(
        status=ItemStatus.QUEUED,
        rq_job_id=new_job,
        attempt=F("attempt") + 1,
        failure_reason="",
        retryable=False,
        traceback="",
        finished_at=None,
    )
    return new_job if moved else None


def requeue_items(run: MigrationRun, *, actor: Actor, statuses: Iterable[str], action: str) -> int:
    """Queue items in `statuses` again under a new deterministic job id; they resume at their checkpoint."""
    require_run_permission(run, actor)
    count = 0
    for item in run.items.filter(status__in=list(statuses)):
        old = item.status
        new_job = move_to_next_attempt(item, from_status=old)
        if new_job:
            count += 1
            record_staff_action(
                actor=actor_label(actor),
                action=action,
                tenant_id=item.tenant_id,
                run_id=run.pk,
                detail={"from": old, "job": new_job},
            )
    if count:
        MigrationRun.objects.filter(pk=run.pk).update(status=RunStatus.RUNNING, finished_at=None)
        transaction.on_commit(lambda: enqueue_items(run.pk))
    return count


def retry_failed(run: MigrationRun, *, actor: Actor) -> int:
    """Run failed and errored items again from where they stopped."""
    return requeue_items(
        run, actor=actor, statuses=[ItemStatus.FAILED, ItemStatus.ERRORED], action="run.retried"
    )


def resume_rollback(run: MigrationRun, *, actor: Actor) -> int:
    """Finish a rollback that was cancelled or failed part-way: its tenants left part-way or never reached
    run again from their checkpoint (each step reads Graph first)."""
    if run.mode != RunMode.ROLLBACK:
        raise ValidationError("Only a rollback run is finished this way.")
    if run.items.filter(status__in=ACTIVE_ITEM_STATUSES).exists():
        raise ValidationError("This rollback is still running: let it finish.")
    require_run_permission(run, actor)
    MigrationRun.objects.filter(pk=run.pk).update(cancel_requested=False)
    return requeue_items(
        run,
        actor=actor,
        statuses=[ItemStatus.CANCELLED, ItemStatus.FAILED, ItemStatus.ERRORED],
        action="run.rollback_finished",
    )


def resume_stalled(run: MigrationRun, *, actor: Actor) -> int:
    """Re-queue items left *running* by a worker that died (their job is gone)."""
    return requeue_items(run, actor=actor, statuses=[ItemStatus.RUNNING], action="run.resumed")
