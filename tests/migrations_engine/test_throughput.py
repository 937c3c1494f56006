"""Workers share Graph's budgets: two real worker processes on a generated fleet, against the simulator's
documented throttles, cause no throttling when they pace through Redis, and do when each paces alone.

The simulator runs 10x fast (windows and latency) and the client paces 10x fast to match; the app's
write budget is cut to 300 per 10 s so that two tenants at full speed (19 writes/s each) exceed it.
"""

from __future__ import annotations

import pytest

from graph_sim.testing import running_simulator
from graph_sim.throttle import ThrottleLimits
from migrations_engine.models import RunItem
from migrations_engine.runs.services import start_run
from tenants.models import CustomerTenant
from tests.conftest import point_settings_at
from tests.migrations_engine.pipeline_helpers import FAST, seed, worker_processes

pytestmark = pytest.mark.django_db(transaction=True)

SCALE = 10.0
APP_WRITES, APP_WINDOW_S = 300, 10.0  # simulated seconds: 30 writes/s for the app, all tenants together
TENANTS, USERS = 4, 1000


def _migrate_with_two_workers(settings, tmp_path, redis_url, *, pacing: str) -> tuple[dict, list[RunItem]]:
    # The CA window is halved: at 10x speed Graph's 1 request/s is 0.1 s real, and this process's GIL
    # (the simulator runs in a thread here) jitters arrivals by more than the pacing margin of 10 ms.
    # The write budgets, which this test is about, keep their documented shape.
    limits = ThrottleLimits(app_writes=APP_WRITES, app_writes_window_s=APP_WINDOW_S, ca_window_s=0.5)
    with running_simulator(
        fleet="generated", tenants=TENANTS, users=USERS, limits=limits, time_scale=SCALE
    ) as sim:
        point_settings_at(settings, sim)
        settings.GRAPH_PACING = pacing
        settings.GRAPH_PACING_TIME_SCALE = SCALE
        settings.GRAPH_APP_WRITES_PER_SECOND = 25.0  # burst 20 + 25/s x 10 s = 270 < 300
        seed(sim, tmp_path)
        run = start_run(
            mode="full",
            tenants=CustomerTenant.objects.all(),
            actor="test",
            options={**FAST, "whatif_sample": 1},
        )
        assert worker_processes(redis_url, 2) == [0, 0]
        return sim.admin("GET", "/_sim/stats"), list(RunItem.objects.filter(run=run))


def test_workers_pacing_through_redis_share_the_apps_write_budget(settings, tmp_path, queue, redis_url):
    stats, items = _migrate_with_two_workers(settings, tmp_path, redis_url, pacing="redis")
    assert [i.status for i in items] == ["succeeded"] * TENANTS, [i.failure_reason for i in items]
    # Every budget shared through Redis stays unthrottled. The 1 request/s CA limit is per tenant, not
    # shared, and at 10x speed its margin is a few tens of milliseconds, which a loaded CI machine's
    # scheduler can eat; its 429-without-Retry-After backoff is proven in test_fault_mixes.
    shared = {k: v for k, v in stats["throttled"].items() if k != "ca"}
    assert shared == dict.fromkeys(shared, 0), stats["throttled"]
    assert len(shared) == len(stats["throttled"]) - 1, stats["throttled"]
    disabled = sum(t["per_user_changes"]["disabled"] for t in stats["tenants"].values())
    assert disabled == sum(i.counters["migrate_done"] for i in items) > TENANTS * USERS // 2


def test_workers_pacing_alone_overrun_the_apps_write_budget(settings, tmp_path, queue, redis_url):
    """The control for the test above: the same work with per-process pacing is throttled by Graph."""
    stats, items = _migrate_with_two_workers(settings, tmp_path, redis_url, pacing="local")
    assert stats["throttled"]["app_writes"] > 0
    # Throttled items were sent again after their Retry-After: the migration still completes.
    assert [i.status for i in items] == ["succeeded"] * TENANTS, [i.failure_reason for i in items]


def test_the_largest_tenants_are_queued_first(demo_sim, tmp_path, queue):
    """Each tenant is bound to 20 writes/s, so the longest jobs go first: a big tenant queued last
    would run alone long after the rest. Security-defaults tenants count double (bridge, then disable);
    tenants never censused go last."""
    seed(demo_sim, tmp_path)
    tenants = list(CustomerTenant.objects.order_by("pk")[:4])
    sizes = [(100, False), (300, False), (200, True), (None, None)]  # work: 100, 300, 400, unknown
    for tenant, (users, sd) in zip(tenants, sizes, strict=True):
        CustomerTenant.objects.filter(pk=tenant.pk).update(users_total=users, security_defaults=sd)
    run = start_run(mode="plan", tenants=tenants, actor="test")
    items = {i.rq_job_id: i.tenant_id for i in RunItem.objects.filter(run=run)}
    order = [items[job_id] for job_id in queue.job_ids]
    assert order == [tenants[2].pk, tenants[1].pk, tenants[0].pk, tenants[3].pk]
