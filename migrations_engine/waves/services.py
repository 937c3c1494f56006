"""Scheduled waves: create, pause, resume, cancel, and the tick that fires slots and releases tenants.

A wave's maintenance windows recur every `repeat_days` days at the same wall-clock time in its time
zone (so a window stays at 22:00 local across daylight-saving changes). Its tenants are split into
rings; ring 0 is the pilot ring. When a window opens for the current ring, the ring's *slot* fires:

1. **Fire**: insert the `WaveSlot` row. The unique (wave, slot) constraint decides: whoever inserts it
   fired the slot; everyone else (a second scheduler process, the safety-net tick, a restarted
   scheduler) gets an IntegrityError and does nothing. Nothing else is trusted to decide this.
2. **Ring run**: the first slot of a ring creates its `MigrationRun` (one per ring, also unique), one
   *waiting* item per tenant, recorded as `run.started` by `scheduler:wave-<id>`.
3. **Release**: while the window is open, waiting items are moved to *queued* and enqueued, largest
   first, so that at most `concurrency` of the wave's tenants are queued or running. A finishing item
   releases the next one at once (its job calls `after_item`); the tick releases too. Items not
   started when the window closes wait for the next window, which is a new slot.

When a ring's run has finished: all items succeeded → the next ring may start `ring_delay_days` later,
in the first window from then; any failure → the wave halts for a human (retry the failed tenants from
the run page, then resume; or resume accepting the failures, which is audited).

The wave's own job is scheduled in rq-scheduler for its next fire time (`schedule_fire`); a repeating
tick (`tick_all`, every WAVE_TICK_SECONDS) catches a job Redis lost. Both end in `tick`.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone
from redis.exceptions import RedisError

from migrations_engine import queueing
from migrations_engine.audit.writer import record_staff_action
from migrations_engine.choices import (
    ACTIVE_ITEM_STATUSES,
    LIVE_WAVE_STATUSES,
    ItemStatus,
    RunMode,
    RunStatus,
    WaveStatus,
)
from migrations_engine.models import MigrationRun, RunItem, Wave, WaveSlot, WaveTenant
from migrations_engine.runs import options as run_options
from migrations_engine.runs import preflight
from migrations_engine.runs.queue import enqueue_items, largest_first
from migrations_engine.runs.runner import finalize_run
from migrations_engine.runs.services import DEFAULT_OPTIONS, job_id_for
from migrations_engine.waves import shapes as wave_shapes
from staff import roles
from staff.actors import Actor, actor_label
from tenants.access import visible_tenants
from tenants.models import CustomerTenant

logger = logging.getLogger(__name__)

SCHEDULE_PREFIX = "msp-wave-"
FINISHED_RUN = (RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED)
UNFINISHED_WAVE = (WaveStatus.SCHEDULED, WaveStatus.RUNNING, WaveStatus.PAUSED, WaveStatus.HALTED)


@dataclass(frozen=True)
class Window:
    index: int
    start: datetime  # UTC
    end: datetime

    def is_open(self, moment: datetime) -> bool:
        return self.start <= moment < self.end


def process_label() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


# --- windows ---------------------------------------------------------------------------------------


def zone(name: str) -> ZoneInfo:
    """The IANA time zone `name`, or a ValidationError naming it."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError) as exc:
        raise ValidationError(
            f"Unknown time zone {name!r}: use an IANA name such as Europe/London or America/New_York."
        ) from exc


def window(wave: Wave, index: int) -> Window:
    """The wave's `index`-th window (0 = the first), at the same local wall-clock time each time."""
    tz = zone(wave.time_zone)
    first_local = wave.starts_at.astimezone(tz).replace(tzinfo=None)
    local = first_local + timedelta(days=index * wave.repeat_days)
    start = local.replace(tzinfo=tz).astimezone(UTC)
    return Window(index, start, start + timedelta(minutes=wave.window_minutes))


def window_ending_after(wave: Wave, moment: datetime) -> Window:
    """The first window that ends after `moment` (the one open at `moment`, or the next one)."""
    period = timedelta(days=wave.repeat_days)
    index = max(0, math.floor((moment - wave.starts_at) / period) - 1)
    while True:
        candidate = window(wave, index)
        if candidate.end > moment:
            return candidate
        index += 1


def slot_key(ring: int, win: Window) -> str:
    return f"r{ring}-{win.start:%Y%m%dT%H%MZ}"


def ring_start(wave: Wave) -> datetime:
    """When the current ring may start: the wave's start for ring 0, else the previous ring's end + delay."""
    return wave.ring_ready_at or wave.starts_at


def ring_window(wave: Wave, now: datetime) -> tuple[Window, datetime]:
    """The current ring's window to work in, and the moment work may start in it."""
    ready = ring_start(wave)
    win = window_ending_after(wave, max(now, ready))
    return win, max(win.start, ready)


def ring_count(wave: Wave) -> int:
    last = wave.members.order_by("-ring").values_list("ring", flat=True).first()
    return 0 if last is None else last + 1


# --- creating and steering waves -------------------------------------------------------------------


def tenants_by_filter(
    user,
    *,
    licence: str | None = None,
    tag: str | None = None,
    min_users: int | None = None,
    max_users: int | None = None,
):
    """The tenants `user` may see (every tenant for None: the operator at the command line) that match
    every given filter (licence tier, tag name, user count)."""
    tenants = CustomerTenant.objects.all() if user is None else visible_tenants(user)
    if licence:
        tenants = tenants.filter(licence=licence)
    if tag:
        tenants = tenants.filter(tags__name=tag)
    if min_users is not None:
        tenants = tenants.filter(users_total__gte=min_users)
    if max_users is not None:
        tenants = tenants.filter(users_total__lte=max_users)
    return tenants.distinct().order_by("display_name")


def visible_waves(user):
    """Waves all of whose tenants `user` may see (a wave never shows a tenant they may not see)."""
    hidden = CustomerTenant.objects.exclude(pk__in=visible_tenants(user).values("pk"))
    return Wave.objects.exclude(members__tenant__in=hidden)


def split_rings(
    tenants: list[CustomerTenant], rings: int, pilot: Iterable[CustomerTenant] = ()
) -> list[list]:
    """Ring 0 is `pilot` when given (the rest split into `rings - 1` rings); otherwise the tenants are split
    into `rings` near-equal rings, smallest first, so the pilot ring risks the fewest users."""
    pilot = list(dict.fromkeys(pilot))
    rest = [t for t in tenants if t not in pilot]
    others = rings - 1 if pilot else rings
    if others < 1 and rest:
        raise ValidationError("With a pilot ring, ask for at least 2 rings: the pilot ring and the rest.")
    rest.sort(key=lambda t: (t.users_total or 0, t.display_name))
    split: list[list] = [pilot] if pilot else []
    for n in range(others):
        part = rest[n * len(rest) // others : (n + 1) * len(rest) // others]
        if part:
            split.append(part)
    return split


def create_wave(
    *,
    name: str,
    mode: str,
    tenants: Iterable[CustomerTenant],
    time_zone: str,
    starts_at: datetime,
    actor: Actor,
    window_minutes: int = 240,
    repeat_days: int = 1,
    concurrency: int = 10,
    rings: int = 1,
    pilot_tenants: Iterable[CustomerTenant] = (),
    ring_delay_days: int = 1,
    pilot_group_id: str | None = None,
    selection: dict | None = None,
    options: dict | None = None,
    now: datetime | None = None,
) -> Wave:
    """Validate and create a wave, then schedule its first slot. `starts_at` may be naive: it is then read
    as wall-clock time in `time_zone`. Raises ValidationError (nothing created) or PermissionDenied."""
    now = now or timezone.now()
    tenants, pilot_tenants = wave_shapes.listed(tenants), wave_shapes.listed(pilot_tenants)
    shape = wave_shapes.shape_errors(
        name=name,
        mode=mode,
        tenants=tenants,
        pilot_tenants=pilot_tenants,
        starts_at=starts_at,
        selection=selection,
        options=options,
        window_minutes=window_minutes,
        repeat_days=repeat_days,
        concurrency=concurrency,
        rings=rings,
        ring_delay_days=ring_delay_days,
    )
    if shape:
        raise ValidationError(shape)
    tenants = list(dict.fromkeys(tenants))
    pilot_tenants = list(dict.fromkeys(pilot_tenants))
    name = (name or "").strip()
    user = actor if hasattr(actor, "username") else None
    errors: list[str] = []
    if not name:
        errors.append("Give the wave a name.")
    elif len(name) > Wave._meta.get_field("name").max_length:
        errors.append(f"A wave's name is at most {Wave._meta.get_field('name').max_length} characters.")
    elif (taken := Wave.objects.filter(name=name).first()) is not None:
        # Named back only to whoever may see that wave: another staff member's wave stays unnamed.
        if user is None or visible_waves(user).filter(pk=taken.pk).exists():
            errors.append(f"A wave named {name!r} already exists.")
        else:
            errors.append("Another wave already has this name: choose another.")
    if mode not in (RunMode.PLAN, RunMode.PILOT, RunMode.FULL):
        errors.append(f"Unknown mode {mode!r}: a wave runs plan, pilot or full.")
    if mode == RunMode.PILOT:
        try:
            pilot_group_id = str(uuid.UUID(str(pilot_group_id)))
        except ValueError:
            errors.append("Pilot mode needs the pilot group's object id (a GUID).")
    elif pilot_group_id:
        errors.append("A pilot group only makes sense in pilot mode.")
    tz = zone(time_zone)
    if timezone.is_naive(starts_at):
        starts_at = starts_at.replace(tzinfo=tz)
    if not 5 <= window_minutes <= 7 * 24 * 60:
        errors.append("A window lasts between 5 minutes and 7 days.")
    if not 1 <= repeat_days <= 31:
        errors.append("Windows repeat every 1 to 31 days.")
    elif window_minutes > repeat_days * 24 * 60:
        errors.append("A window cannot last longer than the time until the next one.")
    if not 1 <= concurrency <= 500:
        errors.append("Concurrency is between 1 and 500 tenants at once.")
    if not 0 <= ring_delay_days <= 90:
        errors.append("The delay between rings is 0 to 90 days.")
    if starts_at + timedelta(minutes=window_minutes) <= now:
        errors.append("The first window has already ended: choose a later start.")
    if not tenants:
        errors.append("Choose at least one tenant (no tenant you may see matches).")
    if not all(p in tenants for p in pilot_tenants):
        errors.append("Every pilot-ring tenant must be one of the wave's tenants.")
    if not 1 <= rings <= max(1, len(tenants)):
        errors.append(f"Ask for 1 to {max(1, len(tenants))} rings.")
    try:
        options = run_options.validate(options or {})
    except ValidationError as exc:
        errors.extend(exc.messages)
    if errors:
        raise ValidationError(errors)
    if user is not None:
        # Scheduling a wave is starting its mode's runs later: the role needs both.
        roles.require(user, roles.WAVES)
        roles.require(user, roles.FOR_MODE[mode])
        seen = set(visible_tenants(user).filter(pk__in=[t.pk for t in tenants]).values_list("pk", flat=True))
        if seen != {t.pk for t in tenants}:
            raise PermissionDenied("The wave names a tenant you may not act on.")
    # The runs' pre-flight, now: a tenant it would leave out of every ring is refused here, by name.
    blocked = [
        f"{check.tenant.primary_domain}: {', '.join(b for b in check.blocks if not b.startswith('Run '))}"
        for check in preflight.check_tenants(tenants, mode=mode)
        if any(not b.startswith("Run ") for b in check.blocks)
    ]
    if blocked:
        raise ValidationError(["These tenants would be left out of the wave's runs:", *blocked])
    busy = WaveTenant.objects.filter(tenant__in=tenants, wave__status__in=UNFINISHED_WAVE).select_related(
        "wave", "tenant"
    )
    if busy:
        # A staff user learns the other wave's name only when they may see all of its tenants.
        shown = set(visible_waves(user).values_list("pk", flat=True)) if user is not None else None
        raise ValidationError(
            [
                f"{m.tenant.primary_domain} is already in "
                + (f"wave {m.wave.name!r}" if shown is None or m.wave_id in shown else "another wave")
                + f" ({m.wave.status})."
                for m in busy
            ]
        )
    split = split_rings(tenants, rings, pilot_tenants)
    with transaction.atomic():
        wave = Wave.objects.create(
            name=name,
            mode=mode,
            pilot_group_id=pilot_group_id,
            selection=selection or {"tenants": [t.primary_domain for t in tenants]},
            options={k: v for k, v in options.items() if k in run_options.EXTRA_DEFAULTS},
            time_zone=time_zone,
            starts_at=starts_at,
            window_minutes=window_minutes,
            repeat_days=repeat_days,
            concurrency=concurrency,
            ring_delay_days=ring_delay_days,
            created_by=user,
            actor=actor_label(actor),
        )
        WaveTenant.objects.bulk_create(
            WaveTenant(wave=wave, tenant=t, ring=ring) for ring, part in enumerate(split) for t in part
        )
        wave.next_fire_at = next_fire_at(wave, now)
        wave.save(update_fields=["next_fire_at"])
        transaction.on_commit(lambda: schedule_fire(wave.pk))
    # Audit rows are appended outside any transaction that could still roll back.
    record_staff_action(
        actor=actor_label(actor),
        action="wave.created",
        detail={
            "wave": wave.pk,
            "name": name,
            "mode": mode,
            "tenants": len(tenants),
            "rings": [[t.primary_domain for t in part] for part in split],
            "time_zone": time_zone,
            "starts_at": starts_at.isoformat(),
            "window_minutes": window_minutes,
            "repeat_days": repeat_days,
            "concurrency": concurrency,
            "ring_delay_days": ring_delay_days,
        },
    )
    return wave


def _steer(wave: Wave, *, actor: Actor, action: str, allowed: tuple, to: str, message: str = "") -> Wave:
    with transaction.atomic():
        locked = Wave.objects.select_for_update().get(pk=wave.pk)
        if locked.status not in allowed:
            raise ValidationError(
                f"Wave {locked.name!r} is {locked.get_status_display().lower()}: it cannot be {action}."
            )
        locked.status = to
        locked.status_message = message
        locked.next_fire_at = next_fire_at(locked, timezone.now()) if to in LIVE_WAVE_STATUSES else None
        locked.save(update_fields=["status", "status_message", "next_fire_at", "updated_at"])
        transaction.on_commit(lambda: schedule_fire(locked.pk))
    record_staff_action(
        actor=actor_label(actor), action=f"wave.{action}", detail={"wave": locked.pk, "name": locked.name}
    )
    return locked


def _may_steer(wave: Wave, actor: Actor) -> None:
    roles.require(actor, roles.WAVES)
    if hasattr(actor, "username"):
        ids = list(wave.members.values_list("tenant_id", flat=True))
        if visible_tenants(actor).filter(pk__in=ids).count() != len(set(ids)):
            raise PermissionDenied("This wave includes a tenant you may not act on.")


def pause_wave(wave: Wave, *, actor: Actor) -> Wave:
    """No slot fires and nothing is released until resumed; tenants already started run to the end."""
    _may_steer(wave, actor)
    return _steer(
        wave,
        actor=actor,
        action="paused",
        allowed=LIVE_WAVE_STATUSES,
        to=WaveStatus.PAUSED,
        message="Paused: tenants already started finish; no more start until resumed.",
    )


def resume_wave(wave: Wave, *, actor: Actor, accept_failures: bool = False, reason: str = "") -> Wave:
    """Resume a paused wave, or a halted one. A halted wave whose failed ring is still failed resumes only
    with `accept_failures` and a reason (audited): the next ring then starts despite the failures."""
    _may_steer(wave, actor)
    wave.refresh_from_db()
    started = wave.slots.exists()
    to = WaveStatus.RUNNING if started else WaveStatus.SCHEDULED
    if wave.status == WaveStatus.HALTED:
        run = ring_run(wave)
        if run is not None and run.status == RunStatus.FAILED:
            if not accept_failures:
                raise ValidationError(
                    f"Ring {wave.current_ring + 1}'s run {run.pk} still has failed tenants: retry them "
                    "from the run page first, or resume accepting the failures (give a reason)."
                )
            if not reason.strip():
                raise ValidationError("Say why the wave goes on despite the failed tenants.")
            with transaction.atomic():
                locked = Wave.objects.select_for_update().get(pk=wave.pk)
                if locked.status != WaveStatus.HALTED:
                    raise ValidationError(f"Wave {locked.name!r} is no longer halted.")
                pending = _next_ring(locked, run, now=timezone.now())
                transaction.on_commit(lambda: schedule_fire(wave.pk))
            record_staff_action(
                actor=actor_label(actor),
                action="wave.failures_accepted",
                run_id=run.pk,
                detail={"wave": wave.pk, "ring": run.ring, "reason": reason.strip()},
            )
            _record(pending)
            wave.refresh_from_db()
            return wave
    return _steer(wave, actor=actor, action="resumed", allowed=(WaveStatus.PAUSED, WaveStatus.HALTED), to=to)


def cancel_wave(wave: Wave, *, actor: Actor) -> Wave:
    """No more slots; the current ring's waiting tenants are cancelled. Tenants already started finish
    (cancel their run from its page to stop them between steps)."""
    _may_steer(wave, actor)
    wave = _steer(
        wave,
        actor=actor,
        action="cancelled",
        allowed=UNFINISHED_WAVE,
        to=WaveStatus.CANCELLED,
        message="Cancelled: tenants already started finish; the others were not started.",
    )
    now = timezone.now()
    for run in wave.runs.all():
        if RunItem.objects.filter(run=run, status=ItemStatus.WAITING).update(
            status=ItemStatus.CANCELLED,
            failure_reason="The wave was cancelled before its window",
            finished_at=now,
        ):
            finalize_run(run.pk)
    return wave


# --- the tick ----------------------------------------------------------------------------------------


def ring_run(wave: Wave) -> MigrationRun | None:
    return MigrationRun.objects.filter(wave=wave, ring=wave.current_ring).first()


def next_fire_at(wave: Wave, now: datetime) -> datetime | None:
    """When the wave next has something to do: its ring's next usable window (None while a ring is at work
    with nothing left to release, or when the wave is not live)."""
    if wave.status not in LIVE_WAVE_STATUSES:
        return None
    run = ring_run(wave) if wave.pk else None
    if run is not None and not run.items.filter(status=ItemStatus.WAITING).exists():
        return None
    win, start = ring_window(wave, now)
    if win.is_open(now) and now >= start:
        if (
            not wave.pk
            or not WaveSlot.objects.filter(wave=wave, slot=slot_key(wave.current_ring, win)).exists()
        ):
            return now  # due now: the open window's slot has not fired yet
        return window(wave, win.index + 1).start  # the next window is the next slot
    return start


@dataclass
class TickResult:
    wave: int
    fired: str = ""  # the slot this call fired
    already_fired: str = ""  # the slot another process fired
    released: int = 0
    status: str = ""

    def __str__(self) -> str:
        parts = [f"wave {self.wave}: {self.status}"]
        if self.fired:
            parts.append(f"fired {self.fired}")
        if self.already_fired:
            parts.append(f"{self.already_fired} already fired")
        if self.released:
            parts.append(f"released {self.released}")
        return ", ".join(parts)


def tick(wave_pk: int, *, now: datetime | None = None, fired_by: str | None = None) -> TickResult:
    """Move one wave on: finish its ring, fire the open window's slot, release waiting tenants."""
    now = now or timezone.now()
    result = TickResult(wave=wave_pk)
    wave = Wave.objects.filter(pk=wave_pk).first()
    if wave is None:
        result.status = "gone"
        return result
    if wave.status in LIVE_WAVE_STATUSES:
        _finish_ring_if_done(wave, now)
        wave.refresh_from_db()
    if wave.status not in LIVE_WAVE_STATUSES:
        result.status = wave.status
        return result
    run = ring_run(wave)
    has_work = run is None or run.items.filter(status=ItemStatus.WAITING).exists()
    win, start = ring_window(wave, now)
    if has_work and win.is_open(now) and now >= start:
        problem = wave_shapes.stored_options_problem(wave) if run is None else ""
        if problem:  # stopped for a human, in words: not a tick job failing on every pass
            halted = _steer(
                wave,
                actor=wave.scheduler_actor,
                action="halted",
                allowed=LIVE_WAVE_STATUSES,
                to=WaveStatus.HALTED,
                message=f"The wave's options cannot be used ({problem}): no ring was started. Cancel the "
                "wave and schedule a new one.",
            )
            result.status = halted.status
            return result
        key = slot_key(wave.current_ring, win)
        if _fire(wave, win, key, now=now, fired_by=fired_by or process_label()):
            result.fired = key
            run = _ensure_ring_run(wave, key)
        else:
            result.already_fired = key
            run = ring_run(wave)
        if run is not None:
            result.released = release(wave.pk, now=now)
    wave.refresh_from_db()
    with transaction.atomic():
        locked = Wave.objects.select_for_update().get(pk=wave_pk)
        locked.next_fire_at = next_fire_at(locked, now)
        locked.save(update_fields=["next_fire_at", "updated_at"])
        result.status = locked.status
    schedule_fire(wave_pk)
    return result


def _fire(wave: Wave, win: Window, key: str, *, now: datetime, fired_by: str) -> bool:
    """Insert the slot row: True if this call fired it, False if it had fired already (anywhere)."""
    try:
        with transaction.atomic():
            WaveSlot.objects.create(
                wave=wave,
                slot=key,
                ring=wave.current_ring,
                window_start=win.start,
                window_end=win.end,
                fired_at=now,
                fired_by=fired_by[:200],
            )
            Wave.objects.filter(pk=wave.pk, status=WaveStatus.SCHEDULED).update(status=WaveStatus.RUNNING)
    except IntegrityError:
        logger.info("wave %s: slot %s had already fired; %s leaves it alone", wave.pk, key, fired_by)
        return False
    record_staff_action(
        actor=wave.scheduler_actor,
        action="wave.slot_fired",
        detail={
            "wave": wave.pk,
            "slot": key,
            "ring": wave.current_ring,
            "window_start": win.start.isoformat(),
            "window_end": win.end.isoformat(),
            "fired_by": fired_by,
        },
    )
    logger.info("wave %s: slot %s fired by %s", wave.pk, key, fired_by)
    return True


def _ensure_ring_run(wave: Wave, key: str) -> MigrationRun:
    """The current ring's run, created with one waiting item per tenant the first time its slot fires."""
    run = ring_run(wave)
    if run is None:
        pending: list[dict] = []
        try:
            with transaction.atomic():
                run = _create_ring_run(wave, key, DEFAULT_OPTIONS, job_id_for, pending)
        except IntegrityError:  # another process created it meanwhile (one run per ring)
            run, pending = ring_run(wave), []
        _record(pending)
    WaveSlot.objects.filter(wave=wave, slot=key).update(run=run)
    return run


def _create_ring_run(wave: Wave, key: str, options: dict, job_id_for, pending: list[dict]) -> MigrationRun:
    from django.conf import settings

    approval = wave.mode == RunMode.FULL and settings.RUN_APPROVAL_REQUIRED
    run = MigrationRun.objects.create(
        mode=wave.mode,
        pilot_group_id=wave.pilot_group_id,
        options=run_options.validate({**options, **wave.options}),
        started_by=wave.created_by,
        actor=wave.scheduler_actor,
        wave=wave,
        ring=wave.current_ring,
        status=RunStatus.AWAITING_APPROVAL if approval else RunStatus.PENDING,
    )
    started = []
    for member in wave.members.filter(ring=wave.current_ring).select_related("tenant"):
        busy = RunItem.objects.filter(tenant=member.tenant, status__in=ACTIVE_ITEM_STATUSES).first()
        if busy is None:
            item = RunItem(run=run, tenant=member.tenant, status=ItemStatus.WAITING)
            item.rq_job_id = job_id_for(item, 1)
            try:
                with transaction.atomic():
                    item.save()
                started.append(member.tenant_id)
                continue
            except IntegrityError:
                busy = RunItem.objects.filter(tenant=member.tenant, status__in=ACTIVE_ITEM_STATUSES).first()
        reason = f"busy with run {busy.run_id}" if busy else "busy with another run"
        WaveTenant.objects.filter(pk=member.pk).update(
            skipped_reason=f"Left out of ring {member.ring}: {reason}"
        )
        pending.append(
            {
                "actor": wave.scheduler_actor,
                "action": "wave.tenant_skipped",
                "tenant_id": member.tenant_id,
                "run_id": run.pk,
                "detail": {"wave": wave.pk, "ring": member.ring, "reason": reason},
            }
        )

    def after() -> None:
        for tenant_id in started:
            record_staff_action(
                actor=wave.scheduler_actor,
                action="run.started",
                tenant_id=tenant_id,
                run_id=run.pk,
                detail={
                    "mode": run.mode,
                    "pilot_group_id": str(run.pilot_group_id or ""),
                    "wave": wave.pk,
                    "ring": run.ring,
                    "slot": key,
                    "awaiting_approval": approval,
                },
            )

    transaction.on_commit(after)
    if not started:
        transaction.on_commit(lambda: finalize_run(run.pk))
    return run


def release(wave_pk: int, *, now: datetime | None = None) -> int:
    """Queue waiting items of the wave's current ring, largest first, while its window is open, so that at
    most `concurrency` of them are queued or running. Returns how many were released."""
    now = now or timezone.now()
    with transaction.atomic():
        wave = Wave.objects.select_for_update().get(pk=wave_pk)
        run = ring_run(wave)
        if wave.status not in LIVE_WAVE_STATUSES or run is None or run.status == RunStatus.AWAITING_APPROVAL:
            return 0
        win, start = ring_window(wave, now)
        if not (win.is_open(now) and now >= start):
            return 0
        busy = RunItem.objects.filter(
            run__wave=wave, status__in=(ItemStatus.QUEUED, ItemStatus.RUNNING)
        ).count()
        room = wave.concurrency - busy
        if room <= 0:
            return 0
        waiting = largest_first(RunItem.objects.filter(run=run, status=ItemStatus.WAITING))[:room]
        released = []
        for item in waiting:
            if RunItem.objects.filter(pk=item.pk, status=ItemStatus.WAITING).update(
                status=ItemStatus.QUEUED, rq_job_id=job_id_for(item, item.attempt)
            ):
                released.append(item)
        if not released:
            return 0
        key = slot_key(wave.current_ring, win)
        slot = WaveSlot.objects.filter(wave=wave, slot=key).first()
        if slot is not None:
            WaveSlot.objects.filter(pk=slot.pk).update(released=F("released") + len(released))
        transaction.on_commit(lambda: enqueue_items(run.pk))
    for item in released:
        record_staff_action(
            actor=wave.scheduler_actor,
            action="wave.released",
            tenant_id=item.tenant_id,
            run_id=run.pk,
            detail={"wave": wave.pk, "ring": run.ring, "slot": key, "window_end": win.end.isoformat()},
        )
    return len(released)


def _finish_ring_if_done(wave: Wave, now: datetime) -> None:
    run = ring_run(wave)
    if run is None:
        return
    run.refresh_from_db()
    if run.status not in FINISHED_RUN or run.items.filter(status__in=ACTIVE_ITEM_STATUSES).exists():
        return
    with transaction.atomic():
        locked = Wave.objects.select_for_update().get(pk=wave.pk)
        if locked.status not in LIVE_WAVE_STATUSES or locked.current_ring != run.ring:
            return
        if run.status == RunStatus.SUCCEEDED:
            pending = _next_ring(locked, run, now=now)
        else:
            failed = list(
                run.items.exclude(status=ItemStatus.SUCCEEDED).values_list(
                    "tenant__primary_domain", flat=True
                )
            )
            locked.status = WaveStatus.HALTED
            locked.status_message = (
                f"Ring {run.ring + 1} did not verify: {len(failed)} tenant(s) failed or were not run "
                f"({', '.join(failed[:10])}{' …' if len(failed) > 10 else ''}). "
                f"Retry them from run {run.pk}, then resume the wave; or resume it accepting the failures."
            )
            locked.next_fire_at = None
            locked.save(update_fields=["status", "status_message", "next_fire_at", "updated_at"])
            pending = [
                {
                    "actor": locked.scheduler_actor,
                    "action": "wave.halted",
                    "run_id": run.pk,
                    "detail": {"wave": locked.pk, "ring": run.ring, "failed": failed},
                }
            ]
    _record(pending)


def _next_ring(wave: Wave, run: MigrationRun, *, now: datetime) -> list[dict]:
    """The ring of `run` is over: start the delay to the next ring, or complete the wave. Call it inside a
    transaction; returns the audit rows to record once that transaction is over."""
    locked = Wave.objects.select_for_update().get(pk=wave.pk)
    done_at = run.finished_at or now
    if locked.current_ring + 1 >= ring_count(locked):
        locked.status = WaveStatus.COMPLETED
        locked.status_message = f"Every ring done; the last finished {done_at:%Y-%m-%d %H:%M} UTC."
        locked.next_fire_at = None
        action = "wave.completed"
    else:
        locked.current_ring += 1
        locked.ring_ready_at = done_at + timedelta(days=locked.ring_delay_days)
        locked.status = WaveStatus.RUNNING
        locked.status_message = (
            f"Ring {run.ring + 1} verified; ring {locked.current_ring + 1} starts from the first window "
            f"after {locked.ring_ready_at:%Y-%m-%d %H:%M} UTC."
        )
        locked.next_fire_at = next_fire_at(locked, now)
        action = "wave.ring_done"
    locked.save()
    return [
        {
            "actor": locked.scheduler_actor,
            "action": action,
            "run_id": run.pk,
            "detail": {"wave": locked.pk, "ring": run.ring, "run_status": run.status},
        }
    ]


def _record(pending: list[dict]) -> None:
    """Append audit rows collected inside a transaction, now that it is over (see `audit._append`)."""
    for row in pending:
        record_staff_action(**row)


def after_item(run_pk: int) -> None:
    """Called by the runner when an item of a wave's run finishes: release the next one at once."""
    wave_pk = MigrationRun.objects.filter(pk=run_pk).values_list("wave_id", flat=True).first()
    if wave_pk:
        tick(wave_pk)


def tick_all(now: datetime | None = None) -> list[TickResult]:
    """Tick every live wave (the safety-net job)."""
    return [
        tick(pk, now=now)
        for pk in Wave.objects.filter(status__in=LIVE_WAVE_STATUSES).values_list("pk", flat=True)
    ]


# --- rq-scheduler --------------------------------------------------------------------------------------


def schedule_fire(wave_pk: int) -> None:
    """(Re)schedule the wave's own job at its next fire time in rq-scheduler (none when it has none).
    Redis being unreachable is logged: the tick job and the next tick after a restart catch up."""
    fire_at = Wave.objects.filter(pk=wave_pk).values_list("next_fire_at", flat=True).first()
    try:
        queueing.schedule_once(
            f"{SCHEDULE_PREFIX}{wave_pk}",
            queueing.WAVE_FIRE_TASK,
            wave_pk,
            at=fire_at,
            timeout=600,
            result_ttl=86400,
        )
    except RedisError as exc:
        logger.warning(
            "wave %s: could not schedule its next slot in Redis (%s); the wave tick will", wave_pk, exc
        )


def schedule_live_waves() -> list[str]:
    """Schedule every live wave's next slot (each scheduler start: Redis may have lost them)."""
    registered = []
    for pk in Wave.objects.filter(status__in=LIVE_WAVE_STATUSES).values_list("pk", flat=True):
        schedule_fire(pk)
        registered.append(f"{SCHEDULE_PREFIX}{pk}")
    return registered
