"""Time scale: simulated time (throttle windows, latency, lag, holds) runs S times faster, while everything
the client reads in seconds (Retry-After, token lifetimes) stays in real seconds."""

from __future__ import annotations

import json
import ssl
import statistics
import subprocess
import sys
import time

import httpx
import jwt
import pytest

from graph_sim import clock
from graph_sim.__main__ import parse_args
from graph_sim.server import SimConfig
from graph_sim.testing import running_simulator, simulator_process
from graph_sim.throttle import ThrottleLimits
from tests.graph_sim.conftest import CONTOSO, FABRIKAM

SCALE = 10.0
JSON = {"Content-Type": "application/json"}


@pytest.fixture(scope="module")
def fast_module():
    limits = ThrottleLimits(app_tenant_writes=3)  # 3 writes per 150 simulated s = per 15 real s
    with running_simulator(fleet="demo", throttle=True, limits=limits, time_scale=SCALE) as handle:
        yield handle


@pytest.fixture
def fast(fast_module):
    fast_module.reset()
    fast_module.admin(
        "POST", "/_sim/throttle", json={"enabled": True, "limits": {"app_tenant_writes_window_s": 150.0}}
    )
    return fast_module


def _enforced(sim, tenant: str, n: int) -> list:
    users = [u for u in sim.tenant(tenant).users if u.per_user_state == "enforced" and not u.break_glass]
    assert len(users) >= n
    return users[:n]


def _patch(c: httpx.Client, user, state: str = "disabled") -> httpx.Response:
    return c.patch(f"/beta/users/{user.id}/authentication/requirements", json={"perUserMfaState": state})


def test_it_reports_its_scale_and_runs_its_own_clock(fast, sim):
    health = fast.admin("GET", "/_sim/health")
    assert health["time_scale"] == SCALE and fast.fleet["time_scale"] == SCALE
    assert json.loads((fast.state_dir / "server.json").read_text())["time_scale"] == SCALE
    # Each simulator owns its clock: the scale-1 session simulator runs beside this one unchanged.
    assert sim.admin("GET", "/_sim/health")["time_scale"] == 1.0
    assert fast.clock.monotonic() == pytest.approx(time.monotonic() * SCALE, abs=1.0)
    assert sim.clock.monotonic() == pytest.approx(clock.monotonic(), abs=0.1)
    t0, real0 = fast.admin("GET", "/_sim/health")["clock"], time.monotonic()
    time.sleep(0.2)
    t1, real1 = fast.admin("GET", "/_sim/health")["clock"], time.monotonic()
    assert (t1 - t0) / (real1 - real0) == pytest.approx(SCALE, rel=0.25)


def test_latency_is_simulated_time(fast):
    fast.admin("POST", f"/_sim/tenants/{CONTOSO}/faults", json={"latency_ms": 150})
    with fast.graph(CONTOSO) as c:
        c.get("/v1.0/organization")  # warm the connection
        elapsed = []
        for _ in range(7):
            t0 = time.perf_counter()
            assert c.get("/v1.0/organization").status_code == 200
            elapsed.append(time.perf_counter() - t0)
    # 150 simulated ms at S=10 is 15 real ms: clearly held, clearly not 150 ms.
    assert 0.014 <= statistics.median(elapsed) < 0.08, elapsed


def test_a_throttle_retry_after_is_in_real_seconds(fast):
    users = _enforced(fast, CONTOSO, 5)
    with fast.graph(CONTOSO) as c:
        assert [_patch(c, u).status_code for u in users[:3]] == [204, 204, 204]
        r = _patch(c, users[3])
        assert r.status_code == 429
        # The 150 s window frees 150 simulated s after the first write: 15 real s at S=10.
        assert 14.0 < float(r.headers["Retry-After"]) <= 15.0
        assert users[3].per_user_state == "enforced"

        fast.admin("POST", "/_sim/throttle", json={"limits": {"app_tenant_writes_window_s": 5.0}})
        assert [_patch(c, u).status_code for u in users[:3]] == [204, 204, 204]
        r = _patch(c, users[3])
        retry_after = float(r.headers["Retry-After"])
        assert r.status_code == 429 and 0.35 < retry_after <= 0.5  # 5 simulated s
        time.sleep(retry_after + 0.02)  # an unmodified client that honours the header gets through
        assert _patch(c, users[3]).status_code == 204


def test_a_throttled_batch_item_carries_a_real_retry_after(fast):
    users = _enforced(fast, CONTOSO, 4)
    items = [
        {
            "id": str(i),
            "method": "PATCH",
            "url": f"/users/{u.id}/authentication/requirements",
            "headers": JSON,
            "body": {"perUserMfaState": "disabled"},
        }
        for i, u in enumerate(users)
    ]
    with fast.graph(CONTOSO) as c:
        r = c.post("/beta/$batch", json={"requests": items})
    statuses = sorted(i["status"] for i in r.json()["responses"])
    assert statuses == [204, 204, 204, 429]
    throttled = next(i for i in r.json()["responses"] if i["status"] == 429)
    assert 14.0 < float(throttled["headers"]["Retry-After"]) <= 15.0


def test_the_conditional_access_window_is_a_tenth_of_a_real_second(fast):
    url = "/identity/conditionalAccess/policies"
    pair = {"requests": [{"id": "1", "method": "GET", "url": url}, {"id": "2", "method": "GET", "url": url}]}
    with fast.graph(FABRIKAM) as c:
        r = c.post("/v1.0/$batch", json=pair)
        by_id = {i["id"]: i for i in r.json()["responses"]}
        assert by_id["1"]["status"] == 200 and by_id["2"]["status"] == 429
        assert "Retry-After" not in by_id["2"]["headers"]  # documented: none on the CA limit
        time.sleep(0.12)  # 1.2 simulated s: the slot is free again (at S=1 it would not be)
        assert c.get(f"/v1.0{url}").status_code == 200
        # ... and it is a 0.1 s window, not a shorter one: a request soon after is still refused.
        for _ in range(5):
            time.sleep(0.12)
            t0 = time.monotonic()
            assert c.get(f"/v1.0{url}").status_code == 200
            second = c.get(f"/v1.0{url}")
            if time.monotonic() - t0 < 0.08:
                assert second.status_code == 429
                break
        else:
            pytest.fail("could not send two requests within 80 ms")


def test_fault_knob_and_rule_retry_after_are_divided_by_the_scale(fast):
    fast.admin("POST", f"/_sim/tenants/{CONTOSO}/faults", json={"rate_429": 1, "retry_after_s": 2.5})
    with fast.graph(CONTOSO) as c:
        r = c.get("/v1.0/organization")
        assert r.status_code == 429 and r.headers["Retry-After"] == "0.25"
        fast.admin("POST", f"/_sim/tenants/{CONTOSO}/faults", json={"rate_429": 0})
        fast.add_fault_rules(CONTOSO, {"path_contains": "/organization", "status": 429, "retry_after": 3})
        r = c.get("/v1.0/organization")
        assert r.status_code == 429 and r.headers["Retry-After"] == "0.3"
        assert c.get("/v1.0/organization").status_code == 200


def test_replication_lag_and_timeout_holds_are_simulated_time(fast):
    fast.admin("POST", "/_sim/throttle", json={"enabled": False})
    fast.admin("POST", f"/_sim/tenants/{CONTOSO}/faults", json={"replication_lag_s": 5})
    body = {
        "displayName": "lagged",
        "state": "disabled",
        "conditions": {"users": {"includeUsers": ["All"]}, "applications": {"includeApplications": ["All"]}},
        "grantControls": {"operator": "OR", "builtInControls": ["mfa"]},
    }
    with fast.graph(CONTOSO) as c:
        pid = c.post("/v1.0/identity/conditionalAccess/policies", json=body).json()["id"]
        created = time.monotonic()
        assert c.get(f"/v1.0/identity/conditionalAccess/policies/{pid}").status_code == 404
        time.sleep(max(0.0, created + 0.55 - time.monotonic()))  # 5 simulated s = 0.5 real s
        assert c.get(f"/v1.0/identity/conditionalAccess/policies/{pid}").status_code == 200

        fast.admin(
            "POST",
            f"/_sim/tenants/{CONTOSO}/faults",
            json={"replication_lag_s": 0, "timeout_rate": 1, "timeout_hold_s": 3},
        )
        t0 = time.monotonic()
        assert c.get("/v1.0/organization", timeout=5).status_code == 200
        assert 0.29 <= time.monotonic() - t0 < 1.5  # 3 simulated s held for 0.3 real s


def test_token_lifetimes_stay_real(fast):
    claims = jwt.decode(fast.token(CONTOSO), options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] == 3599
    assert abs(claims["iat"] - time.time()) < 60


def test_a_scale_must_be_a_positive_number():
    for bad in (0, -1, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="time scale"):
            SimConfig(time_scale=bad)
    with pytest.raises(ValueError, match="time scale"), running_simulator(time_scale=0):
        pass
    assert SimConfig().time_scale == 1.0 and parse_args(["serve", "--state-dir", "x"]).time_scale == 1.0
    assert parse_args(["serve", "--state-dir", "x", "--time-scale", "2.5"]).time_scale == 2.5


@pytest.mark.parametrize("bad", ["0", "-2", "abc", "nan"])
def test_the_cli_refuses_a_scale_that_is_not_above_zero(bad, capsys):
    with pytest.raises(SystemExit) as exc:
        parse_args(["serve", "--state-dir", "x", "--time-scale", bad])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "--time-scale" in err and "> 0" in err


def test_the_cli_process_exits_on_time_scale_zero(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "graph_sim", "serve", "--state-dir", str(tmp_path), "--time-scale", "0"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2 and "--time-scale" in proc.stderr
    assert not (tmp_path / "server.json").exists()


def test_the_cli_runs_scaled(tmp_path):
    with simulator_process(tmp_path, "--latency-ms", "150", time_scale=SCALE) as info:
        assert info["time_scale"] == SCALE
        fleet = json.loads((tmp_path / "fleet.json").read_text())
        assert fleet["time_scale"] == SCALE
        ctx = ssl.create_default_context(cafile=info["ca_bundle"])
        with httpx.Client(base_url=info["graph_base_url"], verify=ctx, trust_env=False) as http:
            assert http.get("/_sim/health").json()["time_scale"] == SCALE
            token = http.post(
                f"/{CONTOSO}/oauth2/v2.0/token",
                data={
                    "grant_type": "client_credentials",
                    "client_id": fleet["client_id"],
                    "client_secret": fleet["client_secret"],
                    "scope": "https://graph.microsoft.com/.default",
                },
            ).json()["access_token"]
            headers = {"Authorization": f"Bearer {token}"}
            http.get("/v1.0/organization", headers=headers)
            t0 = time.perf_counter()
            assert http.get("/v1.0/organization", headers=headers).status_code == 200
            assert time.perf_counter() - t0 < 0.1  # 150 simulated ms, 15 real ms
            stats = http.get("/_sim/stats").json()
            assert stats["time_scale"] == SCALE and stats["requests"] == 2
