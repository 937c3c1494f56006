"""RQ entry points of waves: a wave's own slot job and the safety-net tick (schedules.WAVE_TICK_ID)."""

from __future__ import annotations

from migrations_engine.waves.services import tick, tick_all


def wave_fire_job(wave_pk: int) -> str:
    """RQ job (scheduled by rq-scheduler at the wave's next fire time, see `waves.services.schedule_fire`):
    fire the open window's slot if nobody has (the slot row decides) and release waiting tenants."""
    return str(tick(wave_pk))


def wave_tick_job() -> str:
    """RQ job (repeated by rq-scheduler): tick every live wave, which catches a wave whose own scheduled
    job Redis lost."""
    return "; ".join(str(r) for r in tick_all()) or "no live wave"
