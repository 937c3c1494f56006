"""`manage.py run_status RUN`: where a run stands, per tenant and per step."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from migrations_engine.management.progress import run_table
from migrations_engine.models import MigrationRun


class Command(BaseCommand):
    help = "Show a run's status, one line per tenant (with --steps, each tenant's step log)."

    def add_arguments(self, parser):
        parser.add_argument("run", type=int)
        parser.add_argument("--steps", action="store_true", help="each tenant's step log")

    def handle(self, *args, **options):
        run = MigrationRun.objects.filter(pk=options["run"]).first()
        if run is None:
            raise CommandError(f"No run {options['run']}")
        self.stdout.write(run_table(run))
        if options["steps"]:
            for item in run.items.select_related("tenant"):
                self.stdout.write(f"{item.tenant.primary_domain}:")
                for entry in item.step_log:
                    self.stdout.write(f"  {entry['status']:<8} {entry['title']}: {entry.get('message', '')}")
