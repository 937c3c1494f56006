"""The console at an MSP's real scale, served as production serves it.

    python3 tasks.py bench-console [--database-url URL] [--tenants 1000] [--audit-rows 10000000]
                                   [--rebuild] [--repeat 15] [--export-rows 1000000] [--out FILE]

A script, not a test: it reports what it measured against the targets and never fails on them.

1. A PostgreSQL database (`--database-url`, default the local `console_scale`; created when missing) is
   migrated and, unless it already holds the data set, filled by `bench.scale_data.build` through COPY:
   1,000 tenants, ~920,000 census and ~920,000 snapshot users, a 1,000-tenant run with ~400,000 per-user
   outcomes and ~10,000,000 audit rows in 1,001 hash chains over 12 months.
2. The console runs under gunicorn with the image's settings (`msp_console.gunicorn_conf`, 3 workers ×
   4 threads, DEBUG off, hashed static files) on a socket this script bound on loopback, with
   SERVER_TIMING on: each response says the console's time and its query count
   (`msp_console/server_timing.py`), so the figures are server time, not this client's.
3. Each page is asked `--repeat` times as a superuser and as a staff member granted 50 tenants (both
   signed in with a second factor); printed: p50 and p95 server ms, queries, KB, against 300 ms.
4. Exports: the whole-fleet audit CSV from the console (the first `--export-rows` rows, read as a browser
   would) and `manage.py export_audit` of the last 30 days to a file: rows/s and the peak memory of the
   process writing it, sampled every 0.2 s.
5. Chain checks: a ~10,000-row chain from row 1, the largest chain from row 1, and a second
   (incremental) check of it.

The figures go to `--out` (JSON) and into the README's Performance section by hand.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET_MS = 300
TARGET_EXPORT_ROWS_PER_S = 20_000
TARGET_VERIFY_10K_S = 2.0
DEFAULT_URL = "postgres://msp_ci:msp_ci@127.0.0.1:5432/console_scale"
PASSWORD = "a-bench-password-1234"

# (name, path); {…} are filled from the data set. Every page is asked by both users.
PAGES = (
    ("dashboard", "/"),
    ("fleet", "/tenants/customertenant/"),
    ("fleet, by migration state", "/tenants/customertenant/?migration=migrated"),
    ("fleet, blocked view", "/tenants/customertenant/?view=blocked"),
    ("fleet, drift check failed", "/tenants/customertenant/?drift=error"),
    ("fleet, sorted by state", "/tenants/customertenant/?o=2"),
    ("fleet, searched", "/tenants/customertenant/?q=harbor"),
    ("tenant page, 20,000 users", "/tenants/customertenant/{big}/change/"),
    ("tenant page, user search", "/tenants/customertenant/{big}/change/?users_q=user1"),
    ("runs", "/migrations_engine/migrationrun/"),
    ("run page, 1,000 tenants", "/migrations_engine/migrationrun/{run}/change/"),
    ("run page, failed tenants", "/migrations_engine/migrationrun/{run}/change/?state=failed"),
    ("run page, page 20", "/migrations_engine/migrationrun/{run}/change/?page=20"),
    ("run progress JSON", "/runs/{run}/progress.json"),
    ("run progress JSON, since", "/runs/{run}/progress.json?since={since}"),
    ("audit list", "/migrations_engine/auditevent/"),
    ("audit, last 30 days", "/migrations_engine/auditevent/?period=30d"),
    ("audit, by tenant", "/migrations_engine/auditevent/?tenant__id__exact={big}"),
    ("audit, by actor", "/migrations_engine/auditevent/?actor={actor}"),
    ("audit, by run", "/migrations_engine/auditevent/?run={run}"),
    ("audit, by kind", "/migrations_engine/auditevent/?kind__exact=staff_action"),
    ("audit, by outcome", "/migrations_engine/auditevent/?outcome__exact=failed"),
    ("audit, page 20 (the last numbered)", "/migrations_engine/auditevent/?p=19"),
    ("audit, older rows", "/migrations_engine/auditevent/?before={deep}"),
    ("audit, request-id search", "/migrations_engine/auditevent/?q={request_id}"),
    ("audit, target search", "/migrations_engine/auditevent/?q={target}"),
    ("audit row", "/migrations_engine/auditevent/{row}/change/"),
    ("audit verify page", "/audit/verify/"),
    ("drift findings", "/migrations_engine/driftfinding/"),
    ("waves", "/migrations_engine/wave/"),
)


def _env(database_url: str, folder: Path) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": database_url,
        "DJANGO_SETTINGS_MODULE": "msp_console.settings",
        "DEBUG": "False",
        "SECRET_KEY": secrets.token_urlsafe(64),
        "ALLOW_SIMULATOR": "1",
        "ALLOWED_HOSTS": "127.0.0.1,localhost,testserver",
        "SECURE_SSL_REDIRECT": "False",
        "SESSION_COOKIE_SECURE": "False",
        "CSRF_COOKIE_SECURE": "False",
        "SERVER_TIMING": "1",
        "AUDIT_EXPORT_DIR": str(folder / "exports"),
        "PYTHONPATH": str(ROOT),
    }


def _ensure_database(database_url: str, rebuild: bool) -> None:
    import psycopg

    name = database_url.rsplit("/", 1)[1]
    admin = database_url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if exists and rebuild:
            conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
            exists = None
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')


def _sign_in(username: str, *, superuser: bool) -> str:
    """A session cookie for `username`, signed in with a second factor as the sign-in page records it."""
    from django.contrib.auth.models import User
    from django.test import Client
    from django_otp import DEVICE_ID_SESSION_KEY
    from django_otp.plugins.otp_static.models import StaticDevice

    user = User.objects.filter(username=username).first()
    if user is None:
        user = User.objects.create_superuser(username, "", PASSWORD) if superuser else None
    device = StaticDevice.objects.filter(user=user).first() or StaticDevice.objects.create(
        user=user, name="bench"
    )
    client = Client()
    client.force_login(user)
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    session.save()
    return session.session_key


class Gunicorn:
    """gunicorn as the image runs it, on a loopback socket bound here (passed as fd://), so the port is
    ours whatever else runs on the machine."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.port = self.sock.getsockname()[1]
        fd = self.sock.fileno()
        command = [
            sys.executable, "-m", "gunicorn", "msp_console.wsgi:application",
            "--config", "python:msp_console.gunicorn_conf", "--bind", f"fd://{fd}", "--workers", "3",
        ]  # fmt: skip
        self.proc = subprocess.Popen(
            command, env=env, cwd=ROOT, pass_fds=[fd], stdout=log.open("wb"), stderr=subprocess.STDOUT
        )
        self.base = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(self.base + "/healthz", timeout=5).read()
                return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("gunicorn did not start:\n" + log.read_text()[-3000:]) from None
                time.sleep(0.3)

    def pids(self) -> list[int]:
        import psutil

        parent = psutil.Process(self.proc.pid)
        return [parent.pid, *(child.pid for child in parent.children(recursive=True))]

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.sock.close()


def _get(base: str, path: str, session: str) -> tuple[int, float, int, int, bytes]:
    """(status, server ms, queries, bytes, body) of one GET with the session cookie."""
    request = urllib.request.Request(base + path, headers={"Cookie": f"sessionid={session}"})
    try:
        response = urllib.request.urlopen(request, timeout=120)
        status = response.status
    except urllib.error.HTTPError as exc:
        response, status = exc, exc.code
    body = response.read()
    timing = response.headers.get("Server-Timing", "")
    app_ms, queries = 0.0, 0
    for part in timing.split(","):
        part = part.strip()
        if part.startswith("app;dur="):
            app_ms = float(part.split("=", 1)[1])
        if 'desc="' in part:
            queries = int(part.split('desc="', 1)[1].split()[0])
    return status, app_ms, queries, len(body), body


def _percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


def measure_pages(base: str, users: dict[str, str], ids: dict, repeat: int) -> list[dict]:
    results = []
    print(f"\n{'page':30} {'user':10} {'p50 ms':>7} {'p95 ms':>7} {'queries':>8} {'KB':>7}  status")
    for name, template in PAGES:
        for who, session in users.items():
            path = template.format(since=_since(), **ids)
            _get(base, path, session)  # one warm-up: each gunicorn worker's first request imports more
            samples = [_get(base, path, session) for _ in range(repeat)]
            times = [s[1] for s in samples]
            row = {
                "page": name,
                "user": who,
                "path": path,
                "status": samples[-1][0],
                "p50_ms": round(statistics.median(times), 1),
                "p95_ms": round(_percentile(times, 95), 1),
                "queries": samples[-1][2],
                "kb": round(samples[-1][3] / 1024, 1),
            }
            results.append(row)
            flag = "" if row["p95_ms"] <= TARGET_MS else "  over"
            print(
                f"{name:30} {who:10} {row['p50_ms']:7.0f} {row['p95_ms']:7.0f} {row['queries']:8} "
                f"{row['kb']:7.0f}  {row['status']}{flag}",
                flush=True,
            )
    return results


def _since() -> str:
    from django.utils import timezone

    return urllib.parse.quote((timezone.now() - timezone.timedelta(seconds=2)).isoformat())


class PeakMemory:
    """The largest resident set of these processes (summed), sampled every 0.2 s in a thread."""

    def __init__(self, pids) -> None:
        self.pids, self.peak, self.first, self._stop = pids, 0, None, threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        import psutil

        while not self._stop.is_set():
            total = 0
            for pid in self.pids():
                try:
                    total = max(total, psutil.Process(pid).memory_info().rss)
                except psutil.Error:
                    pass
            self.first = self.first or total
            self.peak = max(self.peak, total)
            time.sleep(0.2)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self.thread.join()


def measure_console_export(web: Gunicorn, session: str, limit: int) -> dict:
    request = urllib.request.Request(
        web.base + "/migrations_engine/auditevent/export/csv/", headers={"Cookie": f"sessionid={session}"}
    )
    rows, size = -1, 0
    with PeakMemory(web.pids) as memory:
        started = time.perf_counter()
        with urllib.request.urlopen(request, timeout=600) as response:
            for line in response:
                size += len(line)
                # Multi-line cells are quoted: a record ends where a line ends outside quotes. The
                # generated rows have none, so lines are rows (the header is the -1).
                rows += 1
                if rows >= limit:
                    break
        seconds = time.perf_counter() - started
    return {
        "what": "console download, whole fleet (CSV)",
        "rows": rows,
        "seconds": round(seconds, 1),
        "rows_per_s": round(rows / seconds),
        "mb": round(size / 2**20, 1),
        "peak_rss_mib": round(memory.peak / 2**20),
        "start_rss_mib": round((memory.first or 0) / 2**20),
    }


def measure_cli_export(env: dict[str, str], folder: Path) -> dict:
    from django.utils import timezone

    since = (timezone.now() - timezone.timedelta(days=30)).date().isoformat()
    target = folder / "export.csv"
    command = [
        sys.executable,
        "manage.py",
        "export_audit",
        "--format",
        "csv",
        "--since",
        since,
        "--output",
        str(target),
    ]
    started = time.perf_counter()
    proc = subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    with PeakMemory(lambda: [proc.pid]) as memory:
        out = proc.communicate()[0].decode(errors="replace")
    seconds = time.perf_counter() - started
    if proc.returncode:
        raise RuntimeError("export_audit failed:\n" + out[-2000:])
    with target.open("rb") as fh:
        rows = sum(1 for _ in fh) - 1
    return {
        "what": f"manage.py export_audit --since {since} (CSV file)",
        "rows": rows,
        "seconds": round(seconds, 1),
        "rows_per_s": round(rows / seconds),
        "mb": round(target.stat().st_size / 2**20, 1),
        "peak_rss_mib": round(memory.peak / 2**20),
    }


def measure_verify() -> list[dict]:
    # Why here: main() sets the environment and Django up before any of these are imported.
    from migrations_engine.audit.verification import check_chain
    from migrations_engine.models import AuditChainHead

    near_10k = AuditChainHead.objects.filter(seq__gte=10_000).order_by("seq").first()
    largest = AuditChainHead.objects.order_by("-seq").first()
    results = []
    for label, head, full in (
        ("a ~10,000-row chain, from row 1", near_10k, True),
        ("the largest chain, from row 1", largest, True),
        ("the largest chain, again (incremental)", largest, False),
    ):
        if head is None:
            continue
        started = time.perf_counter()
        result = check_chain(head.chain, full=full)
        seconds = time.perf_counter() - started
        ok = "ok" if not result.problem_reason else f"broken: {result.problem_reason}"
        results.append(
            {
                "what": label,
                "rows": head.seq,
                "hashed": result.rows_checked,
                "seconds": round(seconds, 2),
                "result": ok,
            }
        )
        print(f"verify {label}: {head.seq:,} rows, {result.rows_checked:,} hashed in {seconds:.2f} s ({ok})")
    return results


def _ids(built: dict) -> dict:
    # Why here: main() sets the environment and Django up before any of these are imported.
    from django.db.models import Count

    from migrations_engine.models import AuditEvent, MigrationRun
    from tenants.models import CustomerTenant

    big = CustomerTenant.objects.order_by("-users_total").values_list("pk", flat=True).first()
    run = MigrationRun.objects.annotate(n=Count("items")).order_by("-n").values_list("pk", flat=True).first()
    newest = AuditEvent.objects.order_by("-id").values_list("id", flat=True).first()
    deep = (
        AuditEvent.objects.filter(id__lte=newest - 500_000)
        .order_by("-id")
        .values_list("id", flat=True)
        .first()
    )
    request_id = (
        AuditEvent.objects.filter(id__lte=newest - 100_000)
        .exclude(request_id="")
        .order_by("-id")
        .values_list("request_id", flat=True)
        .first()
    )
    actor = (
        AuditEvent.objects.filter(kind="staff_action").order_by("-id").values_list("actor", flat=True).first()
    )
    upn = AuditEvent.objects.filter(id__lte=newest - 100_000, target__contains="@")
    target = (upn.order_by("-id").values_list("target", flat=True).first() or "x").split("@")[0][:-2]
    return {
        "target": urllib.parse.quote(target),  # the beginning of a UPN
        "big": big,
        "run": run,
        "deep": deep or newest,
        # A row of the largest tenant, which the staff member is granted too.
        "row": AuditEvent.objects.filter(tenant_id=big)
        .order_by("-created_at")
        .values_list("id", flat=True)[500],
        "request_id": request_id or "x",
        "actor": actor or "cli",
    }


def _print_summary(pages: list[dict], exports: list[dict], verify: list[dict]) -> dict:
    over = [p for p in pages if p["p95_ms"] > TARGET_MS]
    by_page: dict[str, set[int]] = {}
    for page in pages:
        by_page.setdefault(page["page"], set()).add(page["queries"])
    slowest = max(pages, key=lambda p: p["p95_ms"])
    print(f"\nslowest p95: {slowest['p95_ms']:.0f} ms ({slowest['page']}, {slowest['user']}); "
          f"{len(over)} of {len(pages)} over {TARGET_MS} ms")  # fmt: skip
    for export in exports:
        print(f"export: {export['what']}: {export['rows']:,} rows in {export['seconds']} s = "
              f"{export['rows_per_s']:,} rows/s, peak {export['peak_rss_mib']} MiB")  # fmt: skip
    ten_k = next((v for v in verify if "10,000" in v["what"]), None)
    return {
        "pages_over_target": [f"{p['page']} ({p['user']}): {p['p95_ms']} ms" for p in over],
        "slowest_p95_ms": slowest["p95_ms"],
        "exports_at_target": all(e["rows_per_s"] >= TARGET_EXPORT_ROWS_PER_S for e in exports),
        "verify_10k_seconds": ten_k["seconds"] if ten_k else None,
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bench-console", description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL))
    parser.add_argument("--tenants", type=int, default=1000)
    parser.add_argument("--audit-rows", type=int, default=10_000_000)
    parser.add_argument("--rebuild", action="store_true", help="drop the database and generate it again")
    parser.add_argument("--repeat", type=int, default=15, help="requests per page and user")
    parser.add_argument("--export-rows", type=int, default=1_000_000, help="rows of the console download")
    parser.add_argument("--skip-exports", action="store_true")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "console_scale.json"))
    args = parser.parse_args(argv)
    if not args.database_url.startswith("postgres"):
        parser.error("the scale data set is made with PostgreSQL's COPY: give a postgres:// URL")
    folder = Path(tempfile.mkdtemp(prefix="console_scale_"))
    sys.path.insert(0, str(ROOT))
    # Why here: scripts/ is importable once ROOT is on the path (this runs as `python -m` or from tasks.py).
    from scripts.processes import Processes, start_redis

    procs = Processes(folder / "logs")
    password = uuid.uuid4().hex
    redis_args = ("--save", "", "--appendonly", "no", "--requirepass", password)
    try:
        return _bench(args, folder, start_redis(procs, folder / "redis", args=redis_args, password=password))
    finally:
        procs.stop_all()


def _bench(args, folder: Path, redis_url: str) -> int:
    env = {**_env(args.database_url, folder), "REDIS_URL": redis_url}
    os.environ.update({k: v for k, v in env.items() if k != "PYTHONPATH"})
    _ensure_database(args.database_url, args.rebuild)
    import django

    django.setup()
    from django.core.management import call_command

    # Why here: the settings above must be in the environment before Django and the models load.
    from bench.scale_data import build
    from migrations_engine.models import AuditEvent

    started = time.perf_counter()
    call_command("migrate", "--noinput", "-v", "0")
    call_command("collectstatic", "--noinput", "-v", "0")
    built = {}
    if not AuditEvent.objects.exists():
        built = build(tenants=args.tenants, audit_rows=args.audit_rows)
    data_seconds = time.perf_counter() - started
    sessions = {
        "superuser": _sign_in("bench-root", superuser=True),
        "staff-50": _sign_in("bench-staff", superuser=False),
    }
    ids = _ids(built)
    counts = {name: model.objects.count() for name, model in _models().items()}
    print(f"data set ready in {data_seconds:.0f} s: " + ", ".join(f"{n:,} {k}" for k, n in counts.items()))
    web = Gunicorn(env, folder / "gunicorn.log")
    try:
        pages = measure_pages(web.base, sessions, ids, args.repeat)
        exports = []
        if not args.skip_exports:
            exports.append(measure_console_export(web, sessions["superuser"], args.export_rows))
            exports.append(measure_cli_export(env, folder))
    finally:
        web.stop()
    verify = measure_verify()
    summary = _print_summary(pages, exports, verify)
    result = {
        "commit": subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip(),
        "machine": f"{os.cpu_count()} cores",
        "rows": counts,
        "targets": {
            "page_p95_ms": TARGET_MS,
            "export_rows_per_s": TARGET_EXPORT_ROWS_PER_S,
            "verify_10k_rows_s": TARGET_VERIFY_10K_S,
        },  # fmt: skip
        "pages": pages,
        "exports": exports,
        "verify": verify,
        "summary": summary,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwritten to {args.out}")
    return 0


def _models() -> dict:
    # Why here: main() sets the environment and Django up before any of these are imported.
    from migrations_engine.models import AuditEvent, RunItem, UserOutcome, UserSnapshot
    from tenants.models import CensusUser, CustomerTenant

    return {
        "tenants": CustomerTenant,
        "census users": CensusUser,
        "snapshot users": UserSnapshot,
        "run items": RunItem,
        "per-user outcomes": UserOutcome,
        "audit rows": AuditEvent,
    }


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
