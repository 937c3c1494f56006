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

    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    ERRORED = "errored", "Errored"
    CANCELLED = "cancelled", "Cancelled"


ACTIVE_ITEM_STATUSES = (ItemStatus.QUEUED, ItemStatus.RUNNING)


class UserOutcomeStatus(models.TextChoices):
    """What happened to one user's per-user MFA state in a run."""

    SUCCEEDED = "succeeded", "Changed"
    SKIPPED = "skipped", "Already in the wanted state"
    FAILED = "failed", "Failed"
    UNKNOWN = "unknown", "Outcome unknown"
