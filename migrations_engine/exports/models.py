"""Scheduled audit exports: what to export how often, and every file written (with its manifest)."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from migrations_engine.choices import ExportFrequency


class ExportSchedule(models.Model):
    """Export one tenant's audit rows (or the whole fleet's, `tenant` empty) for every completed period."""

    name = models.CharField(max_length=200, unique=True)
    tenant = models.ForeignKey(
        "tenants.CustomerTenant",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="export_schedules",
        help_text="Empty: every chain (the whole fleet)",
    )
    frequency = models.CharField(max_length=10, choices=ExportFrequency, default=ExportFrequency.DAILY)
    format = models.CharField(max_length=5, choices=[("csv", "CSV"), ("jsonl", "JSON lines")], default="csv")
    enabled = models.BooleanField(default=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    last_period_end = models.DateTimeField(
        null=True, blank=True, help_text="End of the last period exported; the next starts here"
    )

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class ExportFile(models.Model):
    """One export written by a schedule: the data file, its manifest, and what the manifest says."""

    schedule = models.ForeignKey(ExportSchedule, on_delete=models.CASCADE, related_name="files")
    period_start = models.DateTimeField()
    period_end = models.DateTimeField()
    path = models.CharField(max_length=1000)
    manifest_path = models.CharField(max_length=1000)
    rows = models.PositiveBigIntegerField(default=0)
    sha256 = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-period_start"]
        constraints = [
            models.UniqueConstraint(
                fields=["schedule", "period_start"], name="%(app_label)s_%(class)s_once_per_period"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.schedule} {self.period_start:%Y-%m-%d}"
