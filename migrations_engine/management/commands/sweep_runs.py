"""`manage.py sweep_runs [--stale-minutes N]`: re-enqueue items whose job Redis lost, resume stalled ones."""

from __future__ import annotations

from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError

from migrations_engine.runs.sweeper import sweep


class Command(BaseCommand):
    help = (
        "Reconcile run items with their RQ jobs: queued items whose job vanished are enqueued again, "
        "running items whose job or worker died are re-queued at their checkpoint."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--stale-minutes",
            type=float,
            default=5.0,
            help="a running item whose job is not started is re-queued after this long without a heartbeat",
        )
        parser.add_argument("--actor", default="sweeper")

    def handle(self, *args, **options):
        if options["stale_minutes"] <= 0:
            raise CommandError("--stale-minutes must be positive")
        report = sweep(stale_after=timedelta(minutes=options["stale_minutes"]), actor=options["actor"])
        for action in report.actions:
            self.stdout.write(str(action))
        self.stdout.write(report.summary())
