"""The console's dashboard: fleet totals and charts, counted here and drawn as inline SVG by templates.

Only tenants the user may see count. A tenant's migration state is its latest run item's, as the fleet
changelist has it (`tenants.fleet`); per-user MFA numbers are the census columns on `CustomerTenant`
(the last census), so "after migration" is honest only for tenants censused again after their
migration, and the chart says which is which.
"""

from __future__ import annotations

import datetime
from typing import Any

from django.db.models import Count, OuterRef, Subquery, Sum
from django.db.models.functions import TruncDate
from django.urls import reverse
from django.utils import timezone

from migrations_engine.choices import ACTIVE_ITEM_STATUSES, DriftCheckStatus, DriftKind
from migrations_engine.models import DriftCheck, DriftFinding, MigrationRun, RunItem
from tenants.access import visible_tenants
from tenants.choices import MigrationState
from tenants.fleet import MIGRATION_STATES, STATE_TONES, with_latest_run

STATE_ORDER = tuple(MigrationState.values)
PER_USER_STATES = (
    ("enabled", "Enabled", "#c2410c"),
    ("enforced", "Enforced", "#a65c00"),
    ("disabled", "Disabled", "#007a5a"),
)
RUN_DAYS = 30
LEAST_READY_SHOWN = 8
DRIFT_TENANTS_SHOWN = 8
# The tiles' order: what asks for action first, then the work in hand, then what is done.
TILE_ORDER = (
    MigrationState.NEEDS_ATTENTION, MigrationState.PARTLY_ROLLED_BACK, MigrationState.BLOCKED,
    MigrationState.MIGRATED_DRIFT, MigrationState.MIGRATING, MigrationState.ROLLING_BACK,
    MigrationState.READY, MigrationState.NOT_STARTED, MigrationState.PILOT_VERIFIED, MigrationState.MIGRATED,
    MigrationState.ROLLED_BACK,
)  # fmt: skip
HISTOGRAM_WIDTH, HISTOGRAM_HEIGHT, HISTOGRAM_BAR = 560, 150, 44

# Chart geometry (SVG user units).
LABEL_WIDTH = 190
BAR_WIDTH = 320
ROW_HEIGHT = 24
BAR_HEIGHT = 16


def state_tiles(by_state: dict[str, int]) -> list[dict[str, Any]]:
    """One tile per migration state with tenants in it, linking to the fleet list filtered to it."""
    fleet = reverse("admin:tenants_customertenant_changelist")
    return [
        {
            "key": key,
            "label": MIGRATION_STATES[key],
            "count": by_state[key],
            "tone": STATE_TONES[key],
            "url": f"{fleet}?migration={key}",
        }
        for key in TILE_ORDER
        if by_state[key]
    ]


def readiness_histogram(tenants: list[dict[str, Any]]) -> dict[str, Any]:
    """Tenants by MFA-registered %, in ten buckets (0-9 % ... 90-100 %), plus those with no report read."""
    counts = [0] * 10
    unknown = 0
    for tenant in tenants:
        pct = tenant["registered_pct"]
        if pct is None:
            unknown += 1
        else:
            counts[min(9, int(pct // 10))] += 1
    top = max(counts + [1])
    plot = HISTOGRAM_HEIGHT - 30
    buckets = []
    for index, count in enumerate(counts):
        height = round(plot * count / top, 1)
        x = index * (HISTOGRAM_BAR + 10) + 4
        buckets.append(
            {
                "label": f"{index * 10}–{index * 10 + 9 if index < 9 else 100} %",
                "count": count,
                "x": x,
                "text_x": x + HISTOGRAM_BAR / 2,
                "y": round(plot - height + 14, 1),
                "height": height,
                "value_y": round(plot - height + 10, 1),
                "colour": "#b91c1c" if index < 5 else "#a65c00" if index < 9 else "#007a5a",
            }
        )
    return {
        "buckets": buckets,
        "unknown": unknown,
        "width": HISTOGRAM_WIDTH,
        "height": HISTOGRAM_HEIGHT,
        "bar_width": HISTOGRAM_BAR,
        "baseline": plot + 14,
        "label_y": HISTOGRAM_HEIGHT - 2,
    }


def _stacked(label: str, counts: dict[str, int], tenants: int) -> dict[str, Any]:
    total = sum(counts.values())
    x = float(LABEL_WIDTH)
    segments = []
    for key, name, colour in PER_USER_STATES:
        value = counts[key]
        width = BAR_WIDTH * value / total if total else 0.0
        segments.append(
            {
                "key": key,
                "name": name,
                "value": value,
                "colour": colour,
                "x": round(x, 1),
                "width": round(width, 1),
            }
        )
        x += width
    return {"label": label, "tenants": tenants, "total": total, "segments": segments}


def _per_user(tenants: list[dict[str, Any]]) -> dict[str, Any]:
    groups = {"before": [], "after": [], "stale": []}
    for tenant in tenants:
        if tenant["census_at"] is None or tenant["per_user_enabled"] is None:
            continue
        if tenant["state"] not in (MigrationState.MIGRATED, MigrationState.MIGRATED_DRIFT):
            groups["before"].append(tenant)
        elif tenant["last_started"] and tenant["census_at"] > tenant["last_started"]:
            # Read after the migration began: by a census since, or by the run's own verify step.
            groups["after"].append(tenant)
        else:
            groups["stale"].append(tenant)
    labels = {
        "before": "Not migrated yet",
        "after": "Migrated, census since",
        "stale": "Migrated, census before",
    }
    rows = []
    for key, members in groups.items():
        counts = {state: sum(t[f"per_user_{state}"] or 0 for t in members) for state, _, _ in PER_USER_STATES}
        rows.append({"key": key, **_stacked(labels[key], counts, len(members))})
    for index, row in enumerate(rows):
        row["y"] = index * ROW_HEIGHT
        row["text_y"] = row["y"] + BAR_HEIGHT - 3
    return {
        "rows": rows,
        "height": len(rows) * ROW_HEIGHT,
        "width": LABEL_WIDTH + BAR_WIDTH + 10,
        "label_x": LABEL_WIDTH - 6,
        "bar_height": BAR_HEIGHT,
        "no_census": sum(1 for t in tenants if t["census_at"] is None),
        "legend": PER_USER_STATES,
    }


def _runs_per_day(visible_runs, today: datetime.date) -> dict[str, Any]:
    first = today - datetime.timedelta(days=RUN_DAYS - 1)
    start = timezone.make_aware(datetime.datetime.combine(first, datetime.time.min))
    per_day = dict(
        visible_runs.filter(created_at__gte=start)
        .annotate(day=TruncDate("created_at"))
        .order_by()
        .values_list("day")
        .annotate(n=Count("id"))
        .values_list("day", "n")
    )
    top = max(list(per_day.values()) + [1])
    column, chart_height = 20, 120
    days = []
    for offset in range(RUN_DAYS):
        day = first + datetime.timedelta(days=offset)
        count = per_day.get(day, 0)
        height = round(chart_height * count / top, 1)
        days.append(
            {
                "day": day,
                "count": count,
                "x": offset * column + 2,
                "y": 20 + chart_height - height,
                "value_y": 20 + chart_height - height - 4,
                "height": height,
                "text_x": offset * column + column / 2,
                "label": day.strftime("%d %b") if offset % 5 == 0 or offset == RUN_DAYS - 1 else "",
            }
        )
    return {
        "days": days,
        "total": sum(per_day.values()),
        "width": RUN_DAYS * column + 4,
        "height": chart_height + 50,
        "bar_width": column - 4,
        "baseline": 20 + chart_height,
        "label_y": 20 + chart_height + 16,
    }


def _drift(visible) -> dict[str, Any]:
    """Open drift findings by kind and the tenants that have them (linked), and failed last checks."""
    findings_url = reverse("admin:migrations_engine_driftfinding_changelist")
    open_findings = DriftFinding.objects.filter(tenant__in=visible.values("pk"), resolved_at__isnull=True)
    by_kind = dict(open_findings.order_by().values_list("kind").annotate(n=Count("id")))
    per_tenant: dict[int, dict[str, Any]] = {}
    for pk, name, kind in open_findings.order_by("tenant__display_name", "kind").values_list(
        "tenant_id", "tenant__display_name", "kind"
    ):
        row = per_tenant.setdefault(
            pk,
            {
                "display_name": name,
                "url": reverse("admin:tenants_customertenant_change", args=[pk]),
                "findings_url": f"{findings_url}?tenant__id__exact={pk}&status=open",
                "kinds": [],
            },
        )
        row["kinds"].append(DriftKind(kind).label)
    latest = DriftCheck.objects.filter(tenant=OuterRef("pk")).order_by("-started_at")
    failed = list(
        visible.annotate(last_drift=Subquery(latest.values("status")[:1]))
        .filter(last_drift=DriftCheckStatus.ERROR)
        .order_by("display_name")
        .values_list("pk", "display_name")[:DRIFT_TENANTS_SHOWN]
    )
    tenants = list(per_tenant.values())
    return {
        "open": sum(by_kind.values()),
        "kinds": [
            {
                "kind": kind,
                "label": label,
                "count": by_kind.get(kind, 0),
                "url": f"{findings_url}?kind__exact={kind}&status=open",
            }
            for kind, label in DriftKind.choices
        ],
        "tenants": tenants[:DRIFT_TENANTS_SHOWN],
        "tenants_total": len(tenants),
        "tenants_more": max(0, len(tenants) - DRIFT_TENANTS_SHOWN),
        "failed_checks": [
            {"display_name": name, "url": reverse("admin:tenants_customertenant_change", args=[pk])}
            for pk, name in failed
        ],
        "findings_url": findings_url,
    }


def dashboard_context(user) -> dict[str, Any]:
    """The numbers and chart geometry the dashboard template draws, for the tenants `user` may see."""
    visible = visible_tenants(user)
    tenants = list(
        with_latest_run(visible)
        .annotate(
            # When the run that made the tenant what it is began (the census after it is the truth).
            last_started=Subquery(
                RunItem.objects.filter(
                    tenant=OuterRef("pk"), run_id=OuterRef("migration_state_run_id")
                ).values("started_at")[:1]
            )
        )
        .order_by("display_name")
        .values(
            "pk",
            "display_name",
            "primary_domain",
            "last_run_mode",
            "last_run_status",
            "last_started",
            "census_at",
            "users_total",
            "per_user_enabled",
            "per_user_enforced",
            "per_user_disabled",
            "mfa_registered",
            "registration_known",
            "migration_state",
        )
    )
    for tenant in tenants:
        tenant["state"] = tenant["migration_state"]
        known = tenant["registration_known"]
        tenant["registered_pct"] = (
            round(100.0 * (tenant["mfa_registered"] or 0) / known, 1) if known else None
        )

    by_state = dict.fromkeys(STATE_ORDER, 0)
    for tenant in tenants:
        by_state[tenant["state"]] += 1

    readiness = sorted(
        tenants, key=lambda t: (t["registered_pct"] is None, t["registered_pct"] or 0, t["display_name"])
    )
    visible_runs = MigrationRun.objects.filter(
        pk__in=RunItem.objects.filter(tenant__in=visible.values("pk")).values("run_id")
    )
    active_runs = visible_runs.filter(
        pk__in=RunItem.objects.filter(
            tenant__in=visible.values("pk"), status__in=ACTIVE_ITEM_STATUSES
        ).values("run_id")
    ).count()
    users_total = visible.aggregate(n=Sum("users_total"))["n"] or 0
    return {
        "dashboard": {
            "tenants": len(tenants),
            "users_total": users_total,
            "active_runs": active_runs,
            "tiles": state_tiles(by_state),
            "state_counts": [
                {"key": key, "label": MIGRATION_STATES[key], "count": by_state[key]} for key in STATE_ORDER
            ],
            "per_user": _per_user(tenants),
            "readiness": readiness_histogram(tenants),
            "least_ready": [
                {**t, "url": reverse("admin:tenants_customertenant_change", args=[t["pk"]])}
                for t in readiness
                if t["registered_pct"] is not None
            ][:LEAST_READY_SHOWN],
            "per_user_on": sum((t["per_user_enabled"] or 0) + (t["per_user_enforced"] or 0) for t in tenants),
            "fleet_url": reverse("admin:tenants_customertenant_changelist"),
            "runs": _runs_per_day(visible_runs, timezone.localdate()),
            "drift": _drift(visible),
            "show_rq": bool(getattr(user, "is_superuser", False)),
        }
    }
