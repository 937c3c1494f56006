"""`manage.py import_tenants FILE [--dry-run]`: add many customer tenants from a CSV file, all or none."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from msp_console.words import counted
from staff import roles
from staff.commands import acting, require_for_command
from tenants.importing import COLUMNS, ImportRefused, import_tenants, parse_tenant_csv


class Command(BaseCommand):
    help = (
        "Import customer tenants from a CSV file with the header "
        + ",".join(COLUMNS)
        + " (break_glass_accounts separated by ';'). Every row is checked first; any bad row and nothing "
        "is imported."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", help="the CSV file (UTF-8, with or without a byte-order mark)")
        parser.add_argument("--dry-run", action="store_true", help="check every row, import nothing")
        parser.add_argument("--actor", default="cli", help="a staff username to act as (role checked)")

    @acting
    def handle(self, *args, **options):
        require_for_command(options["actor"], roles.CUSTOMERS)
        path = Path(options["file"])
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise CommandError(f"{path} cannot be read: {exc.strerror}") from exc
        plan = parse_tenant_csv(data)
        if plan.errors:
            for error in plan.errors:
                self.stderr.write(str(error))
            raise CommandError(f"{len(plan.errors)} problems in {path}; nothing was imported")
        if options["dry_run"]:
            self.stdout.write(
                f"{counted(len(plan.rows), 'tenant')} would be imported (dry run: nothing was imported)"
            )
            return
        try:
            # As the console's import: a staff member's imported tenants are granted to them.
            actor = options["actor"]
            tenants = import_tenants(plan, actor=actor, grant_to=actor if roles.is_person(actor) else None)
        except ImportRefused as exc:
            for error in exc.errors:
                self.stderr.write(str(error))
            raise CommandError(f"{path} could not be imported; nothing was imported") from exc
        self.stdout.write(
            f"{counted(len(tenants), 'tenant')} imported; send each its admin-consent link from the console"
        )
