"""`manage.py schedule_sweeper [--interval S]`: run the sweeper every S seconds through rq-scheduler."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from migrations_engine.schedules import BY_ID, SWEEPER_ID, ensure


class Command(BaseCommand):
    help = "Register the run sweeper as a repeating rq-scheduler job (replaces an earlier registration)."

    def add_arguments(self, parser):
        parser.add_argument("--interval", type=int, default=BY_ID[SWEEPER_ID].seconds())

    def handle(self, *args, **options):
        if options["interval"] < 5:
            raise CommandError("--interval must be at least 5 seconds")
        ensure(SWEEPER_ID, interval=options["interval"])
        self.stdout.write(f"Sweeper scheduled as {SWEEPER_ID}, every {options['interval']} s")
