"""Writes: per-user MFA requirements (beta), security defaults, Conditional Access policies and named
locations, with their permission and validation rules."""

from __future__ import annotations

import pytest

from graph_sim.conditional_access import SD_ENABLED_MESSAGE
from tests.graph_sim.conftest import CONTOSO, FABRIKAM, LITWARE, NORTHWIND


def _first_user(sim, tenant: str, state: str):
    return next(u for u in sim.tenant(tenant).users if u.per_user_state == state and not u.break_glass)


def test_it_reads_and_writes_per_user_mfa_state_on_beta(sim, graph):
    c = graph(CONTOSO)
    user = _first_user(sim, CONTOSO, "enforced")
    r = c.get(f"/beta/users/{user.id}/authentication/requirements")
    assert r.status_code == 200 and r.json()["perUserMfaState"] == "enforced"
    assert "authentication/requirements" in r.json()["@odata.context"]
    r = c.patch(f"/beta/users/{user.upn}/authentication/requirements", json={"perUserMfaState": "disabled"})
    assert r.status_code == 204 and r.content == b""
    assert c.get(f"/beta/users/{user.id}/authentication/requirements").json()["perUserMfaState"] == "disabled"
    event = sim.tenant(CONTOSO).timeline[-1]
    assert (event.kind, event.subject, event.old, event.new) == (
        "per_user_mfa",
        user.id,
        "enforced",
        "disabled",
    )


def test_it_refuses_a_bad_per_user_state_and_the_v1_path(sim, graph):
    c = graph(CONTOSO)
    user = _first_user(sim, CONTOSO, "enforced")
    r = c.patch(f"/beta/users/{user.id}/authentication/requirements", json={"perUserMfaState": "off"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "BadRequest"
    assert user.per_user_state == "enforced"
    r = c.get(f"/v1.0/users/{user.id}/authentication/requirements")
    assert r.status_code == 404
    r = c.patch(
        "/beta/users/nobody@contoso.onmicrosoft.com/authentication/requirements",
        json={"perUserMfaState": "disabled"},
    )
    assert r.status_code == 404 and r.json()["error"]["code"] == "Request_ResourceNotFound"


def test_it_needs_the_authentication_method_role_to_write_per_user_state(sim, graph):
    c = graph(LITWARE)  # partial consent: Policy.ReadWrite.AuthenticationMethod missing
    user = _first_user(sim, LITWARE, "enforced")
    assert c.get(f"/beta/users/{user.id}/authentication/requirements").status_code == 200
    r = c.patch(f"/beta/users/{user.id}/authentication/requirements", json={"perUserMfaState": "disabled"})
    assert r.status_code == 403
    assert r.json()["error"] == {
        **r.json()["error"],
        "code": "Authorization_RequestDenied",
        "message": "Insufficient privileges to complete the operation.",
    }
    assert user.per_user_state == "enforced"


def test_it_reads_and_toggles_security_defaults(sim, graph):
    c = graph(FABRIKAM)
    body = c.get("/v1.0/policies/identitySecurityDefaultsEnforcementPolicy").json()
    assert body["isEnabled"] is True and body["id"] and body["displayName"] == "Security Defaults"
    r = c.patch("/v1.0/policies/identitySecurityDefaultsEnforcementPolicy", json={"isEnabled": False})
    assert r.status_code == 204
    assert c.get("/v1.0/policies/identitySecurityDefaultsEnforcementPolicy").json()["isEnabled"] is False
    r = c.patch("/v1.0/policies/identitySecurityDefaultsEnforcementPolicy", json={"isEnabled": "no"})
    assert r.status_code == 400


def _policy(state: str = "enabledForReportingButNotEnforced", **users) -> dict:
    return {
        "displayName": "[GRANT] Require MFA all users",
        "state": state,
        "conditions": {
            "users": {"includeUsers": ["All"], **users},
            "applications": {"includeApplications": ["All"]},
            "clientAppTypes": ["all"],
        },
        "grantControls": {"operator": "OR", "builtInControls": ["mfa"]},
    }


def test_it_creates_lists_patches_and_deletes_ca_policies(graph, sim):
    c = graph(CONTOSO)
    r = c.post("/v1.0/identity/conditionalAccess/policies", json=_policy())
    assert r.status_code == 201
    created = r.json()
    assert created["id"] and created["createdDateTime"] and "modifiedDateTime" in created
    assert "templateId" in created and created["conditions"]["users"]["excludeGroups"] == []
    assert r.headers["Location"].endswith(created["id"])
    listed = c.get("/v1.0/identity/conditionalAccess/policies").json()["value"]
    assert [p["id"] for p in listed] == [created["id"]]
    r = c.patch(f"/v1.0/identity/conditionalAccess/policies/{created['id']}", json={"state": "enabled"})
    assert r.status_code == 204
    got = c.get(f"/beta/identity/conditionalAccess/policies/{created['id']}").json()
    assert got["state"] == "enabled" and got["modifiedDateTime"]
    assert c.delete(f"/v1.0/identity/conditionalAccess/policies/{created['id']}").status_code == 204
    assert c.get(f"/v1.0/identity/conditionalAccess/policies/{created['id']}").status_code == 404


@pytest.mark.parametrize(
    "mutate",
    [
        lambda p: p.pop("displayName"),
        lambda p: p.update(state="on"),
        lambda p: p.pop("conditions"),
        lambda p: p.pop("grantControls"),
    ],
)
def test_it_validates_ca_policy_bodies(graph, mutate):
    body = _policy()
    mutate(body)
    r = graph(CONTOSO).post("/v1.0/identity/conditionalAccess/policies", json=body)
    assert r.status_code == 400 and r.json()["error"]["code"] == "BadRequest"


def test_it_refuses_to_enable_a_policy_while_security_defaults_are_on(graph, sim):
    c = graph(FABRIKAM)
    r = c.post("/v1.0/identity/conditionalAccess/policies", json=_policy("enabled"))
    assert r.status_code == 400
    assert r.json()["error"]["message"].startswith("Security Defaults is enabled in the tenant.")
    assert r.json()["error"]["message"] == SD_ENABLED_MESSAGE
    r = c.post("/beta/identity/conditionalAccess/policies", json=_policy())  # report-only is fine
    assert r.status_code == 201
    pid = r.json()["id"]
    r = c.patch(f"/beta/identity/conditionalAccess/policies/{pid}", json={"state": "enabled"})
    assert r.status_code == 400 and r.json()["error"]["message"].startswith("Security Defaults is enabled")
    assert sim.tenant(FABRIKAM).policies[pid]["state"] == "enabledForReportingButNotEnforced"
    c.patch("/v1.0/policies/identitySecurityDefaultsEnforcementPolicy", json={"isEnabled": False})
    assert (
        c.patch(f"/v1.0/identity/conditionalAccess/policies/{pid}", json={"state": "enabled"}).status_code
        == 204
    )


def test_it_needs_read_all_as_well_as_readwrite_to_write_policies(sim, graph):
    sim.admin_response(
        "POST",
        f"/_sim/tenants/{CONTOSO}/consent",
        json={"granted": True, "roles": ["Policy.ReadWrite.ConditionalAccess"]},
    )
    c = graph(CONTOSO)
    assert c.get("/v1.0/identity/conditionalAccess/policies").status_code == 200
    r = c.post("/v1.0/identity/conditionalAccess/policies", json=_policy())
    assert r.status_code == 403 and r.json()["error"]["code"] == "Authorization_RequestDenied"


@pytest.mark.parametrize(
    "missing", ["Policy.Read.All", "Policy.ReadWrite.ConditionalAccess", "Application.Read.All"]
)
def test_creating_and_updating_a_policy_need_the_three_documented_permissions(sim, graph, missing):
    """Create conditionalAccessPolicy (https://learn.microsoft.com/graph/api/conditionalaccessroot-post-policies)
    and Update (https://learn.microsoft.com/graph/api/conditionalaccesspolicy-update), Application:
    "Policy.Read.All, Policy.ReadWrite.ConditionalAccess and Application.Read.All"."""
    c = graph(CONTOSO)
    pid = c.post("/v1.0/identity/conditionalAccess/policies", json=_policy()).json()["id"]
    roles = [
        r
        for r in ("Policy.Read.All", "Policy.ReadWrite.ConditionalAccess", "Application.Read.All")
        if r != missing
    ]
    sim.admin("POST", f"/_sim/tenants/{CONTOSO}/consent", json={"granted": True, "roles": roles})
    c = graph(CONTOSO)
    for r in (
        c.post("/v1.0/identity/conditionalAccess/policies", json=_policy()),
        c.patch(f"/v1.0/identity/conditionalAccess/policies/{pid}", json={"state": "enabled"}),
    ):
        assert r.status_code == 403 and r.json()["error"]["code"] == "Authorization_RequestDenied"
    assert sim.tenant(CONTOSO).policies[pid]["state"] != "enabled"


def test_it_ships_a_microsoft_managed_policy_that_cannot_be_deleted(graph, sim):
    c = graph(NORTHWIND)
    policies = c.get("/v1.0/identity/conditionalAccess/policies").json()["value"]
    managed = next(p for p in policies if p["displayName"] == "Multifactor authentication for all users")
    assert managed["state"] == "enabledForReportingButNotEnforced" and managed["templateId"]
    assert c.delete(f"/v1.0/identity/conditionalAccess/policies/{managed['id']}").status_code == 400
    r = c.patch(
        f"/v1.0/identity/conditionalAccess/policies/{managed['id']}", json={"displayName": "Mine now"}
    )
    assert r.status_code == 400
    r = c.patch(
        f"/v1.0/identity/conditionalAccess/policies/{managed['id']}",
        json={
            "conditions": {
                "users": {
                    "excludeUsers": [
                        sim.tenant(NORTHWIND).break_glass_upns and sim.tenant(NORTHWIND).users[-1].id
                    ]
                }
            }
        },
    )
    assert r.status_code == 204  # adding exclusions is allowed


def test_it_requires_odata_type_on_named_locations(graph):
    c = graph(CONTOSO)
    body = {
        "displayName": "Office",
        "isTrusted": True,
        "ipRanges": [{"@odata.type": "#microsoft.graph.iPv4CidrRange", "cidrAddress": "203.0.113.0/24"}],
    }
    r = c.post("/v1.0/identity/conditionalAccess/namedLocations", json=body)
    assert r.status_code == 400
    r = c.post(
        "/v1.0/identity/conditionalAccess/namedLocations",
        json={"@odata.type": "#microsoft.graph.ipNamedLocation", **body},
    )
    assert r.status_code == 201
    loc = r.json()
    assert loc["@odata.type"] == "#microsoft.graph.ipNamedLocation" and loc["isTrusted"] is True
    url = f"/v1.0/identity/conditionalAccess/namedLocations/{loc['id']}"
    assert c.patch(url, json={"displayName": "HQ"}).status_code == 400  # @odata.type needed on PATCH too
    assert (
        c.patch(
            url, json={"@odata.type": "#microsoft.graph.ipNamedLocation", "displayName": "HQ"}
        ).status_code
        == 204
    )
    assert c.get(url).json()["displayName"] == "HQ"
    bad = {
        "@odata.type": "#microsoft.graph.ipNamedLocation",
        "displayName": "x",
        "ipRanges": [{"@odata.type": "#microsoft.graph.iPv4CidrRange", "cidrAddress": "999.1.1.1/8"}],
    }
    assert c.post("/v1.0/identity/conditionalAccess/namedLocations", json=bad).status_code == 400
    # Documented: a location marked as trusted can't be deleted until the trusted designation is removed.
    assert c.delete(url).status_code == 400
    untrust = {"@odata.type": "#microsoft.graph.ipNamedLocation", "isTrusted": False}
    assert c.patch(url, json=untrust).status_code == 204
    assert c.delete(url).status_code == 204


def test_security_defaults_is_a_singleton_whose_context_has_no_entity_suffix(graph):
    """identitysecuritydefaultsenforcementpolicy-get: the response's @odata.context is
    `…/$metadata#policies/identitySecurityDefaultsEnforcementPolicy` (a singleton: no `/$entity`)."""
    body = graph(CONTOSO).get("/v1.0/policies/identitySecurityDefaultsEnforcementPolicy").json()
    context = body["@odata.context"]
    assert context.endswith("/v1.0/$metadata#policies/identitySecurityDefaultsEnforcementPolicy")
    assert {"id", "displayName", "description", "isEnabled"} <= set(body)
