"""`manage.py run_scheduler [--interval S]`: the scheduler process. It registers every schedule (Redis may
have lost them) and then runs rq-scheduler, which moves due jobs to the queue every S seconds.

Two of these may run (a deployment's restart overlap, a second host): rq-scheduler's lock lets one move
jobs, and whatever that lock does, a wave's slot fires once (its unique row decides).
"""

from __future__ import annotations

from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from migrations_engine.schedules import ensure_all


class Command(BaseCommand):
    help = "Register every schedule, then run rq-scheduler (the scheduler process)."

    def add_arguments(self, parser):
        parser.add_argument("--interval", type=int, default=10, help="seconds between checks for due jobs")

    def handle(self, *args, **options):
        if options["interval"] < 1:
            raise CommandError("--interval must be at least 1 second")
        registered = ensure_all()
        self.stdout.write(f"Scheduled: {', '.join(registered)}")
        call_command("rqscheduler", interval=options["interval"], verbosity=options["verbosity"])
