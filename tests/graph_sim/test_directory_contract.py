"""Users, groups, licences and the organization against Microsoft's own examples.

- List users, https://learn.microsoft.com/graph/api/user-list (example 1: GET /users, the default
  properties) and Get user, https://learn.microsoft.com/graph/api/user-get (example 1, `users/$entity`).
- List group members, https://learn.microsoft.com/graph/api/group-list-members (directoryObjects with
  their @odata.type).
- List subscribedSkus, https://learn.microsoft.com/graph/api/subscribedsku-list.
- List organization, https://learn.microsoft.com/graph/api/organization-list.
"""

from __future__ import annotations

from tests.graph_sim.conftest import CONTOSO

# The user properties Graph returns by default (user-list / user-get examples), with their JSON types.
USER_DEFAULT = {
    "businessPhones": list,
    "displayName": str,
    "givenName": (str, type(None)),
    "jobTitle": (str, type(None)),
    "mail": (str, type(None)),
    "mobilePhone": (str, type(None)),
    "officeLocation": (str, type(None)),
    "preferredLanguage": (str, type(None)),
    "surname": (str, type(None)),
    "userPrincipalName": str,
    "id": str,
}
SKU = {
    "capabilityStatus": str,
    "consumedUnits": int,
    "id": str,
    "prepaidUnits": dict,
    "servicePlans": list,
    "skuId": str,
    "skuPartNumber": str,
    "appliesTo": str,
}
PREPAID = {"enabled", "suspended", "warning", "lockedOut"}
SERVICE_PLAN = {"servicePlanId", "servicePlanName", "provisioningStatus", "appliesTo"}


def _typed(item: dict, spec: dict) -> None:
    for name, kind in spec.items():
        assert name in item, name
        assert isinstance(item[name], kind), (name, item[name])


def test_list_users_example_has_exactly_the_default_properties(graph):
    body = graph(CONTOSO).get("/v1.0/users").json()
    assert body["@odata.context"].endswith("/v1.0/$metadata#users")
    for user in body["value"]:
        assert set(user) == set(USER_DEFAULT)
        _typed(user, USER_DEFAULT)


def test_get_user_example_is_a_users_entity_by_id_or_upn(sim, graph):
    user = sim.tenant(CONTOSO).users[4]
    c = graph(CONTOSO)
    for key in (user.id, user.upn):
        got = c.get(f"/v1.0/users/{key}").json()
        assert got["@odata.context"].endswith("/v1.0/$metadata#users/$entity")
        assert set(got) - {"@odata.context"} == set(USER_DEFAULT)
        _typed(got, USER_DEFAULT)
        assert got["id"] == user.id


def test_unknown_user_answers_the_documented_404(graph):
    r = graph(CONTOSO).get("/v1.0/users/nobody@contoso.onmicrosoft.com")
    assert r.status_code == 404 and r.json()["error"]["code"] == "Request_ResourceNotFound"
    assert {"code", "message", "innerError"} <= set(r.json()["error"])


def test_group_members_are_directory_objects_with_their_type(sim, graph):
    group = next(iter(sim.tenant(CONTOSO).groups))
    body = graph(CONTOSO).get(f"/v1.0/groups/{group}/members").json()
    assert "$metadata#directoryObjects" in body["@odata.context"]
    assert body["value"] and all(
        m["@odata.type"] == "#microsoft.graph.user" and m["id"] for m in body["value"]
    )


def test_subscribed_skus_example_shape(graph):
    body = graph(CONTOSO).get("/v1.0/subscribedSkus").json()
    assert body["@odata.context"].endswith("/v1.0/$metadata#subscribedSkus")
    for sku in body["value"]:
        _typed(sku, SKU)
        assert set(sku["prepaidUnits"]) >= PREPAID
        assert all(set(p) >= SERVICE_PLAN for p in sku["servicePlans"])
        assert sku["id"].endswith("_" + sku["skuId"])


def test_organization_example_shape(graph):
    body = graph(CONTOSO).get("/v1.0/organization").json()
    assert body["@odata.context"].endswith("/v1.0/$metadata#organization")
    (org,) = body["value"]
    assert org["id"] == CONTOSO and isinstance(org["displayName"], str)
    assert any(d["isDefault"] for d in org["verifiedDomains"]) and any(
        d["isInitial"] for d in org["verifiedDomains"]
    )
