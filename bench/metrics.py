"""Pure arithmetic for the throughput benchmark: simulator statistics in, real-Graph figures out.

"Graph seconds" are the simulator's seconds: with a time scale S, one wall second is S Graph seconds,
and every rate here is per Graph second, i.e. what the same run would reach against Microsoft Graph.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

TENANT_WRITES_PER_S = 20.0  # Graph: 3,000 writes per 150 s per app and tenant
APP_WRITES_PER_S = 70_000 / 300  # Graph: 70,000 writes per 5 min per app, all tenants (233.3/s)
BUCKET_S = 1.0  # disabled_series buckets are one Graph second wide


def normalise_series(
    series: Iterable[Sequence[float]], total: float | None = None
) -> list[tuple[float, float]]:
    """`[[second, count], ...]` as per-second counts, sorted. Accepts per-bucket counts or a cumulative
    series (recognised when it never decreases, ends at `total` and does not sum to it)."""
    points = sorted((float(t), float(c)) for t, c in series)
    if not points:
        return []
    counts = [c for _, c in points]
    cumulative = (
        total is not None
        and len(points) > 1
        and all(b >= a for a, b in zip(counts, counts[1:], strict=False))
        and abs(counts[-1] - total) < 0.5
        and abs(sum(counts) - total) >= 0.5
    )
    if cumulative:
        out, previous = [], 0.0
        for t, c in points:
            out.append((t, c - previous))
            previous = c
        return out
    return points


def phase(buckets: Sequence[tuple[float, float]]) -> tuple[float, float] | None:
    """(first, end) Graph second of the non-empty buckets: the disable phase; end = last + one bucket."""
    busy = [t for t, c in buckets if c > 0]
    if not busy:
        return None
    return busy[0], busy[-1] + BUCKET_S


def rate_over_phase(buckets: Sequence[tuple[float, float]]) -> float | None:
    span = phase(buckets)
    if span is None:
        return None
    return sum(c for _, c in buckets) / (span[1] - span[0])


def merge(series_by_tenant: Mapping[str, Sequence[tuple[float, float]]]) -> list[tuple[float, float]]:
    merged: dict[float, float] = defaultdict(float)
    for buckets in series_by_tenant.values():
        for t, c in buckets:
            merged[t] += c
    return sorted(merged.items())


def best_window_rate(buckets: Sequence[tuple[float, float]], window: float) -> float | None:
    """The highest rate over any `window` Graph seconds (None when the phase is shorter than that)."""
    span = phase(buckets)
    if span is None or span[1] - span[0] < window:
        return None
    points = [(t, c) for t, c in sorted(buckets) if c > 0]
    best = running = 0.0
    tail = 0
    for t, c in points:  # windows that start at a bucket: [start, start + window)
        running += c
        while points[tail][0] + window <= t + BUCKET_S - 1e-9:
            running -= points[tail][1]
            tail += 1
        best = max(best, running)
    return best / window


def mean_concurrency(phases: Iterable[tuple[float, float] | None]) -> float | None:
    """Time-weighted mean number of tenants in their disable phase, over the fleet's disable phase."""
    spans = [p for p in phases if p is not None]
    if not spans:
        return None
    total_span = max(e for _, e in spans) - min(s for s, _ in spans)
    return sum(e - s for s, e in spans) / total_span if total_span > 0 else float(len(spans))


def cumulative(buckets: Sequence[tuple[float, float]], origin: float) -> tuple[list[float], list[float]]:
    """x (Graph seconds since `origin`, at each bucket's end) and the cumulative count, from (0, 0)."""
    xs, ys, total = [0.0], [0.0], 0.0
    for t, c in buckets:
        if c <= 0:
            continue
        total += c
        xs.append(t + BUCKET_S - origin)
        ys.append(total)
    return xs, ys


def summary(values: Iterable[float | None]) -> dict[str, float | None]:
    vals = [v for v in values if v is not None]
    if not vals:
        return {"min": None, "median": None, "max": None}
    return {"min": min(vals), "median": statistics.median(vals), "max": max(vals)}


def ratio(a: float | None, b: float | None) -> float | None:
    if a is None or not b:
        return None
    return a / b


def pipeline_figures(
    *,
    tenants: Mapping[str, Mapping[str, Any]],
    series: Mapping[str, Sequence[tuple[float, float]]],
    run_graph_seconds: float,
    workers: int,
) -> dict[str, Any]:
    """Rates and limit ratios of one pipeline scenario, from per-tenant counters and disable series
    (per-second buckets, Graph seconds)."""
    disabled = sum(t["disabled"] for t in tenants.values())
    per_tenant_rate = {tid: rate_over_phase(b) for tid, b in series.items()}
    fleet = merge(series)
    fleet_phase = phase(fleet)
    fleet_rate = rate_over_phase(fleet)
    concurrency = mean_concurrency(phase(b) for b in series.values())
    binding = min(TENANT_WRITES_PER_S * concurrency, APP_WRITES_PER_S) if concurrency else None
    requests = sum(t.get("requests", 0) + t.get("batch_items", 0) for t in tenants.values())
    throttled = sum(t.get("throttled_total", 0) for t in tenants.values())
    writes = sum(t.get("writes_effective", 0) for t in tenants.values())
    best60 = best_window_rate(fleet, 60.0)
    return {
        "users_disabled": disabled,
        "end_to_end_users_per_s": disabled / run_graph_seconds if run_graph_seconds > 0 else None,
        "disable_phase_users_per_s": fleet_rate,
        "disable_phase_graph_s": (fleet_phase[1] - fleet_phase[0]) if fleet_phase else None,
        "best_60s_users_per_s": best60,
        "per_tenant_disable_users_per_s": summary(per_tenant_rate.values()),
        "per_tenant_pct_of_20_per_s": summary(
            None if r is None else 100 * r / TENANT_WRITES_PER_S for r in per_tenant_rate.values()
        ),
        "mean_tenants_in_disable_phase": concurrency,
        "binding_limit_writes_per_s": binding,
        "pct_of_binding_limit": None if binding is None or fleet_rate is None else 100 * fleet_rate / binding,
        "pct_of_app_cap": None if fleet_rate is None else 100 * fleet_rate / APP_WRITES_PER_S,
        "best_60s_pct_of_app_cap": None if best60 is None else 100 * best60 / APP_WRITES_PER_S,
        "writes_effective": writes,
        "writes_effective_per_s": writes / run_graph_seconds if run_graph_seconds > 0 else None,
        "requests_incl_batch_items": requests,
        "self_inflicted_429": throttled,
        "self_inflicted_429_pct": 100 * throttled / requests if requests else 0.0,
        "workers": workers,
        "tenant_rates": per_tenant_rate,
    }
