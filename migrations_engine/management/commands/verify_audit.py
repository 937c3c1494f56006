"""`manage.py verify_audit`: check the audit log's hash chains and name the first broken row of each.

By default each chain is checked from its last good check on (the result the console's verify page
shows) and the results are stored; `--full` re-hashes every chain from row 1; `--stored` only prints
the stored results with their age, checking nothing.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from migrations_engine.audit.models import FLEET_CHAIN
from migrations_engine.audit.verification import chain_names, check_chain
from migrations_engine.models import AuditChainHead, ChainVerification
from msp_console.words import ago, counted
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


def _problem_line(result: ChainVerification) -> str:
    return (
        f"row id {result.problem_event_id}, chain {result.head.chain}, seq {result.problem_seq}: "
        f"{result.problem_reason}"
    )


class Command(BaseCommand):
    help = "Verify the audit log's hash chains; exits 1 naming the first broken row of each broken chain."

    def add_arguments(self, parser):
        parser.add_argument(
            "--tenant", metavar="ID_OR_DOMAIN", help='one tenant\'s chain, or "fleet" (rows without one)'
        )
        how = parser.add_mutually_exclusive_group()
        how.add_argument("--full", action="store_true", help="re-hash every row from row 1")
        how.add_argument("--stored", action="store_true", help="print the stored results; check nothing")

    def handle(self, *args, **options):
        chain, _ = chain_for_option(options["tenant"])
        heads = AuditChainHead.objects.order_by("chain")
        if chain is not None:
            heads = heads.filter(chain=chain)
        if options["stored"]:
            results = self._stored(heads)
        else:
            results = [check_chain(head.chain, full=options["full"]) for head in heads.iterator()]
        broken = [r for r in results if r.problem_reason]
        # A chain's head is written with its first row: rows without one were put there another way.
        headless = sorted(set(chain_names()) - set(heads.values_list("chain", flat=True)))
        if chain is not None:
            headless = [name for name in headless if name == chain]
        if broken or headless:
            # CommandError exits 1; its message names the first broken row of every broken chain.
            lines = [_problem_line(r) for r in broken]
            lines += [f"chain {name}: rows without a chain head" for name in headless]
            raise CommandError(
                f"{counted(len(broken) + len(headless), 'audit chain')} broken:\n" + "\n".join(lines)
            )
        rows = sum(r.verified_seq for r in results)
        hashed = sum(r.rows_checked for r in results)
        line = f"{counted(rows, 'row')} in {counted(len(results), 'chain')} verified"
        if not options["stored"] and hashed == 0 and rows:
            line += " (no rows since the last check)"
        elif not options["stored"] and hashed != rows:
            line += f" ({counted(hashed, 'row')} hashed now, the rest at earlier checks)"
        self.stdout.write(line)

    def _stored(self, heads) -> list[ChainVerification]:
        results = list(ChainVerification.objects.filter(head__in=heads).select_related("head"))
        never = heads.count() - sum(1 for r in results if r.checked_at)
        for result in results:
            if result.checked_at is None:
                continue
            state = "broken" if result.problem_reason else f"ok to #{result.verified_seq}"
            behind = result.head.seq - result.verified_seq if not result.problem_reason else 0
            extra = f", {counted(behind, 'newer row')} not checked" if behind else ""
            self.stdout.write(f"{result.head.chain}: {state}, checked {ago(result.checked_at)}{extra}")
        if never:
            self.stderr.write(f"{counted(never, 'chain')} never checked: run verify_audit without --stored")
        return [r for r in results if r.checked_at]
