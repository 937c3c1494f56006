"""Every repeating job the console runs through rq-scheduler, declared in one table.

rq-scheduler keeps its schedule in Redis, so a Redis that lost its data has none: the scheduler process
(`manage.py run_scheduler`) registers them all each time it starts, and `manage.py schedule_jobs` does
it by hand. Registering is idempotent (each schedule has a fixed id and is replaced, or kept when
`keep_same` and its interval is unchanged). A new schedule is one row here and one task in its
feature's `tasks.py`; nothing else registers schedules.

Besides the table, each live wave has a job at its own next fire time (`msp-wave-<id>`), scheduled by
the wave services when a wave changes; `ensure_all` re-schedules them after the table (ON_START).
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.utils.module_loading import import_string

from migrations_engine import queueing


@dataclass(frozen=True)
class Schedule:
    id: str
    task: str  # dotted path of the RQ entry point
    interval: int | str  # seconds, or the dotted path of a function returning them (read when registered)
    timeout: int
    result_ttl: int | None = 600  # seconds; None: twice the interval, at least an hour
    keep_same: bool = False  # keep a registration with the same interval (no run at each scheduler start)
    what: str = ""

    def seconds(self) -> int:
        return self.interval if isinstance(self.interval, int) else int(import_string(self.interval)())


SWEEPER_ID = "msp-sweeper"
WAVE_TICK_ID = "msp-wave-tick"
DRIFT_WATCH_ID = "msp-drift-watch"
AUDIT_EXPORTS_ID = "msp-audit-exports"

SCHEDULES = (
    Schedule(
        SWEEPER_ID,
        queueing.SWEEP_TASK,
        60,
        timeout=300,
        what="re-enqueue items whose job vanished, re-queue stalled ones",
    ),
    Schedule(
        WAVE_TICK_ID,
        queueing.WAVE_TICK_TASK,
        "migrations_engine.schedules.wave_tick_seconds",
        timeout=600,
        what="tick every live wave (a safety net for each wave's own job)",
    ),
    Schedule(
        DRIFT_WATCH_ID,
        queueing.DRIFT_WATCH_TASK,
        "migrations_engine.drift.services.interval_seconds",  # DRIFT_WATCH_INTERVAL_HOURS, checked
        timeout=600,
        result_ttl=None,
        keep_same=True,
        what="re-read every migrated tenant for drift",
    ),
    Schedule(
        AUDIT_EXPORTS_ID,
        queueing.EXPORT_DUE_TASK,
        3600,  # a period is written on the first pass after it ends; a missed pass, by the next
        timeout=3 * 3600,  # a month of a large fleet's rows, streamed
        result_ttl=86400,
        what="write scheduled audit exports for completed periods",
    ),
)
BY_ID = {s.id: s for s in SCHEDULES}
# Called after the table by ensure_all; each returns the schedule ids it registered.
ON_START = ("migrations_engine.waves.services.schedule_live_waves",)


def wave_tick_seconds() -> int:
    return settings.WAVE_TICK_SECONDS


def ensure(schedule_id: str, *, interval: int | None = None):
    """Register one schedule of the table (every `interval` s instead of its own when given)."""
    schedule = BY_ID[schedule_id]
    seconds = interval if interval is not None else schedule.seconds()
    return queueing.repeat(
        schedule.id,
        schedule.task,
        interval=seconds,
        timeout=schedule.timeout,
        result_ttl=schedule.result_ttl if schedule.result_ttl is not None else max(seconds * 2, 3600),
        keep_same=schedule.keep_same,
    )


def ensure_all() -> list[str]:
    """Register every schedule of the table, then every live wave's next slot; returns the ids."""
    registered = []
    for schedule in SCHEDULES:
        ensure(schedule.id)
        registered.append(schedule.id)
    for hook in ON_START:
        registered += import_string(hook)()
    return registered
