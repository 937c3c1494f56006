"""`manage.py verify_audit`: recompute the audit hash chains and name the first broken row of each."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from migrations_engine.audit.models import FLEET_CHAIN
from migrations_engine.audit.writer import verify_chain
from migrations_engine.models import AuditEvent
from msp_console.words import counted
from tenants.lookup import find_tenant


def chain_for_option(wanted: str | None) -> tuple[str | None, int | None]:
    """The chain `--tenant` names and its tenant's pk: a tenant's Entra id or domain, or "fleet".

    (None, None) when no tenant was named (all chains).
    """
    if wanted is None:
        return None, None
    wanted = wanted.strip()
    if wanted.lower() == FLEET_CHAIN:
        return FLEET_CHAIN, None
    tenant = find_tenant(wanted)
    if tenant is None:
        raise CommandError(f"No customer tenant with id or domain {wanted!r}")
    return str(tenant.tenant_id), tenant.pk


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
            raise CommandError(f"{counted(len(problems), 'audit chain')} broken:\n" + "\n".join(lines))
        self.stdout.write(f"{counted(rows, 'row')} in {counted(chains, 'chain')} verified")
