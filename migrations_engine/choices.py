"""Choices for the migrations_engine app."""

from django.db import models


class AuditKind(models.TextChoices):
    """What an audit row records."""

    GRAPH_WRITE = "graph_write", "Graph write"
    STAFF_ACTION = "staff_action", "Staff action"
    RECONCILIATION = "reconciliation", "Reconciliation"


class AuditOutcome(models.TextChoices):
    """Where the recorded thing stands: an intent before a Graph write, or how it ended."""

    INTENT = "intent", "Intent (about to send)"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    UNKNOWN = "unknown", "Unknown (no answer)"
    DRY_RUN = "dry_run", "Dry run (not sent)"
    RECORDED = "recorded", "Recorded"
    RECONCILED = "reconciled", "Reconciled"


class RunMode(models.TextChoices):
    """What a run does to each tenant."""

    PLAN = "plan", "Plan (dry run)"
    PILOT = "pilot", "Pilot group"
    FULL = "full", "Full"
    ROLLBACK = "rollback", "Rollback"


class RunStatus(models.TextChoices):
    """A run's status, set by the finalizer from its items (and by approval while it waits for one)."""

    AWAITING_APPROVAL = "awaiting_approval", "Awaiting approval"
    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


class ItemStatus(models.TextChoices):
    """One tenant's status within a run. Only the runner changes it."""

    WAITING = "waiting", "Waiting for its window"
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    ERRORED = "errored", "Errored"
    CANCELLED = "cancelled", "Cancelled"


# Items that hold their tenant (one active item per tenant). A *waiting* item belongs to a scheduled wave
# and has no job yet: the wave releases it (to queued) inside a maintenance window.
ACTIVE_ITEM_STATUSES = (ItemStatus.WAITING, ItemStatus.QUEUED, ItemStatus.RUNNING)
# Items a job may claim or the sweeper may re-enqueue: they were released to the queue.
RUNNABLE_ITEM_STATUSES = (ItemStatus.QUEUED, ItemStatus.RUNNING)


class UserOutcomeStatus(models.TextChoices):
    """What happened to one user's per-user MFA state in a run."""

    SUCCEEDED = "succeeded", "Changed"
    SKIPPED = "skipped", "Already in the wanted state"
    FAILED = "failed", "Failed"
    UNKNOWN = "unknown", "Outcome unknown"


class WaveStatus(models.TextChoices):
    """Where a scheduled wave stands. Only the wave service and the wave tick change it."""

    SCHEDULED = "scheduled", "Scheduled"
    RUNNING = "running", "Running"
    PAUSED = "paused", "Paused"
    HALTED = "halted", "Halted (a ring failed)"
    COMPLETED = "completed", "Completed"
    CANCELLED = "cancelled", "Cancelled"


LIVE_WAVE_STATUSES = (WaveStatus.SCHEDULED, WaveStatus.RUNNING)


class DriftKind(models.TextChoices):
    """What the drift watch can find on a migrated tenant."""

    PER_USER_MFA = "per_user_mfa", "Per-user MFA back on"
    SECURITY_DEFAULTS = "security_defaults", "Security defaults back on"
    POLICY_DISABLED = "policy_disabled", "MFA policy not enforced"
    POLICY_DELETED = "policy_deleted", "MFA policy deleted"
    POLICY_CHANGED = "policy_changed", "MFA policy changed"
    BREAK_GLASS_EXCLUSION = "break_glass_exclusion", "Break-glass exclusion removed"
    UNREGISTERED_USERS = "unregistered_users", "New users not MFA-registered"


class DriftCheckStatus(models.TextChoices):
    CLEAN = "clean", "No drift"
    DRIFT = "drift", "Drift found"
    ERROR = "error", "Could not check"


class ExportFrequency(models.TextChoices):
    DAILY = "daily", "Daily"
    WEEKLY = "weekly", "Weekly (Monday to Monday)"
    MONTHLY = "monthly", "Monthly"
