"""`manage.py verify_audit`: recompute the audit hash chains and name the first broken row of each."""

from __future__ import annotations

import uuid

from django.core.management.base import BaseCommand, CommandError
from django.db.models import Q

from migrations_engine.audit import verify_chain
from migrations_engine.models import AuditEvent
from migrations_engine.models.audit import FLEET_CHAIN
from tenants.models import CustomerTenant


def chain_for_option(wanted: str | None) -> tuple[str | None, int | None]:
    """The chain `--tenant` names and its tenant's pk: a tenant's Entra id or domain, or "fleet".

    (None, None) when no tenant was named (all chains).
    """
    if wanted is None:
        return None, None
    wanted = wanted.strip()
    if wanted.lower() == FLEET_CHAIN:
        return FLEET_CHAIN, None
    match = Q(primary_domain__iexact=wanted)
    try:
        match |= Q(tenant_id=uuid.UUID(wanted))
    except ValueError:
        pass
    found = CustomerTenant.objects.filter(match).values_list("tenant_id", "pk").first()
    if found is None:
        raise CommandError(f"No customer tenant with id or domain {wanted!r}")
    return str(found[0]), found[1]


class Command(BaseCommand):
    help = "Verify the audit log's hash chains; exits 1 naming the first broken row of each broken chain."

    def add_arguments(self, parser):
        parser.add_argument(
            "--tenant", metavar="ID_OR_DOMAIN", help='one tenant\'s chain, or "fleet" (rows without one)'
        )

    def handle(self, *args, **options):
        chain, _ = chain_for_option(options["tenant"])
        events = AuditEvent.objects.all() if chain is None else AuditEvent.objects.filter(chain=chain)
        rows = events.count()
        chains = events.order_by().values("chain").distinct().count()
        problems = verify_chain(chain)
        if problems:
            # CommandError exits 1; its message names the first broken row of every broken chain.
            lines = [f"row id {p.event_id}, chain {p.chain}, seq {p.seq}: {p.reason}" for p in problems]
            raise CommandError(f"{len(problems)} audit chain(s) broken:\n" + "\n".join(lines))
        self.stdout.write(f"{rows} rows in {chains} chains verified")
