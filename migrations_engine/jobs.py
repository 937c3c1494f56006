"""RQ entry points and the only helpers that enqueue them. Jobs take primary keys, never objects."""

from __future__ import annotations

import asyncio

import django_rq
from rq import Retry
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus

from migrations_engine.census import take_census
from migrations_engine.graph import GraphClient, GraphConfig

CENSUS_JOB_TIMEOUT = 3600  # seconds; a 100,000-user tenant at the documented limits fits well inside


def census_job_id(tenant_pk: int) -> str:
    return f"census-tenant-{tenant_pk}"


def enqueue_census(tenant_pk: int, *, actor: str = "system") -> Job:
    """Queue a census of one tenant, or return the one already queued or running for it."""
    queue = django_rq.get_queue("default")
    job_id = census_job_id(tenant_pk)
    try:
        existing = Job.fetch(job_id, connection=queue.connection)
        if existing.get_status(refresh=True) in {JobStatus.QUEUED, JobStatus.STARTED, JobStatus.SCHEDULED}:
            return existing
        existing.delete()
    except NoSuchJobError:
        pass
    return queue.enqueue(
        census_tenant,
        tenant_pk,
        actor,
        job_id=job_id,
        job_timeout=CENSUS_JOB_TIMEOUT,
        retry=Retry(max=2, interval=[30, 120]),
        result_ttl=86400,
    )


def census_tenant(tenant_pk: int, actor: str = "system") -> str:
    """RQ job: census one tenant and store it. Returns the census status."""
    from rq import get_current_job

    from tenants.models import CustomerTenant
    from tenants.services import record_census

    tenant = CustomerTenant.objects.get(pk=tenant_pk)
    job = get_current_job()

    def progress(n: int) -> None:
        if job is not None:
            job.meta["users_done"] = job.meta.get("users_done", 0) + n
            job.save_meta()

    async def run():
        async with GraphClient(str(tenant.tenant_id), GraphConfig.from_settings()) as client:
            return await take_census(client, progress=progress)

    result = asyncio.run(run())
    record_census(tenant, result, actor=actor)
    return result.status


def ping() -> str:
    """RQ job: proves the scheduler → queue → worker round trip (used by health checks)."""
    return "pong"
