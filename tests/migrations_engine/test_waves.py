"""Scheduled waves: windows in a time zone, rings, concurrency, pause/resume/cancel, and slots that fire
once. The clock is moved with time-machine; runs are real (plan mode against the simulator, real rq
workers)."""

from __future__ import annotations

import datetime
import json
import subprocess
import sys
import time
import uuid
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.core.management.base import CommandError

from migrations_engine.choices import ItemStatus, RunStatus, WaveStatus
from migrations_engine.models import AuditEvent, MigrationRun, RunItem, Wave, WaveSlot
from migrations_engine.runs.services import start_run
from migrations_engine.waves import services as waves
from tenants.models import BreakGlassConfig, CustomerTenant
from tests.migrations_engine.pipeline_helpers import ROOT, seed, tenant_named, work, worker_env

UTC = datetime.UTC
LONDON = "Europe/London"
PLANNABLE = ["contoso", "fabrikam", "woodgrove"]


def _hour_from_now(hours: float = 1) -> datetime.datetime:
    now = datetime.datetime.now(UTC).replace(second=0, microsecond=0)
    return now + datetime.timedelta(hours=hours)


def _wave(members, **overrides) -> Wave:
    options = {
        "name": "wave under test",
        "mode": "plan",
        "tenants": members,
        "time_zone": LONDON,
        "starts_at": _hour_from_now(),
        "window_minutes": 60,
        "concurrency": 1,
        "actor": "test",
    }
    return waves.create_wave(**{**options, **overrides})


def _statuses(run: MigrationRun) -> list[str]:
    return sorted(run.items.values_list("status", flat=True))


def test_windows_keep_their_local_time_across_daylight_saving():
    # 22:00 in London on the Saturday before the clocks go back (25 Oct 2026): 21:00 UTC, then 22:00 UTC.
    wave = Wave(
        time_zone=LONDON,
        starts_at=datetime.datetime(2026, 10, 24, 22, 0, tzinfo=ZoneInfo(LONDON)),
        window_minutes=90,
        repeat_days=1,
    )
    first, second = waves.window(wave, 0), waves.window(wave, 1)
    assert first.start == datetime.datetime(2026, 10, 24, 21, 0, tzinfo=UTC)
    assert second.start == datetime.datetime(2026, 10, 25, 22, 0, tzinfo=UTC)
    assert second.end - second.start == datetime.timedelta(minutes=90)
    # The window open at a moment, or the next one.
    assert waves.window_ending_after(wave, first.start + datetime.timedelta(minutes=10)) == first
    assert waves.window_ending_after(wave, first.end) == second
    weekly = Wave(time_zone="America/New_York", starts_at=first.start, window_minutes=60, repeat_days=7)
    # Weekly in New York, whose clocks go back on 1 Nov 2026: three weeks and one hour apart in UTC.
    apart = waves.window(weekly, 3).start - waves.window(weekly, 0).start
    assert apart == datetime.timedelta(days=21, hours=1)


@pytest.mark.django_db
def test_a_wave_with_bad_input_is_refused_and_nothing_is_created(demo_sim, tmp_path):
    seed(demo_sim, tmp_path)
    tenants = [tenant_named(name) for name in PLANNABLE]
    cases = [
        ({"time_zone": "Mars/Olympus"}, "Unknown time zone"),
        ({"mode": "rollback"}, "plan, pilot or full"),
        ({"mode": "pilot"}, "pilot group"),
        ({"starts_at": _hour_from_now(-3)}, "already ended"),
        ({"window_minutes": 2}, "5 minutes"),
        ({"window_minutes": 25 * 60}, "longer than the time until the next"),
        ({"concurrency": 0}, "Concurrency"),
        ({"tenants": []}, "at least one tenant"),
        ({"rings": 4}, "1 to 3 rings"),
        ({"name": " "}, "name"),
    ]
    for override, message in cases:
        with pytest.raises(ValidationError) as caught:
            _wave(tenants, **override)
        assert message in " ".join(caught.value.messages), override
    assert not Wave.objects.exists()
    _wave(tenants[:1], name="first")
    with pytest.raises(ValidationError, match="already in wave 'first'"):
        _wave(tenants, name="second")
    with pytest.raises(ValidationError, match="already exists"):
        _wave(tenants[1:], name="first")
    assert Wave.objects.count() == 1
    assert AuditEvent.objects.filter(action="wave.created").count() == 1


@pytest.mark.django_db
def test_rings_put_the_pilot_first_and_the_smallest_tenants_early(demo_sim, tmp_path):
    seed(demo_sim, tmp_path)
    tenants = [tenant_named(name) for name in PLANNABLE]
    for n, tenant in enumerate(tenants):
        tenant.users_total = 100 - n  # woodgrove smallest
        tenant.save()
    wave = _wave(tenants, rings=3)
    rings = {m.tenant.primary_domain.split(".")[0]: m.ring for m in wave.members.select_related("tenant")}
    assert rings == {"woodgrove": 0, "fabrikam": 1, "contoso": 2}
    wave.delete()
    wave = _wave(tenants, rings=2, pilot_tenants=[tenants[0]], name="with pilot")
    rings = {m.tenant.primary_domain.split(".")[0]: m.ring for m in wave.members.select_related("tenant")}
    assert rings == {"contoso": 0, "fabrikam": 1, "woodgrove": 1}


@pytest.mark.django_db(transaction=True)
def test_a_window_that_closes_leaves_the_rest_waiting_for_the_next(fast_graph, tmp_path, queue):
    seed(fast_graph, tmp_path)
    tenants = [tenant_named(name) for name in PLANNABLE]
    wave = _wave(tenants)  # plan mode, one ring, concurrency 1, 60-minute windows daily
    first = waves.window(wave, 0)
    assert wave.next_fire_at == first.start

    with time_machine.travel(first.start + datetime.timedelta(minutes=1), tick=True):
        result = waves.tick(wave.pk)
        assert result.fired == waves.slot_key(0, first) and result.released == 1
        again = waves.tick(wave.pk)  # the safety-net tick, or a second scheduler: nothing more
        assert again.fired == "" and again.already_fired == result.fired and again.released == 0
        run = MigrationRun.objects.get(wave=wave)
        assert run.actor == f"scheduler:wave-{wave.pk}" and run.ring == 0
        assert _statuses(run) == ["queued", "waiting", "waiting"]

    # The window closes before the worker gets to the next tenant: the first runs, the rest wait.
    with time_machine.travel(first.end + datetime.timedelta(minutes=1), tick=True):
        work(queue)
        assert _statuses(run) == ["succeeded", "waiting", "waiting"]
        assert waves.tick(wave.pk).released == 0
        wave.refresh_from_db()
        second = waves.window(wave, 1)
        assert wave.next_fire_at == second.start and wave.status == WaveStatus.RUNNING

    with time_machine.travel(second.start + datetime.timedelta(minutes=1), tick=True):
        result = waves.tick(wave.pk)
        assert result.fired == waves.slot_key(0, second) and result.released == 1
        work(queue)  # each finished tenant releases the next at once while the window is open
        run.refresh_from_db()
        assert _statuses(run) == ["succeeded"] * 3 and run.status == RunStatus.SUCCEEDED
        waves.tick(wave.pk)
        wave.refresh_from_db()
        assert wave.status == WaveStatus.COMPLETED and wave.next_fire_at is None
    assert list(wave.slots.values_list("released", flat=True)) == [1, 2]
    fired = AuditEvent.objects.filter(action="wave.slot_fired").values_list("detail", flat=True)
    assert sorted(d["slot"] for d in fired) == sorted(wave.slots.values_list("slot", flat=True))
    assert AuditEvent.objects.filter(action="wave.released").count() == 3
    assert AuditEvent.objects.filter(action="run.started", actor=f"scheduler:wave-{wave.pk}").count() == 3


@pytest.mark.django_db(transaction=True)
def test_the_next_ring_waits_for_the_previous_to_verify_and_a_failed_ring_halts(fast_graph, tmp_path, queue):
    seed(fast_graph, tmp_path)
    free = tenant_named("tailspin")  # Entra ID Free: a plan stops at the licence check
    good = tenant_named("contoso")
    wave = _wave([free, good], rings=2, pilot_tenants=[free], concurrency=5, ring_delay_days=2)
    first = waves.window(wave, 0)
    with time_machine.travel(first.start + datetime.timedelta(minutes=5), tick=True):
        waves.tick(wave.pk)
        work(queue)
        wave.refresh_from_db()
        assert wave.status == WaveStatus.HALTED, wave.status_message
        assert "tailspin" in wave.status_message and wave.next_fire_at is None
        # Halted: later windows fire nothing for ring 1.
    with time_machine.travel(waves.window(wave, 1).start + datetime.timedelta(minutes=1), tick=True):
        assert waves.tick(wave.pk).fired == ""
        with pytest.raises(ValidationError, match="still has failed tenants"):
            waves.resume_wave(wave, actor="test")
        with pytest.raises(ValidationError, match="Say why"):
            waves.resume_wave(wave, actor="test", accept_failures=True)
        wave = waves.resume_wave(
            wave, actor="test", accept_failures=True, reason="Free tenant: buys P1 later"
        )
        assert wave.current_ring == 1 and wave.status == WaveStatus.RUNNING
        ring_one_from = wave.ring_ready_at
        # Ring 1 may start two days after ring 0's run finished: the next day's window is too early.
        ring0 = MigrationRun.objects.get(wave=wave, ring=0)
        assert ring_one_from == ring0.finished_at + datetime.timedelta(days=2)
        assert wave.next_fire_at >= ring_one_from
        assert waves.tick(wave.pk).fired == ""  # too early for ring 1
    with time_machine.travel(wave.next_fire_at + datetime.timedelta(minutes=1), tick=True):
        result = waves.tick(wave.pk)
        assert result.fired.startswith("r1-") and result.released == 1
        work(queue)
        waves.tick(wave.pk)
    wave.refresh_from_db()
    assert wave.status == WaveStatus.COMPLETED
    assert MigrationRun.objects.get(wave=wave, ring=1).status == RunStatus.SUCCEEDED
    accepted = AuditEvent.objects.get(action="wave.failures_accepted")
    assert accepted.detail["reason"] == "Free tenant: buys P1 later" and accepted.actor == "test"


@pytest.mark.django_db(transaction=True)
def test_pause_resume_and_cancel(fast_graph, tmp_path, queue):
    seed(fast_graph, tmp_path)
    tenants = [tenant_named(name) for name in PLANNABLE]
    wave = _wave(tenants)
    first = waves.window(wave, 0)
    with time_machine.travel(first.start + datetime.timedelta(minutes=1), tick=True):
        waves.pause_wave(wave, actor="test")
        assert waves.tick(wave.pk).fired == "" and not WaveSlot.objects.exists()
        with pytest.raises(ValidationError, match="paused"):
            waves.pause_wave(wave, actor="test")
        wave = waves.resume_wave(wave, actor="test")
        assert wave.status == WaveStatus.SCHEDULED and wave.next_fire_at is not None
        assert waves.tick(wave.pk).released == 1
        wave = waves.cancel_wave(wave, actor="test")
        run = MigrationRun.objects.get(wave=wave)
        # The released tenant may finish; the waiting ones are cancelled and their tenants are free again.
        assert _statuses(run) == ["cancelled", "cancelled", "queued"]
        work(queue)
        run.refresh_from_db()
        assert run.status in (RunStatus.FAILED, RunStatus.CANCELLED) and run.finished_at
        assert waves.tick(wave.pk).status == WaveStatus.CANCELLED
        free_again = start_run(mode="plan", tenants=tenants, actor="test")
        assert free_again.items.count() == 3
        with pytest.raises(ValidationError, match="cancelled"):
            waves.resume_wave(wave, actor="test")
    actions = list(AuditEvent.objects.filter(action__startswith="wave.").values_list("action", flat=True))
    for action in ("wave.created", "wave.paused", "wave.resumed", "wave.slot_fired", "wave.cancelled"):
        assert action in actions


@pytest.mark.django_db(transaction=True)
def test_a_busy_tenant_is_left_out_of_its_ring_with_the_reason(fast_graph, tmp_path, queue):
    seed(fast_graph, tmp_path)
    busy, free = tenant_named("contoso"), tenant_named("fabrikam")
    wave = _wave([busy, free], concurrency=2)
    other = start_run(mode="plan", tenants=[busy], actor="someone")
    with time_machine.travel(waves.window(wave, 0).start + datetime.timedelta(minutes=1), tick=True):
        assert waves.tick(wave.pk).released == 1
    member = wave.members.get(tenant=busy)
    assert f"busy with run {other.pk}" in member.skipped_reason
    assert RunItem.objects.filter(run__wave=wave).count() == 1
    assert AuditEvent.objects.filter(action="wave.tenant_skipped", tenant=busy).exists()


@pytest.mark.django_db
def test_the_wave_command_creates_lists_and_refuses_bad_input(demo_sim, tmp_path, capsys):
    seed(demo_sim, tmp_path)
    for name in ("contoso", "northwind"):  # as a census would have found them
        CustomerTenant.objects.filter(primary_domain__startswith=name).update(licence="p2")
    start = (datetime.datetime.now(UTC) + datetime.timedelta(days=1)).strftime("%Y-%m-%dT22:00")
    base = ["wave", "create", "--mode", "plan", "--time-zone", LONDON, "--start", start]
    with pytest.raises(CommandError, match="No customer tenant"):
        call_command(*base, "--name", "x", "--tenants", "nosuch.example")
    with pytest.raises(CommandError, match="not both"):
        call_command(*base, "--name", "x", "--tenants", "contoso.onmicrosoft.com", "--tag", "smb")
    with pytest.raises(CommandError, match="No tag"):
        call_command(*base, "--name", "x", "--tag", "nosuch")
    with pytest.raises(CommandError, match="not an ISO"):
        call_command(*base[:-1], "tomorrow", "--name", "x", "--tenants", "contoso.onmicrosoft.com")
    assert not Wave.objects.exists()
    call_command(*base, "--name", "P2 wave", "--licence", "p2", "--concurrency", "3")
    wave = Wave.objects.get(name="P2 wave")
    assert wave.selection["filter"] == {"licence": "p2"}
    assert set(wave.members.values_list("tenant__licence", flat=True)) == {"p2"}
    assert wave.starts_at.astimezone(ZoneInfo(LONDON)).hour == 22
    call_command("wave", "list")
    call_command("wave", "pause", "P2 wave")
    call_command("wave", "show", str(wave.pk))
    out = capsys.readouterr().out
    assert "P2 wave" in out and "Paused" in out and "ring 1:" in out
    with pytest.raises(CommandError, match="No wave"):
        call_command("wave", "cancel", "no such wave")


@pytest.mark.django_db(transaction=True)
def test_two_scheduler_processes_over_50_slots_fire_each_slot_once(queue, redis_url, tmp_path):
    """Two scheduler processes both enqueue the wave's job for every one of 50 windows (each registers
    the schedule again, as a restarted scheduler does, after the other moved it to the queue) and two
    worker processes run the copies at once: the slot row's unique constraint lets each slot fire once.

    The ring's full run waits for a second staff member's approval, so no tenant is released and every
    window of the ring is a slot."""
    tenant = CustomerTenant.objects.create(
        tenant_id=uuid.uuid4(), primary_domain="race.example", display_name="Race"
    )
    BreakGlassConfig.objects.create(tenant=tenant, accounts=["bg@race.example"])  # the pre-flight wants one
    wave = _wave([tenant], mode="full", window_minutes=30)
    env = {**worker_env(redis_url), "RUN_APPROVAL_REQUIRED": "True", "LOG_LEVEL": "INFO"}
    names = {"s1": "scheduler", "s2": "scheduler", "w1": "worker", "w2": "worker"}
    logs = {name: tmp_path / f"{name}.log" for name in names}
    procs = {
        name: subprocess.Popen(
            [sys.executable, "-m", "tests.migrations_engine.wave_race", role, name],
            cwd=ROOT,
            env=env,
            stdout=logs[name].open("w"),
            stderr=subprocess.STDOUT,
        )
        for name, role in names.items()
    }
    conn = queue.connection

    def step(targets: list[str], at: datetime.datetime) -> list[dict]:
        for name in targets:
            conn.rpush(f"wave-race:{name}", json.dumps({"at": at.isoformat(), "waves": [wave.pk]}))
        acks = []
        deadline = time.monotonic() + 60
        while len(acks) < len(targets):
            popped = conn.blpop(["wave-race:ack"], timeout=1)
            if popped is not None:
                acks.append(json.loads(popped[1]))
            elif time.monotonic() > deadline or any(p.poll() is not None for p in procs.values()):
                for p in procs.values():
                    p.kill()
                    p.wait()
                raise AssertionError(f"a race process did not answer: {_tails(logs)}")
        return acks

    moved = 0
    try:
        for index in range(50):
            at = waves.window(wave, index).start + datetime.timedelta(seconds=30)
            moved += step(["s1"], at)[0]["moved"]
            moved += step(["s2"], at)[0]["moved"]
            step(["w1", "w2"], at + datetime.timedelta(seconds=1))
    finally:
        for name in procs:
            conn.rpush(f"wave-race:{name}", json.dumps({"op": "stop"}))
        for proc in procs.values():
            proc.wait(timeout=60)
    output = {name: log.read_text() for name, log in logs.items()}
    assert all(proc.returncode == 0 for proc in procs.values()), _tails(logs)

    slots = list(WaveSlot.objects.filter(wave=wave).order_by("window_start"))
    assert [s.slot for s in slots] == [waves.slot_key(0, waves.window(wave, i)) for i in range(50)]
    assert AuditEvent.objects.filter(action="wave.slot_fired").count() == 50
    assert {s.fired_by.rsplit(":", 1)[1] for s in slots} <= {str(p.pid) for p in procs.values()}
    # Every slot's job was enqueued twice and run twice; the second run found the slot taken.
    assert moved == 100
    refused = output["w1"].count("had already fired") + output["w2"].count("had already fired")
    assert refused == 50, _tails(logs)
    run = MigrationRun.objects.get(wave=wave)
    assert run.status == RunStatus.AWAITING_APPROVAL
    assert list(run.items.values_list("status", flat=True)) == [ItemStatus.WAITING]


def _tails(logs) -> dict[str, str]:
    return {name: log.read_text()[-2000:] for name, log in logs.items()}


@pytest.mark.django_db(transaction=True)
def test_a_waves_options_reach_its_rings_runs_and_bad_ones_are_refused(queue):
    tenant = CustomerTenant.objects.create(
        tenant_id=uuid.uuid4(), primary_domain="options.example", display_name="Options"
    )
    BreakGlassConfig.objects.create(
        tenant=tenant, accounts=["bg@options.example"]
    )  # the pre-flight wants one
    with pytest.raises(ValidationError, match="did you mean 203.0.113.0/24"):
        _wave([tenant], options={"named_location": {"cidrs": ["203.0.113.9/24"]}})
    assert not Wave.objects.exists()
    options = {"grant": "phishing_resistant", "sign_in_frequency": {"type": "hours", "value": 12}}
    wave = _wave([tenant], options=options)
    with time_machine.travel(waves.window(wave, 0).start + datetime.timedelta(minutes=1), tick=True):
        waves.tick(wave.pk)
    run = MigrationRun.objects.get(wave=wave)
    assert run.options["grant"] == "phishing_resistant"
    assert run.options["sign_in_frequency"] == {"value": 12, "type": "hours"}
    assert run.options["settle_seconds"] == 600  # the defaults underneath
