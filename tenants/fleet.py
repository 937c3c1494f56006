"""The fleet changelist's derived columns: each tenant's migration state from its latest run."""

from __future__ import annotations

from django.db.models import OuterRef, QuerySet, Subquery

MIGRATION_STATES = {
    "never": "Not started",
    "planned": "Planned",
    "pilot": "Pilot verified",
    "migrated": "Migrated (verified)",
    "rolled_back": "Rolled back",
    "running": "Run in progress",
    "failed": "Needs attention",
}


def with_latest_run(queryset: QuerySet) -> QuerySet:
    """Annotate each tenant with its latest run item's run id, mode and status (one subquery each)."""
    from migrations_engine.models import RunItem

    latest = RunItem.objects.filter(tenant=OuterRef("pk")).order_by("-run__created_at", "-pk")
    return queryset.annotate(
        last_run_id=Subquery(latest.values("run_id")[:1]),
        last_run_mode=Subquery(latest.values("run__mode")[:1]),
        last_run_status=Subquery(latest.values("status")[:1]),
    )


def migration_state(mode: str | None, status: str | None) -> str:
    """A tenant's migration state key from its latest run item."""
    if not mode:
        return "never"
    if status in ("queued", "running"):
        return "running"
    if status != "succeeded":
        return "failed"
    return {"plan": "planned", "pilot": "pilot", "full": "migrated", "rollback": "rolled_back"}[mode]
