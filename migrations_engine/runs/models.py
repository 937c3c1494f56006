"""Migration runs: a run is rows first (one item per tenant), RQ jobs second."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.db.models.functions import Now
from django.utils import timezone

from migrations_engine.choices import (
    ACTIVE_ITEM_STATUSES,
    ItemStatus,
    RunMode,
    RunStatus,
    UserOutcomeStatus,
)


class MigrationRun(models.Model):
    """A request to take a set of tenants through the pipeline in one mode.

    The finalizer sets `status` from the items; staff never edit it. With `RUN_APPROVAL_REQUIRED` a
    full run starts `awaiting_approval` and is enqueued only once a second staff member approves it.
    """

    mode = models.CharField(max_length=10, choices=RunMode)
    status = models.CharField(max_length=20, choices=RunStatus, default=RunStatus.PENDING)
    pilot_group_id = models.UUIDField(null=True, blank=True, help_text="Pilot mode: the group in scope")
    options = models.JSONField(default=dict, blank=True)
    rollback_of = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="rollbacks"
    )
    started_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor = models.CharField(max_length=150, help_text="Who started it: a username or a process label")
    cancel_requested = models.BooleanField(default=False)
    wave = models.ForeignKey(
        "migrations_engine.Wave", null=True, blank=True, on_delete=models.PROTECT, related_name="runs"
    )
    ring = models.PositiveSmallIntegerField(null=True, blank=True, help_text="The wave's ring this run is")
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    approved_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # The pre-flight's tenants left out at the start, each with its reasons (runs/preflight.py).
    preflight = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            # the run list, newest first, filtered by status
            models.Index(fields=["status", "-created_at"], name="me_run_status_created"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["wave", "ring"],
                condition=Q(wave__isnull=False),
                name="%(app_label)s_%(class)s_one_run_per_ring",
                violation_error_message="This ring of the wave already has its run.",
            ),
        ]

    def __str__(self) -> str:
        return f"Run {self.pk} · {self.get_mode_display()}"  # "Run 1 · Plan (dry run)", never nested brackets


class RunItemQuerySet(models.QuerySet):
    """Every `update()` of items also stamps `changed_at` (the run page's progress sends only the items
    changed since its last poll), so no caller can forget it."""

    def update(self, **kwargs: Any) -> int:
        kwargs.setdefault("changed_at", timezone.now())
        return super().update(**kwargs)

    update.queryset_only = True


class RunItem(models.Model):
    """One tenant's progress through one run: status, checkpoint, step log, counters.

    `next_step_index` is the checkpoint: a retried or resumed job starts there. `state` holds what
    steps need to resume without repeating a write (policy id, whether a create was attempted, ...).
    """

    run = models.ForeignKey(MigrationRun, on_delete=models.CASCADE, related_name="items")
    tenant = models.ForeignKey("tenants.CustomerTenant", on_delete=models.PROTECT, related_name="run_items")
    status = models.CharField(max_length=10, choices=ItemStatus, default=ItemStatus.QUEUED)
    next_step_index = models.PositiveSmallIntegerField(default=0)
    current_step = models.CharField(max_length=40, blank=True)
    attempt = models.PositiveIntegerField(default=1, help_text="Which job attempt owns it")
    rq_job_id = models.CharField(max_length=100, blank=True)
    step_log = models.JSONField(default=list, blank=True)
    counters = models.JSONField(default=dict, blank=True)
    state = models.JSONField(default=dict, blank=True)
    plan_diff = models.JSONField(default=list, blank=True)
    verdict = models.TextField(blank=True)
    failure_reason = models.TextField(blank=True)
    retryable = models.BooleanField(default=False)
    traceback = models.TextField(blank=True)
    claimed_by = models.CharField(max_length=200, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    changed_at = models.DateTimeField(
        default=timezone.now, db_default=Now(), help_text="Set by every save and update"
    )

    objects = RunItemQuerySet.as_manager()

    class Meta:
        ordering = ["run_id", "tenant__display_name"]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant"],
                condition=Q(status__in=ACTIVE_ITEM_STATUSES),
                name="%(app_label)s_%(class)s_one_active_per_tenant",
                violation_error_message="This tenant already has a run in progress.",
            ),
            models.UniqueConstraint(fields=["run", "tenant"], name="%(app_label)s_%(class)s_once_per_run"),
        ]
        indexes = [
            # the sweeper: running items whose heartbeat is old
            models.Index(fields=["status", "heartbeat_at"], name="me_item_status_heartbeat"),
            # the run page's progress: a run's items changed since the last poll
            models.Index(fields=["run", "changed_at"], name="me_item_run_changed"),
        ]

    def __str__(self) -> str:
        return f"Run {self.run_id} / {self.tenant_id}: {self.get_status_display()}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        self.changed_at = timezone.now()
        if kwargs.get("update_fields") is not None:
            kwargs["update_fields"] = {*kwargs["update_fields"], "changed_at"}
        super().save(*args, **kwargs)


class TenantSnapshot(models.Model):
    """What a tenant looked like before a run changed it: SD, CA policies and every user's state.

    `complete` turns true once every user row is written; rollback uses only complete snapshots.
    """

    item = models.OneToOneField(RunItem, on_delete=models.CASCADE, related_name="snapshot")
    tenant = models.ForeignKey("tenants.CustomerTenant", on_delete=models.PROTECT, related_name="snapshots")
    taken_at = models.DateTimeField(auto_now_add=True)
    security_defaults = models.BooleanField(null=True)
    policies = models.JSONField(default=list, blank=True)
    user_count = models.PositiveIntegerField(default=0)
    complete = models.BooleanField(default=False)

    def __str__(self) -> str:
        return f"Snapshot of {self.tenant_id} for item {self.item_id}"


class UserSnapshot(models.Model):
    """One user's per-user MFA state in a snapshot."""

    snapshot = models.ForeignKey(TenantSnapshot, on_delete=models.CASCADE, related_name="users")
    user_id = models.CharField(max_length=64)
    upn = models.CharField(max_length=320)
    per_user_state = models.CharField(max_length=20)
    account_enabled = models.BooleanField(default=True)
    user_type = models.CharField(max_length=20, blank=True)
    mfa_registered = models.BooleanField(
        null=True, help_text="From the registration report, read by the readiness gate (None: not in it)"
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["snapshot", "user_id"], name="%(app_label)s_%(class)s_once_per_snapshot"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.upn}: {self.per_user_state}"


class UserOutcome(models.Model):
    """What a run did to one user's per-user MFA state (the per-user failures a run page lists)."""

    item = models.ForeignKey(RunItem, on_delete=models.CASCADE, related_name="user_outcomes")
    user_id = models.CharField(max_length=64)
    upn = models.CharField(max_length=320)
    before = models.CharField(max_length=20)
    wanted = models.CharField(max_length=20)
    status = models.CharField(max_length=10, choices=UserOutcomeStatus)
    http_status = models.PositiveSmallIntegerField(null=True, blank=True)
    error = models.TextField(blank=True)
    purpose = models.CharField(
        max_length=20, default="migrate", help_text="migrate, bridge, unbridge, restore"
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["item", "purpose", "user_id"], name="%(app_label)s_%(class)s_once_per_purpose"
            ),
        ]
        indexes = [
            # a run page's per-user failures
            models.Index(fields=["item", "status"], name="me_outcome_item_status"),
        ]

    def __str__(self) -> str:
        return f"{self.upn}: {self.before} -> {self.wanted} ({self.status})"
