"""``GET /_sim/stats``: running counters per fleet and tenant (throttled by limit, fault 429s apart,
per-user MFA changes and the users-disabled-per-second series), kept even when the request log overflows."""

from __future__ import annotations

import time

import pytest

from graph_sim.testing import running_simulator
from graph_sim.throttle import ThrottleLimits
from tests.graph_sim.conftest import CONTOSO, FABRIKAM

SCALE = 10.0
JSON = {"Content-Type": "application/json"}
LIMITS = ("writes", "tenant_writes", "app_writes", "ru", "app_ru", "ca", "reports")


@pytest.fixture(scope="module")
def ssim_module():
    limits = ThrottleLimits(app_tenant_writes=5)
    with running_simulator(fleet="demo", limits=limits, time_scale=SCALE, log_size=8) as handle:
        yield handle


@pytest.fixture
def ssim(ssim_module):
    ssim_module.reset()
    return ssim_module


def _users(sim, tenant: str, state: str, n: int) -> list:
    users = [u for u in sim.tenant(tenant).users if u.per_user_state == state and not u.break_glass]
    assert len(users) >= n
    return users[:n]


def _patch_item(item_id: str, user, state: str) -> dict:
    return {
        "id": item_id,
        "method": "PATCH",
        "url": f"/users/{user.id}/authentication/requirements",
        "headers": JSON,
        "body": {"perUserMfaState": state},
    }


def _batch(c, items: list[dict]) -> list[int]:
    r = c.post("/beta/$batch", json={"requests": items})
    assert r.status_code == 200, r.text
    return [i["status"] for i in r.json()["responses"]]


def test_a_fresh_simulator_has_every_tenant_at_zero(ssim):
    stats = ssim.admin("GET", "/_sim/stats")
    assert stats["time_scale"] == SCALE
    assert stats["requests"] == 0 and stats["batch_items"] == 0 and stats["fault_429"] == 0
    assert stats["throttled"] == dict.fromkeys(LIMITS, 0)
    assert set(stats["tenants"]) == set(ssim.state.tenants)
    contoso = stats["tenants"][CONTOSO]
    assert contoso["by_status"] == {} and contoso["disabled_series"] == []
    assert contoso["per_user_changes"] == {"disabled": 0, "enabled": 0, "enforced": 0}
    assert stats["started"] <= stats["clock"] and stats["cpu_seconds"] > 0 and stats["wall_seconds"] >= 0


def test_it_counts_throttled_batch_items_by_limit_and_the_changes_they_made(ssim):
    enforced = _users(ssim, CONTOSO, "enforced", 6)
    already = _users(ssim, CONTOSO, "disabled", 1)
    items = [_patch_item(str(i), u, "disabled") for i, u in enumerate(enforced)]
    with ssim.graph(CONTOSO) as c:
        # 7 writes against a cap of 5: two items are throttled (the cap counts the no-op write too).
        statuses = _batch(c, [_patch_item("noop", already[0], "disabled"), *items])
        assert sorted(statuses) == [204] * 5 + [429] * 2
        assert c.get(f"/beta/users/{enforced[0].id}/authentication/requirements").status_code == 200
    stats = ssim.admin("GET", "/_sim/stats")
    assert stats["requests"] == 2 and stats["batch_items"] == 7
    assert stats["throttled"] == {**dict.fromkeys(LIMITS, 0), "writes": 2}
    assert stats["fault_429"] == 0
    t = stats["tenants"][CONTOSO]
    assert t["requests"] == 2 and t["batch_items"] == 7
    assert t["by_status"] == {"200": 1, "204": 5, "429": 2} and t["batch_status"] == {"200": 1}
    assert t["throttled"]["writes"] == 2 and sum(t["throttled"].values()) == 2
    assert t["writes_effective"] == 5
    # The no-op PATCH of an already disabled user is a write, not a change.
    assert t["per_user_changes"] == {"disabled": 4, "enabled": 0, "enforced": 0}
    assert sum(n for _, n in t["disabled_series"]) == 4
    assert stats["tenants"][FABRIKAM]["requests"] == 0


def test_it_counts_top_level_throttles_and_fault_429s_apart(ssim):
    url = "/v1.0/reports/authenticationMethods/userRegistrationDetails"
    with ssim.graph(FABRIKAM) as c:
        # 5 requests per 10 simulated s (one real second here): the sixth is throttled.
        assert [c.get(url).status_code for _ in range(6)] == [200] * 5 + [429]
        ssim.add_fault_rules(FABRIKAM, {"path_contains": "/organization", "status": 429, "times": 2})
        assert [c.get("/v1.0/organization").status_code for _ in range(3)] == [429, 429, 200]
        ssim.admin("POST", f"/_sim/tenants/{FABRIKAM}/faults", json={"rate_429_no_retry_after": 1})
        assert c.get("/v1.0/organization").status_code == 429
    stats = ssim.admin("GET", "/_sim/stats")
    assert stats["throttled"] == {**dict.fromkeys(LIMITS, 0), "reports": 1}
    assert stats["fault_429"] == 3
    t = stats["tenants"][FABRIKAM]
    assert t["requests"] == 10 and t["batch_items"] == 0
    assert t["by_status"] == {"200": 6, "429": 4} and t["batch_status"] == {}
    assert t["throttled"]["reports"] == 1 and t["fault_429"] == 3


def test_it_counts_changes_by_target_state_and_disabled_users_per_simulated_second(ssim):
    enforced = _users(ssim, CONTOSO, "enforced", 4)
    disabled = _users(ssim, CONTOSO, "disabled", 1)
    with ssim.graph(CONTOSO) as c:
        assert (
            _batch(c, [_patch_item(str(i), u, "disabled") for i, u in enumerate(enforced[:2])]) == [204] * 2
        )
        time.sleep(0.3)  # 3 simulated seconds later
        items = [
            _patch_item("a", enforced[2], "disabled"),
            _patch_item("b", enforced[3], "enabled"),
            _patch_item("c", disabled[0], "enforced"),
        ]
        assert _batch(c, items) == [204] * 3
    t = ssim.admin("GET", f"/_sim/stats?tenant={CONTOSO}")["tenants"][CONTOSO]
    assert t["per_user_changes"] == {"disabled": 3, "enabled": 1, "enforced": 1}
    series = t["disabled_series"]
    assert [n for _, n in series] == [2, 1], series
    (first, _), (second, _) = series
    assert series == sorted(series) and 0 <= first <= 1 and 2 <= second - first <= 4


def test_the_series_is_counted_from_the_start_in_simulated_seconds(ssim):
    user = _users(ssim, CONTOSO, "enforced", 1)[0]
    time.sleep(0.25)
    with ssim.graph(CONTOSO) as c:
        assert _batch(c, [_patch_item("1", user, "disabled")]) == [204]
    stats = ssim.admin("GET", "/_sim/stats")
    [[second, count]] = stats["tenants"][CONTOSO]["disabled_series"]
    elapsed = stats["clock"] - stats["started"]
    assert count == 1 and 2 <= second <= int(elapsed)
    assert elapsed == pytest.approx(stats["wall_seconds"] * SCALE, rel=0.05, abs=0.5)


def test_one_tenant_by_id_or_domain(ssim):
    by_domain = ssim.admin("GET", "/_sim/stats?tenant=contoso.onmicrosoft.com")
    assert list(by_domain["tenants"]) == [CONTOSO]
    assert {"time_scale", "clock", "started", "cpu_seconds", "wall_seconds", "requests"} <= set(by_domain)
    assert list(ssim.admin("GET", f"/_sim/stats?tenant={FABRIKAM}")["tenants"]) == [FABRIKAM]
    assert ssim.admin_response("GET", "/_sim/stats?tenant=nobody.example").status_code == 404


def test_the_counters_outlive_the_request_log_ring(ssim):
    with ssim.graph(CONTOSO) as c:
        for _ in range(20):
            assert c.get("/v1.0/organization").status_code == 200
    assert len(ssim.state.log.entries) == 8  # the ring kept the last 8
    stats = ssim.admin("GET", "/_sim/stats")
    assert stats["requests"] == 20 and stats["tenants"][CONTOSO]["by_status"] == {"200": 20}


def test_unauthenticated_requests_count_only_fleet_wide(ssim):
    r = ssim.http.get("/v1.0/organization")
    assert r.status_code == 401
    r = ssim.http.post("/v1.0/$batch", json={"requests": []})
    assert r.status_code == 401
    stats = ssim.admin("GET", "/_sim/stats")
    assert stats["requests"] == 2
    assert all(t["requests"] == 0 for t in stats["tenants"].values())


def test_a_reset_starts_the_counters_again(ssim):
    with ssim.graph(CONTOSO) as c:
        c.get("/v1.0/organization")
    before = ssim.admin("GET", "/_sim/stats")
    assert before["requests"] == 1
    ssim.admin("POST", "/_sim/reset")
    after = ssim.admin("GET", "/_sim/stats")
    assert after["requests"] == 0 and after["started"] > before["started"]
