"""Helpers for pipeline tests: seed the simulator's fleet, run jobs on real rq workers, read the truth."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

from django.conf import settings
from django.core.management import call_command
from django.db import connection

from migrations_engine.choices import AuditOutcome
from migrations_engine.models import AuditEvent, MigrationRun, RunItem
from tenants.models import CustomerTenant

ROOT = Path(__file__).resolve().parents[2]
FAST = {"settle_seconds": 20, "replication_wait_seconds": 8, "whatif_sample": 3}


def seed(sim, tmp_path) -> None:
    fleet_file = tmp_path / "fleet.json"
    fleet_file.write_text(json.dumps(sim.fleet))
    call_command("seed_demo", "--fleet", str(fleet_file))


def tenant_named(domain_prefix: str) -> CustomerTenant:
    return CustomerTenant.objects.get(primary_domain__startswith=domain_prefix)


def work(queue) -> None:
    """Drain the queue with a real rq worker in this process (burst mode)."""
    from rq import SimpleWorker

    SimpleWorker([queue], connection=queue.connection).work(burst=True)


def _database_url() -> str:
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    host = f"{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}"
    return f"postgres://{db['USER']}:{db['PASSWORD']}@{host}/{db['NAME']}"


def worker_command() -> list[str]:
    """A real rq worker on the default queue. SimpleWorker runs the job in the worker process, so a
    crash point kills the whole worker, as SIGKILL would."""
    return [sys.executable, "manage.py", "rqworker", "default", "--worker-class", "rq.worker.SimpleWorker"]


def worker_env(redis_url: str, *, crash_points: str = "") -> dict[str, str]:
    """The environment of a worker process that shares this test's database, Redis and simulator."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "msp_console.settings",
        "DATABASE_URL": _database_url(),
        "REDIS_URL": redis_url,
        "MSP_CRASH_POINTS": crash_points,
        "LOG_LEVEL": "WARNING",
    }
    for name in dir(settings):
        if name.startswith("GRAPH_"):
            value = getattr(settings, name)
            env[name] = ",".join(value) if isinstance(value, list) else str(value)
    return env


def worker_process(redis_url: str, *, crash_points: str = "", timeout: float = 180) -> int:
    """A real `manage.py rqworker --burst` process on the test database; returns its exit code.

    With crash points it dies with exit 137 at the named point, as a SIGKILLed worker would.
    """
    env = worker_env(redis_url, crash_points=crash_points)
    result = subprocess.run(
        [*worker_command(), "--burst"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if os.environ.get("MSP_TEST_WORKER_OUTPUT"):
        print(result.stdout[-5000:], result.stderr[-5000:])
    if result.returncode not in (0, 137):
        raise AssertionError(
            f"worker exited {result.returncode}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        )
    return result.returncode


def worker_processes(redis_url: str, count: int, *, timeout: float = 240) -> list[int]:
    """`count` real burst workers at once (see `worker_process`); their exit codes."""
    codes: list[int] = []
    threads = [
        threading.Thread(target=lambda: codes.append(worker_process(redis_url, timeout=timeout)))
        for _ in range(count)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return codes


def sim_clock(sim) -> float:
    return sim.admin("GET", "/_sim/health")["clock"]


def sim_state(sim, tenant: CustomerTenant) -> dict:
    return sim.admin("GET", f"/_sim/tenants/{tenant.tenant_id}/state")


def restored_as_graph_does(states: dict[str, str], users: list[dict]) -> dict[str, str]:
    """The per-user states a rollback to `states` leaves: the same, except that an MFA-registered user put
    back to "enabled" is "enforced" (howto-mfa-userstates: "After they register, their state changes
    automatically to Enforced"; https://learn.microsoft.com/entra/identity/authentication/howto-mfa-userstates)."""
    registered = {u["id"] for u in users if u["isMfaRegistered"]}
    return {
        uid: "enforced" if state == "enabled" and uid in registered else state
        for uid, state in states.items()
        for uid, state in states.items()
    }


def sim_log(sim, tenant: CustomerTenant, since_seq: int = 0) -> list[dict]:
    return sim.admin("GET", f"/_sim/requests?tenant={tenant.tenant_id}&since_seq={since_seq}&limit=1000000")[
        "requests"
    ]


def effective_writes(sim, tenant: CustomerTenant) -> list[dict]:
    """Requests that changed the tenant (a batch's items are logged one by one)."""
    return [r for r in sim_log(sim, tenant) if r.get("write_effective")]


def coverage_gaps(sim, tenant: CustomerTenant, since: float) -> list[dict]:
    return sim.admin("GET", f"/_sim/tenants/{tenant.tenant_id}/coverage?since={since}")["gaps"]


def policies(sim, tenant: CustomerTenant) -> list[dict]:
    return sim_state(sim, tenant)["policies"]


def audit_matches_simulator(sim, tenant: CustomerTenant) -> None:
    """Every write that took effect has exactly one intent row with its client-request-id, that intent
    ended succeeded (or unknown and then reconciled as succeeded), and no intent claims a success the
    simulator did not see."""
    applied = [r["client_request_id"] for r in effective_writes(sim, tenant)]
    assert len(applied) == len(set(applied)), "a write took effect twice under one client-request-id"
    intents = {
        e.client_request_id: e
        for e in AuditEvent.objects.filter(tenant=tenant, outcome=AuditOutcome.INTENT).prefetch_related(
            "outcomes"
        )
    }
    missing = [cid for cid in applied if cid not in intents]
    assert not missing, f"{len(missing)} writes took effect without an audit intent"
    succeeded = set()
    for cid, intent in intents.items():
        outcomes = {o.outcome for o in intent.outcomes.all()}
        results = {
            o.detail.get("result") for o in intent.outcomes.all() if o.outcome == AuditOutcome.RECONCILED
        }
        if "succeeded" in outcomes or "succeeded" in results:
            succeeded.add(cid)
        assert outcomes, f"intent {intent.pk} ({intent.action}) has no outcome"
    assert succeeded == set(applied)


def item_of(run: MigrationRun) -> RunItem:
    return run.items.get()
