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
from tenants.fleet import MIGRATION_STATES, with_latest_run

# The fleet changelist's states (`tenants.fleet`), so both pages agree. Colour-blind-safe colours
# (Okabe-Ito based, darkened for 3:1 against white); every bar also prints its number and label.
STATE_COLOURS = {
    MigrationState.NOT_STARTED: "#6b6b6b",
    MigrationState.READY: "#1f78b4",
    MigrationState.BLOCKED: "#b91c1c",
    MigrationState.MIGRATING: "#0b3a73",
    MigrationState.PILOT_VERIFIED: "#a65c00",
    MigrationState.MIGRATED: "#007a5a",
    MigrationState.MIGRATED_DRIFT: "#c2410c",
    MigrationState.ROLLING_BACK: "#0b3a73",
    MigrationState.ROLLED_BACK: "#444444",
    MigrationState.PARTLY_ROLLED_BACK: "#b91c1c",
    MigrationState.NEEDS_ATTENTION: "#b91c1c",
}
STATE_ORDER = tuple(MigrationState.values)
PER_USER_STATES = (
    ("enabled", "Enabled", "#c2410c"),
    ("enforced", "Enforced", "#a65c00"),
    ("disabled", "Disabled", "#007a5a"),
)
RUN_DAYS = 30
READINESS_SHOWN = 100
DRIFT_TENANTS_SHOWN = 25

# Chart geometry (SVG user units).
LABEL_WIDTH = 190
BAR_WIDTH = 320
ROW_HEIGHT = 24
BAR_HEIGHT = 16


def bar_rows(rows: list[tuple[str, float | None, str]], *, maximum: float | None = None, suffix: str = ""):
    """Horizontal bars: (label, value, colour) → geometry for `_bar_chart.html`; None prints "no data"."""
    top = maximum or max([value or 0 for _, value, _ in rows] + [1])
    bars = []
    for index, (label, value, colour) in enumerate(rows):
        width = 0.0 if not value else max(1.0, BAR_WIDTH * value / top)
        y = index * ROW_HEIGHT
        bars.append(
            {
                "label": label,
                "value": value,
                "text": "no data" if value is None else f"{value:g}{suffix}",
                "colour": colour,
                "y": y,
                "text_y": y + BAR_HEIGHT - 3,
                "width": round(width, 1),
                "value_x": round(LABEL_WIDTH + width + 6, 1),
            }
        )
    return {
        "bars": bars,
        "height": max(ROW_HEIGHT, len(bars) * ROW_HEIGHT),
        "width": LABEL_WIDTH + BAR_WIDTH + 80,
        "label_width": LABEL_WIDTH,
        "label_x": LABEL_WIDTH - 6,
        "bar_height": BAR_HEIGHT,
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
            "states": bar_rows(
                [(MIGRATION_STATES[key], by_state[key], STATE_COLOURS[key]) for key in STATE_ORDER]
            ),
            "state_counts": [
                {"key": key, "label": MIGRATION_STATES[key], "count": by_state[key]} for key in STATE_ORDER
            ],
            "per_user": _per_user(tenants),
            "readiness": bar_rows(
                [(t["display_name"], t["registered_pct"], "#1f78b4") for t in readiness[:READINESS_SHOWN]],
                maximum=100,
                suffix=" %",
            ),
            "readiness_more": max(0, len(readiness) - READINESS_SHOWN),
            "runs": _runs_per_day(visible_runs, timezone.localdate()),
            "drift": _drift(visible),
            "show_rq": bool(getattr(user, "is_superuser", False)),
        }
    }
