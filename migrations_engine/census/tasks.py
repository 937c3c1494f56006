"""RQ entry point of the census: read one tenant and store it (queued by `census.services`)."""

from __future__ import annotations

import asyncio

from rq import get_current_job

from migrations_engine.census.read import CensusResult, take_census
from migrations_engine.graph import GraphClient, GraphConfig, GraphConfigError
from migrations_engine.graph.config import unusable
from migrations_engine.queueing import actor_may_act
from tenants.choices import CensusStatus
from tenants.models import CustomerTenant
from tenants.services import CensusWriter, record_census


def census_tenant(tenant_pk: int, actor: str = "system") -> str:
    """RQ job: census one tenant and store it. Returns the census status."""
    tenant = CustomerTenant.objects.get(pk=tenant_pk)
    if not actor_may_act(actor, tenant):
        return "refused: the staff member who asked for this census no longer has access to the tenant"
    try:
        config = GraphConfig.from_settings()
    except GraphConfigError as exc:  # e.g. the app certificate expired: shown like a login error
        result = CensusResult(status=CensusStatus.ERROR, message=unusable(exc))
        return record_census(tenant, result, actor=actor).census_status
    writer = CensusWriter(tenant)
    job = get_current_job()

    def progress(n: int) -> None:
        if job is not None:
            job.meta["users_done"] = job.meta.get("users_done", 0) + n
            job.save_meta()

    async def run():
        async with GraphClient(str(tenant.tenant_id), config, user_count=tenant.users_total) as client:
            try:
                return await take_census(
                    client, progress=progress, sink=writer.awrite, registration_sink=writer.aregistration
                )
            finally:
                await writer.aclose()

    result = asyncio.run(run())
    record_census(tenant, result, actor=actor, writer=writer)
    return result.status
