"""Per-user MFA requirements and What-If against Microsoft's own examples.

- howto-mfa-userstates, "Use Microsoft Graph to manage per-user MFA"
  (https://learn.microsoft.com/entra/identity/authentication/howto-mfa-userstates): GET
  /beta/users/{id | userPrincipalName}/authentication/requirements answers {"perUserMfaState": "enforced"};
  PATCH {"perUserMfaState": "disabled"} answers 204 No Content.
- conditionalAccessRoot: evaluate (https://learn.microsoft.com/graph/api/conditionalaccessroot-evaluate),
  example 1: the policies that would apply to a user opening an app, as whatIfAnalysisResult items.
"""

from __future__ import annotations

from tests.graph_sim.conftest import CONTOSO, NORTHWIND

REQ = "/beta/users/{key}/authentication/requirements"
SHAREPOINT = "00000003-0000-0ff1-ce00-000000000000"
# whatIfAnalysisResult: a conditionalAccessPolicy plus policyApplies and analysisReasons (v1.0 example).
WHAT_IF_ITEM = {
    "id": str,
    "displayName": str,
    "createdDateTime": str,
    "state": str,
    "policyApplies": bool,
    "analysisReasons": str,
    "conditions": dict,
    "grantControls": dict,
}
WHAT_IF_NULLABLE = ("templateId", "modifiedDateTime", "partialEnablementStrategy", "sessionControls")


def test_the_howto_get_example_reads_an_enforced_user_by_id_and_by_upn(sim, graph):
    user = next(u for u in sim.tenant(CONTOSO).users if u.per_user_state == "enforced")
    c = graph(CONTOSO)
    for key in (user.id, user.upn):
        r = c.get(REQ.format(key=key))
        assert r.status_code == 200 and r.json()["perUserMfaState"] == "enforced"
        assert set(r.json()) == {"@odata.context", "perUserMfaState"}
        assert r.json()["@odata.context"].endswith("/authentication/requirements/$entity")


def test_the_howto_patch_example_answers_204_with_no_body(sim, graph):
    user = next(u for u in sim.tenant(CONTOSO).users if u.per_user_state == "enforced")
    r = graph(CONTOSO).patch(REQ.format(key=user.id), json={"perUserMfaState": "disabled"})
    assert r.status_code == 204 and r.content == b""
    assert user.per_user_state == "disabled"


def test_evaluate_example_1_lists_whatif_results_and_takes_the_string_true(sim, graph):
    """The example sends appliedPoliciesOnly as the string "true"; Northwind's two report-only policies
    are the tenant's; the MFA one applies to a browser sign-in to SharePoint, the legacy block does not."""
    user = next(u for u in sim.tenant(NORTHWIND).users if not u.break_glass and not u.is_admin)
    body = {
        "signInIdentity": {"@odata.type": "#microsoft.graph.userSignIn", "userId": user.id},
        "signInContext": {
            "@odata.type": "#microsoft.graph.applicationContext",
            "includeApplications": [SHAREPOINT],
        },
        "signInConditions": {
            "clientAppType": "browser",
            "userRiskLevel": "high",
            "country": "US",
            "ipAddress": "40.177.80.9",
        },
    }
    c = graph(NORTHWIND)
    every = c.post("/v1.0/identity/conditionalAccess/evaluate", json=body)
    applied = c.post(
        "/v1.0/identity/conditionalAccess/evaluate", json={**body, "appliedPoliciesOnly": "true"}
    )
    assert every.status_code == applied.status_code == 200
    for r in (every, applied):
        assert r.json()["@odata.context"].endswith(
            "/v1.0/$metadata#Collection(microsoft.graph.whatIfAnalysisResult)"
        )
        for item in r.json()["value"]:
            for name, kind in WHAT_IF_ITEM.items():
                assert isinstance(item[name], kind), name
            assert all(name in item for name in WHAT_IF_NULLABLE)
    names = {i["displayName"]: i["policyApplies"] for i in every.json()["value"]}
    assert names == {"Multifactor authentication for all users": True, "Block legacy authentication": False}
    assert [i["displayName"] for i in applied.json()["value"]] == ["Multifactor authentication for all users"]
    blocked = next(i for i in every.json()["value"] if not i["policyApplies"])
    assert "clientApps" in blocked["analysisReasons"].split(",")
