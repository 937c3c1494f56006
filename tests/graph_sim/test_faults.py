"""Fault knobs per tenant: random 429 (with and without Retry-After), 5xx, commit-then-drop, replication
lag, latency and timeouts."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.graph_sim.conftest import CONTOSO, FABRIKAM, NORTHWIND


def _faults(sim, tenant: str, **knobs) -> dict:
    r = sim.admin_response("POST", f"/_sim/tenants/{tenant}/faults", json=knobs)
    assert r.status_code == 200, r.text
    return r.json()


def test_it_rejects_unknown_or_invalid_knobs(sim):
    assert sim.admin_response("POST", f"/_sim/tenants/{CONTOSO}/faults", json={"nope": 1}).status_code == 400
    assert (
        sim.admin_response("POST", f"/_sim/tenants/{CONTOSO}/faults", json={"rate_5xx": 2}).status_code == 400
    )


def test_it_injects_429_with_and_without_retry_after(sim, graph):
    c = graph(CONTOSO)
    _faults(sim, CONTOSO, rate_429=1, retry_after_s=2.5)
    r = c.get("/v1.0/organization")
    assert r.status_code == 429 and r.headers["Retry-After"] == "2.5"
    _faults(sim, CONTOSO, rate_429=0, rate_429_no_retry_after=1)
    r = c.get("/v1.0/organization")
    assert r.status_code == 429 and "Retry-After" not in r.headers
    assert graph(FABRIKAM).get("/v1.0/organization").status_code == 200  # per tenant


def test_it_injects_5xx_in_the_graph_error_shape(sim, graph):
    _faults(sim, CONTOSO, rate_5xx=1)
    c = graph(CONTOSO)
    statuses = set()
    for _ in range(12):
        r = c.get("/v1.0/organization")
        statuses.add(r.status_code)
        assert set(r.json()["error"]) == {"code", "message", "innerError"}
    assert statuses == {503, 504}


def test_it_commits_a_write_and_then_drops_the_response(sim, graph):
    user = next(u for u in sim.tenant(CONTOSO).users if u.per_user_state == "enforced")
    _faults(sim, CONTOSO, drop_after_commit_rate=1)
    with pytest.raises(httpx.RemoteProtocolError):
        graph(CONTOSO).patch(
            f"/beta/users/{user.id}/authentication/requirements", json={"perUserMfaState": "disabled"}
        )
    assert user.per_user_state == "disabled"
    entry = sim.admin_response("GET", f"/_sim/requests?tenant={CONTOSO}").json()["requests"][-1]
    assert entry["write_effective"] is True and entry["dropped"] is True and entry["status"] == 204
    # Reads are never dropped.
    assert graph(CONTOSO).get(f"/beta/users/{user.id}/authentication/requirements").status_code == 200


def test_it_hides_new_policies_during_replication_lag(sim, graph):
    _faults(sim, CONTOSO, replication_lag_s=0.6)
    c = graph(CONTOSO)
    body = {
        "displayName": "lagged",
        "state": "disabled",
        "conditions": {"users": {"includeUsers": ["All"]}, "applications": {"includeApplications": ["All"]}},
        "grantControls": {"operator": "OR", "builtInControls": ["mfa"]},
    }
    pid = c.post("/v1.0/identity/conditionalAccess/policies", json=body).json()["id"]
    assert c.get(f"/v1.0/identity/conditionalAccess/policies/{pid}").status_code == 404
    assert pid not in [p["id"] for p in c.get("/v1.0/identity/conditionalAccess/policies").json()["value"]]
    time.sleep(0.7)
    assert c.get(f"/v1.0/identity/conditionalAccess/policies/{pid}").status_code == 200


def test_it_adds_latency_and_holds_timeouts(sim, graph):
    c = graph(CONTOSO)
    _faults(sim, CONTOSO, latency_ms=150)
    t0 = time.monotonic()
    c.get("/v1.0/organization")
    assert time.monotonic() - t0 >= 0.15
    _faults(sim, CONTOSO, latency_ms=0, timeout_rate=1, timeout_hold_s=0.5)
    with pytest.raises(httpx.ReadTimeout):
        c.get("/v1.0/organization", timeout=0.2)
    t0 = time.monotonic()
    assert c.get("/v1.0/organization", timeout=5).status_code == 200  # answered after the hold
    assert time.monotonic() - t0 >= 0.5


# -- fault rules: deterministic, targeted faults ---------------------------------------------------
JSON = {"Content-Type": "application/json"}


def _rules(sim, tenant: str, *rules: dict, replace: bool = False) -> list[dict]:
    r = sim.admin_response(
        "POST", f"/_sim/tenants/{tenant}/fault-rules", json={"rules": list(rules), "replace": replace}
    )
    assert r.status_code == 200, r.text
    return r.json()["rules"]


def _enforced_users(sim, tenant: str, n: int) -> list:
    return [u for u in sim.tenant(tenant).users if u.per_user_state == "enforced" and not u.break_glass][:n]


def _patch_item(item_id: str, user, state: str = "disabled") -> dict:
    return {
        "id": item_id,
        "method": "PATCH",
        "url": f"/users/{user.id}/authentication/requirements",
        "headers": JSON,
        "body": {"perUserMfaState": state},
    }


def _batch(c, *items: dict) -> dict:
    r = c.post("/beta/$batch", json={"requests": list(items)})
    assert r.status_code == 200, r.text
    return {i["id"]: i for i in r.json()["responses"]}


def test_a_403_rule_fails_one_batch_item_and_leaves_the_others_alone(sim, graph):
    a, b, c = _enforced_users(sim, CONTOSO, 3)
    _rules(
        sim,
        CONTOSO,
        {
            "method": "PATCH",
            "path_contains": f"{b.id}/authentication/requirements",
            "status": 403,
            "times": 0,
        },
    )
    items = _batch(graph(CONTOSO), _patch_item("a", a), _patch_item("b", b), _patch_item("c", c))
    assert items["a"]["status"] == 204 and items["c"]["status"] == 204
    assert items["b"]["status"] == 403
    assert items["b"]["body"]["error"]["code"] == "Authorization_RequestDenied"
    assert set(items["b"]["body"]["error"]) == {"code", "message", "innerError"}
    assert (a.per_user_state, b.per_user_state, c.per_user_state) == ("disabled", "enforced", "disabled")
    # A GET of the same user is not a PATCH: the rule leaves it alone.
    r = graph(CONTOSO).get(f"/beta/users/{b.id}/authentication/requirements")
    assert r.status_code == 200
    entries = sim.admin("GET", f"/_sim/requests?tenant={CONTOSO}")["requests"]
    faulted = [e for e in entries if e["fault"] == "rule"]
    assert len(faulted) == 1 and faulted[0]["status"] == 403 and b.id in faulted[0]["path"]
    assert faulted[0]["batch_parent"] and faulted[0]["write_effective"] is False
    assert [e["status"] for e in entries if e["batch_parent"] and not e["fault"]] == [204, 204]


def test_a_429_rule_carries_its_own_retry_after_and_fires_only_times(sim, graph):
    a, b = _enforced_users(sim, CONTOSO, 2)
    _rules(sim, CONTOSO, {"path_contains": a.id, "status": 429, "retry_after": 2.5, "times": 1})
    client = graph(CONTOSO)
    items = _batch(client, _patch_item("1", a), _patch_item("2", b))
    assert items["1"]["status"] == 429 and items["1"]["headers"]["Retry-After"] == "2.5"
    assert items["1"]["body"]["error"]["code"] == "TooManyRequests"
    assert items["2"]["status"] == 204 and "Retry-After" not in items["2"]["headers"]
    assert a.per_user_state == "enforced" and b.per_user_state == "disabled"
    # times: 1 -> the resend goes through.
    assert _batch(client, _patch_item("1", a))["1"]["status"] == 204
    assert a.per_user_state == "disabled"
    [rule] = sim.admin("GET", f"/_sim/tenants/{CONTOSO}/fault-rules")["rules"]
    assert rule["fired"] == 1 and rule["remaining"] == 0


def test_a_429_rule_without_retry_after_and_on_a_direct_request(sim, graph):
    user = _enforced_users(sim, CONTOSO, 1)[0]
    _rules(sim, CONTOSO, {"method": "PATCH", "path_contains": user.id, "status": 429})
    c = graph(CONTOSO)
    url = f"/beta/users/{user.id}/authentication/requirements"
    r = c.patch(url, json={"perUserMfaState": "disabled"})
    assert r.status_code == 429 and "Retry-After" not in r.headers
    assert user.per_user_state == "enforced"
    assert c.patch(url, json={"perUserMfaState": "disabled"}).status_code == 204  # times defaults to 1


def test_a_dependent_of_a_rule_failed_item_gets_424(sim, graph):
    a, b = _enforced_users(sim, CONTOSO, 2)
    _rules(sim, CONTOSO, {"path_contains": a.id, "status": 503})
    items = _batch(graph(CONTOSO), _patch_item("1", a), {**_patch_item("2", b), "dependsOn": ["1"]})
    assert items["1"]["status"] == 503 and items["1"]["body"]["error"]["code"] == "ServiceUnavailable"
    assert items["2"]["status"] == 424
    assert (a.per_user_state, b.per_user_state) == ("enforced", "enforced")


def test_a_body_contains_rule_blocks_only_enabling_a_ca_policy(sim, graph):
    c = graph(NORTHWIND)
    policies = c.get("/v1.0/identity/conditionalAccess/policies").json()["value"]
    policy = next(p for p in policies if p["state"] == "enabledForReportingButNotEnforced")
    _rules(
        sim,
        NORTHWIND,
        {
            "method": "PATCH",
            "path_contains": "conditionalAccess/policies/",
            "body_contains": {"state": "enabled"},
            "status": 503,
            "times": 0,
        },
    )
    url = f"/v1.0/identity/conditionalAccess/policies/{policy['id']}"
    for _ in range(2):  # times: 0 = unlimited
        r = c.patch(url, json={"state": "enabled"})
        assert r.status_code == 503 and r.json()["error"]["code"] == "ServiceUnavailable"
    assert sim.tenant(NORTHWIND).policies[policy["id"]]["state"] == "enabledForReportingButNotEnforced"
    assert c.patch(url, json={"state": "disabled"}).status_code == 204  # another body passes
    assert sim.tenant(NORTHWIND).policies[policy["id"]]["state"] == "disabled"
    [rule] = sim.admin("GET", f"/_sim/tenants/{NORTHWIND}/fault-rules")["rules"]
    assert rule["fired"] == 2 and rule["remaining"] is None


def test_a_drop_after_commit_rule_applies_the_write_and_loses_the_response(sim, graph):
    a, b = _enforced_users(sim, CONTOSO, 2)
    _rules(sim, CONTOSO, {"method": "PATCH", "path_contains": a.id, "drop_after_commit": True})
    c = graph(CONTOSO)
    # Reads of the same path never drop.
    assert c.get(f"/beta/users/{a.id}/authentication/requirements").status_code == 200
    # Another user's write is not targeted.
    r = c.patch(f"/beta/users/{b.id}/authentication/requirements", json={"perUserMfaState": "disabled"})
    assert r.status_code == 204
    with pytest.raises(httpx.RemoteProtocolError):
        c.patch(f"/beta/users/{a.id}/authentication/requirements", json={"perUserMfaState": "disabled"})
    assert a.per_user_state == "disabled"
    entry = sim.admin("GET", f"/_sim/requests?tenant={CONTOSO}")["requests"][-1]
    assert entry["fault"] == "rule" and entry["dropped"] is True and entry["write_effective"] is True
    # Fired once; the retry is answered normally.
    r = graph(CONTOSO).patch(
        f"/beta/users/{a.id}/authentication/requirements", json={"perUserMfaState": "disabled"}
    )
    assert r.status_code == 204


def test_rules_are_checked_in_order_and_before_the_random_knobs(sim, graph):
    user = _enforced_users(sim, CONTOSO, 1)[0]
    _faults(sim, CONTOSO, rate_5xx=1)
    _rules(
        sim,
        CONTOSO,
        {"path_contains": user.id, "status": 404},
        {"path_contains": user.id, "status": 409, "times": 0},
    )
    c = graph(CONTOSO)
    url = f"/beta/users/{user.id}/authentication/requirements"
    assert c.get(url).json()["error"]["code"] == "Request_ResourceNotFound"
    assert c.get(url).status_code == 409
    assert c.get("/v1.0/organization").status_code in (503, 504)  # unmatched: the knobs still apply
    entries = sim.admin("GET", f"/_sim/requests?tenant={CONTOSO}")["requests"]
    assert [(e["fault"], e["fault_rule"]) for e in entries[:2]] == [("rule", 1), ("rule", 2)]
    assert entries[2]["fault"] in ("503", "504") and entries[2]["fault_rule"] is None


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ({"path_contains": "x"}, "status is required"),
        ({"status": 418}, "status must be one of"),
        ({"status": 403, "retry_after": 1}, "retry_after is only allowed"),
        ({"status": 429, "retry_after": -1}, "retry_after must be"),
        ({"status": 403, "times": -1}, "times must be"),
        ({"status": 403, "method": "FETCH"}, "method must be one of"),
        ({"status": 403, "body_contains": ["state"]}, "body_contains must be"),
        ({"status": 403, "drop_after_commit": True}, "takes no status"),
        ({"status": 403, "paths": "x"}, "unknown fault rule field"),
        ("403", "must be a JSON object"),
    ],
)
def test_it_refuses_a_bad_rule_with_400(sim, rule, message):
    _rules(sim, CONTOSO, {"status": 500, "times": 0})
    r = sim.admin_response(
        "POST", f"/_sim/tenants/{CONTOSO}/fault-rules", json={"rules": [{"status": 403}, rule]}
    )
    assert r.status_code == 400 and message in r.json()["error"] and "rules[1]" in r.json()["error"]
    assert len(sim.admin("GET", f"/_sim/tenants/{CONTOSO}/fault-rules")["rules"]) == 1  # all or nothing


def test_it_refuses_a_malformed_rules_request(sim):
    path = f"/_sim/tenants/{CONTOSO}/fault-rules"
    assert sim.admin_response("POST", path, json={"rule": []}).status_code == 400
    assert sim.admin_response("POST", path, json={"rules": {"status": 403}}).status_code == 400
    assert sim.admin_response("POST", path, json={"rules": [], "replace": "yes"}).status_code == 400
    assert sim.admin_response("GET", "/_sim/tenants/nope.example/fault-rules").status_code == 404


def test_it_lists_appends_replaces_and_deletes_rules(sim):
    path = f"/_sim/tenants/{CONTOSO}/fault-rules"
    assert sim.admin("GET", path) == {"rules": []}
    first = sim.admin("POST", path, json={"rules": [{"method": "patch", "status": 403}]})["rules"]
    assert first == [
        {
            "id": 1,
            "method": "PATCH",
            "path_contains": None,
            "body_contains": None,
            "status": 403,
            "retry_after": None,
            "drop_after_commit": False,
            "times": 1,
            "fired": 0,
            "remaining": 1,
        }
    ]
    both = sim.admin("POST", path, json={"rules": [{"status": 429, "retry_after": 2, "times": 0}]})["rules"]
    assert [(r["id"], r["status"], r["remaining"]) for r in both] == [(1, 403, 1), (2, 429, None)]
    replaced = sim.admin("POST", path, json={"rules": [{"status": 500}], "replace": True})["rules"]
    assert [(r["id"], r["status"]) for r in replaced] == [(3, 500)]
    assert sim.add_fault_rules(CONTOSO, {"status": 504}) == sim.admin("GET", path)["rules"]
    assert sim.admin("GET", f"/_sim/tenants/{CONTOSO}/state")["fault_rules"] == sim.fault_rules(CONTOSO)
    assert sim.admin("DELETE", path) == {"deleted": 2, "rules": []}
    assert sim.admin("GET", path) == {"rules": []}
    sim.add_fault_rules(CONTOSO, {"status": 403})
    sim.reset()  # a reset clears the rules with the rest of the fleet state
    assert sim.fault_rules(CONTOSO) == []
