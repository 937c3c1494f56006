"""Consent revoked mid-run: the item fails for "consent", not retryable, and writes nothing after."""

from __future__ import annotations

import pytest

from migrations_engine.graph import GraphConfig
from migrations_engine.graph import auth as graph_auth
from migrations_engine.runs.services import resume_stalled, start_run
from tests.migrations_engine.pipeline_helpers import (
    FAST,
    item_of,
    seed,
    sim_log,
    tenant_named,
    worker_process,
)

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize("name", ["contoso", "fabrikam"])  # security defaults off / on
def test_a_revoked_consent_stops_the_item_with_no_write_after_it(
    fast_graph, tmp_path, queue, redis_url, name
):
    seed(fast_graph, tmp_path)
    tenant = tenant_named(name)
    run = start_run(mode="full", tenants=[tenant], actor="test", options=FAST)
    assert worker_process(redis_url, crash_points="after_step:ensure_policy") == 137
    fast_graph.admin("POST", f"/_sim/tenants/{tenant.tenant_id}/consent", json={"granted": False})
    graph_auth.forget_tokens(GraphConfig.from_settings(), str(tenant.tenant_id))
    revoked_at = max(r["seq"] for r in sim_log(fast_graph, tenant))
    assert resume_stalled(run, actor="test") == 1
    assert worker_process(redis_url) == 0
    item = item_of(run)
    assert item.status == "failed", (item.failure_reason, item.traceback)
    assert "consent" in item.failure_reason.lower() and not item.retryable
    after = [r for r in sim_log(fast_graph, tenant) if r["seq"] > revoked_at]
    assert [r for r in after if r.get("write") or r["method"] in ("PATCH", "POST", "DELETE")] == []
