"""Scheduled waves: a named set of tenants migrated in maintenance windows, ring after ring.

A wave's windows recur every `repeat_days` days at the same wall-clock time in `time_zone`, each lasting
`window_minutes`. Each ring gets one `MigrationRun` when its first window opens; its items wait
(`ItemStatus.WAITING`) and are released to the queue, at most `concurrency` at a time, only while a
window is open. A window's opening for a ring is a *slot*: the `WaveSlot` row, unique per (wave, slot),
is what decides that a slot fires, so two scheduler processes or a restart never fire one twice.
"""

from __future__ import annotations

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from migrations_engine.choices import RunMode, WaveStatus

WAVE_MODES = [
    (RunMode.PLAN.value, RunMode.PLAN.label),
    (RunMode.PILOT.value, RunMode.PILOT.label),
    (RunMode.FULL.value, RunMode.FULL.label),
]


class Wave(models.Model):
    """A named, scheduled migration of a set of tenants (see the module docstring)."""

    name = models.CharField(max_length=200, unique=True)
    mode = models.CharField(max_length=10, choices=WAVE_MODES)
    pilot_group_id = models.UUIDField(null=True, blank=True, help_text="Pilot mode: the group in scope")
    options = models.JSONField(
        default=dict,
        blank=True,
        help_text="Run options for its rings' runs (grant, optional steps, readiness)",
    )
    selection = models.JSONField(
        default=dict, blank=True, help_text="How the tenants were chosen (names, or the filter used)"
    )
    time_zone = models.CharField(max_length=64, help_text="IANA name the window times are in")
    starts_at = models.DateTimeField(help_text="When the first window opens")
    window_minutes = models.PositiveIntegerField(
        default=240, validators=[MinValueValidator(5), MaxValueValidator(7 * 24 * 60)]
    )
    repeat_days = models.PositiveSmallIntegerField(
        default=1,
        validators=[MinValueValidator(1), MaxValueValidator(31)],
        help_text="The window recurs every this many days, same local time",
    )
    concurrency = models.PositiveSmallIntegerField(
        default=10,
        validators=[MinValueValidator(1), MaxValueValidator(500)],
        help_text="At most this many of the wave's tenants run at once",
    )
    ring_delay_days = models.PositiveSmallIntegerField(
        default=1,
        validators=[MaxValueValidator(90)],
        help_text="A ring starts this many days after the previous one verified without failures",
    )
    status = models.CharField(max_length=12, choices=WaveStatus, default=WaveStatus.SCHEDULED)
    status_message = models.TextField(blank=True)
    current_ring = models.PositiveSmallIntegerField(default=0)
    ring_ready_at = models.DateTimeField(
        null=True, blank=True, help_text="The current ring may start from this moment"
    )
    next_fire_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor = models.CharField(max_length=150, help_text="Who created it: a username or a process label")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["status", "next_fire_at"], name="me_wave_status_next")]

    def __str__(self) -> str:
        return self.name

    @property
    def scheduler_actor(self) -> str:
        """How the wave's own actions appear in the audit log."""
        return f"scheduler:wave-{self.pk}"


class WaveTenant(models.Model):
    """One tenant of a wave, in one ring (ring 0 is the pilot ring)."""

    wave = models.ForeignKey(Wave, on_delete=models.CASCADE, related_name="members")
    tenant = models.ForeignKey(
        "tenants.CustomerTenant", on_delete=models.PROTECT, related_name="wave_members"
    )
    ring = models.PositiveSmallIntegerField(default=0)
    skipped_reason = models.TextField(blank=True, help_text="Why it was left out when its ring started")

    class Meta:
        ordering = ["wave_id", "ring", "tenant__display_name"]
        constraints = [
            models.UniqueConstraint(fields=["wave", "tenant"], name="%(app_label)s_%(class)s_once_per_wave"),
        ]

    def __str__(self) -> str:
        return f"{self.wave} ring {self.ring}: {self.tenant}"


class WaveSlot(models.Model):
    """One window of one ring that fired. The unique (wave, slot) is what makes a slot fire once."""

    wave = models.ForeignKey(Wave, on_delete=models.CASCADE, related_name="slots")
    slot = models.CharField(max_length=40, help_text='"r<ring>-<window start, UTC>"')
    ring = models.PositiveSmallIntegerField()
    window_start = models.DateTimeField()
    window_end = models.DateTimeField()
    fired_at = models.DateTimeField()
    fired_by = models.CharField(max_length=200, help_text="The process that fired it (host:pid)")
    run = models.ForeignKey(
        "migrations_engine.MigrationRun", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    released = models.PositiveIntegerField(default=0, help_text="Items released to the queue in this window")

    class Meta:
        ordering = ["wave_id", "window_start"]
        constraints = [
            models.UniqueConstraint(
                fields=["wave", "slot"],
                name="%(app_label)s_%(class)s_fires_once",
                violation_error_message="This slot of the wave has already fired.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.wave} {self.slot}"
