"""The benchmark's output: stdout tables, the targets, and the users-disabled-over-time plot."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench import metrics as m


def fmt(value: Any, digits: int = 1, suffix: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}{suffix}"
    if isinstance(value, float):
        return f"{value:,.{digits}f}{suffix}"
    return str(value)


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = []
    for n, row in enumerate(cells):
        lines.append(
            "  ".join(
                c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))
            )
        )
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def baseline_table(results: Sequence[dict]) -> str:
    rows = []
    for r in results:
        if r["kind"] != "baseline":
            continue
        rows.append(
            [
                r["name"],
                f"{r['tenants']}x{r['users_per_tenant']:,}",
                fmt(r["time_scale"], 2),
                fmt(r["users_changed"]),
                fmt(r["slice_graph_s"], 1),
                r["slice_ended_by"],
                fmt(r["users_per_s"], 2),
                f"{fmt(r['self_inflicted_429'])} ({fmt(r['self_inflicted_429_pct'], 2)}%)",
                fmt(r["projected_hours_for_all"], 2),
                fmt(r["wall_s"], 0),
            ]
        )
    return table(
        [
            "baseline",
            "fleet",
            "scale",
            "users",
            "slice Graph s",
            "slice ended by",
            "users/s",
            "429 self",
            "all users, h",
            "wall s",
        ],
        rows,
    )


def pipeline_table(results: Sequence[dict]) -> str:
    rows = []
    for r in results:
        if r["kind"] != "pipeline":
            continue
        f = r["figures"]
        per_tenant = f["per_tenant_disable_users_per_s"]
        rows.append(
            [
                r["name"],
                f"{r['tenants']}x{r['users_per_tenant']:,}",
                r["workers"],
                fmt(r["time_scale"], 2),
                fmt(f["users_disabled"]),
                fmt(f["disable_phase_users_per_s"], 1),
                fmt(f["best_60s_users_per_s"], 1),
                fmt(f["end_to_end_users_per_s"], 1),
                f"{fmt(per_tenant['min'], 1)}/{fmt(per_tenant['median'], 1)}",
                fmt(r.get("ratio_to_baseline_end_to_end"), 1, "x"),
                fmt(f["pct_of_binding_limit"], 0, "%"),
                fmt(f["pct_of_app_cap"], 0, "%"),
                f"{fmt(f['self_inflicted_429'])} ({fmt(f['self_inflicted_429_pct'], 2)}%)",
                fmt(r["peak_rss_mib_max"], 0),
                fmt(r["cpu_s_per_1000_users"], 2),
                f"{fmt(r['wall']['run_s'], 0)}/{fmt(r['wall']['run_graph_s'], 0)}",
            ]
        )
    return table(
        [
            "pipeline",
            "fleet",
            "W",
            "scale",
            "disabled",
            "phase u/s",
            "best60 u/s",
            "e2e u/s",
            "tenant min/med",
            "x base",
            "% bind",
            "% app",
            "429 self",
            "RSS MiB",
            "CPU s/1k",
            "wall/Graph s",
        ],
        rows,
    )


def cpu_table(results: Sequence[dict]) -> str:
    rows = []
    for r in results:
        c = r.get("cpu") or {}
        rows.append(
            [
                r["name"],
                fmt(c.get("simulator_pct_core"), 0, "%"),
                fmt(c.get("workers_pct_core_max"), 0, "%"),
                fmt(c.get("workers_pct_core_sum"), 0, "%"),
                fmt(c.get("bench_pct_core"), 0, "%"),
                fmt(c.get("redis_pct_core"), 0, "%"),
                fmt(c.get("postgres_pct_core"), 0, "%"),
                fmt(c.get("other_pct_core"), 0, "%"),
                fmt(c.get("machine_idle_pct"), 0, "%"),
                ("yes" if c.get("bottleneck") else "no") + (" (contended)" if c.get("contended") else ""),
            ]
        )
    return table(
        [
            "scenario",
            "simulator",
            "worker max",
            "workers sum",
            "bench",
            "redis",
            "postgres",
            "other",
            "machine idle",
            "CPU-bound?",
        ],
        rows,
    )


def steps_table(results: Sequence[dict]) -> str:
    """Where each pipeline scenario's Graph time goes: per step, summed over tenants, as a share."""
    rows = []
    for r in results:
        steps = r.get("step_graph_s") or {}
        total = sum(s["sum"] for s in steps.values()) or 0
        if not total:
            continue
        parts = sorted(steps.items(), key=lambda kv: -kv[1]["sum"])
        rows.append(
            [
                r["name"],
                ", ".join(
                    f"{k} {100 * v['sum'] / total:.0f}% (med {v['median']:.0f} s)" for k, v in parts[:5]
                ),
            ]
        )
    return table(["pipeline", "Graph time per step, summed over tenants (top 5)"], rows)


def targets_table(targets: Sequence[dict]) -> str:
    rows = [
        [
            t["target"],
            {True: "reached", False: "NOT reached", None: "not measured"}[t["reached"]],
            t["figure"],
        ]
        for t in targets
    ]
    return table(["target", "result", "figure"], rows)


def plot(results: Sequence[dict], path: Path, title: str) -> bool:
    """One panel per pipeline scenario: users disabled per tenant (thin) and the fleet total (thick,
    right axis) over Graph seconds since the run started. False when there is nothing to draw."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [r for r in results if r["kind"] == "pipeline" and r.get("series")]
    if not panels:
        return False
    cols = min(3, len(panels))
    rows = (len(panels) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 3.6 * rows), squeeze=False)
    for ax in axes.flat[len(panels) :]:
        ax.set_visible(False)
    for ax, r in zip(axes.flat, panels, strict=False):
        series = {k: [tuple(p) for p in v] for k, v in r["series"].items()}
        for buckets in series.values():
            xs, ys = m.cumulative(buckets, 0.0)
            ax.step(xs, ys, where="post", linewidth=0.8, alpha=0.7)
        ax.set_ylabel("per tenant")
        ax.set_xlabel("Graph seconds since the run started")
        end = r["wall"]["run_graph_s"] or 0
        ax.set_xlim(0, max(end, 1))
        if len(series) > 1:
            total = ax.twinx()
            xs, ys = m.cumulative(m.merge(series), 0.0)
            total.step(xs, ys, where="post", color="black", linewidth=2.4, label="fleet total")
            total.set_ylabel("fleet total")
            total.set_ylim(bottom=0)
            total.legend(loc="lower right", fontsize=8)
        ax.set_ylim(bottom=0)
        f = r["figures"]
        ax.set_title(
            f"{r['name']}: {r['tenants']}x{r['users_per_tenant']:,} users, {r['workers']} worker(s), "
            f"scale {r['time_scale']:g}\n{fmt(f['users_disabled'])} disabled, "
            f"{fmt(f['disable_phase_users_per_s'], 1)}/s in the disable phase",
            fontsize=9,
        )
        ax.grid(alpha=0.3)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True
