"""`manage.py schedule_sweeper [--interval S]`: run the sweeper every S seconds through rq-scheduler."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from migrations_engine.runs.sweeper import SCHEDULE_ID, SCHEDULE_INTERVAL_SECONDS, ensure_scheduled


class Command(BaseCommand):
    help = "Register the run sweeper as a repeating rq-scheduler job (replaces an earlier registration)."

    def add_arguments(self, parser):
        parser.add_argument("--interval", type=int, default=SCHEDULE_INTERVAL_SECONDS)

    def handle(self, *args, **options):
        if options["interval"] < 5:
            raise CommandError("--interval must be at least 5 seconds")
        ensure_scheduled(options["interval"])
        self.stdout.write(f"Sweeper scheduled as {SCHEDULE_ID}, every {options['interval']} s")
