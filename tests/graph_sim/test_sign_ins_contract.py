"""GET /v1.0/auditLogs/signIns against Microsoft's own examples.

List signIns, https://learn.microsoft.com/graph/api/signin-list (examples 1 and 2); signIn resource,
https://learn.microsoft.com/graph/api/resources/signin; appliedConditionalAccessPolicy,
https://learn.microsoft.com/graph/api/resources/appliedconditionalaccesspolicy.
"""

from __future__ import annotations

from urllib.parse import quote

from tests.graph_sim.conftest import CONTOSO, NORTHWIND

SIGN_INS = "/v1.0/auditLogs/signIns"
# Every property of the docs' example 1 item, with its JSON type there (None: null allowed as well).
DOCS_ITEM = {
    "id": str,
    "createdDateTime": str,
    "userDisplayName": str,
    "userPrincipalName": str,
    "userId": str,
    "appId": str,
    "appDisplayName": str,
    "ipAddress": str,
    "clientAppUsed": str,
    "correlationId": str,
    "conditionalAccessStatus": str,
    "isInteractive": bool,
    "riskDetail": str,
    "riskLevelAggregated": str,
    "riskLevelDuringSignIn": str,
    "riskState": str,
    "riskEventTypes": list,
    "resourceDisplayName": str,
    "resourceId": str,
    "status": dict,
    "deviceDetail": dict,
    "location": dict,
    "appliedConditionalAccessPolicies": list,
}
DOCS_STATUS = {"errorCode": int, "failureReason": (str, type(None)), "additionalDetails": (str, type(None))}
DOCS_DEVICE = (
    "deviceId",
    "displayName",
    "operatingSystem",
    "browser",
    "isCompliant",
    "isManaged",
    "trustType",
)
DOCS_LOCATION = {"city", "state", "countryOrRegion", "geoCoordinates"}
DOCS_APPLIED = {
    "id": str,
    "displayName": str,
    "enforcedGrantControls": list,
    "enforcedSessionControls": list,
    "result": str,
}
RESULTS = {
    "success",
    "failure",
    "notApplied",
    "notEnabled",
    "unknown",
    "reportOnlySuccess",
    "reportOnlyFailure",
    "reportOnlyNotApplied",
    "reportOnlyInterrupted",
}


def test_example_1_list_all_sign_ins_has_every_documented_property_with_its_type(graph):
    """signin-list example 1: GET /auditLogs/signIns."""
    r = graph(NORTHWIND).get(SIGN_INS)
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert body["@odata.context"].endswith("/v1.0/$metadata#auditLogs/signIns")
    assert body["value"]
    for item in body["value"]:
        for name, kind in DOCS_ITEM.items():
            assert isinstance(item.get(name), kind), (name, item.get(name))
        for name, kind in DOCS_STATUS.items():
            assert isinstance(item["status"][name], kind), name
        assert set(DOCS_DEVICE) <= item["deviceDetail"].keys()
        assert DOCS_LOCATION <= item["location"].keys()
        assert set(item["location"]["geoCoordinates"]) == {"altitude", "latitude", "longitude"}
        assert item["conditionalAccessStatus"] in {"success", "failure", "notApplied"}


def test_example_2_starts_with_app_display_name_and_top_10_pages_with_a_next_link(graph, sim):
    """signin-list example 2: $filter=startsWith(appDisplayName,'Graph')&$top=10, with @odata.nextLink.
    The demo's apps have other names; the same request shape with 'Office' has more than 10 answers."""
    c = graph(CONTOSO)
    r = c.get(
        f"{SIGN_INS}?$filter={quote(chr(39).join(['startsWith(appDisplayName,', 'Office', ')']))}&$top=10"
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert len(body["value"]) == 10 and all(v["appDisplayName"].startswith("Office") for v in body["value"])
    assert body["@odata.nextLink"].startswith(sim.graph_base_url) and "$skiptoken=" in body["@odata.nextLink"]
    more = c.get(body["@odata.nextLink"]).json()["value"]
    assert more and all(v["appDisplayName"].startswith("Office") for v in more)


def test_applied_policies_list_the_tenants_policies_with_their_results(graph, sim):
    """Northwind holds a Microsoft-managed MFA policy in report-only and a legacy one: each sign-in lists
    them as appliedConditionalAccessPolicy items, results from the documented set."""
    tenant = sim.tenant(NORTHWIND)
    policies = {p["id"]: p for p in tenant.policies.values()}
    items = graph(NORTHWIND).get(SIGN_INS).json()["value"]
    for item in items:
        applied = item["appliedConditionalAccessPolicies"]
        assert {a["id"] for a in applied} == set(policies)
        for a in applied:
            for name, kind in DOCS_APPLIED.items():
                assert isinstance(a[name], kind), (name, a)
            policy = policies[a["id"]]
            assert a["displayName"] == policy["displayName"] and a["result"] in RESULTS
            if policy["state"] == "enabledForReportingButNotEnforced":
                assert a["result"].startswith("reportOnly")
            if policy["state"] == "disabled":
                assert a["result"] == "notEnabled" and a["enforcedGrantControls"] == []
    # report-only: the MFA policy would have succeeded for modern sign-ins; the legacy block does not
    # apply to them
    by_name = {
        (i["clientAppUsed"], a["displayName"], a["result"])
        for i in items
        for a in i["appliedConditionalAccessPolicies"]
    }
    assert ("Browser", "Multifactor authentication for all users", "reportOnlySuccess") in by_name
    assert ("Browser", "Block legacy authentication", "reportOnlyNotApplied") in by_name


def test_an_enforced_mfa_policy_shows_success_for_modern_and_failure_for_legacy_sign_ins(graph, sim):
    """A sign-in added after an enabled MFA policy exists records it: success for a browser sign-in,
    failure for a legacy client (it cannot answer the MFA prompt); conditionalAccessStatus follows."""
    c = graph(CONTOSO)
    policy = c.post(
        "/v1.0/identity/conditionalAccess/policies",
        json={
            "displayName": "Require MFA for all users",
            "state": "enabled",
            "conditions": {
                "users": {"includeUsers": ["All"]},
                "applications": {"includeApplications": ["All"]},
                "clientAppTypes": ["all"],
            },
            "grantControls": {"operator": "OR", "builtInControls": ["mfa"]},
        },
    )
    assert policy.status_code == 201, policy.text
    pid = policy.json()["id"]
    user = next(u for u in sim.tenant(CONTOSO).users if not u.break_glass and not u.is_admin)
    added = sim.admin(
        "POST",
        f"/_sim/tenants/{CONTOSO}/signins",
        json={
            "signIns": [
                {"userId": user.id, "clientAppUsed": "Browser", "hoursAgo": 0.1},
                {"userId": user.id, "clientAppUsed": "IMAP4", "hoursAgo": 0.1, "errorCode": 50076},
            ]
        },
    )["added"]
    browser, imap = added
    ours = {e["id"]: e for e in c.get(f"{SIGN_INS}?$filter=userId eq '{user.id}'").json()["value"]}
    for entry, result in ((browser, "success"), (imap, "failure")):
        got = ours[entry["id"]]
        applied = next(a for a in got["appliedConditionalAccessPolicies"] if a["id"] == pid)
        assert applied == {
            "id": pid,
            "displayName": "Require MFA for all users",
            "enforcedGrantControls": ["Mfa"],
            "enforcedSessionControls": [],
            "result": result,
        }
        assert got["conditionalAccessStatus"] == result
