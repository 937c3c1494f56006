"""The run commands: start_run, run_status, rollback_run, cancel_run."""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command

from migrations_engine.models import MigrationRun
from tests.migrations_engine.pipeline_helpers import seed, work

pytestmark = pytest.mark.django_db(transaction=True)


def test_it_starts_a_run_shows_it_and_rolls_it_back(fast_graph, tmp_path, queue):
    seed(fast_graph, tmp_path)
    out = io.StringIO()
    call_command(
        "start_run",
        "--mode",
        "full",
        "--tenants",
        "woodgrove.onmicrosoft.com",
        "--settle-seconds",
        "20",
        stdout=out,
    )
    run = MigrationRun.objects.get()
    assert f"Run {run.pk} (Full) started for 1 tenant" in out.getvalue()
    work(queue)
    status = io.StringIO()
    call_command("run_status", str(run.pk), "--steps", stdout=status)
    assert "Succeeded" in status.getvalue() and "Verified" in status.getvalue()
    assert "Disable per-user MFA" in status.getvalue()

    call_command("rollback_run", str(run.pk), stdout=io.StringIO())
    rollback = MigrationRun.objects.get(mode="rollback")
    work(queue)
    waited = io.StringIO()
    from migrations_engine.management.progress import wait_for_run

    wait_for_run(rollback, waited)
    assert "Rolled back" in waited.getvalue()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--mode", "full", "--tenants", "nosuch.example.com"], "nosuch.example.com"),
        (["--mode", "pilot", "--tenants", "contoso.onmicrosoft.com"], "pilot group"),
        (["--mode", "pilot", "--tenants", "contoso.onmicrosoft.com", "--pilot-group", "x"], "pilot group"),
        (["--mode", "full", "--tenants", "contoso.onmicrosoft.com", "--settle-seconds", "-1"], "negative"),
    ],
)
def test_it_refuses_bad_input_and_starts_nothing(fast_graph, tmp_path, queue, args, message):
    seed(fast_graph, tmp_path)
    with pytest.raises(CommandError, match=message):
        call_command("start_run", *args, stdout=io.StringIO())
    assert not MigrationRun.objects.exists()
    assert queue.count == 0


def test_it_points_at_the_run_already_going(fast_graph, tmp_path, queue):
    seed(fast_graph, tmp_path)
    call_command("start_run", "--mode", "plan", "--tenants", "contoso.onmicrosoft.com", stdout=io.StringIO())
    first = MigrationRun.objects.get()
    with pytest.raises(CommandError, match=f"run_status {first.pk}"):
        call_command(
            "start_run", "--mode", "full", "--tenants", "contoso.onmicrosoft.com", stdout=io.StringIO()
        )


def test_it_cancels_between_steps(fast_graph, tmp_path, queue):
    seed(fast_graph, tmp_path)
    call_command("start_run", "--mode", "full", "--tenants", "contoso.onmicrosoft.com", stdout=io.StringIO())
    run = MigrationRun.objects.get()
    call_command("cancel_run", str(run.pk), stdout=io.StringIO())
    work(queue)
    run.refresh_from_db()
    item = run.items.get()
    assert (run.status, item.status, item.next_step_index) == ("cancelled", "cancelled", 0)


def test_it_names_a_missing_run(db):
    for command in ("run_status", "rollback_run", "cancel_run"):
        with pytest.raises(CommandError, match="No run 999"):
            call_command(command, "999", stdout=io.StringIO())
