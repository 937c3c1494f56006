"""Throughput benchmark: how fast the console's pipeline turns per-user MFA off, against the way popular
tools do it (one PATCH at a time, one tenant at a time), on the Graph simulator with Graph's documented
limits and 150 ms of latency. A script, not a test: it prints a table, writes JSON and draws a plot.

    python3 tasks.py bench                      # the full run (about 12 min on 2 cores)
    python3 tasks.py bench --quick              # tiny fleets, a smoke run of every moving part (< 2 min)
    python3 tasks.py bench --scenarios baseline-fleet,fleet-w4 --out /tmp/bench

See bench/README.md for what is measured, how, and how to read it.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import platform
import pstats
import re
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import graph_minimum as gm  # noqa: E402
from bench import metrics as m  # noqa: E402
from bench import report  # noqa: E402
from scripts.processes import Processes, graph_env, start_redis, start_simulator, terminate  # noqa: E402

LATENCY_MS = 150
DEFAULT_OUT = ROOT / "bench" / "results"
EXPECTED_TENANT_RATE = 19.0  # writes/s the console paces a tenant to (Graph: 20)
EXPECTED_APP_RATE = 225.0  # writes/s the console paces the app to (Graph: 233)
PROGRESS_EVERY_S = 5.0


class BenchError(Exception):
    """The benchmark could not measure what it set out to (a process died, an item failed, a timeout)."""


@dataclass(frozen=True)
class Scenario:
    name: str
    kind: str  # "baseline" | "pipeline"
    group: str  # "fleet" | "single" | "small": which baseline a pipeline scenario is compared with
    tenants: int
    users: int
    workers: int = 0
    groups: int = 1  # worker groups in separate process trees (bench/worker_group.py), as on separate hosts


def all_scenarios(quick: bool) -> list[Scenario]:
    fleet, single, small = ((4, 200), (1, 1000), (1, 200)) if quick else ((20, 2000), (1, 20000), (1, 1000))
    out = [
        Scenario("baseline-fleet", "baseline", "fleet", *fleet),
        Scenario("baseline-single", "baseline", "single", *single),
    ]
    fleet_workers = (1, 4) if quick else (1, 2, 4, 12)
    single_workers = (1,) if quick else (1, 2, 4)
    out += [Scenario(f"fleet-w{w}", "pipeline", "fleet", *fleet, workers=w) for w in fleet_workers]
    out += [Scenario(f"single-w{w}", "pipeline", "single", *single, workers=w) for w in single_workers]
    out.append(Scenario("small-w1", "pipeline", "small", *small, workers=1))
    if not quick:
        # Enough workers that every tenant of the fleet runs at once; the same in two process trees
        # sharing Redis and the database; and a wide fleet of many small tenants.
        out.append(Scenario("fleet-w20", "pipeline", "fleet", *fleet, workers=20))
        out.append(Scenario("fleet-2x10", "pipeline", "fleet", *fleet, workers=20, groups=2))
        out.append(Scenario("wide-w32", "pipeline", "fleet", 200, 500, workers=32))
    else:
        out.append(Scenario("fleet-2x2", "pipeline", "fleet", *fleet, workers=4, groups=2))
    return out


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="tasks.py bench",
        description="Per-user MFA disable throughput: the console's pipeline vs one PATCH at a time.",
    )
    parser.add_argument("--quick", action="store_true", help="tiny fleets: a smoke run in under 2 minutes")
    parser.add_argument(
        "--scenarios", help="comma-separated scenario names (default: all); --list shows them"
    )
    parser.add_argument("--list", action="store_true", help="list the scenarios and exit")
    parser.add_argument(
        "--out",
        type=Path,
        help="results folder (default bench/results, with --quick bench/results/quick so that a smoke run "
        "leaves the full run's latest.json alone)",
    )
    parser.add_argument(
        "--write-budget",
        type=float,
        default=500.0,
        help="writes per wall second the machine should carry; sets each scenario's time scale (default 500)",
    )
    parser.add_argument("--max-scale", type=float, default=20.0, help="largest automatic time scale")
    parser.add_argument("--time-scale", type=float, help="force this time scale on every pipeline scenario")
    parser.add_argument("--baseline-scale", type=float, default=2.0, help="time scale of the baseline")
    parser.add_argument(
        "--baseline-seconds", type=float, help="baseline slice, Graph s (default 60; quick 15)"
    )
    parser.add_argument("--baseline-users", type=int, help="baseline slice, users (default 500; quick 100)")
    parser.add_argument(
        "--scenario-timeout", type=float, default=900.0, help="wall seconds a pipeline run may take"
    )
    parser.add_argument(
        "--database-url",
        default=os.environ.get("DATABASE_URL", ""),
        help="PostgreSQL server to make a fresh <name>_bench database on (default $DATABASE_URL; "
        "unset = SQLite in the results folder)",
    )
    parser.add_argument(
        "--keep-db", action="store_true", help="keep the PostgreSQL bench database afterwards"
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="run each worker under cProfile timed by CPU (bench/cpu_profile.py); writes "
        "<scenario>/logs/worker<N>.prof and a summary of the functions with the most own CPU to "
        "<scenario>/profile.txt (the figures then include its overhead)",
    )
    parser.add_argument(
        "--django-debug",
        action="store_true",
        help="run the console with DEBUG on (default: off, as in production)",
    )
    args = parser.parse_args(argv)
    if args.out is None:
        args.out = DEFAULT_OUT / "quick" if args.quick else DEFAULT_OUT
    if args.baseline_seconds is None:
        args.baseline_seconds = 15.0 if args.quick else 60.0
    if args.baseline_users is None:
        args.baseline_users = 100 if args.quick else 500
    for name in ("write_budget", "max_scale", "baseline_scale", "baseline_seconds", "scenario_timeout"):
        if getattr(args, name) <= 0:
            parser.error(f"--{name.replace('_', '-')} must be > 0")
    if args.time_scale is not None and args.time_scale <= 0:
        parser.error("--time-scale must be > 0")
    return args


# --- the simulator's admin API -----------------------------------------------------------------------


class SimAdmin:
    """`/_sim/...` of one running simulator (loopback HTTPS with its own CA)."""

    def __init__(self, fleet: dict, pid: int) -> None:
        import httpx

        self.base = fleet["authority_host"].rstrip("/")
        self.pid = pid
        self.http = httpx.Client(verify=fleet["ca_bundle"], trust_env=False, timeout=120)

    def close(self) -> None:
        self.http.close()

    def stats(self) -> dict | None:
        response = self.http.get(f"{self.base}/_sim/stats")
        if response.status_code == 404:
            return None
        response.raise_for_status()
        return response.json()

    def clock(self) -> float:
        return float(self.http.get(f"{self.base}/_sim/health").json()["clock"])

    def state(self, tenant_id: str) -> dict:
        response = self.http.get(f"{self.base}/_sim/tenants/{tenant_id}/state")
        response.raise_for_status()
        return response.json()

    def counters(self) -> dict:
        return self.http.get(f"{self.base}/_sim/requests", params={"limit": 1}).json().get("counters", {})

    def requests_span(self, total_before: int) -> float | None:
        """Graph seconds from the first request after `total_before` requests to the latest one."""
        total = int(self.counters().get("total", 0))
        if total <= total_before:
            return None
        first = self.http.get(f"{self.base}/_sim/requests", params={"since_seq": total_before, "limit": 1})
        last = self.http.get(f"{self.base}/_sim/requests", params={"since_seq": total - 1, "limit": 1})
        entries = first.json().get("requests") or [], last.json().get("requests") or []
        if not all(entries):
            return None
        return float(entries[1][0]["t"]) - float(entries[0][0]["t"])

    def cpu_seconds(self, stats: dict | None) -> float | None:
        if stats and "cpu_seconds" in stats:
            return float(stats["cpu_seconds"])
        return process_cpu(self.pid)


def users_to_disable(state: dict) -> list[str]:
    """Ids of the users a full migration turns per-user MFA off for: every enabled/enforced user, and
    with security defaults on also the disabled ones (bridged to enabled first, then disabled)."""
    users = [u for u in state["users"] if not u.get("breakGlass")]
    if state.get("security_defaults"):
        return [u["id"] for u in users]
    return [u["id"] for u in users if u.get("perUserMfaState") in ("enabled", "enforced")]


# --- processes and CPU -------------------------------------------------------------------------------


def process_cpu(pid: int) -> float | None:
    import psutil

    try:
        times = psutil.Process(pid).cpu_times()
    except psutil.Error:
        return None
    return times.user + times.system


def peak_rss_mib(pid: int) -> float | None:
    """VmHWM (the process's peak resident set) from /proc, else psutil's current RSS."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    import psutil

    try:
        return psutil.Process(pid).memory_info().rss / 2**20
    except psutil.Error:
        return None


@dataclass
class CpuMark:
    """CPU counters at one instant, to turn into per-process % of one core over an interval."""

    wall: float
    machine: Any
    own: float
    pids: dict[int, float | None] = field(default_factory=dict)
    postgres: dict[int, float] = field(default_factory=dict)

    @classmethod
    def take(cls, pids: dict[str, int]) -> CpuMark:
        import psutil

        own = psutil.Process().cpu_times()  # with the manage.py commands it ran and waited for
        return cls(
            time.monotonic(),
            psutil.cpu_times(),
            own.user + own.system + own.children_user + own.children_system,
            {pid: process_cpu(pid) for pid in pids.values()},
            postgres_cpu(),
        )


def postgres_cpu() -> dict[int, float]:
    """CPU seconds of every PostgreSQL server process on this machine (the console's database)."""
    import psutil

    out = {}
    for proc in psutil.process_iter(["name", "cpu_times"]):
        if proc.info["name"] in ("postgres", "postmaster") and proc.info["cpu_times"] is not None:
            out[proc.pid] = proc.info["cpu_times"].user + proc.info["cpu_times"].system
    return out


def postgres_delta(a: CpuMark, b: CpuMark) -> float:
    """Approximate: backends that started during the interval count in full, ones that ended are lost."""
    return sum(cpu - a.postgres.get(pid, 0.0) for pid, cpu in b.postgres.items())


def _busy_and_total(t: Any) -> tuple[float, float]:
    # guest time is already inside user/nice on Linux: leave it out of the total.
    total = sum(t) - getattr(t, "guest", 0) - getattr(t, "guest_nice", 0)
    idle = t.idle + getattr(t, "iowait", 0)
    return total - idle, total


def idle_pct(a: Any, b: Any) -> float | None:
    busy_a, total_a = _busy_and_total(a)
    busy_b, total_b = _busy_and_total(b)
    if total_b <= total_a:
        return None
    return 100 * (1 - (busy_b - busy_a) / (total_b - total_a))


def pct_core(cpu_seconds: float | None, wall: float) -> float | None:
    return None if cpu_seconds is None or wall <= 0 else 100 * cpu_seconds / wall


def group_workers(procs: Processes) -> dict[str, int]:
    """The RQ workers the worker groups started (their children), by group and number."""
    import psutil

    found: dict[str, int] = {}
    for name, proc in procs.children:
        if name.startswith("workergroup"):
            for n, child in enumerate(psutil.Process(proc.pid).children(), start=1):
                found[f"{name}.{n}"] = child.pid
    return found


def census_all_figures(sc: Scenario, graph_s: float | None) -> dict[str, Any]:
    """`manage.py census --all` before the run (the console's census of every tenant, all at once), from
    its first Graph request to its last, against Graph's minimum for it (graph_minimum.census_minimum_s:
    the per-user reads at the tenants' and the app's resource units, the registration report at the
    report limit, whichever binds)."""
    users = sc.tenants * sc.users
    minimum = gm.census_minimum_s(sc.tenants, sc.users)
    return {
        "graph_s": graph_s,
        "users": users,
        "reads_per_s": users / graph_s if graph_s else None,
        "minimum_s": minimum,
        "pct_of_binding_limit": 100 * minimum / graph_s if graph_s else None,
        "concurrency": census_concurrency(sc),
    }


def census_concurrency(sc: Scenario) -> int:
    return max(1, min(sc.tenants, 200))


def write_profile(folder: Path, top: int = 40) -> Path:
    """The workers' cProfile files of a scenario merged, as text: the functions with the most own time,
    then the most cumulative time."""
    files = sorted(str(f) for f in (folder / "logs").glob("worker*.prof"))
    out = folder / "profile.txt"
    if not files:
        out.write_text("no profile: the workers wrote none (killed before they exited?)\n")
        return out
    text = io.StringIO()
    stats = pstats.Stats(*files, stream=text)
    stats.strip_dirs().sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats(top)
    out.write_text(text.getvalue())
    return out


def stop_processes(procs: Processes) -> None:
    """Stop a scenario's children. An RQ worker answers SIGTERM by finishing its job first (warm
    shutdown) and a second SIGTERM, more than a second later, by abandoning it (cold shutdown)."""
    workers = [proc for name, proc in procs.children if name.startswith("worker") and proc.poll() is None]
    for attempt in range(2):
        terminate(workers)
        deadline = time.monotonic() + 1.2
        while attempt == 0 and time.monotonic() < deadline and any(p.poll() is None for p in workers):
            time.sleep(0.05)
    procs.stop_all()


# --- the bench ---------------------------------------------------------------------------------------


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.out: Path = args.out.resolve()
        self.work = self.out / "run"
        self.procs: Processes | None = None
        self.scenario_procs: Processes | None = None
        self.redis_url = ""
        self.db: dict[str, Any] = {}
        self.env: dict[str, str] = {}
        self.caps: dict[str, bool | None] = {}
        self.notes: list[str] = []
        self.results: list[dict] = []
        self.started = time.monotonic()
        self.started_utc = datetime.now(UTC)
        self.code = git_state()

    # --- set-up ----------------------------------------------------------------------------------

    def selected(self) -> list[Scenario]:
        scenarios = all_scenarios(self.args.quick)
        if not self.args.scenarios:
            return scenarios
        by_name = {s.name: s for s in scenarios}
        wanted = [n.strip() for n in self.args.scenarios.split(",") if n.strip()]
        unknown = [n for n in wanted if n not in by_name]
        if unknown:
            raise BenchError(f"unknown scenario(s) {', '.join(unknown)}; choose from {', '.join(by_name)}")
        return [by_name[n] for n in wanted]

    def detect_capabilities(self) -> None:
        """What the simulator and the console support: without a time scale on both, run at scale 1."""
        helptext = subprocess.run(
            [sys.executable, "-m", "graph_sim", "serve", "--help"], cwd=ROOT, capture_output=True, text=True
        ).stdout
        console = any(
            "GRAPH_PACING_TIME_SCALE" in p.read_text()
            for p in [
                ROOT / "msp_console" / "settings.py",
                *(ROOT / "migrations_engine" / "graph").glob("*.py"),
            ]
        )
        self.caps = {
            "sim_time_scale": "--time-scale" in helptext,
            "console_pacing_scale": console,
            "sim_stats": None,
        }
        if not self.caps["sim_time_scale"]:
            self.note("The simulator has no --time-scale: every scenario runs at scale 1 (real Graph time).")
        elif not console:
            self.note(
                "The console does not read GRAPH_PACING_TIME_SCALE: pipeline scenarios run at scale 1 "
                "(its pacing would otherwise run slower than the simulator's time)."
            )

    def note(self, text: str) -> None:
        self.notes.append(text)
        print(f"note: {text}", flush=True)

    def pipeline_scale(self, sc: Scenario) -> float:
        if not (self.caps["sim_time_scale"] and self.caps["console_pacing_scale"]):
            return 1.0
        if self.args.time_scale:
            return self.args.time_scale
        expected = min(EXPECTED_TENANT_RATE * min(sc.workers, sc.tenants), EXPECTED_APP_RATE)
        return round(max(1.0, min(self.args.max_scale, self.args.write_budget / expected)), 2)

    def baseline_scale(self) -> float:
        return self.args.baseline_scale if self.caps["sim_time_scale"] else 1.0

    def prepare_database(self) -> None:
        url = self.args.database_url
        if url.startswith(("postgres://", "postgresql://", "pgsql://")):
            import psycopg
            from psycopg import sql

            parts = urlsplit(url)
            name = (parts.path.lstrip("/") or "msp_console") + "_bench"
            bench_url = urlunsplit(parts._replace(path=f"/{name}"))
            admin = urlunsplit(parts._replace(path="/postgres", scheme="postgresql"))
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
                version = conn.execute("SHOW server_version").fetchone()[0]
            self.db = {
                "engine": "postgresql",
                "name": name,
                "url": bench_url,
                "admin_url": admin,
                "server_version": version,
                "note": f"PostgreSQL {version}, database {name} made fresh for this run "
                "(the production database)",
            }
        else:
            path = self.work / "bench.sqlite3"
            for leftover in self.work.glob("bench.sqlite3*"):
                leftover.unlink()
            self.db = {
                "engine": "sqlite",
                "name": str(path),
                "url": f"sqlite:///{path}",
                "note": "SQLite (set DATABASE_URL to a PostgreSQL server to bench on the production "
                "database): SQLite serialises writers, so several workers queue on its lock and figures are "
                "pessimistic",
            }
        print(f"Database: {self.db['note']}", flush=True)

    def drop_database(self) -> None:
        if self.db.get("engine") != "postgresql" or self.args.keep_db:
            return
        import psycopg
        from psycopg import sql

        try:
            from django.db import connections

            connections.close_all()
        except Exception:  # noqa: BLE001 - Django may not be set up yet
            pass
        try:
            with psycopg.connect(self.db["admin_url"], autocommit=True) as conn:
                conn.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(self.db["name"]))
                )
        except psycopg.Error as exc:
            print(f"(could not drop the bench database {self.db['name']}: {exc})", file=sys.stderr)

    def manage(self, *args: str, env: dict[str, str] | None = None) -> str:
        result = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=env or self.env,
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            raise BenchError(
                f"manage.py {' '.join(args)} failed:\n{result.stdout[-2000:]}{result.stderr[-4000:]}"
            )
        return result.stdout

    def setup(self) -> None:
        shutil.rmtree(self.work, ignore_errors=True)  # logs and state of the previous run
        self.work.mkdir(parents=True, exist_ok=True)
        self.procs = Processes(self.work / "logs")
        print("Starting Redis ...", flush=True)
        import redis

        url = start_redis(self.procs, self.work / "redis")
        if self.args.django_debug:
            self.redis_url = url
        else:  # production settings refuse a Redis without a password
            password = secrets.token_urlsafe(24)
            redis.Redis.from_url(url).config_set("requirepass", password)
            self.redis_url = url.replace("redis://", f"redis://:{password}@", 1)
        self.prepare_database()
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "msp_console.settings",
            "DATABASE_URL": self.db["url"],
            "REDIS_URL": self.redis_url,
            "LOG_LEVEL": "WARNING",
        }
        if self.args.django_debug:
            env["DEBUG"] = "True"
        else:
            # As in production: DEBUG off (Django keeps no per-query log, which would grow a worker's
            # memory and CPU with every query), a real secret key, and the simulator allowed explicitly.
            env.update(DEBUG="False", SECRET_KEY=secrets.token_urlsafe(64), ALLOW_SIMULATOR="True")
        env.pop("REQUESTS_CA_BUNDLE", None)  # the console's clients ignore it; keep it out of every child
        self.env = env
        # This process reads the run's rows and drives the baseline through the console's Graph client.
        names = ("DJANGO_SETTINGS_MODULE", "DATABASE_URL", "REDIS_URL", "LOG_LEVEL", "DEBUG")
        os.environ.update({k: env[k] for k in (*names, "SECRET_KEY", "ALLOW_SIMULATOR") if k in env})
        os.environ.pop("REQUESTS_CA_BUNDLE", None)
        print("Preparing the console database (migrate) ...", flush=True)
        self.manage("migrate", "--noinput", "-v", "0")
        import django

        django.setup()

    def reset_console(self) -> None:
        """Empty Redis and the console database between scenarios."""
        import redis
        from django.db import connections

        connections.close_all()
        redis.Redis.from_url(self.redis_url).flushdb()
        self.manage("flush", "--noinput")

    def redis_pid(self) -> int | None:
        for name, proc in self.procs.children if self.procs else []:
            if name == "redis":
                return proc.pid
        return None

    # --- one simulator -------------------------------------------------------------------------

    def start_sim(self, sc: Scenario, scale: float, procs: Processes) -> tuple[dict, SimAdmin]:
        state_dir = self.work / sc.name / "sim"
        shutil.rmtree(state_dir, ignore_errors=True)
        extra = [
            "--fleet",
            "generated",
            "--tenants",
            str(sc.tenants),
            "--users",
            str(sc.users),
            "--latency-ms",
            str(LATENCY_MS),
            "--seed",
            "1",
        ]
        if self.caps["sim_time_scale"]:
            extra += ["--time-scale", f"{scale:g}"]
        try:
            fleet = start_simulator(procs, state_dir, *extra)
        except RuntimeError as exc:
            raise BenchError(str(exc)) from exc
        pid = json.loads((state_dir / "server.json").read_text()).get("pid") or procs.children[-1][1].pid
        sim = SimAdmin(fleet, int(pid))
        stats = sim.stats()
        if self.caps["sim_stats"] is None:
            self.caps["sim_stats"] = stats is not None
            if stats is None:
                self.note(
                    "The simulator has no /_sim/stats: users disabled and their times come from the "
                    "console's own per-user outcomes, 429s from the request log's fleet-wide counters."
                )
        if (
            stats is not None
            and abs(float(stats.get("time_scale", 1)) - scale) > 1e-6
            and self.caps["sim_time_scale"]
        ):
            raise BenchError(f"the simulator runs at time scale {stats.get('time_scale')}, not {scale:g}")
        return fleet, sim

    # --- baseline --------------------------------------------------------------------------------

    def run_baseline(self, sc: Scenario) -> dict:
        scale = self.baseline_scale()
        began = time.monotonic()
        procs = self.scenario_procs = Processes(self.work / sc.name / "logs")
        try:
            print(f"[{sc.name}] simulator: {sc.tenants} x {sc.users:,} users, scale {scale:g}", flush=True)
            fleet, sim = self.start_sim(sc, scale, procs)
            try:
                need = {t["tenant_id"]: users_to_disable(sim.state(t["tenant_id"])) for t in fleet["tenants"]}
                expected = sum(len(v) for v in need.values())
                stats0 = sim.stats()
                counters0 = sim.counters()
                mark0 = CpuMark.take({"sim": sim.pid})
                sim_cpu0 = sim.cpu_seconds(stats0)
                slice_ = asyncio.run(
                    baseline_slice(
                        fleet,
                        need,
                        scale=scale,
                        max_users=self.args.baseline_users,
                        max_graph_s=self.args.baseline_seconds,
                        label=sc.name,
                    )
                )
                mark1 = CpuMark.take({"sim": sim.pid})
                stats1 = sim.stats()
                counters1 = sim.counters()
                sim_cpu1 = sim.cpu_seconds(stats1)
            finally:
                sim.close()
        finally:
            stop_processes(procs)
            self.scenario_procs = None
        wall = mark1.wall - mark0.wall
        if stats1 is not None:
            disabled_seen = sum(t["per_user_changes"]["disabled"] for t in stats1["tenants"].values())
            throttled = sum(stats1["throttled"].values()) - sum((stats0 or {}).get("throttled", {}).values())
            requests = (
                stats1["requests"] + stats1["batch_items"] - (stats0["requests"] + stats0["batch_items"])
            )
        else:
            disabled_seen = None
            throttled = counters1.get("throttled", 0) - counters0.get("throttled", 0)
            requests = counters1.get("total", 0) - counters0.get("total", 0)
        rate = slice_["users"] / slice_["graph_s"] if slice_["graph_s"] > 0 else None
        result = {
            "name": sc.name,
            "kind": "baseline",
            "group": sc.group,
            "tenants": sc.tenants,
            "users_per_tenant": sc.users,
            "time_scale": scale,
            "method": "PATCH /beta/users/{id}/authentication/requirements one at a time, tenant after "
            "tenant, through migrations_engine.graph.client.GraphClient.request (no batching, no "
            "concurrency); 429 waits its Retry-After and retries the same user",
            "slice": f"first {self.args.baseline_seconds:g} Graph s or first {self.args.baseline_users} "
            "users, whichever came first (not run to completion)",
            "users_changed": slice_["users"],
            "users_changed_seen_by_simulator": disabled_seen,
            "slice_graph_s": slice_["graph_s"],
            "slice_wall_s": slice_["wall_s"],
            "slice_ended_by": slice_["ended_by"],
            "tenants_touched": slice_["tenants_touched"],
            "users_per_s": rate,
            "mean_patch_ms_graph": 1000 * slice_["graph_s"] / slice_["users"] if slice_["users"] else None,
            "self_inflicted_429": slice_["throttled"],
            "self_inflicted_429_simulator": throttled,
            "self_inflicted_429_pct": 100 * slice_["throttled"] / requests if requests else 0.0,
            "errors": slice_["errors"],
            "first_error": slice_["first_error"],
            "users_to_disable_in_fleet": expected,
            "projected_hours_for_all": expected / rate / 3600 if rate else None,
            "timeline": slice_["timeline"],
            "cpu": {
                "simulator_pct_core": pct_core(
                    None if sim_cpu0 is None or sim_cpu1 is None else sim_cpu1 - sim_cpu0, wall
                ),
                "bench_pct_core": pct_core(mark1.own - mark0.own, wall),
                "machine_idle_pct": idle_pct(mark0.machine, mark1.machine),
            },
            "wall_s": time.monotonic() - began,
        }
        print(
            f"[{sc.name}] {slice_['users']} users in {slice_['graph_s']:.1f} Graph s "
            f"({report.fmt(rate, 2)} users/s, ended by {slice_['ended_by']}); "
            f"all {expected:,} users would take {report.fmt(result['projected_hours_for_all'], 1)} h",
            flush=True,
        )
        return result

    # --- pipeline --------------------------------------------------------------------------------

    def run_pipeline(self, sc: Scenario) -> dict:
        import redis
        from rq import Worker

        scale = self.pipeline_scale(sc)
        began = time.monotonic()
        procs = self.scenario_procs = Processes(self.work / sc.name / "logs")
        sim: SimAdmin | None = None
        try:
            print(
                f"[{sc.name}] simulator: {sc.tenants} x {sc.users:,} users, {sc.workers} worker(s), "
                f"scale {scale:g}",
                flush=True,
            )
            fleet, sim = self.start_sim(sc, scale, procs)
            self.reset_console()
            self.manage("seed_demo", "--fleet", str(self.work / sc.name / "sim" / "fleet.json"))
            expected = sum(len(users_to_disable(sim.state(t["tenant_id"]))) for t in fleet["tenants"])
            worker_env = {
                **self.env,
                **graph_env(fleet),
                "GRAPH_PACING_TIME_SCALE": f"{scale:g}",
                "LOG_LEVEL": "INFO",
            }
            # A census first, as staff would run one before migrating (not timed): it sizes each tenant,
            # so the run queues the largest jobs first.
            before_census = int(sim.counters().get("total", 0))
            at_once = str(census_concurrency(sc))
            self.manage("census", "--all", "--no-progress", "--concurrency", at_once, env=worker_env)
            census_graph_s = sim.requests_span(before_census)
            workers = self.start_workers(sc, procs, worker_env)
            connection = redis.Redis.from_url(self.redis_url)
            deadline = time.monotonic() + 120
            while len(Worker.all(connection=connection)) < sc.workers:
                self.check_alive(procs)
                if time.monotonic() > deadline:
                    raise BenchError("the RQ workers did not register within 120 s")
                time.sleep(0.2)

            if sc.groups > 1:  # the workers are the groups' children
                workers = group_workers(procs)
            idle_rss = {pid: peak_rss_mib(pid) for pid in workers.values()}  # before any job ran
            pids = {**workers, "sim": sim.pid}
            if self.redis_pid():
                pids["redis"] = self.redis_pid()
            mark0 = CpuMark.take(pids)
            stats0 = sim.stats()
            wall0 = time.time()
            clock0 = float(stats0["clock"]) if stats0 else sim.clock()
            started0 = float(stats0["started"]) if stats0 else clock0
            counters0 = sim.counters()
            sim_cpu0 = sim.cpu_seconds(stats0)
            output = self.manage("start_run", "--mode", "full", "--all", "--actor", "bench")
            found = re.search(r"Run (\d+)", output)
            if not found:
                raise BenchError(f"start_run did not name its run:\n{output}")
            run_id = int(found.group(1))
            items = self.follow(sc, run_id, procs, sim, scale, expected)
            mark1 = CpuMark.take(pids)
            stats1 = sim.stats()
            counters1 = sim.counters()
            sim_cpu1 = sim.cpu_seconds(stats1)
            worker_rows = [
                {
                    "name": name,
                    "pid": pid,
                    "peak_rss_mib": peak_rss_mib(pid),
                    "peak_rss_mib_before_run": idle_rss.get(pid),
                    "cpu_s_during_run": _delta(mark0.pids.get(pid), mark1.pids.get(pid)),
                    "cpu_s_total": mark1.pids.get(pid),
                }
                for name, pid in workers.items()
            ]
        except BenchError as exc:
            tails = "\n".join(
                f"--- {name} (last lines) ---\n{procs.tail(name, 25)}" for name, _ in procs.children
            )
            raise BenchError(f"{sc.name}: {exc}\n{tails}") from exc
        finally:
            if sim is not None:
                sim.close()
            stop_processes(procs)
            self.scenario_procs = None

        if self.args.profile:
            print(f"[{sc.name}] profile: {write_profile(self.work / sc.name)}", flush=True)
        failed = [i for i in items if i["status"] != "succeeded"]
        if failed:
            lines = [
                f"{i['tenant__primary_domain']}: {i['status']} {i['failure_reason']}".strip() for i in failed
            ]
            tails = "\n".join(
                f"--- {n} ---\n{procs.tail(n, 40)}" for n, _ in procs.children if n.startswith("worker")
            )
            raise BenchError(
                f"{sc.name}: {len(failed)} tenant(s) did not end verified:\n"
                + "\n".join(lines)
                + "\n"
                + tails
            )

        return self.pipeline_result(
            sc,
            scale=scale,
            run_id=run_id,
            items=items,
            fleet=fleet,
            expected=expected,
            stats=(stats0, stats1),
            counters=(counters0, counters1),
            clock=(wall0, clock0, started0),
            marks=(mark0, mark1),
            sim_cpu=(sim_cpu0, sim_cpu1),
            pids=pids,
            worker_rows=worker_rows,
            began=began,
            census_graph_s=census_graph_s,
        )

    def start_workers(self, sc: Scenario, procs: Processes, env: dict[str, str]) -> dict[str, int]:
        """W RQ workers, each a child of the bench, or in `sc.groups` groups of their own."""
        workers: dict[str, int] = {}
        per_group = -(-sc.workers // sc.groups)
        for n in range(1, (sc.workers if sc.groups == 1 else sc.groups) + 1):
            name = f"worker{n}" if sc.groups == 1 else f"workergroup{n}"
            prof = self.work / sc.name / "logs" / f"{name}{'' if sc.groups == 1 else '-{n}'}.prof"
            command = [
                *([str(ROOT / "bench" / "cpu_profile.py"), str(prof)] if self.args.profile else []),
                "manage.py",
                "rqworker",
                "default",
                "--worker-class",
                "rq.worker.SimpleWorker",
                "--name",
                f"bench-{sc.name}-{n}" + ("" if sc.groups == 1 else "-{n}") + f"-{os.getpid()}",
            ]
            if sc.groups > 1:
                count = min(per_group, sc.workers - per_group * (n - 1))
                command = [str(ROOT / "bench" / "worker_group.py"), str(count), sys.executable, *command]
            workers[name] = procs.start(name, [sys.executable, *command], env=env).pid
        return workers

    def check_alive(self, procs: Processes) -> None:
        dead = procs.check_alive()
        if dead:
            codes = ", ".join(f"{n} (exit {p.returncode})" for n, p in procs.children if n in dead)
            raise BenchError(f"{codes} exited")

    def follow(
        self, sc: Scenario, run_id: int, procs: Processes, sim: SimAdmin, scale: float, expected: int
    ) -> list[dict]:
        """Poll until no item of the run is queued or running; print progress every few seconds."""
        from django.db import connections

        from migrations_engine.models import RunItem

        fields = (
            "status",
            "tenant__tenant_id",
            "tenant__primary_domain",
            "verdict",
            "failure_reason",
            "current_step",
            "step_log",
            "counters",
            "started_at",
            "finished_at",
        )
        began = time.monotonic()
        last_print = began
        previous: tuple[float, int] | None = None
        while True:
            self.check_alive(procs)
            items = list(RunItem.objects.filter(run_id=run_id).values(*fields))
            connections.close_all()
            active = [i for i in items if i["status"] in ("queued", "running")]
            now = time.monotonic()
            if now - last_print >= PROGRESS_EVERY_S or not active:
                last_print = now
                disabled = self.disabled_so_far(sim, run_id)
                elapsed = now - began
                rate = disabled / (elapsed * scale) if elapsed > 0 else 0.0
                recent = rate
                if previous is not None and now > previous[0]:
                    recent = (disabled - previous[1]) / ((now - previous[0]) * scale)
                previous = (now, disabled)
                remaining = max(expected - disabled, 0)
                if not remaining:
                    eta = "every user disabled, finishing (verify)"
                elif recent > 0:
                    eta = f"ETA {remaining / recent:,.0f} Graph s (~{remaining / recent / scale:,.0f} s wall)"
                else:
                    eta = "ETA -"
                running = sorted(
                    {i["current_step"] for i in items if i["status"] == "running" and i["current_step"]}
                )
                print(
                    f"[{sc.name}] {elapsed:5.0f} s wall = {elapsed * scale:6.0f} Graph s: "
                    f"{disabled:,}/{expected:,} users disabled, {rate:.1f}/s overall, {recent:.1f}/s now; "
                    f"tenants done {len(items) - len(active)}/{len(items)}"
                    + (f" (steps now: {', '.join(running)})" if running else "")
                    + (f"; {eta}" if active else ""),
                    flush=True,
                )
            if not active:
                return items
            if now - began > self.args.scenario_timeout:
                raise BenchError(
                    f"the run is still going after {self.args.scenario_timeout:.0f} s wall "
                    "(--scenario-timeout)"
                )
            time.sleep(1.0)

    def disabled_so_far(self, sim: SimAdmin, run_id: int) -> int:
        stats = sim.stats() if self.caps["sim_stats"] else None
        if stats is not None:
            return sum(t["per_user_changes"]["disabled"] for t in stats["tenants"].values())
        from django.db import connections

        from migrations_engine.models import UserOutcome

        n = UserOutcome.objects.filter(item__run_id=run_id, wanted="disabled", status="succeeded").count()
        connections.close_all()
        return n

    def pipeline_result(self, sc: Scenario, **k: Any) -> dict:
        from django.db import connections

        from migrations_engine.models import MigrationRun, UserOutcome

        scale: float = k["scale"]
        items: list[dict] = k["items"]
        stats0, stats1 = k["stats"]
        wall0, clock0, started0 = k["clock"]
        mark0, mark1 = k["marks"]
        run = MigrationRun.objects.get(pk=k["run_id"])
        created = run.created_at.timestamp()
        finished = max(i["finished_at"].timestamp() for i in items if i["finished_at"])
        run_wall = finished - created
        run_graph = run_wall * scale
        # The run's start in the simulator's series seconds (seconds since the simulator's `started`).
        origin = (clock0 - started0) + (created - wall0) * scale
        by_tid = {t["tenant_id"]: t for t in k["fleet"]["tenants"]}
        domain = {tid: t["domain"] for tid, t in by_tid.items()}
        tenants: dict[str, dict] = {}
        series: dict[str, list[tuple[float, float]]] = {}
        if stats1 is not None:
            before = (stats0 or {}).get("tenants", {})
            for tid, t in stats1["tenants"].items():
                if tid not in by_tid:
                    continue
                b = before.get(tid, {})
                tenants[tid] = {
                    "requests": t["requests"] - b.get("requests", 0),
                    "batch_items": t["batch_items"] - b.get("batch_items", 0),
                    "throttled": {
                        lim: n - b.get("throttled", {}).get(lim, 0) for lim, n in t["throttled"].items()
                    },
                    "fault_429": t.get("fault_429", 0) - b.get("fault_429", 0),
                    "writes_effective": t["writes_effective"] - b.get("writes_effective", 0),
                    "disabled": t["per_user_changes"]["disabled"]
                    - b.get("per_user_changes", {}).get("disabled", 0),
                    "per_user_changes": t["per_user_changes"],
                    "by_status": t.get("by_status", {}),
                }
                tenants[tid]["throttled_total"] = sum(tenants[tid]["throttled"].values())
                buckets = m.normalise_series(t.get("disabled_series", []), t["per_user_changes"]["disabled"])
                series[tid] = [(s - origin, c) for s, c in buckets]
            fault_429 = stats1.get("fault_429", 0) - (stats0 or {}).get("fault_429", 0)
        else:
            # No /_sim/stats: per-user outcomes from the console's database, 429s fleet-wide from the log.
            c0, c1 = k["counters"]
            counts: dict[str, dict[int, float]] = defaultdict(lambda: defaultdict(float))
            rows = UserOutcome.objects.filter(
                item__run_id=k["run_id"], wanted="disabled", status="succeeded"
            ).values_list("item__tenant__tenant_id", "updated_at")
            for tid, at in rows:
                counts[str(tid)][int((at.timestamp() - created) * scale)] += 1
            for tid in by_tid:
                buckets = sorted(counts.get(tid, {}).items())
                series[tid] = [(float(s), c) for s, c in buckets]
                tenants[tid] = {"disabled": int(sum(c for _, c in buckets)), "requests": 0, "batch_items": 0}
            first = next(iter(tenants.values()))
            first["requests"] = c1.get("total", 0) - c0.get("total", 0)
            first["throttled_total"] = c1.get("throttled", 0) - c0.get("throttled", 0)
            first["writes_effective"] = c1.get("writes_effective", 0) - c0.get("writes_effective", 0)
            fault_429 = None
        connections.close_all()

        figures = m.pipeline_figures(
            tenants=tenants, series=series, run_graph_seconds=run_graph, workers=sc.workers
        )
        tenant_rates = figures.pop("tenant_rates")
        wall = mark1.wall - mark0.wall
        worker_rows = k["worker_rows"]
        for w in worker_rows:
            w["cpu_pct_core"] = pct_core(w["cpu_s_during_run"], wall)
        workers_cpu = [w["cpu_s_during_run"] for w in worker_rows if w["cpu_s_during_run"] is not None]
        rss = [w["peak_rss_mib"] for w in worker_rows if w["peak_rss_mib"] is not None]
        sim0, sim1 = k["sim_cpu"]
        redis_pid = k["pids"].get("redis")
        cpu = {
            "simulator_pct_core": pct_core(_delta(sim0, sim1), wall),
            "workers_pct_core_max": max((w["cpu_pct_core"] or 0 for w in worker_rows), default=None),
            "workers_pct_core_sum": pct_core(sum(workers_cpu), wall) if workers_cpu else None,
            "bench_pct_core": pct_core(mark1.own - mark0.own, wall),
            "redis_pct_core": pct_core(_delta(mark0.pids.get(redis_pid), mark1.pids.get(redis_pid)), wall)
            if redis_pid
            else None,
            "postgres_pct_core": pct_core(postgres_delta(mark0, mark1), wall)
            if self.db["engine"] == "postgresql"
            else None,
            "machine_idle_pct": idle_pct(mark0.machine, mark1.machine),
            "cores": os.cpu_count(),
        }
        idle = cpu["machine_idle_pct"]
        if idle is not None:
            ours = [
                cpu["simulator_pct_core"],
                cpu["workers_pct_core_sum"],
                cpu["bench_pct_core"],
                cpu["redis_pct_core"],
                cpu["postgres_pct_core"],
            ]
            busy = (100 - idle) * (os.cpu_count() or 1)
            cpu["other_pct_core"] = max(0.0, busy - sum(v for v in ours if v is not None))
        cpu["bottleneck"] = cpu_bound(cpu)
        cpu["contended"] = contended(cpu)
        disabled = figures["users_disabled"]
        steps = step_times(items, scale)
        result = {
            "name": sc.name,
            "kind": "pipeline",
            "group": sc.group,
            "tenants": sc.tenants,
            "users_per_tenant": sc.users,
            "workers": sc.workers,
            "worker_groups": sc.groups,
            "time_scale": scale,
            "run_id": k["run_id"],
            "census_all": census_all_figures(sc, k["census_graph_s"]),
            "users_expected_to_disable": k["expected"],
            "figures": figures,
            "throttled_by_limit": _sum_dicts(t.get("throttled", {}) for t in tenants.values()),
            "fault_429": fault_429,
            "workers_detail": worker_rows,
            "peak_rss_mib_max": max(rss) if rss else None,
            "cpu_s_workers": sum(workers_cpu) if workers_cpu else None,
            "cpu_s_per_1000_users": 1000 * sum(workers_cpu) / disabled if workers_cpu and disabled else None,
            "cpu": cpu,
            "wall": {
                "scenario_s": time.monotonic() - k["began"],
                "run_s": run_wall,
                "run_graph_s": run_graph,
                "measured_wall_s": wall,
            },
            "step_graph_s": steps,
            "per_tenant": [tenant_row(i, tenants, tenant_rates, scale, created) for i in items],
            "series": {
                domain.get(tid, tid): [[round(t, 3), int(c) if float(c).is_integer() else c] for t, c in s]
                for tid, s in series.items()
            },
        }
        f = figures
        print(
            f"[{sc.name}] done: {disabled:,} users disabled in {run_graph:,.0f} Graph s "
            f"({run_wall:,.1f} s wall); "
            f"{report.fmt(f['disable_phase_users_per_s'], 1)}/s in the disable phase, "
            f"{report.fmt(f['end_to_end_users_per_s'], 1)}/s end to end; 429s {f['self_inflicted_429']}",
            flush=True,
        )
        return result

    # --- the whole run ---------------------------------------------------------------------------

    def run(self) -> int:
        scenarios = self.selected()
        if self.args.list:
            for s in scenarios:
                what = f"{s.tenants} x {s.users:,} users" + (f", {s.workers} worker(s)" if s.workers else "")
                print(f"{s.name:16} {s.kind:9} {what}")
            return 0
        self.detect_capabilities()
        self.setup()
        for sc in scenarios:
            result = self.run_baseline(sc) if sc.kind == "baseline" else self.run_pipeline(sc)
            self.results.append(result)
        self.finish()
        return 0

    def finish(self) -> None:
        baselines = {r["group"]: r for r in self.results if r["kind"] == "baseline"}
        for r in self.results:
            if r["kind"] != "pipeline":
                continue
            base = baselines.get("fleet" if r["group"] == "fleet" else "single")
            rate = base["users_per_s"] if base else None
            r["baseline"] = base["name"] if base else None
            r["ratio_to_baseline_end_to_end"] = m.ratio(r["figures"]["end_to_end_users_per_s"], rate)
            r["ratio_to_baseline_disable_phase"] = m.ratio(r["figures"]["disable_phase_users_per_s"], rate)
        targets = judge_targets(self.results)
        total = time.monotonic() - self.started
        doc = self.document(targets, total, status="completed")
        stamp = self.started_utc.strftime("%Y%m%dT%H%M%SZ")
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / f"throughput-{stamp}.json").write_text(to_json(doc))
        (self.out / "latest.json").write_text(to_json(doc))
        title = (
            f"Per-user MFA disabled over time (Graph seconds), {self.db['engine']}, "
            f"{os.cpu_count()} cores{', quick' if self.args.quick else ''} - {stamp}"
        )
        plotted = report.plot(self.results, self.out / f"users-disabled-{stamp}.png", title)
        if plotted:
            shutil.copyfile(self.out / f"users-disabled-{stamp}.png", self.out / "users-disabled.png")
        print_report(self, targets, total)
        print(f"\nJSON: {self.out / f'throughput-{stamp}.json'} (and latest.json)")
        if plotted:
            print(f"Plot: {self.out / 'users-disabled.png'}")

    def document(self, targets: list[dict], total: float, *, status: str, error: str = "") -> dict:
        import psutil

        return {
            "tool": "bench/throughput.py",
            "status": status,
            "error": error,
            "started_utc": self.started_utc.isoformat(),
            "finished_utc": datetime.now(UTC).isoformat(),
            "command": [sys.executable, *sys.argv],
            "quick": self.args.quick,
            "machine": {
                "cpu_count": os.cpu_count(),
                "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
                "python": sys.version.split()[0],
                "platform": platform.platform(),
            },
            "code": self.code,
            "database": {k: v for k, v in self.db.items() if "url" not in k},
            "settings": {
                "latency_ms": LATENCY_MS,
                "write_budget": self.args.write_budget,
                "max_scale": self.args.max_scale,
                "forced_time_scale": self.args.time_scale,
                "baseline_scale": self.baseline_scale() if self.caps else None,
                "baseline_slice": {"graph_s": self.args.baseline_seconds, "users": self.args.baseline_users},
                "django_debug": self.args.django_debug,
                "time_scales": {r["name"]: r["time_scale"] for r in self.results},
            },
            "capabilities": self.caps,
            "notes": self.notes + CAVEATS,
            "total_wall_s": total,
            "targets": targets,
            "scenarios": self.results,
        }

    def write_failed(self, error: str) -> Path | None:
        if not self.db:
            return None
        stamp = self.started_utc.strftime("%Y%m%dT%H%M%SZ")
        self.out.mkdir(parents=True, exist_ok=True)
        path = self.out / f"throughput-{stamp}.json"
        doc = self.document([], time.monotonic() - self.started, status="failed", error=error)
        path.write_text(to_json(doc))
        return path

    def stop(self) -> None:
        for procs in (self.scenario_procs, self.procs):
            if procs is not None:
                stop_processes(procs)
        self.drop_database()


CAVEATS = [
    "Figures are in real-Graph terms: with time scale S the simulator runs S Graph seconds per wall second "
    "(latency, throttle windows) and the console paces at S times Graph's rates; durations are wall x S and "
    "rates per Graph second. Our own per-batch overhead (Python, database, Redis) is not scaled, so scaled "
    "figures are pessimistic for the pipeline.",
    "The baseline is slow by nature and is measured over a slice (its first Graph seconds or first users), "
    "not to completion; 'all users, h' projects its rate over the whole fleet. It is told which users need "
    "a change for free (no reads), which favours it.",
    "Workers are RQ SimpleWorkers (the job runs in the worker process), so a worker's peak RSS and CPU are "
    "its jobs'. Production uses forking workers.",
    "users/s counts per-user MFA changes to 'disabled' seen by the simulator; every one is one Graph write. "
    "Tenants with security defaults on also get bridge writes (disabled -> enabled) first.",
]


def git_state() -> dict[str, Any]:
    """The commit the bench ran on, and whether the work tree had changes (the figures are for those)."""

    def git(*args: str) -> str:
        result = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)
        return result.stdout.rstrip("\n") if result.returncode == 0 else ""

    return {"commit": git("rev-parse", "HEAD"), "changed_files": git("status", "--porcelain").splitlines()}


def to_json(doc: dict) -> str:
    """Indented JSON with each small list of numbers (a series point) on one line."""
    text = json.dumps(doc, indent=1, default=str)
    return re.sub(
        r"\[\s*(-?[\d.eE+-]+(?:,\s*-?[\d.eE+-]+)*)\s*\]",
        lambda m: "[" + re.sub(r"\s+", " ", m[1]) + "]",
        text,
    )


def _delta(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else b - a


def _sum_dicts(dicts: Any) -> dict[str, int]:
    out: dict[str, int] = defaultdict(int)
    for d in dicts:
        for key, value in d.items():
            out[key] += value
    return dict(out)


def tenant_row(
    item: dict, tenants: dict[str, dict], rates: dict[str, float | None], scale: float, origin: float
) -> dict:
    """One tenant's line in the JSON: its run item (times in Graph seconds since the run started, which
    was at epoch `origin`) and its simulator counters."""
    tid = str(item["tenant__tenant_id"])
    counters = tenants.get(tid, {})
    started, finished = item["started_at"], item["finished_at"]

    def since_start(at: datetime | None) -> float | None:
        return None if at is None else round((at.timestamp() - origin) * scale, 1)

    return {
        "tenant": item["tenant__primary_domain"],
        "status": item["status"],
        "verdict": item["verdict"],
        "disabled": counters.get("disabled"),
        "disable_phase_users_per_s": rates.get(tid),
        "throttled": counters.get("throttled"),
        "requests": counters.get("requests"),
        "batch_items": counters.get("batch_items"),
        "writes_effective": counters.get("writes_effective"),
        "started_graph_s": since_start(started),
        "finished_graph_s": since_start(finished),
        "item_graph_s": (finished - started).total_seconds() * scale if started and finished else None,
    }


def cpu_bound(cpu: dict) -> bool:
    """Our CPU may have set the pace: the simulator, a worker or the bench near a full core, or the
    machine under 10 % idle with our own processes (not other work on the machine) taking most of it."""
    busy = [cpu.get("simulator_pct_core"), cpu.get("workers_pct_core_max"), cpu.get("bench_pct_core")]
    if any(v is not None and v >= 85 for v in busy):
        return True
    idle, other = cpu.get("machine_idle_pct"), cpu.get("other_pct_core")
    if idle is None or idle >= 10:
        return False
    machine_busy = (100 - idle) * (cpu.get("cores") or 1)
    return other is None or other < machine_busy / 2


def contended(cpu: dict) -> bool:
    """Other work on the machine took more than half a core: scaled figures may be depressed."""
    return (cpu.get("other_pct_core") or 0) > 50


def step_times(items: list[dict], scale: float) -> dict[str, dict[str, float]]:
    """Graph seconds per pipeline step: summed over tenants, and the median tenant."""
    per_step: dict[str, list[float]] = defaultdict(list)
    for item in items:
        for entry in item["step_log"] or []:
            try:
                start = datetime.fromisoformat(entry["started_at"])
                end = datetime.fromisoformat(entry["finished_at"])
            except (KeyError, TypeError, ValueError):
                continue
            per_step[entry["key"]].append((end - start).total_seconds() * scale)
    return {
        key: {"sum": sum(v), "median": statistics.median(v), "max": max(v)} for key, v in per_step.items()
    }


async def baseline_slice(
    fleet: dict, need: dict[str, list[str]], *, scale: float, max_users: int, max_graph_s: float, label: str
) -> dict:
    """PATCH per-user MFA to disabled one user at a time, tenant after tenant, through the console's own
    Graph client, until `max_graph_s` Graph seconds or `max_users` users. Listing users is not timed."""
    import dataclasses

    from migrations_engine.graph.client import GraphClient
    from migrations_engine.graph.config import GraphConfig, certificate_thumbprint
    from migrations_engine.graph.retry import parse_retry_after

    wanted: dict[str, Any] = {
        "authority_host": fleet["authority_host"].rstrip("/"),
        "base_url": fleet["graph_base_url"].rstrip("/"),
        "client_id": fleet["client_id"],
        "private_key_pem": Path(fleet["client_private_key"]).read_text(),
        "certificate_thumbprint": certificate_thumbprint(Path(fleet["client_certificate"]).read_text()),
        "ca_bundle": fleet["ca_bundle"],
        "pacing_time_scale": scale,  # the client's read pacing, when it has one, in simulated time
    }
    known = {f.name for f in dataclasses.fields(GraphConfig)}
    config = GraphConfig(**{k: v for k, v in wanted.items() if k in known})
    users = throttled = errors = 0
    first_error = ""
    elapsed = 0.0
    timeline: list[list[float]] = [[0.0, 0]]
    touched: list[str] = []
    ended_by = "fleet exhausted"
    last_print = time.monotonic()
    for tenant in fleet["tenants"]:
        todo = set(need.get(tenant["tenant_id"], []))
        async with GraphClient(tenant["tenant_id"], config) as graph:
            ids: list[str] = []
            async for page in graph.iter_pages(
                "/users", query={"$select": "id,userPrincipalName", "$top": 999}
            ):
                ids.extend(u["id"] for u in page if u["id"] in todo)
            touched.append(tenant["domain"])
            for uid in ids:
                started = time.monotonic()
                while True:
                    response = await graph.request(
                        "PATCH",
                        f"/users/{uid}/authentication/requirements",
                        version="beta",
                        body={"perUserMfaState": "disabled"},
                    )
                    if response.status != 429:
                        break
                    throttled += 1
                    retry = {k.lower(): v for k, v in response.headers.items()}.get("retry-after")
                    await asyncio.sleep(parse_retry_after(retry) or 1.0)
                if response.status >= 400:
                    errors += 1
                    first_error = first_error or f"HTTP {response.status}: {str(response.body)[:200]}"
                elapsed += time.monotonic() - started
                users += 1
                timeline.append([round(elapsed * scale, 3), users])
                if time.monotonic() - last_print >= PROGRESS_EVERY_S:
                    last_print = time.monotonic()
                    print(
                        f"[{label}] {users} users in {elapsed * scale:.1f} Graph s "
                        f"({users / (elapsed * scale):.2f}/s)",
                        flush=True,
                    )
                if elapsed * scale >= max_graph_s:
                    ended_by = f"{max_graph_s:g} Graph s"
                    break
                if users >= max_users:
                    ended_by = f"{max_users} users"
                    break
        if ended_by != "fleet exhausted":
            break
    return {
        "users": users,
        "graph_s": elapsed * scale,
        "wall_s": elapsed,
        "throttled": throttled,
        "errors": errors,
        "first_error": first_error,
        "ended_by": ended_by,
        "tenants_touched": touched,
        "timeline": timeline,
    }


# --- targets and the report ------------------------------------------------------------------------


def judge_targets(results: list[dict]) -> list[dict]:
    pipes = [r for r in results if r["kind"] == "pipeline"]
    by_name = {r["name"]: r for r in results}
    targets = []

    def add(target: str, reached: bool | None, figure: str) -> None:
        targets.append({"target": target, "reached": reached, "figure": figure})

    # 1. Every tenant near Graph's 20 writes/s while it disables, where the tenants writing at once do not
    # share the app's cap (more than 233 / 20 at once: each gets its share of 233/s, not 20/s).
    medians = [
        (r["figures"]["per_tenant_disable_users_per_s"]["median"], r["name"])
        for r in pipes
        if r["figures"]["per_tenant_disable_users_per_s"]["median"] is not None
        and min(r["workers"], r["tenants"]) * m.TENANT_WRITES_PER_S <= m.APP_WRITES_PER_S
    ]
    if medians:
        worst, where = min(medians)
        add(
            "per tenant >= 90% of 20 writes/s (18/s) in the disable phase",
            worst >= 0.9 * m.TENANT_WRITES_PER_S,
            f"lowest scenario median {worst:.1f}/s = {100 * worst / m.TENANT_WRITES_PER_S:.0f}% ({where}); "
            + ", ".join(f"{n} {v:.1f}" for v, n in medians),
        )
    else:
        add("per tenant >= 90% of 20 writes/s (18/s) in the disable phase", None, "no pipeline scenario")

    # 2. The fleet near the app cap when enough tenants run at once.
    enough = [
        r
        for r in pipes
        if r["group"] == "fleet" and min(r["workers"], r["tenants"]) * 20 >= m.APP_WRITES_PER_S
    ]
    if enough:
        r = max(enough, key=lambda x: x["workers"])
        f = r["figures"]
        best = f["best_60s_users_per_s"] or f["disable_phase_users_per_s"] or 0.0
        add(
            "fleet >= 80% of the app cap (233/s) when enough tenants run",
            best >= 0.8 * m.APP_WRITES_PER_S,
            f"{r['name']}: best 60 Graph s {best:.1f}/s = {100 * best / m.APP_WRITES_PER_S:.0f}% of 233/s "
            f"(whole disable phase {report.fmt(f['disable_phase_users_per_s'], 1)}/s, "
            f"{report.fmt(f['mean_tenants_in_disable_phase'], 1)} tenants at once on average)",
        )
    else:
        add(
            "fleet >= 80% of the app cap (233/s) when enough tenants run",
            None,
            "no fleet scenario with >= 12 workers",
        )

    # 3. Against the baseline on the fleet.
    fleet_runs = [r for r in pipes if r["group"] == "fleet" and r.get("ratio_to_baseline_end_to_end")]
    if fleet_runs:
        r = max(fleet_runs, key=lambda x: x["ratio_to_baseline_end_to_end"])
        add(
            ">= 20x the baseline on the fleet (end to end)",
            r["ratio_to_baseline_end_to_end"] >= 20,
            f"{r['name']}: {r['ratio_to_baseline_end_to_end']:.1f}x end to end, "
            f"{report.fmt(r['ratio_to_baseline_disable_phase'], 1)}x in the disable phase; "
            + ", ".join(f"{x['name']} {x['ratio_to_baseline_end_to_end']:.1f}x" for x in fleet_runs),
        )
    else:
        add(
            ">= 20x the baseline on the fleet (end to end)",
            None,
            "needs baseline-fleet and a fleet-w* scenario",
        )

    # 4. Few self-inflicted 429s.
    if pipes:
        worst = max(pipes, key=lambda x: x["figures"]["self_inflicted_429_pct"])
        pct = worst["figures"]["self_inflicted_429_pct"]
        add(
            "< 0.1% self-inflicted 429s",
            pct < 0.1,
            f"worst {worst['name']}: {worst['figures']['self_inflicted_429']} = {pct:.3f}% of requests "
            "+ batch items",
        )
    else:
        add("< 0.1% self-inflicted 429s", None, "no pipeline scenario")

    # 5. Memory flat as the tenant grows.
    big = by_name.get("single-w1") or next((r for r in pipes if r["group"] == "single"), None)
    small = by_name.get("small-w1")
    if big and small and big.get("peak_rss_mib_max") and small.get("peak_rss_mib_max"):
        grow = big["peak_rss_mib_max"] / small["peak_rss_mib_max"] - 1
        add(
            f"worker peak RSS for {big['users_per_tenant']:,} users within 20% of "
            f"{small['users_per_tenant']:,} users",
            grow <= 0.2,
            f"{big['peak_rss_mib_max']:.0f} MiB vs {small['peak_rss_mib_max']:.0f} MiB ({100 * grow:+.0f}%)"
            + _job_growth(big, small),
        )
    else:
        add(
            "worker peak RSS for the large tenant within 20% of the small one",
            None,
            "needs single-w1 and small-w1",
        )

    # 6. CPU never the bottleneck.
    bound = [r for r in pipes if r["cpu"]["bottleneck"]]
    busy = [r["name"] for r in pipes if r["cpu"].get("contended")]
    if pipes:
        worst_idle = min(pipes, key=lambda x: x["cpu"]["machine_idle_pct"] or 0)
        add(
            "simulator and console CPU never the bottleneck",
            not bound,
            (
                "CPU-bound: " + ", ".join(_cpu_text(r) for r in bound)
                if bound
                else f"least idle: {_cpu_text(worst_idle)}"
            )
            + (f"; other work on the machine took > 0.5 core during {', '.join(busy)}" if busy else ""),
        )
    else:
        add("simulator and console CPU never the bottleneck", None, "no pipeline scenario")
    targets.extend(_graph_targets(pipes))
    return targets


def graph_minimum_s(result: dict) -> float | None:
    """Graph's minimum time for a pipeline scenario's fleet and writes (bench/graph_minimum.py)."""
    work = [
        gm.TenantWork(
            users=result["users_per_tenant"],
            # Every write the tenant needed: with security defaults on, its users are bridged first.
            writes=int(t.get("writes_effective") or t.get("disabled") or 0),
            report_requests=gm.GATE_REPORT_REQUESTS,
        )
        for t in result.get("per_tenant") or []
    ]
    return gm.fleet_minimum_s(work) if work else None


def _graph_targets(pipes: list[dict]) -> list[dict]:
    """End to end against Graph's minimum, the census against the read limit, and CPU per user."""
    targets = []
    ratios = []
    for r in pipes:
        minimum, took = graph_minimum_s(r), (r.get("wall") or {}).get("run_graph_s")
        if minimum and took:
            ratios.append((took / minimum, r["name"], took, minimum))
    shapes: dict[tuple[int, int], list] = defaultdict(list)
    for x in ratios:
        r = next(p for p in pipes if p["name"] == x[1])
        if r["group"] == "fleet":
            shapes[(r["tenants"], r["users_per_tenant"])].append(x)
    if ratios:
        # Judged on each fleet's best scenario (one tenant alone is bound by its own 20 writes/s, not by
        # the pipeline); every fleet shape must be within.
        bests = [min(found) for found in shapes.values()] or [min(ratios)]
        targets.append(
            {
                "target": "end to end within 1.25x of Graph's minimum (writes at the limit + read tail)",
                "reached": all(b[0] <= 1.25 for b in bests),
                "figure": "; ".join(
                    f"best {b[1]}: {b[2]:.0f} Graph s vs a minimum of {b[3]:.0f} s = {b[0]:.2f}x"
                    for b in bests
                )
                + "; "
                + ", ".join(f"{n} {x:.2f}x" for x, n, _, _ in ratios),
            }
        )
    census = []
    for r in pipes:
        step = (r.get("step_graph_s") or {}).get("census") or {}
        pct = gm.census_pct_of_read_limit(r["users_per_tenant"], step.get("median") or 0)
        if pct is not None:
            census.append((pct, r["name"]))
    fleet_census = [
        (r["census_all"]["pct_of_binding_limit"], r["name"])
        for r in pipes
        if (r.get("census_all") or {}).get("pct_of_binding_limit")
    ]
    step_target = "census >= 80% of the tenant's read limit (per-user reads per s vs resource units)"
    all_target = "census --all >= 80% of the binding read limit (RU, or the registration report)"
    for target, found, pick in ((step_target, census, "lowest"), (all_target, fleet_census, "best")):
        if found:
            pct, name = min(found) if pick == "lowest" else max(found)
            targets.append(
                {
                    "target": target,
                    "reached": pct >= 80,
                    "figure": f"{pick} {name}: {pct:.0f}%; " + ", ".join(f"{n} {p:.0f}%" for p, n in found),
                }
            )
    cpu = [(r["cpu_s_per_1000_users"], r["name"]) for r in pipes if r.get("cpu_s_per_1000_users")]
    if cpu:
        worst_cpu = max(cpu)
        targets.append(
            {
                "target": "<= 2 CPU s per 1,000 users across workers",
                "reached": worst_cpu[0] <= 2.0,
                "figure": f"highest {worst_cpu[1]}: {worst_cpu[0]:.2f} s; "
                + ", ".join(f"{n} {c:.2f}" for c, n in cpu),
            }
        )
    return targets


def _job_growth(big: dict, small: dict) -> str:
    """What the jobs added over the idle worker (Django and the client libraries loaded)."""

    def growth(r: dict) -> float | None:
        rows = [w for w in r["workers_detail"] if w["peak_rss_mib"] and w.get("peak_rss_mib_before_run")]
        if not rows:
            return None
        top = max(rows, key=lambda w: w["peak_rss_mib"])
        return top["peak_rss_mib"] - top["peak_rss_mib_before_run"]

    a, b = growth(big), growth(small)
    if a is None or b is None:
        return ""
    return f"; over the idle worker: +{a:.0f} MiB vs +{b:.0f} MiB"


def _cpu_text(r: dict) -> str:
    c = r["cpu"]
    return (
        f"{r['name']} (sim {report.fmt(c['simulator_pct_core'], 0)}%, worker max "
        f"{report.fmt(c['workers_pct_core_max'], 0)}%, other {report.fmt(c.get('other_pct_core'), 0)}%, "
        f"idle {report.fmt(c['machine_idle_pct'], 0)}%)"
    )


def print_report(bench: Bench, targets: list[dict], total: float) -> None:
    results = bench.results
    print("\n" + "=" * 100)
    print(
        f"Per-user MFA disable throughput ({'quick smoke run' if bench.args.quick else 'full run'}), "
        f"{os.cpu_count()} cores, Python {sys.version.split()[0]}"
    )
    print(f"Database: {bench.db['note']}")
    print(
        "Console settings: DEBUG "
        + (
            "on (--django-debug: Django logs every query)"
            if bench.args.django_debug
            else "off, as in production"
        )
    )
    print(
        f"Latency {LATENCY_MS} ms per Graph request; Graph's documented limits on. "
        "Figures are per Graph second."
    )
    if any(r["kind"] == "baseline" for r in results):
        print(
            "\nBaseline (one PATCH at a time, one tenant at a time, same Graph client), "
            "measured over a SLICE:"
        )
        print(report.baseline_table(results))
    if any(r["kind"] == "pipeline" for r in results):
        print("\nThe console's pipeline (manage.py start_run --mode full --all, RQ SimpleWorkers):")
        print(report.pipeline_table(results))
        print(
            "  phase u/s: users disabled / the fleet's disable phase (first to last disabling second); "
            "best60: best 60 Graph s;\n  e2e: users disabled / run start to last tenant verified; "
            "tenant min/med: per-tenant disable-phase rate;\n  x base: e2e vs the baseline of the same "
            "fleet shape; % bind: phase rate vs min(20/s x tenants at once, 233/s);\n  % app: vs 233/s; "
            "429 self: the throttle model's 429s (% of requests + batch items); CPU s/1k: workers' CPU "
            "seconds per 1,000 users."
        )
        print("\nWhere the Graph time goes (per step):")
        print(report.steps_table(results))
    print("\nCPU, % of one core over each scenario (scaled scenarios load the machine on purpose):")
    print(report.cpu_table(results))
    print(
        "  bench: this script and the manage.py commands it waited for (start_run); other: the machine's "
        "busy time less the\n  processes listed (other work on this machine); CPU-bound: one of ours near a "
        "full core, or the machine\n  < 10% idle mostly through ours. Compare runs only on an otherwise idle "
        "machine."
    )
    print("\nTargets:")
    print(report.targets_table(targets))
    if bench.args.quick:
        print(
            "  (quick run: tiny fleets; the targets are judged on the figures above, not on the full fleets)"
        )
    print("\nNotes:")
    for text in bench.notes + CAVEATS:
        print(f"- {text}")
    print(f"\nTotal wall time: {total:,.0f} s")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    # Ctrl-C and SIGTERM both stop every child, also when started from a shell that ignores SIGINT.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    bench = Bench(args)
    try:
        return bench.run()
    except KeyboardInterrupt:
        print("\nInterrupted: stopping every process.", file=sys.stderr)
        return 130
    except BenchError as exc:
        print(f"\nBenchmark FAILED: {exc}", file=sys.stderr)
        path = bench.write_failed(str(exc))
        print(f"Logs are in {bench.work}" + (f"; partial results in {path}" if path else ""), file=sys.stderr)
        return 1
    finally:
        bench.stop()


if __name__ == "__main__":
    sys.exit(main())
