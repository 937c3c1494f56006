"""Choices for the tenants app."""

from django.db import models


class LicenceTier(models.TextChoices):
    """The best Entra ID plan a tenant holds, read from service plans (not SKU names)."""

    UNKNOWN = "unknown", "Not checked"
    FREE = "free", "Entra ID Free"
    P1 = "p1", "Entra ID P1"
    P2 = "p2", "Entra ID P2"


class ConsentStatus(models.TextChoices):
    """Where the customer's admin consent stands, as last seen in a token."""

    PENDING = "pending", "Not granted yet"
    GRANTED = "granted", "Granted"
    PARTIAL = "partial", "Granted, permissions missing"
    ERROR = "error", "Could not verify"


class CensusStatus(models.TextChoices):
    """How the last census ended."""

    NEVER = "never", "Never run"
    OK = "ok", "Complete"
    PARTIAL = "partial", "Partial (permissions missing)"
    FREE = "free", "Entra ID Free: buy P1/P2"
    NO_CONSENT = "no_consent", "No consent"
    ERROR = "error", "Failed"


class PolicyState(models.TextChoices):
    """State of the best Conditional Access policy that requires MFA for all users, if any."""

    NONE = "none", "None"
    REPORT_ONLY = "enabledForReportingButNotEnforced", "Report-only"
    ENABLED = "enabled", "Enabled"
    DISABLED = "disabled", "Disabled"


class MigrationState(models.TextChoices):
    """What a tenant is, as far as its MFA migration goes (tenants/migration_state.py decides it)."""

    NOT_STARTED = "not_started", "Not started"
    READY = "ready", "Ready"
    BLOCKED = "blocked", "Blocked"
    MIGRATING = "migrating", "Migrating"
    PILOT_VERIFIED = "pilot_verified", "Pilot verified"
    MIGRATED = "migrated", "Migrated (verified)"
    MIGRATED_DRIFT = "migrated_drift", "Migrated, drift found"
    ROLLING_BACK = "rolling_back", "Rolling back"
    ROLLED_BACK = "rolled_back", "Rolled back"
    PARTLY_ROLLED_BACK = "partly_rolled_back", "Partly rolled back"
    NEEDS_ATTENTION = "needs_attention", "Needs attention"
