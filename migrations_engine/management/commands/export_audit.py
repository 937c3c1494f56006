"""`manage.py export_audit`: stream audit rows as CSV or JSON lines, filtered by tenant, time and run;
with `--actor` of a staff member, only the rows that person sees in the console.

Rows are read with a server-side cursor in chunks and written one by one by `audit_export` (which the
console's export shares), so memory stays flat however many rows match. `request_body` was redacted
when the row was written; nothing else is secret. The export itself is recorded as a staff action
("audit.exported").
"""

from __future__ import annotations

import datetime

from django.core.management.base import BaseCommand, CommandError
from django.utils import dateparse, timezone

from migrations_engine.audit.export import FORMATS, VALUES, write_rows
from migrations_engine.audit.writer import record_staff_action
from migrations_engine.management.commands.verify_audit import chain_for_option
from migrations_engine.models import AuditEvent
from staff.commands import acting
from staff.roles import is_person
from tenants.access import can_access, visible_tenants


def parse_moment(option: str, value: str | None) -> datetime.datetime | None:
    """An ISO date or datetime from the command line; naive values are in the console's time zone."""
    if value is None:
        return None
    try:
        moment = dateparse.parse_datetime(value)
        if moment is None:
            day = dateparse.parse_date(value)
            moment = datetime.datetime.combine(day, datetime.time.min) if day else None
    except ValueError:
        moment = None
    if moment is None:
        raise CommandError(f"{option} {value!r} is not an ISO date or datetime (e.g. 2025-01-31T12:00:00Z)")
    return timezone.make_aware(moment) if timezone.is_naive(moment) else moment


class Command(BaseCommand):
    help = "Export audit rows as CSV or JSON lines (streamed), filtered by tenant, time and run."

    def add_arguments(self, parser):
        parser.add_argument(
            "--tenant", metavar="ID_OR_DOMAIN", help='one tenant\'s rows ("fleet" for rows without one)'
        )
        parser.add_argument("--since", metavar="ISO", help="rows created at or after this moment")
        parser.add_argument("--until", metavar="ISO", help="rows created before this moment")
        parser.add_argument("--run", type=int, metavar="RUN_ID", help="one run's rows")
        parser.add_argument("--format", default="csv", help="csv (default) or jsonl")
        parser.add_argument("--output", metavar="FILE", help="write here instead of stdout")
        parser.add_argument(
            "--actor",
            default="cli",
            help='who the export is recorded as (default "cli"); a staff username exports only the rows '
            "that person sees in the console",
        )

    @acting
    def handle(self, *args, **options):
        # Everything is checked before the output is opened: a bad option writes nothing.
        fmt = (options["format"] or "").lower()
        if fmt not in FORMATS:
            raise CommandError(f"--format must be one of {', '.join(FORMATS)}, not {options['format']!r}")
        since = parse_moment("--since", options["since"])
        until = parse_moment("--until", options["until"])
        if since and until and until <= since:
            raise CommandError("--until must be later than --since")
        chain, tenant_pk = chain_for_option(options["tenant"])
        actor = options["actor"]
        person = is_person(actor) and not actor.is_superuser
        if person and tenant_pk is not None and not can_access(actor, tenant_pk):
            # The same words whether the tenant exists or not: nothing about other staff's tenants.
            raise CommandError(f"No customer tenant with id or domain {options['tenant']!r}")

        events = AuditEvent.objects.order_by("id")
        if person:
            # As the console's audit list: a staff member sees their tenants' rows only.
            events = events.filter(tenant__in=visible_tenants(actor))
        if chain is not None:
            events = events.filter(chain=chain)
        if since:
            events = events.filter(created_at__gte=since)
        if until:
            events = events.filter(created_at__lt=until)
        if options["run"] is not None:
            events = events.filter(run_id=options["run"])
        rows = events.values_list(*VALUES).iterator(chunk_size=2000)

        if options["output"]:
            try:
                out = open(options["output"], "w", newline="", encoding="utf-8")
            except OSError as exc:
                raise CommandError(f"Cannot write {options['output']}: {exc}") from exc
        else:
            out = self.stdout
        try:
            count = write_rows(out, fmt, rows)
        finally:
            if options["output"]:
                out.close()

        filters = {k: options[k] for k in ("tenant", "since", "until", "run") if options[k] is not None}
        record_staff_action(
            actor=options["actor"],
            action="audit.exported",
            tenant_id=tenant_pk,
            detail={"format": fmt, "rows": count, "filters": filters, "output": options["output"] or "-"},
        )
        self.stderr.write(f"{count} audit rows exported as {fmt}")
