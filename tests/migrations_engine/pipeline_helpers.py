"""Helpers for pipeline tests: seed the simulator's fleet, run a run on a real RQ worker, read truth."""

from __future__ import annotations

import json

from django.core.management import call_command

from migrations_engine.models import MigrationRun, RunItem
from tenants.models import CustomerTenant

FAST = {"settle_seconds": 20, "replication_wait_seconds": 8, "whatif_sample": 3}


def seed(sim, tmp_path) -> None:
    fleet_file = tmp_path / "fleet.json"
    fleet_file.write_text(json.dumps(sim.fleet))
    call_command("seed_demo", "--fleet", str(fleet_file))


def tenant_named(sim, domain_prefix: str) -> CustomerTenant:
    return CustomerTenant.objects.get(primary_domain__startswith=domain_prefix)


def work(queue) -> None:
    """Drain the queue with a real rq worker in this process (burst mode)."""
    from rq import SimpleWorker

    SimpleWorker([queue], connection=queue.connection).work(burst=True)


def sim_state(sim, tenant: CustomerTenant) -> dict:
    return sim.admin("GET", f"/_sim/tenants/{tenant.tenant_id}/state")


def sim_writes(sim, tenant: CustomerTenant) -> list[dict]:
    log = sim.admin("GET", f"/_sim/requests?tenant={tenant.tenant_id}&limit=1000000")["requests"]
    return [r for r in log if r.get("write")]


def item_of(run: MigrationRun) -> RunItem:
    return run.items.get()
