"""The identity-and-access throttling headers against Microsoft's throttling-limits page.

https://learn.microsoft.com/graph/throttling-limits#identity-and-access-service-limits, "Other headers":
regular responses carry ``x-ms-resource-unit`` ("the resource unit used for this request ... positive
integers") and, "only when the application consumed more than 0.8 of its limit",
``x-ms-throttle-limit-percentage`` ("ranges from 0.8 to 1.8"); throttled responses carry
``x-ms-throttle-scope`` (``<Scope>/<Limit>/<ApplicationId>/<TenantId|UserId|ResourceId>``) and
``x-ms-throttle-information`` (e.g. ``ResourceUnitLimitExceeded``, ``WriteLimitExceeded``).
"""

from __future__ import annotations

import re

import pytest

from graph_sim.testing import running_simulator
from graph_sim.throttle import ThrottleLimits
from tests.graph_sim.conftest import CONTOSO, FABRIKAM

DOCS_TENANT = "0785ef7c-2d7a-4542-b048-95bcab406e0b"  # the tenant of the docs' x-ms-throttle-scope example
GUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
SCOPE = re.compile(rf"^(Tenant_Application|Tenant|Application)/(Read|Write|ReadWrite)/({GUID})/({GUID})$")
# The docs' example values: 0.8 (80 % of the limit), 1.0, 1.2 and 1.8.
PERCENTAGE = re.compile(r"^[01]\.\d$")
# CONTOSO has 150 users: a medium tenant, 20 RU per 10 s here (GET users costs 2, 1 with $select).
LIMITS = ThrottleLimits(ru_small=10, ru_medium=20, ru_large=30, app_tenant_writes=5, tenant_writes=1000)
REQUIREMENTS = "/beta/users/{}/authentication/requirements"
HEADERS = ("x-ms-throttle-limit-percentage", "x-ms-throttle-scope", "x-ms-throttle-information")


@pytest.fixture(scope="module")
def hsim_module():
    with running_simulator(fleet="demo", throttle=True, limits=LIMITS) as handle:
        yield handle


@pytest.fixture
def hsim(hsim_module):
    hsim_module.reset()
    hsim_module.admin("POST", "/_sim/throttle", json={"limits": LIMITS.__dict__, "reset": True})
    return hsim_module


def _enforced(sim, tenant: str, n: int) -> list[str]:
    return [u.id for u in sim.tenant(tenant).users if u.per_user_state == "enforced"][:n]


def test_the_docs_examples_have_the_formats_these_tests_hold_the_simulator_to():
    """https://learn.microsoft.com/graph/throttling-limits#identity-and-access-service-limits
    the x-ms-throttle-scope example and the limit-percentage values the page explains."""
    example = "Tenant_Application/ReadWrite/9a3d526c-b3c1-4479-ba74-197b5c5751ae/" + DOCS_TENANT
    assert SCOPE.match(example).groups()[:2] == ("Tenant_Application", "ReadWrite")
    assert all(PERCENTAGE.match(v) for v in ("0.8", "1.0", "1.2", "1.8"))


def test_every_regular_identity_response_says_the_resource_units_it_cost(hsim):
    """https://learn.microsoft.com/graph/throttling-limits#identity-and-access-service-limits
    "x-ms-resource-unit - Indicates the resource unit used for this request", and the base
    costs table (GET users 2, $select one less, subscribedSkus 3, any other GET or write 1)."""
    c = hsim.graph(CONTOSO)
    (uid,) = _enforced(hsim, CONTOSO, 1)
    costs = {
        "/v1.0/users?$top=1": c.get("/v1.0/users?$top=1"),
        "/v1.0/users?$select=id": c.get("/v1.0/users?$top=1&$select=id"),
        "/v1.0/subscribedSkus": c.get("/v1.0/subscribedSkus"),
        "/v1.0/organization": c.get("/v1.0/organization"),
        "PATCH requirements": c.patch(REQUIREMENTS.format(uid), json={"perUserMfaState": "disabled"}),
    }
    assert {k: (r.status_code // 100, r.headers.get("x-ms-resource-unit")) for k, r in costs.items()} == {
        "/v1.0/users?$top=1": (2, "2"),
        "/v1.0/users?$select=id": (2, "1"),
        "/v1.0/subscribedSkus": (2, "3"),
        "/v1.0/organization": (2, "1"),
        "PATCH requirements": (2, "1"),
    }
    # 8 of 20 RU: far from 0.8, so no limit percentage and, not throttled, no scope.
    assert not any(h in r.headers for r in costs.values() for h in HEADERS)
    c.close()


def test_the_limit_percentage_appears_only_once_more_than_0_8_of_the_limit_is_used(hsim):
    """https://learn.microsoft.com/graph/throttling-limits#identity-and-access-service-limits
    x-ms-throttle-limit-percentage is "Returned only when the application consumed more than
    0.8 of its limit"; "0.8 indicates you're using 80% of the granted limit", "1.0 ... 100 %"."""
    c = hsim.graph(CONTOSO)
    seen = [c.get("/v1.0/users?$top=1").headers.get("x-ms-throttle-limit-percentage") for _ in range(10)]
    # 2 RU each of 20: 16 RU (exactly 0.8) is not more than 0.8; 18 RU is 0.9 and 20 RU is 1.0.
    assert seen == [None] * 8 + ["0.9", "1.0"]
    assert all(PERCENTAGE.match(v) for v in seen if v)
    throttled = c.get("/v1.0/users?$top=1")
    assert throttled.status_code == 429
    # A throttled request used nothing: no x-ms-resource-unit, and the limit percentage is for regular
    # responses; the throttled-response headers instead.
    assert "x-ms-resource-unit" not in throttled.headers
    assert "x-ms-throttle-limit-percentage" not in throttled.headers
    c.close()


def test_a_request_throttled_by_resource_units_names_its_scope_and_reason(hsim):
    """https://learn.microsoft.com/graph/throttling-limits#identity-and-access-service-limits
    x-ms-throttle-scope "<Scope>/<Limit>/<ApplicationId>/<TenantId|UserId|ResourceId>"
    (Tenant_Application: "All requests for a particular tenant for the current application";
    ReadWrite: "All Requests for the scope"), x-ms-throttle-information ResourceUnitLimitExceeded."""
    c = hsim.graph(CONTOSO)
    for _ in range(10):
        assert c.get("/v1.0/users?$top=1").status_code == 200
    r = c.get("/v1.0/users?$top=1")
    assert r.status_code == 429 and float(r.headers["Retry-After"]) > 0
    app = hsim.fleet["client_id"]
    assert r.headers["x-ms-throttle-scope"] == f"Tenant_Application/ReadWrite/{app}/{CONTOSO}"
    assert SCOPE.match(r.headers["x-ms-throttle-scope"])
    assert r.headers["x-ms-throttle-information"] == "ResourceUnitLimitExceeded"
    c.close()


def test_a_write_throttled_by_the_write_quota_says_write_limit_exceeded(hsim):
    """https://learn.microsoft.com/graph/throttling-limits#identity-and-access-service-limits
    Write "Write requests for the scope (POST, PATCH, PUT, DELETE...)"; WriteLimitExceeded
    "Throttling is because the write limit is exceeded"; the tenant scope is "All requests for the current
    tenant, regardless of the application"."""
    c = hsim.graph(CONTOSO)
    app = hsim.fleet["client_id"]
    users = _enforced(hsim, CONTOSO, 7)
    statuses = [
        c.patch(REQUIREMENTS.format(u), json={"perUserMfaState": "disabled"}).status_code for u in users[:5]
    ]
    assert statuses == [204] * 5
    r = c.patch(REQUIREMENTS.format(users[5]), json={"perUserMfaState": "disabled"})
    assert r.status_code == 429
    assert r.headers["x-ms-throttle-scope"] == f"Tenant_Application/Write/{app}/{CONTOSO}"
    assert r.headers["x-ms-throttle-information"] == "WriteLimitExceeded"
    # The tenant's write quota for all apps: the scope says Tenant.
    hsim.admin("POST", "/_sim/throttle", json={"limits": {"app_tenant_writes": 1000, "tenant_writes": 1}})
    assert c.patch(REQUIREMENTS.format(users[5]), json={"perUserMfaState": "disabled"}).status_code == 204
    r = c.patch(REQUIREMENTS.format(users[6]), json={"perUserMfaState": "disabled"})
    assert r.status_code == 429 and r.headers["x-ms-throttle-scope"] == f"Tenant/Write/{app}/{CONTOSO}"
    c.close()


def test_conditional_access_and_reports_are_other_services_without_these_headers(hsim):
    """https://learn.microsoft.com/graph/throttling-limits#identity-and-access-service-limits
    the headers are the identity and access service's; Conditional Access policies are under
    "Identity protection and conditional access service limits" (429 without Retry-After) and the
    registration report under "Identity and access reports service limits"."""
    c = hsim.graph(FABRIKAM)
    ok = c.get("/v1.0/identity/conditionalAccess/policies")
    refused = c.get("/v1.0/identity/conditionalAccess/policies")
    assert (ok.status_code, refused.status_code) == (200, 429)
    report = c.get("/v1.0/reports/authenticationMethods/userRegistrationDetails")
    assert report.status_code == 200
    for r in (ok, refused, report):
        assert not any(h in r.headers for h in ("x-ms-resource-unit", *HEADERS))
    c.close()


def test_batch_items_carry_their_own_throttling_headers(hsim):
    """https://learn.microsoft.com/graph/throttling-limits#identity-and-access-service-limits
    every $batch item is a request of its own (https://learn.microsoft.com/graph/json-batching:
    each response has its own status and headers), so each says its cost, its limit use or its scope."""
    c = hsim.graph(CONTOSO)
    users = _enforced(hsim, CONTOSO, 6)
    batch = {
        "requests": [
            {
                "id": str(i),
                "method": "PATCH",
                "url": f"/users/{u}/authentication/requirements",
                "headers": {"Content-Type": "application/json"},
                "body": {"perUserMfaState": "disabled"},
                **({"dependsOn": [str(i - 1)]} if i else {}),
            }
            for i, u in enumerate(users[:5])
        ]
    }
    items = {i["id"]: i for i in c.post("/beta/$batch", json=batch).json()["responses"]}
    # In order (dependsOn): writes 1..5 of 5 are 0.2 .. 1.0 of the write quota.
    assert [items[str(i)]["status"] for i in range(5)] == [204] * 5
    assert [items[str(i)]["headers"].get("x-ms-resource-unit") for i in range(5)] == ["1"] * 5
    pct = [items[str(i)]["headers"].get("x-ms-throttle-limit-percentage") for i in range(5)]
    assert pct == [None, None, None, None, "1.0"]
    single = {**batch["requests"][0], "id": "x", "url": f"/users/{users[5]}/authentication/requirements"}
    (item,) = c.post("/beta/$batch", json={"requests": [single]}).json()["responses"]
    assert item["status"] == 429
    assert item["headers"]["x-ms-throttle-information"] == "WriteLimitExceeded"
    assert SCOPE.match(item["headers"]["x-ms-throttle-scope"]).group(1, 2) == ("Tenant_Application", "Write")
    c.close()


def test_with_throttling_off_nothing_is_metered_and_no_header_is_sent(hsim):
    """The simulator's switch (graph_sim/README.md): off means no throttle model, so no throttle headers."""
    hsim.admin("POST", "/_sim/throttle", json={"enabled": False})
    try:
        c = hsim.graph(CONTOSO)
        r = c.get("/v1.0/users?$top=1")
        assert r.status_code == 200 and "x-ms-resource-unit" not in r.headers
        c.close()
    finally:
        hsim.admin("POST", "/_sim/throttle", json={"enabled": True})
