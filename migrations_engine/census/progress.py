"""Where each tenant's census stands, for the census progress page: waiting in the queue, reading, or
finished (complete, partial, failed) with what it found. Read from the census's RQ job and the tenant's
stored census columns; only tenants the staff member may see."""

from __future__ import annotations

import datetime
from typing import Any

from redis.exceptions import RedisError
from rq.exceptions import NoSuchJobError

from migrations_engine import queueing
from msp_console.words import ago
from tenants.access import visible_tenants
from tenants.choices import CensusStatus

# The job's status in words (a finished job's outcome comes from the tenant's census columns).
JOB_WORDS = {
    "queued": "waiting in the queue",
    "deferred": "waiting in the queue",
    "scheduled": "waiting to retry",
}
FINAL_TONES = {CensusStatus.OK: "ok", CensusStatus.PARTIAL: "warn", CensusStatus.FREE: "warn"}


def _job_status(tenant_pk: int) -> str:
    try:
        status = queueing.fetch(queueing.census_job_id(tenant_pk)).get_status(refresh=True)
    except (NoSuchJobError, RedisError):
        return ""
    return str(getattr(status, "value", status) or "")  # rq's JobStatus enum, as its value


def census_progress(user, tenant_pks: list[int], since: datetime.datetime) -> dict[str, Any]:
    """Each asked-for tenant's census since `since` (when it was queued), and whether any is still going."""
    rows = [
        _row(tenant, since)
        for tenant in visible_tenants(user).filter(pk__in=tenant_pks).order_by("display_name")
    ]
    waiting = sum(1 for r in rows if r["state"] in ("queued", "running"))
    return {"tenants": rows, "active": waiting > 0, "waiting": waiting, "done": len(rows) - waiting}


def _row(tenant, since: datetime.datetime) -> dict[str, Any]:
    row = {
        "id": tenant.pk,
        "name": tenant.display_name,
        "domain": tenant.primary_domain,
        "detail": "",
        "when": "",
    }
    if tenant.census_at is not None and tenant.census_at >= since:  # read since it was asked for
        tone = FINAL_TONES.get(tenant.census_status, "bad")
        words, detail, when = tenant.get_census_status_display(), _found(tenant), ago(tenant.census_at)
        return {**row, "state": "done", "words": words, "tone": tone, "detail": detail, "when": when}
    status = _job_status(tenant.pk)
    if status == "started":
        return {**row, "state": "running", "words": "reading the tenant", "tone": "busy"}
    if status in JOB_WORDS:
        return {**row, "state": "queued", "words": JOB_WORDS[status], "tone": "none"}
    if status:  # finished, failed, stopped or cancelled without storing a census
        return {
            **row,
            "state": "done",
            "words": "ended without a result: see the worker's log",
            "tone": "bad",
        }
    return {**row, "state": "unknown", "words": "not queued", "tone": "bad"}


def _found(tenant) -> str:
    """What the census found, in one line."""
    if tenant.census_status not in (CensusStatus.OK, CensusStatus.PARTIAL):
        return tenant.census_message
    still_on = (tenant.per_user_enabled or 0) + (tenant.per_user_enforced or 0)
    return (
        f"{tenant.users_total or 0} users, per-user MFA still on for {still_on}; "
        f"{tenant.get_licence_display()}; security defaults {'on' if tenant.security_defaults else 'off'}"
    )
