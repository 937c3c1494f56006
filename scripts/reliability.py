"""`python3 tasks.py reliability [--trials N] [PYTEST ARGS]`: the long reliability set, then a table.

Runs pytest on tests/reliability with `MSP_RELIABILITY_TRIALS=N` (N seeded random crash trials across
the demo tenant shapes, and every Redis-loss scenario) and `MSP_RELIABILITY_REPORT` naming a JSON-lines
file each trial appends its figures to, then prints per scenario: trials, passed, coverage-gap
seconds, duplicate writes, lost writes and unresolved unknown outcomes. Needs what the tests need:
Redis (started for the session) and the database (`DATABASE_URL` if set, else SQLite).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

COLUMNS = (
    "scenario",
    "trials",
    "passed",
    "gap-seconds",
    "duplicate writes",
    "lost writes",
    "unresolved unknowns",
)


def summarise(lines: list[dict]) -> list[tuple]:
    by_scenario: dict[str, list[dict]] = defaultdict(list)
    for line in lines:
        by_scenario[line["scenario"]].append(line)
    rows = []
    for scenario in sorted(by_scenario):
        trials = by_scenario[scenario]
        rows.append(
            (
                scenario,
                len(trials),
                sum(t["passed"] for t in trials),
                round(sum(t["gap_seconds"] for t in trials), 3),
                sum(t["duplicate_writes"] for t in trials),
                sum(t["lost_writes"] for t in trials),
                sum(t["unresolved_unknowns"] for t in trials),
            )
        )
    if rows:
        rows.append(("total", *(sum(r[i] for r in rows) for i in range(1, len(COLUMNS)))))
    return rows


def table(rows: list[tuple]) -> str:
    cells = [COLUMNS, *[tuple(str(c) for c in row) for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(COLUMNS))]
    out = []
    for n, row in enumerate(cells):
        pairs = enumerate(zip(row, widths, strict=True))
        out.append("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in pairs))
        if n == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="tasks.py reliability")
    parser.add_argument("--trials", type=int, default=50, help="random crash trials (default 50)")
    parser.add_argument("--report", help="keep the JSON-lines figures in this file")
    args, pytest_args = parser.parse_known_args(argv)
    if args.trials < 1:
        parser.error("--trials must be at least 1")
    report = Path(args.report or tempfile.mkstemp(prefix="msp-reliability-", suffix=".jsonl")[1])
    report.write_text("")
    env = {**os.environ, "MSP_RELIABILITY_TRIALS": str(args.trials), "MSP_RELIABILITY_REPORT": str(report)}
    env.pop("MSP_TRIAL_SEED", None)
    if "DATABASE_URL" not in env:
        env.setdefault("TEST_SQLITE_PATH", str(Path(tempfile.gettempdir()) / "msp-reliability.sqlite3"))
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "tests/reliability", "-q", "-p", "no:cacheprovider", *pytest_args],
        env=env,
    )
    elapsed = time.monotonic() - started
    lines = [json.loads(line) for line in report.read_text().splitlines() if line.strip()]
    print(f"\nReliability trials ({args.trials} random crash trials requested), {elapsed:.0f} s:\n")
    print(table(summarise(lines)) if lines else "no trial reported any figures")
    failed = [t for t in lines if not t["passed"]]
    for t in failed:
        replay = f"MSP_TRIAL_SEED={t['seed']} " if t.get("seed") is not None else ""
        print(f"FAILED {t['scenario']} {t['tenant']} {t['points']}: {t['problems']}")
        print(f"  replay: {replay}.venv/bin/python -m pytest tests/reliability -q")
    print(f"\nFigures per trial: {report}")
    if result.returncode == 5 or not lines:
        return 1
    return result.returncode
