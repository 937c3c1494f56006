"""The fleet changelist's derived columns: each tenant's latest run (for the link next to its state).

The migration state itself is stored on the tenant (`CustomerTenant.migration_state`, decided by
tenants/migration_state.py): the fleet list, its filter, the dashboard and the exports read that field.
"""

from __future__ import annotations

from django.db.models import OuterRef, QuerySet, Subquery

from tenants.choices import MigrationState

MIGRATION_STATES = dict(MigrationState.choices)


def with_latest_run(queryset: QuerySet) -> QuerySet:
    """Annotate each tenant with its latest run item's run id, mode and status (one subquery each)."""
    # Why here: the engine's models import this app's; this module is imported by the admin at start.
    from migrations_engine.models import RunItem

    latest = RunItem.objects.filter(tenant=OuterRef("pk")).order_by("-run__created_at", "-pk")
    return queryset.annotate(
        last_run_id=Subquery(latest.values("run_id")[:1]),
        last_run_mode=Subquery(latest.values("run__mode")[:1]),
        last_run_status=Subquery(latest.values("status")[:1]),
    )
