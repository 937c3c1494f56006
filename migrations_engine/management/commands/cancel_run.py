"""`manage.py cancel_run RUN`: stop a run between steps (a step under way finishes first)."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from migrations_engine.models import MigrationRun
from migrations_engine.runs.services import cancel_run
from msp_console.words import counted
from staff.commands import acting


class Command(BaseCommand):
    help = "Cancel a run: each tenant stops at its next step boundary."

    def add_arguments(self, parser):
        parser.add_argument("run", type=int)
        parser.add_argument("--actor", default="cli")

    @acting
    def handle(self, *args, **options):
        run = MigrationRun.objects.filter(pk=options["run"]).first()
        if run is None:
            raise CommandError(f"No run {options['run']}")
        active = cancel_run(run, actor=options["actor"])
        self.stdout.write(
            f"Run {run.pk}: cancel requested; {counted(active, 'tenant')} stop at their next step"
        )
