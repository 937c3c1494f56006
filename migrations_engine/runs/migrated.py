"""Which tenants are migrated, and what their migration verified (the drift watch's baseline).

A tenant is *migrated* when its latest finished pilot or full run item (one that started: a run
cancelled before its approval changed nothing) succeeded and no rollback of that run was started for
it. That item is the baseline: its state holds the policy id the run made or adopted, the break-glass
accounts it excluded, the pilot members and the snapshot it took; its Verify step stored the policy as
it read it back (`policy_baseline`).
"""

from __future__ import annotations

from typing import Any

from django.db.models import Exists, OuterRef, QuerySet, Subquery

from migrations_engine.choices import ItemStatus, RunMode
from migrations_engine.graph.resources.grants import MFA_GRANT, asks_mfa
from migrations_engine.graph.resources.mfa_policy import Scope, baseline_of, desired_policy, fixed_conditions
from migrations_engine.models import RunItem, TenantSnapshot
from tenants.models import CustomerTenant

FINISHED = (ItemStatus.SUCCEEDED, ItemStatus.FAILED, ItemStatus.ERRORED, ItemStatus.CANCELLED)


def migrated_tenants(queryset: QuerySet[CustomerTenant] | None = None) -> QuerySet[CustomerTenant]:
    """The migrated tenants of `queryset` (all by default), each annotated with `migrated_item_id`."""
    latest = RunItem.objects.filter(
        tenant=OuterRef("pk"),
        run__mode__in=(RunMode.PILOT, RunMode.FULL),
        status__in=FINISHED,
        started_at__isnull=False,
    ).order_by("-finished_at", "-pk")
    rolled_back = RunItem.objects.filter(
        tenant=OuterRef("pk"), run__mode=RunMode.ROLLBACK, run__rollback_of=OuterRef("migrated_run_id")
    ).exclude(status=ItemStatus.CANCELLED, started_at__isnull=True)
    base = CustomerTenant.objects.all() if queryset is None else queryset
    return (
        base.annotate(
            migrated_item_id=Subquery(latest.values("pk")[:1]),
            migrated_status=Subquery(latest.values("status")[:1]),
            migrated_run_id=Subquery(latest.values("run_id")[:1]),
        )
        .filter(migrated_status=ItemStatus.SUCCEEDED)
        .exclude(Exists(rolled_back))
    )


def migrated_item(tenant: CustomerTenant) -> RunItem | None:
    """The run item that migrated `tenant` (see the module docstring), or None."""
    pk = (
        migrated_tenants(CustomerTenant.objects.filter(pk=tenant.pk))
        .values_list("migrated_item_id", flat=True)
        .first()
    )
    return None if pk is None else RunItem.objects.select_related("run", "tenant").get(pk=pk)


def baseline_policy(item: RunItem) -> dict[str, Any]:
    """The policy as `item`'s run left it: what its Verify step read back, or, for items verified before
    that was stored, what the run's own records say it set (created: the pipeline's policy; adopted: the
    snapshot's copy with the run's scope and break-glass merged in)."""
    if item.state.get("policy_baseline"):
        return item.state["policy_baseline"]
    scope = Scope.of(item.state, item.run.mode, item.run.pilot_group_id, item.run.options)
    source: dict[str, Any] = desired_policy(scope)
    if not item.state.get("policy_created"):
        snapshot = TenantSnapshot.objects.filter(item=item).values_list("policies", flat=True).first() or []
        source = next((p for p in snapshot if p.get("id") == item.state.get("policy_id")), source)
    return {
        **baseline_of(source),
        "id": item.state.get("policy_id"),
        "state": "enabled",
        "conditions": fixed_conditions(source, scope),
        "grantControls": source.get("grantControls") if asks_mfa(source) else dict(MFA_GRANT),
    }


def first_migration_item(tenant: CustomerTenant) -> RunItem | None:
    """The first verified pilot or full run item since the tenant's last rollback: the migration that
    later re-runs (a drift remediation, a pilot widened to full) continued. Users its snapshot did not
    hold were added to the tenant since it was migrated."""
    last_rollback = (
        RunItem.objects.filter(tenant=tenant, run__mode=RunMode.ROLLBACK, started_at__isnull=False)
        .order_by("-started_at")
        .values_list("started_at", flat=True)
        .first()
    )
    items = RunItem.objects.filter(
        tenant=tenant, run__mode__in=(RunMode.PILOT, RunMode.FULL), status=ItemStatus.SUCCEEDED
    )
    if last_rollback is not None:
        items = items.filter(started_at__gt=last_rollback)
    return items.select_related("run").order_by("finished_at", "pk").first()
