"""`manage.py census`: read every chosen tenant's MFA posture from Graph, store it, print a table."""

from __future__ import annotations

import asyncio
import sys

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from migrations_engine.census.read import CensusResult, take_census
from migrations_engine.graph import GraphClient, GraphConfig, GraphConfigError
from msp_console.words import counted
from staff import roles
from staff.actors import actor_label
from staff.commands import acting, require_for_command
from tenants.access import can_access
from tenants.lookup import find_tenant
from tenants.models import CustomerTenant
from tenants.services import CensusWriter, record_census
from tenants.table import census_rows, render_table


class Command(BaseCommand):
    help = "Read-only census of customer tenants: licence, security defaults, CA policies, per-user MFA."

    def add_arguments(self, parser):
        target = parser.add_mutually_exclusive_group(required=True)
        target.add_argument("--tenant", action="append", metavar="ID_OR_DOMAIN", help="repeatable")
        target.add_argument("--all", action="store_true", help="every customer tenant")
        parser.add_argument("--concurrency", type=int, default=4, help="tenants read at once (default 4)")
        parser.add_argument("--no-progress", action="store_true", help="no progress bar")
        parser.add_argument(
            "--actor", default="cli", help="a staff username to act as (role and grants checked)"
        )

    @acting
    def handle(self, *args, **options):
        if options["concurrency"] < 1:
            raise CommandError("--concurrency must be at least 1")
        actor = options["actor"]
        require_for_command(actor, roles.CENSUS)
        tenants = self._tenants(options)
        if roles.is_person(actor) and not all(can_access(actor, t) for t in tenants):
            raise CommandError(f"{actor} may not act on every tenant named; nothing was read")
        try:
            config = GraphConfig.from_settings()
        except GraphConfigError as exc:
            raise CommandError(f"Graph is not configured: {exc}") from exc

        writers = [CensusWriter(t) for t in tenants]
        bar = tqdm(
            total=None,
            unit=" users",
            desc=f"Census of {counted(len(tenants), 'tenant')}",
            file=sys.stderr,
            disable=options["no_progress"],
        )
        try:
            results = asyncio.run(_census_all(config, tenants, writers, options["concurrency"], bar.update))
        finally:
            bar.close()

        stored = [
            record_census(t, r, actor=actor_label(actor), writer=w)
            for t, r, w in zip(tenants, results, writers, strict=True)
        ]
        self.stdout.write(render_table(census_rows(stored)))
        failed = [t for t in stored if t.census_status == "error"]
        if failed:
            raise CommandError(
                f"{len(failed)} of {counted(len(stored), 'tenant')} could not be read (see Notes)"
            )

    def _tenants(self, options) -> list[CustomerTenant]:
        if options["all"]:
            tenants = list(CustomerTenant.objects.order_by("display_name"))
            if not tenants:
                raise CommandError("No customer tenants yet. Add one in the console or with seed_demo.")
            return tenants
        tenants = []
        for wanted in options["tenant"]:
            tenant = find_tenant(wanted)
            if tenant is None:
                raise CommandError(f"No customer tenant with id or domain {wanted!r}")
            tenants.append(tenant)
        return tenants


async def _census_all(config, tenants, writers, concurrency, progress) -> list[CensusResult]:
    gate = asyncio.Semaphore(concurrency)

    async def one(tenant: CustomerTenant, writer: CensusWriter) -> CensusResult:
        async with gate, GraphClient(str(tenant.tenant_id), config, user_count=tenant.users_total) as client:
            return await take_census(
                client, progress=progress, sink=writer.awrite, registration_sink=writer.aregistration
            )

    try:
        return await asyncio.gather(*(one(t, w) for t, w in zip(tenants, writers, strict=True)))
    finally:
        await CensusWriter.aclose()
