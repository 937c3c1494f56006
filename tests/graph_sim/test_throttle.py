"""Throttling: the documented defaults, RU buckets, write caps, CA 1 rps without Retry-After, reports,
the switch, and the rule that a throttled request changes nothing."""

from __future__ import annotations

import pytest

from graph_sim.__main__ import parse_args
from graph_sim.server import SimConfig
from graph_sim.testing import running_simulator
from graph_sim.throttle import SlidingWindow, ThrottleLimits, format_retry_after
from tests.graph_sim.conftest import CONTOSO, FABRIKAM, wait_ca_slot

SMALL = ThrottleLimits(ru_small=10, ru_medium=20, ru_large=30, app_tenant_writes=3, report_requests=5)


@pytest.fixture(scope="module")
def tsim_module():
    with running_simulator(fleet="demo", throttle=True, limits=SMALL) as handle:
        yield handle


@pytest.fixture
def tsim(tsim_module):
    tsim_module.reset()
    return tsim_module


def test_it_defaults_to_the_documented_limits():
    d = ThrottleLimits()
    assert (d.ru_small, d.ru_medium, d.ru_large, d.ru_window_s) == (3500, 5000, 8000, 10.0)
    assert (d.app_tenant_writes, d.app_tenant_writes_window_s) == (3000, 150.0)
    assert (d.tenant_writes, d.tenant_writes_window_s) == (18000, 300.0)
    assert (d.app_ru, d.app_ru_window_s, d.app_writes, d.app_writes_window_s) == (150000, 20.0, 70000, 300.0)
    assert (d.ca_requests, d.ca_window_s, d.report_requests, d.report_window_s) == (1, 1.0, 5, 10.0)
    assert SimConfig().limits == d and SimConfig().throttle is True
    args = parse_args(["serve", "--state-dir", "/tmp/x"])
    assert args.app_write_cap == 70000 and args.no_throttle is False


def test_it_computes_retry_after_from_when_the_window_frees():
    w = SlidingWindow(limit=3, window=10.0)
    for t in (0.0, 1.0, 2.0):
        assert w.wait_for(1, t) == 0
        w.add(1, t)
    assert w.wait_for(1, 2.5) == pytest.approx(7.5)
    assert w.wait_for(2, 2.5) == pytest.approx(8.5)
    assert w.wait_for(1, 10.0) == 0  # the first event expired
    assert format_retry_after(2.1277) == "2.128" and format_retry_after(3.0) == "3"


def test_it_throttles_reads_by_resource_units(tsim):
    c = tsim.graph(CONTOSO)  # 150 users: medium tenant, 20 RU per 10 s in this instance
    for _ in range(10):
        assert c.get("/v1.0/users?$top=1").status_code == 200  # GET users costs 2
    r = c.get("/v1.0/users?$top=1")
    assert r.status_code == 429 and r.json()["error"]["code"] == "TooManyRequests"
    retry = float(r.headers["Retry-After"])
    assert 0 < retry <= 10
    assert tsim.state.log.entries[-1]["throttled"] == "ru"
    c.close()


def test_it_charges_one_ru_less_with_select(tsim):
    c = tsim.graph(CONTOSO)
    for _ in range(20):
        assert c.get("/v1.0/users?$top=1&$select=id").status_code == 200
    assert c.get("/v1.0/users?$top=1&$select=id").status_code == 429
    c.close()


def test_it_caps_writes_per_app_and_tenant_and_changes_nothing_when_throttled(tsim):
    c = tsim.graph(CONTOSO)
    users = [u for u in tsim.tenant(CONTOSO).users if u.per_user_state == "enforced"][:4]
    for u in users[:3]:
        r = c.patch(f"/beta/users/{u.id}/authentication/requirements", json={"perUserMfaState": "disabled"})
        assert r.status_code == 204
    r = c.patch(
        f"/beta/users/{users[3].id}/authentication/requirements", json={"perUserMfaState": "disabled"}
    )
    assert r.status_code == 429
    assert 140 < float(r.headers["Retry-After"]) <= 150  # the 150 s write window frees then
    assert users[3].per_user_state == "enforced"
    assert tsim.state.log.entries[-1]["throttled"] == "writes"
    c.close()


def test_it_limits_conditional_access_to_one_request_per_second_without_retry_after(tsim):
    c = tsim.graph(FABRIKAM)
    assert c.get("/v1.0/identity/conditionalAccess/policies").status_code == 200
    r = c.get("/v1.0/identity/conditionalAccess/namedLocations")
    assert r.status_code == 429 and "Retry-After" not in r.headers
    r = c.post("/v1.0/identity/conditionalAccess/policies", json={"displayName": "x"})
    assert r.status_code == 429 and not tsim.tenant(FABRIKAM).policies
    wait_ca_slot()
    assert c.get("/v1.0/identity/conditionalAccess/policies").status_code == 200
    c.close()


def test_it_limits_reports_to_five_per_ten_seconds(tsim):
    c = tsim.graph(FABRIKAM)
    url = "/v1.0/reports/authenticationMethods/userRegistrationDetails"
    assert [c.get(url).status_code for _ in range(5)] == [200] * 5
    r = c.get(url)
    assert r.status_code == 429 and 0 < float(r.headers["Retry-After"]) <= 10
    c.close()


def test_it_can_switch_throttling_off_at_runtime(tsim):
    c = tsim.graph(FABRIKAM)
    assert tsim.admin_response("POST", "/_sim/throttle", json={"enabled": False}).json()["enabled"] is False
    assert all(c.get("/v1.0/identity/conditionalAccess/policies").status_code == 200 for _ in range(3))
    tsim.admin_response("POST", "/_sim/throttle", json={"enabled": True})
    c.close()


def test_it_throttles_batch_items_one_by_one_with_their_own_retry_after(tsim):
    c = tsim.graph(CONTOSO)
    users = [u for u in tsim.tenant(CONTOSO).users if u.per_user_state == "enforced"][:5]
    batch = {
        "requests": [
            {
                "id": str(i),
                "method": "PATCH",
                "url": f"/users/{u.id}/authentication/requirements",
                "headers": {"Content-Type": "application/json"},
                "body": {"perUserMfaState": "disabled"},
            }
            for i, u in enumerate(users)
        ]
    }
    r = c.post("/beta/$batch", json=batch)
    assert r.status_code == 200
    items = {i["id"]: i for i in r.json()["responses"]}
    statuses = sorted(i["status"] for i in items.values())
    assert statuses == [204, 204, 204, 429, 429]
    for item in items.values():
        if item["status"] == 429:
            assert float(item["headers"]["Retry-After"]) > 0
            assert item["body"]["error"]["code"] == "TooManyRequests"
    assert sum(u.per_user_state == "disabled" for u in users) == 3
    c.close()
