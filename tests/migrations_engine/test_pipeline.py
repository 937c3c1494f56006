"""The pipeline end to end: real rq worker, real Redis, the simulator over HTTPS."""

from __future__ import annotations

import pytest

from migrations_engine.services import start_run
from tests.migrations_engine.pipeline_helpers import FAST, item_of, seed, sim_state, tenant_named, work

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def queue(redis_url, settings):
    import django_rq

    settings.RQ_QUEUES = {"default": {"URL": redis_url, "DEFAULT_TIMEOUT": 600}}
    q = django_rq.get_queue("default")
    q.empty()
    return q


def test_it_migrates_the_p2_tenant_to_the_verified_end_state(fresh_graph, tmp_path, queue):
    seed(fresh_graph, tmp_path)
    tenant = tenant_named(fresh_graph, "contoso")
    run = start_run(mode="full", tenants=[tenant], actor="test", options=FAST)
    work(queue)
    item = item_of(run)
    assert item.status == "succeeded", (item.failure_reason, item.traceback, item.step_log)
    state = sim_state(fresh_graph, tenant)
    print(item.verdict)
    assert all(u["perUserMfaState"] == "disabled" for u in state["users"] if not u.get("break_glass"))


def test_timing_probe(fresh_graph, tmp_path, queue):
    seed(fresh_graph, tmp_path)
    tenant = tenant_named(fresh_graph, "fabrikam")
    run = start_run(mode="full", tenants=[tenant], actor="test", options=FAST)
    work(queue)
    item = item_of(run)
    for e in item.step_log:
        print(e["key"], e["started_at"][11:23], e.get("finished_at", "")[11:23], e.get("message"))
    assert item.status == "succeeded", item.failure_reason
