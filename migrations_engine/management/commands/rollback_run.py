"""`manage.py rollback_run RUN`: restore the run's tenants from their snapshots."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from migrations_engine.management.progress import wait_for_run
from migrations_engine.models import MigrationRun
from migrations_engine.runs.services import RunConflict, start_rollback
from msp_console.words import counted
from staff.commands import acting


class Command(BaseCommand):
    help = "Roll a pilot or full run back: per-user states, security defaults and the policy as before."

    def add_arguments(self, parser):
        parser.add_argument("run", type=int)
        parser.add_argument("--wait", action="store_true")
        parser.add_argument("--actor", default="cli")

    @acting
    def handle(self, *args, **options):
        run = MigrationRun.objects.filter(pk=options["run"]).first()
        if run is None:
            raise CommandError(f"No run {options['run']}")
        try:
            rollback = start_rollback(run, actor=options["actor"])
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from exc
        except RunConflict as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(
            f"Rollback run {rollback.pk} started for {counted(rollback.items.count(), 'tenant')}"
        )
        if options["wait"]:
            wait_for_run(rollback, self.stdout)
