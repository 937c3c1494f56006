"""Conditional Access policies and named locations against Microsoft's own examples.

- Create conditionalAccessPolicy (examples 1-4),
  https://learn.microsoft.com/graph/api/conditionalaccessroot-post-policies
- Update conditionalaccesspolicy, https://learn.microsoft.com/graph/api/conditionalaccesspolicy-update
- Create namedLocation (examples 1-2),
  https://learn.microsoft.com/graph/api/conditionalaccessroot-post-namedlocations

The examples' ids (groups, users, named locations) are replaced by the tenant's own; a response must
carry every property the docs' response shows, with the same JSON type, except the 2019 examples'
`conditions.times` and `applications.includeProtectionLevels`, which the current conditionalAccessConditionSet
and conditionalAccessApplications resources no longer list. The stored examples show @odata.context as
`$metadata#conditionalAccess/policies/$entity`; Graph and the current pages give the full entity-set path
`$metadata#identity/conditionalAccess/policies/$entity`.
"""

from __future__ import annotations

import pytest

from tests.graph_sim.conftest import CONTOSO

POLICIES = "/v1.0/identity/conditionalAccess/policies"
LOCATIONS = "/v1.0/identity/conditionalAccess/namedLocations"
GONE = {"times", "includeProtectionLevels"}
EXO = "00000002-0000-0ff1-ce00-000000000000"


def _same_shape(docs: object, got: object, where: str = "") -> None:
    """Every property of `docs` is in `got` with the same JSON type (null in the docs: any type)."""
    if docs is None:
        return
    if isinstance(docs, dict):
        assert isinstance(got, dict), where
        for key, value in docs.items():
            if key in GONE or key == "@odata.context":
                continue
            assert key in got, f"{where}.{key} missing"
            _same_shape(value, got[key], f"{where}.{key}")
    elif isinstance(docs, list):
        assert isinstance(got, list), where
        for d, g in zip(docs, got, strict=False):
            _same_shape(d, g, where + "[]")
    else:
        assert type(got) is type(docs), (where, got)


def _echoes(request: dict, got: dict, where: str = "") -> None:
    """What the request set is what the response holds."""
    for key, value in request.items():
        if isinstance(value, dict):
            _echoes(value, got[key] or {}, f"{where}.{key}")
        else:
            assert got[key] == value, f"{where}.{key}"


def _response(conditions: dict, *, name: str, state: str, grant: list[str], session=None) -> dict:
    return {
        "id": "7359d0e0-d8a9-4afa-8a93-e23e099d7be8",
        "displayName": name,
        "createdDateTime": "2019-10-14T19:52:00.050958Z",
        "modifiedDateTime": None,
        "state": state,
        "sessionControls": session,
        "conditions": {
            "userRiskLevels": [],
            "signInRiskLevels": [],
            "clientAppTypes": ["all"],
            "platforms": None,
            "locations": None,
            "times": None,
            "applications": {
                "includeApplications": [EXO],
                "excludeApplications": [],
                "includeUserActions": [],
                "includeProtectionLevels": [],
            },
            "users": {
                "includeUsers": [],
                "excludeUsers": [],
                "includeGroups": ["g"],
                "excludeGroups": [],
                "includeRoles": [],
                "excludeRoles": [],
            },
            **conditions,
        },
        "grantControls": {
            "operator": "OR",
            "builtInControls": grant,
            "customAuthenticationFactors": [],
            "termsOfUse": [],
        },
    }


@pytest.fixture
def ids(sim):
    tenant = sim.tenant(CONTOSO)
    users = [u.id for u in tenant.users if not u.break_glass]
    return {"group": next(iter(tenant.groups)), "user": users[0], "other_user": users[1]}


def _examples(ids: dict, location_id: str) -> list[tuple[str, dict]]:
    group = [ids["group"]]
    return [
        (
            "example 1: require MFA for EXO outside trusted locations",
            {
                "displayName": "Access to EXO requires MFA",
                "state": "enabled",
                "conditions": {
                    "clientAppTypes": ["mobileAppsAndDesktopClients", "browser"],
                    "applications": {"includeApplications": [EXO]},
                    "users": {"includeGroups": group},
                    "locations": {"includeLocations": ["All"], "excludeLocations": ["AllTrusted"]},
                },
                "grantControls": {"operator": "OR", "builtInControls": ["mfa"]},
            },
        ),
        (
            "example 2: block EXO from a named location",
            {
                "displayName": "Block access to EXO non-trusted regions.",
                "state": "enabled",
                "conditions": {
                    "clientAppTypes": ["all"],
                    "applications": {"includeApplications": [EXO]},
                    "users": {"includeGroups": group},
                    "locations": {"includeLocations": [location_id]},
                },
                "grantControls": {"operator": "OR", "builtInControls": ["block"]},
            },
        ),
        (
            "example 3: all conditions and controls",
            {
                "displayName": "Demo app for documentation",
                "state": "disabled",
                "conditions": {
                    "signInRiskLevels": ["high", "medium"],
                    "clientAppTypes": ["mobileAppsAndDesktopClients", "exchangeActiveSync", "other"],
                    "applications": {
                        "includeApplications": ["All"],
                        "excludeApplications": [
                            "499b84ac-1321-427f-aa17-267ca6975798",
                            "00000007-0000-0000-c000-000000000000",
                        ],
                        "includeUserActions": [],
                    },
                    "users": {
                        "includeUsers": [ids["user"]],
                        "excludeUsers": [ids["other_user"], "GuestsOrExternalUsers"],
                        "includeGroups": [],
                        "excludeGroups": [],
                        "includeRoles": ["9b895d92-2cd3-44c7-9d02-a6ac2d5ea5c3"],
                        "excludeRoles": ["b0f54661-2d74-4c50-afa3-1ec803f12efe"],
                    },
                    "platforms": {"includePlatforms": ["all"], "excludePlatforms": ["iOS", "windowsPhone"]},
                    "locations": {
                        "includeLocations": ["AllTrusted"],
                        "excludeLocations": ["00000000-0000-0000-0000-000000000000"],
                    },
                },
                "grantControls": {
                    "operator": "OR",
                    "builtInControls": [
                        "mfa",
                        "compliantDevice",
                        "domainJoinedDevice",
                        "approvedApplication",
                        "compliantApplication",
                    ],
                    "customAuthenticationFactors": [],
                    "termsOfUse": ["ce580154-086a-40fd-91df-8a60abac81a0"],
                },
                "sessionControls": {
                    "applicationEnforcedRestrictions": None,
                    "persistentBrowser": None,
                    "cloudAppSecurity": {"cloudAppSecurityType": "blockDownloads", "isEnabled": True},
                    "signInFrequency": {"value": 4, "type": "hours", "isEnabled": True},
                },
            },
        ),
        (
            "example 4: require MFA for EXO",
            {
                "displayName": "Require MFA to EXO from non-compliant devices.",
                "state": "enabled",
                "conditions": {
                    "applications": {"includeApplications": [EXO]},
                    "users": {"includeGroups": group},
                },
                "grantControls": {"operator": "OR", "builtInControls": ["mfa"]},
            },
        ),
    ]


def test_named_location_examples_are_created_as_documented(graph):
    c = graph(CONTOSO)
    ip = {
        "@odata.type": "#microsoft.graph.ipNamedLocation",
        "displayName": "Untrusted IP named location",
        "isTrusted": False,
        "ipRanges": [
            {"@odata.type": "#microsoft.graph.iPv4CidrRange", "cidrAddress": "12.34.221.11/22"},
            {"@odata.type": "#microsoft.graph.iPv6CidrRange", "cidrAddress": "2001:0:9d38:90d6:0:0:0:0/63"},
        ],
    }
    country = {
        "@odata.type": "#microsoft.graph.countryNamedLocation",
        "displayName": "Named location with unknown countries and regions",
        "countriesAndRegions": ["US", "GB"],
        "includeUnknownCountriesAndRegions": True,
    }
    for body in (ip, country):
        r = c.post(LOCATIONS, json=body)
        assert r.status_code == 201, r.text
        got = r.json()
        assert got["@odata.context"].endswith(
            "/v1.0/$metadata#identity/conditionalAccess/namedLocations/$entity"
        )
        _echoes(body, got)
        _same_shape({"id": "x", "modifiedDateTime": "t", "createdDateTime": "t", **body}, got)
        assert c.get(f"{LOCATIONS}/{got['id']}").json()["displayName"] == body["displayName"]


def test_policy_examples_are_created_with_every_documented_property(graph, ids):
    c = graph(CONTOSO)
    location = c.post(
        LOCATIONS,
        json={
            "@odata.type": "#microsoft.graph.countryNamedLocation",
            "displayName": "Non-trusted regions",
            "countriesAndRegions": ["KP"],
        },
    ).json()["id"]
    for title, body in _examples(ids, location):
        r = c.post(POLICIES, json=body)
        assert r.status_code == 201, (title, r.text)
        got = r.json()
        assert got["@odata.context"].endswith("/v1.0/$metadata#identity/conditionalAccess/policies/$entity")
        _echoes(body, got, title)
        docs = _response(
            body["conditions"],
            name=body["displayName"],
            state=body["state"],
            grant=body["grantControls"]["builtInControls"],
            session=body.get("sessionControls"),
        )
        _same_shape(docs, got, title)
        assert c.get(f"{POLICIES}/{got['id']}").json() == got  # Get answers the same entity


def test_the_update_example_patches_only_what_it_names(graph, ids):
    c = graph(CONTOSO)
    _, body = _examples(ids, "unused")[3]
    before = c.post(POLICIES, json=body).json()
    r = c.patch(
        f"{POLICIES}/{before['id']}", json={"conditions": {"signInRiskLevels": ["high", "medium", "low"]}}
    )
    assert r.status_code == 204 and r.content == b""
    after = c.get(f"{POLICIES}/{before['id']}").json()
    assert after["conditions"]["signInRiskLevels"] == ["high", "medium", "low"]
    assert after["conditions"]["users"] == before["conditions"]["users"]
    assert after["grantControls"] == before["grantControls"] and after["state"] == before["state"]
    assert after["modifiedDateTime"] is not None


def test_list_answers_with_the_collection_context(graph):
    body = graph(CONTOSO).get(POLICIES).json()
    assert body["@odata.context"].endswith("/v1.0/$metadata#identity/conditionalAccess/policies")
    assert isinstance(body["value"], list)
