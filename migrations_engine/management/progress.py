"""Following a run from the command line: a progress bar, then one line per tenant."""

from __future__ import annotations

import sys
import time

from django.core.management.base import CommandError
from tqdm import tqdm

from migrations_engine.choices import ACTIVE_ITEM_STATUSES
from migrations_engine.models import MigrationRun
from migrations_engine.runs.pipeline import steps_for
from migrations_engine.waiting import Deadline


def run_table(run: MigrationRun) -> str:
    """One line per tenant: status, where it is, and its verdict or reason."""
    lines = [f"Run {run.pk} ({run.get_mode_display()}): {run.get_status_display()}"]
    width = max([len(i.tenant.primary_domain) for i in run.items.select_related("tenant")] + [6])
    for item in run.items.select_related("tenant").order_by("tenant__primary_domain"):
        detail = item.verdict or item.failure_reason or item.current_step or ""
        if item.status == "succeeded" and run.mode == "plan":
            detail = (
                "; ".join(
                    f"{d['change']}" + (f" ({d['users']} users)" if "users" in d else "")
                    for d in item.plan_diff
                )
                or "no change needed"
            )
        lines.append(f"  {item.tenant.primary_domain.ljust(width)}  {item.get_status_display():<9}  {detail}")
    return "\n".join(lines) + "\n"


def wait_for_run(run: MigrationRun, out, *, poll: float = 1.0, timeout: float | None = None) -> MigrationRun:
    """Show progress until no item is queued or running; raise CommandError if the run did not succeed."""
    steps = len(steps_for(run.mode))
    total = run.items.count() * steps
    bar = tqdm(total=total, unit=" steps", desc=f"Run {run.pk}", file=sys.stderr)
    deadline = Deadline(timeout, every=poll)
    try:
        while True:
            items = list(run.items.values_list("status", "next_step_index"))
            done = sum(steps if status not in ACTIVE_ITEM_STATUSES else index for status, index in items)
            bar.update(done - bar.n)
            if not any(status in ACTIVE_ITEM_STATUSES for status, _ in items):
                break
            if (pause := deadline.next_pause()) is None:
                raise CommandError(f"Run {run.pk} is still going after {timeout:.0f} s (it continues)")
            time.sleep(pause)
    finally:
        bar.close()
    run.refresh_from_db()
    out.write(run_table(run))
    if run.status != "succeeded":
        raise CommandError(f"Run {run.pk} ended {run.get_status_display().lower()}")
    return run
