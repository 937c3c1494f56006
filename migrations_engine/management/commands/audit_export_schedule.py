"""`manage.py audit_export_schedule add|list|disable|run-due`: scheduled audit exports from the shell.

    add --name N (--tenant ID_OR_DOMAIN | --fleet) --frequency daily|weekly|monthly --format csv|jsonl
    list
    disable NAME
    run-due            write every completed period not yet exported (what the hourly job does)

Bad input changes nothing and exits 1 with a message naming it.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from migrations_engine.audit.export import FORMATS
from migrations_engine.audit.models import FLEET_CHAIN
from migrations_engine.choices import ExportFrequency
from migrations_engine.exports.services import (
    create_schedule,
    disable_schedule,
    export_due,
    export_folder,
    first_pending_period,
)
from migrations_engine.management.commands.verify_audit import chain_for_option
from migrations_engine.models import ExportSchedule
from staff.commands import acting
from tenants.models import CustomerTenant


def _messages(exc: ValidationError) -> str:
    if hasattr(exc, "message_dict"):
        return "; ".join(f"{name}: {' '.join(errors)}" for name, errors in exc.message_dict.items())
    return " ".join(exc.messages)


class Command(BaseCommand):
    help = "Add, list and disable scheduled audit exports, or write the ones due now."

    def add_arguments(self, parser):
        parser.add_argument("--actor", default="cli", help='who the change is recorded as (default "cli")')
        actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
        add = actions.add_parser("add", help="schedule exports of one tenant's audit chain, or the fleet's")
        add.add_argument("--name", required=True, help="unique; its slug names the export folder")
        scope = add.add_mutually_exclusive_group(required=True)
        scope.add_argument("--tenant", metavar="ID_OR_DOMAIN", help="the tenant's Entra id or domain")
        scope.add_argument("--fleet", action="store_true", help="every chain (the whole fleet)")
        add.add_argument("--frequency", required=True, choices=ExportFrequency.values)
        add.add_argument("--format", default="csv", choices=FORMATS, help="csv (default) or jsonl")
        actions.add_parser("list", help="every schedule with its next period")
        disable = actions.add_parser("disable", help="stop a schedule (its files stay)")
        disable.add_argument("name", metavar="NAME")
        actions.add_parser("run-due", help="write every completed period not yet exported")

    @acting
    def handle(self, *args, **options):
        getattr(self, f"_{options['action'].replace('-', '_')}")(options)

    def _add(self, options):
        tenant = None
        if options["tenant"] is not None:
            chain, tenant_pk = chain_for_option(options["tenant"])
            if chain == FLEET_CHAIN:
                raise CommandError("--tenant names one customer tenant; use --fleet for every chain")
            tenant = CustomerTenant.objects.get(pk=tenant_pk)
        try:
            schedule = create_schedule(
                name=options["name"],
                tenant=tenant,
                frequency=options["frequency"],
                fmt=options["format"],
                actor=options["actor"],
            )
        except ValidationError as exc:
            raise CommandError(f"Schedule not added: {_messages(exc)}") from exc
        period = first_pending_period(schedule)
        self.stdout.write(
            f"Schedule {schedule.name!r} added: {schedule.frequency} {schedule.format} exports of "
            f"{tenant.primary_domain if tenant else 'the fleet'} to {export_folder(schedule)}; "
            f"the first covers {period.local_start:%Y-%m-%d %H:%M} to {period.local_end:%Y-%m-%d %H:%M}"
        )

    def _list(self, options):
        schedules = ExportSchedule.objects.select_related("tenant").order_by("name")
        if not schedules:
            self.stdout.write("No export schedules.")
            return
        for schedule in schedules:
            scope = schedule.tenant.primary_domain if schedule.tenant else "fleet"
            state = "enabled" if schedule.enabled else "disabled"
            next_end = timezone.localtime(first_pending_period(schedule).end)
            self.stdout.write(
                f"{schedule.name}\t{scope}\t{schedule.frequency}\t{schedule.format}\t{state}\t"
                f"{schedule.files.count()} files\tnext period ends {next_end:%Y-%m-%d %H:%M %Z}"
            )

    def _disable(self, options):
        schedule = ExportSchedule.objects.filter(name=options["name"]).first()
        if schedule is None:
            raise CommandError(f"No export schedule named {options['name']!r}")
        if not disable_schedule(schedule, actor=options["actor"]):
            raise CommandError(f"Export schedule {schedule.name!r} is already disabled")
        self.stdout.write(f"Schedule {schedule.name!r} disabled; its files stay in {export_folder(schedule)}")

    def _run_due(self, options):
        report = export_due(actor=options["actor"])
        for export in report.written:
            self.stdout.write(f"{export.path}: {export.rows} rows")
        if report.errors:
            raise CommandError(report.summary())
        self.stdout.write(report.summary())
