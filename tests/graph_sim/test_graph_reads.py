"""Graph reads: envelope and headers, auth failures, paging, $select, UPN look-ups, licences, groups,
registration details."""

from __future__ import annotations

import time
from urllib.parse import quote, urlsplit

import jwt
import pytest

from graph_sim.licences import AAD_PREMIUM, AAD_PREMIUM_P2
from tests.graph_sim.conftest import CONTOSO, FABRIKAM, TAILSPIN, WOODGROVE


def test_it_echoes_client_request_id_and_sets_request_id(graph):
    r = graph().get("/v1.0/organization", headers={"client-request-id": "abc-123"})
    assert r.status_code == 200
    assert r.headers["client-request-id"] == "abc-123" and r.headers["request-id"]
    body = r.json()
    assert body["@odata.context"].endswith("/v1.0/$metadata#organization")
    assert body["value"][0]["id"] == CONTOSO
    assert {d["name"] for d in body["value"][0]["verifiedDomains"]} == {
        "contoso.onmicrosoft.com",
        "contoso.com",
    }


def test_it_rejects_missing_invalid_and_expired_tokens(sim):
    http = sim.http
    r = http.get("/v1.0/users")
    assert r.status_code == 401 and r.json()["error"]["code"] == "InvalidAuthenticationToken"
    inner = r.json()["error"]["innerError"]
    assert inner["request-id"] == r.headers["request-id"] and "date" in inner
    r = http.get("/v1.0/users", headers={"Authorization": "Bearer not.a.jwt"})
    assert r.status_code == 401
    now = int(time.time())
    expired = jwt.encode(
        {
            "aud": "https://graph.microsoft.com",
            "tid": CONTOSO,
            "appid": sim.fleet["client_id"],
            "roles": ["User.Read.All"],
            "iat": now - 7200,
            "nbf": now - 7200,
            "exp": now - 3600,
        },
        sim.simulator.tokens.key,
        algorithm="RS256",
    )
    r = http.get("/v1.0/users", headers={"Authorization": f"Bearer {expired}"})
    assert r.status_code == 401 and "expired" in r.json()["error"]["message"]


def test_it_answers_unknown_paths_with_the_graph_404_shape(graph):
    c = graph()
    r = c.get("/v1.0/nonsense")
    assert r.status_code == 404 and r.json()["error"]["code"] == "ResourceNotFound"
    r = c.get("/v1.0/users/nobody@contoso.onmicrosoft.com")
    assert r.status_code == 404 and r.json()["error"]["code"] == "Request_ResourceNotFound"


def test_it_pages_users_with_an_opaque_next_link(graph, sim):
    c = graph()
    seen, url, pages = [], "/v1.0/users", 0
    while url:
        body = c.get(url).json()
        pages += 1
        seen += [u["id"] for u in body["value"]]
        url = body.get("@odata.nextLink")
        if url:
            assert url.startswith(sim.graph_base_url) and "$skiptoken=" in url
            assert str(100 * pages) not in urlsplit(url).query.split("$skiptoken=")[1]
    assert pages == 2 and len(seen) == len(set(seen)) == 150  # default page size 100


@pytest.mark.parametrize("top,status", [("0", 400), ("1000", 400), ("999", 200), ("1", 200), ("x", 400)])
def test_it_enforces_top_bounds(graph, top, status):
    r = graph().get(f"/v1.0/users?$top={top}")
    assert r.status_code == status
    if status == 400:
        assert r.json()["error"]["code"] == "Request_UnsupportedQuery"
        assert "Must be between 1 and 999 inclusive" in r.json()["error"]["message"]


def test_it_rejects_a_tampered_skiptoken(graph):
    r = graph().get("/v1.0/users?$skiptoken=RFNwdAIAbogus")
    assert r.status_code == 400 and r.json()["error"]["code"] == "Directory_ExpiredPageToken"


def test_it_applies_select_and_the_v1_default_property_set(graph):
    c = graph()
    default = c.get("/v1.0/users?$top=1").json()["value"][0]
    assert "accountEnabled" not in default and "userType" not in default  # not in v1.0's default set
    assert {"id", "userPrincipalName", "displayName", "mail"} <= default.keys()
    r = c.get("/v1.0/users?$select=id,userPrincipalName,displayName,accountEnabled,userType&$top=999")
    body = r.json()
    assert body["@odata.context"].endswith("#users(id,userPrincipalName,displayName,accountEnabled,userType)")
    assert set(body["value"][0]) == {"id", "userPrincipalName", "displayName", "accountEnabled", "userType"}
    assert len(body["value"]) == 150 and "@odata.nextLink" not in body
    r = c.get("/v1.0/users?$select=id,nope")
    assert r.status_code == 400 and r.json()["error"]["code"] == "Request_BadRequest"


@pytest.mark.parametrize(
    "upn",
    [
        "jane.doe_gmail.com#EXT#@woodgrove.onmicrosoft.com",
        "o'brien@woodgrove.onmicrosoft.com",
        "O'Brien@WOODGROVE.onmicrosoft.com",
        "zoe.angstrom@woodgrove.onmicrosoft.com",
    ],
)
def test_it_looks_users_up_by_upn_with_awkward_characters(graph, upn):
    c = graph(WOODGROVE)
    r = c.get(f"/v1.0/users/{quote(upn, safe='@')}")
    assert r.status_code == 200, r.text
    assert r.json()["userPrincipalName"].lower() == upn.lower()
    # OData key syntax with a doubled apostrophe works as well.
    r = c.get(f"/v1.0/users('{quote(upn.replace(chr(39), chr(39) * 2), safe='@')}')")
    assert r.status_code == 200


def test_it_keeps_unicode_display_names_intact(graph):
    r = graph(WOODGROVE).get("/v1.0/users/zoe.angstrom@woodgrove.onmicrosoft.com?$select=displayName")
    assert r.json()["displayName"] == "Zoë Ångström 李雷"


def test_it_loses_the_ext_part_when_hash_is_not_encoded(graph):
    # An unencoded '#' starts the URL fragment: the server sees a truncated UPN, as Graph would.
    r = graph(WOODGROVE).get("/v1.0/users/jane.doe_gmail.com#EXT#@woodgrove.onmicrosoft.com")
    assert r.status_code == 404


def _plans(body: dict) -> dict[str, str]:
    return {p["servicePlanName"]: p["servicePlanId"] for s in body["value"] for p in s["servicePlans"]}


def test_it_serves_subscribed_skus_for_each_licence_shape(graph):
    p2 = graph(CONTOSO).get("/v1.0/subscribedSkus").json()
    assert {s["skuPartNumber"] for s in p2["value"]} == {"EMSPREMIUM", "ENTERPRISEPACK"}
    assert _plans(p2)["AAD_PREMIUM_P2"] == AAD_PREMIUM_P2
    spb = graph(FABRIKAM).get("/v1.0/subscribedSkus").json()
    assert [s["skuPartNumber"] for s in spb["value"]] == ["SPB"]
    assert _plans(spb)["AAD_PREMIUM"] == AAD_PREMIUM and "AAD_PREMIUM_P2" not in _plans(spb)
    sku = spb["value"][0]
    assert sku["skuId"] == "cbdc14ab-d96c-4c30-b9f4-6ada7cdc1d46" and sku["capabilityStatus"] == "Enabled"
    assert set(sku["prepaidUnits"]) == {"enabled", "suspended", "warning", "lockedOut"}
    assert {"servicePlanId", "servicePlanName", "provisioningStatus", "appliesTo"} == set(
        sku["servicePlans"][0]
    )
    free = graph(TAILSPIN).get("/v1.0/subscribedSkus").json()
    assert {"AAD_PREMIUM", "AAD_PREMIUM_P2"}.isdisjoint(_plans(free))


def test_it_serves_groups_and_paged_members(graph, sim):
    group_id = sim.fleet["tenants"][0]["groups"]["MFA Pilot"]
    c = graph(CONTOSO)
    assert c.get(f"/v1.0/groups/{group_id}").json()["displayName"] == "MFA Pilot"
    body = c.get(f"/v1.0/groups/{group_id}/members?$top=15&$select=id,userPrincipalName").json()
    assert len(body["value"]) == 15 and body["value"][0]["@odata.type"] == "#microsoft.graph.user"
    rest = c.get(body["@odata.nextLink"]).json()
    assert len(rest["value"]) == 5 and "@odata.nextLink" not in rest
    assert c.get("/v1.0/groups/00000000-0000-0000-0000-000000000000").status_code == 404


def test_it_serves_user_registration_details(graph):
    c = graph(CONTOSO)
    body = c.get("/v1.0/reports/authenticationMethods/userRegistrationDetails").json()
    assert len(body["value"]) == 100  # the report takes no $top: a server-sized page, then the rest
    body["value"] += c.get(body["@odata.nextLink"]).json()["value"]
    assert len(body["value"]) == 150
    row = body["value"][0]
    for field in (
        "id",
        "userPrincipalName",
        "userDisplayName",
        "isAdmin",
        "isMfaRegistered",
        "isMfaCapable",
        "isSsprRegistered",
        "methodsRegistered",
        "userType",
        "lastUpdatedDateTime",
    ):
        assert field in row
    assert any(not r["isMfaRegistered"] for r in body["value"])  # some users are not registered


def test_it_refuses_registration_details_on_a_free_tenant(graph):
    r = graph(TAILSPIN).get("/v1.0/reports/authenticationMethods/userRegistrationDetails")
    assert r.status_code == 403
    assert r.json()["error"]["code"] == "Authentication_RequestFromNonPremiumTenantOrB2CTenant"


def test_it_rejects_unimplemented_query_options_loudly(graph):
    r = graph().get("/v1.0/users?$filter=userType eq 'Guest'")
    assert r.status_code == 400 and r.json()["error"]["code"] == "Request_UnsupportedQuery"
