"""RQ entry points of runs: one run item's job, and the sweeper's repeating job (schedules.py)."""

from __future__ import annotations

import logging
from datetime import timedelta

from migrations_engine.models import RunItem
from migrations_engine.runs.runner import run_item
from migrations_engine.runs.sweeper import sweep
from migrations_engine.waves import services as waves

logger = logging.getLogger(__name__)


def run_item_job(item_pk: int, job_id: str) -> str:
    """RQ job: take one tenant through its run's pipeline, from its checkpoint; then, for a wave's run,
    let the wave release its next tenant now rather than at the next tick."""
    try:
        return run_item(item_pk, job_id)
    finally:
        _after_wave_item(item_pk)


def _after_wave_item(item_pk: int) -> None:
    """A failure here must not fail the item (the wave tick catches up)."""
    run_pk, wave_pk = RunItem.objects.filter(pk=item_pk).values_list("run_id", "run__wave_id").first() or (
        None,
        None,
    )
    if not wave_pk:
        return
    try:
        waves.after_item(run_pk)
    except Exception:  # noqa: BLE001 - logged; the wave tick releases on its next pass
        logger.exception("wave bookkeeping after run %s's item failed; the wave tick will catch up", run_pk)


def sweep_runs_job(stale_minutes: float = 5.0) -> str:
    """RQ job (repeated by rq-scheduler, schedules.SWEEPER_ID): reconcile items with Redis."""
    return sweep(stale_after=timedelta(minutes=stale_minutes), actor="sweeper").summary()
