"""Queueing a census (the job is `census.tasks.census_tenant`)."""

from __future__ import annotations

from urllib.parse import urlencode

from django.urls import reverse
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


def progress_url(tenant_pks: list[int], since: float) -> str:
    """The census progress page of these tenants' censuses queued at `since` (a Unix time)."""
    query = urlencode({"tenants": ",".join(map(str, tenant_pks)), "since": f"{since:.3f}"})
    return f"{reverse('admin:migrations_engine_census_progress')}?{query}"
