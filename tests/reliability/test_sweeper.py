"""The sweeper: the database says what should run; jobs Redis lost or workers that died are replaced."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from datetime import timedelta

import django_rq
import pytest
from django.core.management import call_command
from django.utils import timezone

from migrations_engine.models import AuditEvent, RunItem
from migrations_engine.queueing import ping
from migrations_engine.runs.services import start_run
from migrations_engine.runs.sweeper import job_state, sweep, worker_alive
from migrations_engine.runs.tasks import sweep_runs_job
from migrations_engine.schedules import SWEEPER_ID as SCHEDULE_ID
from migrations_engine.schedules import ensure
from tests.migrations_engine.pipeline_helpers import (
    FAST,
    ROOT,
    item_of,
    seed,
    tenant_named,
    work,
    worker_command,
    worker_env,
    worker_process,
)

pytestmark = pytest.mark.django_db(transaction=True)


def swept_actions(tenant) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(tenant=tenant, action="run.swept"))


def test_a_queued_item_whose_job_redis_lost_is_enqueued_again_under_its_own_id(fast_graph, tmp_path, queue):
    seed(fast_graph, tmp_path)
    tenant = tenant_named("contoso")
    run = start_run(mode="plan", tenants=[tenant], actor="test", options=FAST)
    item = item_of(run)
    assert job_state(queue.connection, item.rq_job_id) == ("queued", True)
    assert sweep().actions == []  # its job is alive: left alone

    queue.connection.flushdb()
    report = sweep()
    assert [(a.action, a.job_id) for a in report.actions] == [("enqueued", item.rq_job_id)]
    assert sweep().actions == []  # and only once
    work(queue)
    item.refresh_from_db()
    assert (item.status, item.attempt) == ("succeeded", 1), item.failure_reason
    assert swept_actions(tenant) == []  # nothing was re-queued, so no staff action


def test_a_running_item_whose_worker_died_is_requeued_at_its_checkpoint(
    fast_graph, tmp_path, queue, redis_url
):
    seed(fast_graph, tmp_path)
    tenant = tenant_named("fabrikam")
    run = start_run(mode="full", tenants=[tenant], actor="test", options=FAST)
    assert worker_process(redis_url, crash_points="after_step:bridge") == 137
    item = item_of(run)
    assert item.status == "running" and item.next_step_index > 0
    status, alive = job_state(queue.connection, item.rq_job_id)
    assert (status, alive) == ("started", False)  # RQ still says started; its worker is gone

    report = sweep(actor="sweeper")
    assert [(a.action, a.reason) for a in report.actions] == [("requeued", "its worker died")]
    item.refresh_from_db()
    assert (item.status, item.attempt, item.rq_job_id) == (
        "queued",
        2,
        f"run{run.pk}-tenant{tenant.pk}-attempt2",
    )
    [row] = swept_actions(tenant)
    assert row.actor == "sweeper" and row.detail["old_job"].endswith("attempt1")
    assert sweep().actions == []  # the new job is queued: alive

    checkpoint = item.next_step_index
    assert worker_process(redis_url) == 0
    item.refresh_from_db()
    assert item.status == "succeeded", item.failure_reason
    assert item.step_log[checkpoint - 1]["attempt"] == 1  # steps before the checkpoint were not run again


def test_an_item_whose_job_is_running_on_a_live_worker_is_never_touched(
    fast_graph, tmp_path, queue, redis_url
):
    seed(fast_graph, tmp_path)
    tenant = tenant_named("woodgrove")
    fast_graph.admin("POST", f"/_sim/tenants/{tenant.tenant_id}/faults", json={"latency_ms": 120})
    run = start_run(mode="full", tenants=[tenant], actor="test", options=FAST)
    worker = subprocess.Popen(
        [*worker_command(), "--burst"],
        cwd=ROOT,
        env=worker_env(redis_url),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while item_of(run).status != "running":
            assert time.monotonic() < deadline and worker.poll() is None, "the worker never claimed the item"
            time.sleep(0.05)
        sweeps = 0
        # Even with every heartbeat counted stale, a job started by a live worker is left alone.
        while item_of(run).status == "running" and sweeps < 20:
            report = sweep(now=timezone.now() + timedelta(hours=1))
            assert report.actions == [], report.actions
            sweeps += 1
            time.sleep(0.1)
        assert sweeps >= 3, "the run finished before the sweeper could look at it"
        assert worker.wait(120) == 0
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    item = item_of(run)
    assert (item.status, item.attempt) == ("succeeded", 1), item.failure_reason
    assert swept_actions(tenant) == []


def test_a_running_item_whose_job_is_not_started_waits_for_its_heartbeat_to_go_stale(
    fast_graph, tmp_path, queue
):
    seed(fast_graph, tmp_path)
    tenant = tenant_named("contoso")
    run = start_run(mode="plan", tenants=[tenant], actor="test", options=FAST)
    item = item_of(run)
    queue.connection.flushdb()
    queue.enqueue(ping, job_id="finished-elsewhere")
    work(queue)  # a finished job: not started, not gone
    beat = timezone.now()
    RunItem.objects.filter(pk=item.pk).update(
        status="running", rq_job_id="finished-elsewhere", heartbeat_at=beat
    )

    assert sweep(now=beat + timedelta(minutes=4)).actions == []
    report = sweep(now=beat + timedelta(minutes=6), stale_after=timedelta(minutes=5))
    assert [a.action for a in report.actions] == ["requeued"]
    assert "no heartbeat since" in report.actions[0].reason
    work(queue)
    item.refresh_from_db()
    assert (item.status, item.attempt) == ("succeeded", 2), item.failure_reason


def test_items_awaiting_approval_are_not_enqueued_by_the_sweeper(fast_graph, tmp_path, queue, settings):
    settings.RUN_APPROVAL_REQUIRED = True
    seed(fast_graph, tmp_path)
    run = start_run(mode="full", tenants=[tenant_named("contoso")], actor="test", options=FAST)
    assert run.status == "awaiting_approval"
    assert sweep().checked == 0
    assert queue.count == 0


def test_a_started_job_lives_while_its_worker_does(queue):
    conn = queue.connection
    key = "rq:worker:elsewhere-1"
    conn.hset(key, mapping={"hostname": "another-host", "pid": 1})
    assert worker_alive(conn, "elsewhere-1")  # another host: its key (refreshed by heartbeats) decides
    conn.delete(key)
    assert not worker_alive(conn, "elsewhere-1")  # the key expired: no heartbeat within its TTL
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    conn.hset(key, mapping={"hostname": socket.gethostname(), "pid": int(dead.stdout)})
    assert not worker_alive(conn, "elsewhere-1")  # this host, and its process is gone
    conn.hset(key, mapping={"hostname": socket.gethostname(), "pid": os.getpid()})
    assert worker_alive(conn, "elsewhere-1")
    assert not worker_alive(conn, None)


def test_the_command_prints_what_it_did(fast_graph, tmp_path, queue, capsys):
    seed(fast_graph, tmp_path)
    run = start_run(mode="plan", tenants=[tenant_named("contoso")], actor="test", options=FAST)
    queue.connection.flushdb()
    call_command("sweep_runs", "--stale-minutes", "2")
    out = capsys.readouterr().out
    assert (
        f"run {run.pk} / contoso.onmicrosoft.com: enqueued as {item_of(run).rq_job_id} (job missing)" in out
    )
    assert "checked 1 active item: 1 enqueued again, 0 stalled re-queued, 0 left alone" in out


def test_the_sweeper_is_scheduled_once_every_minute_and_its_job_sweeps(fast_graph, tmp_path, queue, capsys):
    call_command("schedule_sweeper")
    ensure(SCHEDULE_ID)  # again: still one schedule
    scheduler = django_rq.get_scheduler("default")
    scheduled = [job for job in scheduler.get_jobs() if job.id == SCHEDULE_ID]
    assert len(scheduled) == 1 and scheduled[0].meta["interval"] == 60
    assert scheduled[0].func == sweep_runs_job  # the dotted path resolves to the task

    seed(fast_graph, tmp_path)
    run = start_run(mode="plan", tenants=[tenant_named("contoso")], actor="test", options=FAST)
    for key in queue.connection.scan_iter(f"rq:job:{item_of(run).rq_job_id}*"):
        queue.connection.delete(key)  # the item's job vanished, the schedule did not
    queue.empty()
    scheduler.enqueue_jobs()  # what `rqscheduler` does when the slot comes
    work(queue)  # runs the sweep, which enqueues the item, which the same burst then runs
    assert item_of(run).status == "succeeded", (item_of(run).failure_reason, item_of(run).traceback)
    assert [job.id for job in scheduler.get_jobs()] == [SCHEDULE_ID]  # and it stays scheduled


def test_a_running_item_whose_job_redis_lost_is_left_to_its_live_worker(
    fast_graph, tmp_path, queue, redis_url
):
    seed(fast_graph, tmp_path)
    tenant = tenant_named("woodgrove")
    fast_graph.admin("POST", f"/_sim/tenants/{tenant.tenant_id}/faults", json={"latency_ms": 120})
    run = start_run(mode="full", tenants=[tenant], actor="test", options=FAST)
    worker = subprocess.Popen(
        [*worker_command(), "--burst"],
        cwd=ROOT,
        env=worker_env(redis_url),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while item_of(run).status != "running":
            assert time.monotonic() < deadline and worker.poll() is None, "the worker never claimed the item"
            time.sleep(0.05)
        queue.connection.flushdb()  # the job is gone from Redis; the worker goes on running it
        assert job_state(queue.connection, item_of(run).rq_job_id) == ("missing", False)
        assert sweep().actions == []  # its claimer lives and its heartbeat is fresh
        assert worker.wait(120) == 0
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    item = item_of(run)
    assert (item.status, item.attempt) == ("succeeded", 1), item.failure_reason
    assert swept_actions(tenant) == []
