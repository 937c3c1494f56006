"""Redis loses everything mid-run (FLUSHDB, or a restart without persistence) while a worker dies too.

The run's rows survive in the database; the sweeper enqueues the queued items again and re-queues the
one whose worker died, and another worker finishes both tenants as if nothing had happened. Each test
has a Redis of its own (`own_redis`), so flushing or restarting it leaves the session's Redis alone.
"""

from __future__ import annotations

import os

import pytest

from migrations_engine.runs.services import start_run
from migrations_engine.runs.sweeper import sweep
from tests.migrations_engine.pipeline_helpers import (
    FAST,
    seed,
    sim_clock,
    sim_state,
    tenant_named,
    worker_process,
)
from tests.migrations_engine.test_pipeline_faults import assert_migrated_once
from tests.reliability.conftest import Trial, TrialFigures, measure

pytestmark = pytest.mark.django_db(transaction=True)

# Contoso (no security defaults) runs first, then Fabrikam (security defaults on): a point only
# Fabrikam reaches leaves Contoso done and Fabrikam running; one both reach leaves Contoso running and
# Fabrikam queued.
QUICK = [("flush", "after_write:sd.disable"), ("restart", "after_step:census")]
LONG = [
    (loss, point)
    for loss in ("flush", "restart")
    for point in (
        "after_write:sd.disable",
        "after_step:census",
        "after_write:policy.create",
        "after_write:per_user_mfa.set",
        "before_step:verify",
    )
]


def cases() -> list[tuple[str, str]]:
    return LONG if int(os.environ.get("MSP_RELIABILITY_TRIALS") or 0) > 6 else QUICK


@pytest.mark.parametrize(("loss", "point"), cases())
def test_a_run_survives_redis_losing_its_jobs_and_a_worker_dying(
    fast_graph, tmp_path, own_redis, loss, point
):
    print(f"trial redis-{loss} tenants=contoso,fabrikam point={point}")
    seed(fast_graph, tmp_path)
    tenants = [tenant_named("contoso"), tenant_named("fabrikam")]
    before = {t.pk: sim_state(fast_graph, t) for t in tenants}
    t0 = sim_clock(fast_graph)
    run = start_run(mode="full", tenants=tenants, actor="test", options=FAST)
    assert worker_process(own_redis.url, crash_points=point) == 137, f"no crash at {point}"
    assert run.items.filter(status="running").count() == 1

    if loss == "flush":
        own_redis.flush()
    else:
        own_redis.restart()  # same port, nothing persisted
    assert own_redis.keys() == 0

    report = sweep()
    active = run.items.filter(status__in=["queued", "running"]).count()
    assert len(report.actions) == active  # every unfinished item, whatever state it was left in
    assert {a.action for a in report.actions} <= {"enqueued", "requeued"}
    assert worker_process(own_redis.url) == 0
    run.refresh_from_db()
    for tenant in tenants:
        with Trial(
            TrialFigures(scenario=f"redis-{loss}", tenant=tenant.primary_domain.split(".")[0], points=[point])
        ) as f:
            measure(f, fast_graph, tenant, before[tenant.pk], t0, run.items.get(tenant=tenant))
            assert_migrated_once(fast_graph, tenant, before[tenant.pk], t0)
    assert run.status == "succeeded"
