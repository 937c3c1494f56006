"""The drift watch's records: one `DriftCheck` per tenant check, `DriftFinding` rows for what it found.

A finding stays open (`resolved_at` null) while later checks still see it; at most one open finding per
tenant and kind. A check that no longer sees it resolves it.
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q

from migrations_engine.choices import DriftCheckStatus, DriftKind


class DriftCheck(models.Model):
    """One drift check of one tenant."""

    tenant = models.ForeignKey(
        "tenants.CustomerTenant", on_delete=models.CASCADE, related_name="drift_checks"
    )
    actor = models.CharField(max_length=150)
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=10, choices=DriftCheckStatus, blank=True)
    error = models.TextField(blank=True)
    users_checked = models.PositiveIntegerField(default=0)
    run_item = models.ForeignKey(
        "migrations_engine.RunItem",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="The migration the tenant was compared against (its latest verified pilot or full run)",
    )
    policy_id = models.CharField(
        max_length=64, blank=True, help_text="The MFA policy that run made or adopted"
    )

    class Meta:
        ordering = ["-started_at"]
        indexes = [models.Index(fields=["tenant", "-started_at"], name="me_driftcheck_tenant")]

    def __str__(self) -> str:
        return f"Drift check of {self.tenant_id} at {self.started_at:%Y-%m-%d %H:%M}"


class DriftFinding(models.Model):
    """Something a migrated tenant no longer has as the migration left it."""

    tenant = models.ForeignKey(
        "tenants.CustomerTenant", on_delete=models.CASCADE, related_name="drift_findings"
    )
    kind = models.CharField(max_length=30, choices=DriftKind)
    summary = models.CharField(max_length=500)
    detail = models.JSONField(default=dict, blank=True, help_text="Users, fields and values involved")
    first_seen_at = models.DateTimeField()
    last_seen_at = models.DateTimeField()
    first_check = models.ForeignKey(DriftCheck, on_delete=models.SET_NULL, null=True, related_name="+")
    resolved_at = models.DateTimeField(null=True, blank=True)
    notified_at = models.DateTimeField(null=True, blank=True)
    remediation_run = models.ForeignKey(
        "migrations_engine.MigrationRun", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-last_seen_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "kind"],
                condition=Q(resolved_at__isnull=True),
                name="%(app_label)s_%(class)s_one_open_per_kind",
            ),
        ]
        indexes = [models.Index(fields=["resolved_at", "tenant"], name="me_drift_open")]

    def __str__(self) -> str:
        return f"{self.tenant_id}: {self.get_kind_display()}"
