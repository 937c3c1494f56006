"""Every repeating job the console runs through rq-scheduler, registered in one place.

rq-scheduler keeps its schedule in Redis, so a Redis that lost its data has none: the scheduler process
(`manage.py run_scheduler`) registers them all each time it starts, and `manage.py schedule_jobs` does
it by hand. Registering is idempotent (each schedule has a fixed id and is replaced).

| id | job | every |
|---|---|---|
| msp-sweeper | re-enqueue items whose job vanished, re-queue stalled ones | 60 s |
| msp-wave-tick | tick every live wave (a safety net for each wave's own job) | WAVE_TICK_SECONDS |
| msp-wave-<id> | one wave's next slot (scheduled at its next fire time) | once, then re-scheduled |
| msp-drift-watch | re-read every migrated tenant for drift | DRIFT_WATCH_INTERVAL_HOURS |
| msp-audit-exports | write scheduled audit exports for completed periods | hourly |
"""

from __future__ import annotations

from datetime import UTC, datetime

from migrations_engine.choices import LIVE_WAVE_STATUSES


def repeat(job_id: str, func, *, interval: int, timeout: int, result_ttl: int = 600, keep_same: bool = False):
    """Register `func` as a repeating rq-scheduler job under `job_id`, every `interval` s, first run now.

    An earlier registration is replaced; with `keep_same` one with the same interval is kept as it is
    (so re-registering, as every scheduler start does, does not run the job at once)."""
    import django_rq

    scheduler = django_rq.get_scheduler("default")
    for job in scheduler.get_jobs():
        if job.id != job_id:
            continue
        if keep_same and job.meta.get("interval") == interval:
            return job
        scheduler.cancel(job)
    return scheduler.schedule(
        scheduled_time=datetime.now(tz=UTC),
        func=func,
        interval=interval,
        repeat=None,
        id=job_id,
        timeout=timeout,
        result_ttl=result_ttl,
    )


def ensure_all() -> list[str]:
    """Register every repeating job and every live wave's next slot; returns what was registered."""
    from migrations_engine.drift.services import DRIFT_SCHEDULE_ID, ensure_drift_scheduled
    from migrations_engine.exports.services import EXPORT_SCHEDULE_ID, ensure_exports_scheduled
    from migrations_engine.models import Wave
    from migrations_engine.runs.sweeper import SCHEDULE_ID, ensure_scheduled
    from migrations_engine.waves.services import (
        SCHEDULE_PREFIX,
        TICK_SCHEDULE_ID,
        ensure_tick_scheduled,
        schedule_fire,
    )

    ensure_scheduled()
    ensure_tick_scheduled()
    ensure_drift_scheduled()
    ensure_exports_scheduled()
    registered = [SCHEDULE_ID, TICK_SCHEDULE_ID, DRIFT_SCHEDULE_ID, EXPORT_SCHEDULE_ID]
    for pk in Wave.objects.filter(status__in=LIVE_WAVE_STATUSES).values_list("pk", flat=True):
        schedule_fire(pk)
        registered.append(f"{SCHEDULE_PREFIX}{pk}")
    return registered
