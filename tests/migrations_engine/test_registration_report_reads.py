"""The console reads the registration report with documented query options only, asks Graph for the
users not MFA-registered where that is all it needs (the readiness gate), and reads the whole report when
Graph refuses the filter, saying so, instead of failing.

List userRegistrationDetails: https://learn.microsoft.com/graph/api/authenticationmethodsroot-list-userregistrationdetails
("This method supports the $filter OData query parameter"; isMfaRegistered: "Supported filter operators: eq").
"""

from __future__ import annotations

import asyncio
import logging

import pytest

from migrations_engine.census.read import take_census
from migrations_engine.graph import GraphClient, GraphConfig, GraphError
from migrations_engine.graph.resources.registration_report import NOT_REGISTERED, RegistrationRead
from migrations_engine.runs.services import start_run
from tests.migrations_engine.pipeline_helpers import (
    FAST,
    item_of,
    seed,
    sim_log,
    sim_state,
    tenant_named,
    work,
)

REPORT = "reports/authenticationMethods/userRegistrationDetails"


def _report_requests(sim, tenant) -> list[dict]:
    return [r for r in sim_log(sim, tenant) if REPORT in r["path"]]


def _unregistered_truth(sim, tenant) -> int:
    """In-scope enabled users the simulator holds as not MFA-registered (break-glass accounts are out)."""
    users = sim_state(sim, tenant)["users"]
    return sum(1 for u in users if u["accountEnabled"] and not u["breakGlass"] and not u["isMfaRegistered"])


def _plan_readiness(sim, tmp_path, queue, name: str):
    seed(sim, tmp_path)
    tenant = tenant_named(name)
    run = start_run(mode="plan", tenants=[tenant], actor="test", options=FAST)
    work(queue)
    item = item_of(run)
    assert item.status == "succeeded", item.failure_reason
    return tenant, item.state["readiness"]


@pytest.mark.django_db(transaction=True)
def test_the_gate_asks_graph_for_the_unregistered_users_only(fast_graph, tmp_path, queue):
    tenant, report = _plan_readiness(fast_graph, tmp_path, queue, "contoso")
    asked = _report_requests(fast_graph, tenant)
    assert [r["path"] for r in asked] == [f"/v1.0/{REPORT}?$filter={NOT_REGISTERED}"]  # one page, filtered
    assert asked[0]["status"] == 200
    assert report["registration_read"] is True
    assert report["unregistered"] == _unregistered_truth(fast_graph, tenant) > 0
    assert not any("refused" in n for n in report["notes"])


@pytest.mark.django_db(transaction=True)
def test_a_refused_filter_reads_the_whole_report_and_says_so(fast_graph, tmp_path, queue, caplog):
    caplog.set_level(logging.WARNING, logger="migrations_engine.census.registration_report")
    contoso = "11111111-1111-4111-8111-111111111111"
    fast_graph.add_fault_rules(contoso, {"method": "GET", "path_contains": REPORT, "status": 400, "times": 1})
    tenant, report = _plan_readiness(fast_graph, tmp_path, queue, "contoso")
    asked = _report_requests(fast_graph, tenant)
    assert (asked[0]["path"], asked[0]["status"]) == (f"/v1.0/{REPORT}?$filter={NOT_REGISTERED}", 400)
    assert [r["path"] for r in asked[1:]][:1] == [f"/v1.0/{REPORT}"]  # then without the filter, paged
    assert len(asked) == 3 and all(r["status"] == 200 for r in asked[1:])
    assert report["registration_read"] is True
    assert report["unregistered"] == _unregistered_truth(fast_graph, tenant)
    assert any(
        "refused the registration report's filter (Request_UnsupportedQuery)" in n for n in report["notes"]
    )
    assert any("refused the registration report's $filter" in r.getMessage() for r in caplog.records)


def _read(tenant_id: str, filter_expr: str | None) -> tuple[RegistrationRead, list[dict]]:
    async def go():
        async with GraphClient(tenant_id, GraphConfig.from_settings()) as client:
            read = RegistrationRead(client, filter_expr)
            return read, [row async for page in read.pages() for row in page]

    return asyncio.run(go())


@pytest.mark.django_db
def test_the_reader_falls_back_on_a_400_only(fast_graph):
    contoso = "11111111-1111-4111-8111-111111111111"
    filtered, rows = _read(contoso, NOT_REGISTERED)
    assert filtered.filtered and not filtered.refused and rows and not any(r["isMfaRegistered"] for r in rows)

    fast_graph.add_fault_rules(contoso, {"method": "GET", "path_contains": REPORT, "status": 400, "times": 1})
    fallback, everyone = _read(contoso, NOT_REGISTERED)
    assert (fallback.filtered, fallback.refused) == (False, "Request_UnsupportedQuery")
    assert len(everyone) == len(sim_state_users(fast_graph, contoso)) > len(rows)

    fast_graph.add_fault_rules(contoso, {"method": "GET", "path_contains": REPORT, "status": 403, "times": 1})
    with pytest.raises(GraphError) as denied:  # a refusal of the read itself is not the filter's
        _read(contoso, NOT_REGISTERED)
    assert denied.value.status == 403
    fast_graph.add_fault_rules(contoso, {"method": "GET", "path_contains": REPORT, "status": 400, "times": 1})
    with pytest.raises(GraphError):  # nothing left to drop: a 400 to the plain read is an error
        _read(contoso, None)


def sim_state_users(sim, tenant_id: str) -> list[dict]:
    return sim.admin("GET", f"/_sim/tenants/{tenant_id}/state")["users"]


@pytest.mark.django_db
def test_the_census_reads_the_report_without_undocumented_options(fast_graph):
    contoso = "11111111-1111-4111-8111-111111111111"

    async def go():
        async with GraphClient(contoso, GraphConfig.from_settings()) as client:
            return await take_census(client)

    result = asyncio.run(go())
    users = sim_state_users(fast_graph, contoso)
    assert result.registration_known == len(users)
    assert result.mfa_registered == sum(1 for u in users if u["isMfaRegistered"])
    log = fast_graph.admin("GET", f"/_sim/requests?tenant={contoso}&limit=100000")["requests"]
    paths = [r["path"] for r in log if REPORT in r["path"]]
    assert paths and paths[0] == f"/v1.0/{REPORT}"  # no $select, no $top
    assert all("$select" not in p and "$top" not in p for p in paths)
