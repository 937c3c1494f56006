"""Queueing a census (the job is `census.tasks.census_tenant`)."""

from __future__ import annotations

from rq.job import Job

from migrations_engine import queueing


def enqueue_census(tenant_pk: int, *, actor: str = "system") -> Job:
    """Queue a census of one tenant, or return the one already queued or running for it."""
    job_id = queueing.census_job_id(tenant_pk)
    job, _ = queueing.enqueue_once(
        job_id,
        queueing.CENSUS_TASK,
        tenant_pk,
        actor,
        job_timeout=queueing.CENSUS_JOB_TIMEOUT,
        retry=queueing.retry(queueing.CENSUS_RETRY),
        result_ttl=86400,
    )
    return job or queueing.fetch(job_id)
