"""`manage.py start_run`: start a plan, pilot or full run for some or all tenants, optionally wait."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from migrations_engine.management.progress import wait_for_run
from migrations_engine.runs.options_form import add_cli_arguments, cli_options
from migrations_engine.runs.services import RunConflict, start_run
from msp_console.words import counted
from staff.commands import acting
from tenants.lookup import find_tenant
from tenants.models import CustomerTenant


class Command(BaseCommand):
    help = "Start a migration run (plan, pilot or full) as RQ jobs, one per tenant."

    def add_arguments(self, parser):
        parser.add_argument("--mode", required=True, choices=["plan", "pilot", "full"])
        target = parser.add_mutually_exclusive_group(required=True)
        target.add_argument("--tenants", help="comma-separated tenant ids or domains")
        target.add_argument("--all", action="store_true", help="every customer tenant")
        parser.add_argument("--pilot-group", help="pilot mode: the pilot group's object id")
        parser.add_argument("--settle-seconds", type=int, help="how long verify waits for changes to apply")
        parser.add_argument("--wait", action="store_true", help="follow the run with a progress bar")
        add_cli_arguments(parser)
        parser.add_argument("--actor", default="cli", help="who to record as having started it")

    @acting
    def handle(self, *args, **options):
        if options["all"]:
            tenants = list(CustomerTenant.objects.order_by("display_name"))
        else:
            tenants = []
            for name in filter(None, (t.strip() for t in options["tenants"].split(","))):
                tenant = find_tenant(name)
                if tenant is None:
                    raise CommandError(f"No customer tenant with id or domain {name!r}; nothing was started")
                tenants.append(tenant)
        try:
            run_options = cli_options(options)
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages) + "; nothing was started") from exc
        if options["settle_seconds"] is not None:
            if options["settle_seconds"] < 0:
                raise CommandError("--settle-seconds cannot be negative")
            run_options["settle_seconds"] = options["settle_seconds"]
        try:
            run = start_run(
                mode=options["mode"],
                tenants=tenants,
                actor=options["actor"],
                pilot_group_id=options["pilot_group"],
                options=run_options,
            )
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from exc
        except RunConflict as exc:
            raise CommandError(f"{exc}. See: manage.py run_status {exc.existing.pk}") from exc
        self.stdout.write(
            f"Run {run.pk} ({run.get_mode_display()}) started for {counted(run.items.count(), 'tenant')}"
        )
        for row in (run.preflight or {}).get("left_out", []):
            self.stderr.write(f"  left out {row['domain']}: {'; '.join(row['reasons'])}")
        if options["wait"]:
            wait_for_run(run, self.stdout)
