"""Queueing run items (the job is `runs.tasks.run_item_job`), largest tenant first."""

from __future__ import annotations

from django.db.models import Case, F, IntegerField, When

from migrations_engine import queueing
from migrations_engine.choices import ItemStatus
from migrations_engine.models import RunItem


def enqueue_item(item_pk: int, job_id: str, *, replace_started: bool = False) -> bool:
    """Enqueue one run item's job under its deterministic id unless a job under that id is alive (two
    jobs for one item would let two workers run it). True when a job was enqueued."""
    _, enqueued = queueing.enqueue_once(
        job_id,
        queueing.RUN_ITEM_TASK,
        item_pk,
        job_id,
        replace_started=replace_started,
        job_timeout=queueing.ITEM_JOB_TIMEOUT,
        retry=queueing.retry(queueing.ITEM_RETRY),
        result_ttl=7 * 86400,
        failure_ttl=30 * 86400,
    )
    return enqueued


def enqueue_items(run_pk: int) -> int:
    """Enqueue every queued item of a run under its deterministic job id (a job already queued or
    running under that id is left alone). Called on commit by the run services.

    Largest job first, as the last census sized it (users, twice over with security defaults on, whose
    users are bridged before they are disabled): each tenant is bound to Graph's 20 writes/s, so a
    large tenant started last would finish alone long after the others."""
    items = largest_first(RunItem.objects.filter(run_id=run_pk, status=ItemStatus.QUEUED))
    count = 0
    for item_pk, job_id in items.values_list("pk", "rq_job_id"):
        count += enqueue_item(item_pk, job_id)
    return count


def largest_first(items):
    """Run items ordered by the work their tenant's last census sized (users, twice over with security
    defaults on), largest first; tenants never counted last."""
    work = Case(
        When(tenant__security_defaults=True, then=F("tenant__users_total") * 2),
        default=F("tenant__users_total"),
        output_field=IntegerField(),
    )
    return items.annotate(work=work).order_by(F("work").desc(nulls_last=True), "pk")
