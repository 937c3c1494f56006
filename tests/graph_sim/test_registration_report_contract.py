"""GET /{v}/reports/authenticationMethods/userRegistrationDetails against Microsoft's own pages.

List userRegistrationDetails (v1.0):
https://learn.microsoft.com/graph/api/authenticationmethodsroot-list-userregistrationdetails
(optional query parameters: `$filter` on the properties of its table; the request/response example);
the beta page: https://learn.microsoft.com/graph/api/authenticationmethodsroot-list-userregistrationdetails?view=graph-rest-beta;
userRegistrationDetails resource: https://learn.microsoft.com/graph/api/resources/userregistrationdetails
(which property "Supports $filter (eq)", "(any with eq)", "(eq, startsWith) and $orderby").
"""

from __future__ import annotations

import pytest

from tests.graph_sim.conftest import CONTOSO, TAILSPIN

REPORT = "/reports/authenticationMethods/userRegistrationDetails"
# Every property of the v1.0 example's items, with its JSON type there.
DOCS_ITEM = {
    "id": str,
    "userPrincipalName": str,
    "userDisplayName": str,
    "isAdmin": bool,
    "isSsprRegistered": bool,
    "isSsprEnabled": bool,
    "isSsprCapable": bool,
    "isMfaRegistered": bool,
    "isMfaCapable": bool,
    "isPasswordlessCapable": bool,
    "lastUpdatedDateTime": str,
    "methodsRegistered": list,
    "isSystemPreferredAuthenticationMethodEnabled": bool,
    "systemPreferredAuthenticationMethods": list,
    "userPreferredMethodForSecondaryAuthentication": str,
    "userType": str,
}
# The example's three users: (id, upn, display name, userType, methodsRegistered, isMfaRegistered).
DOCS_USERS = [
    (
        "86462606-fde0-4fc4-9e0c-a20eb73e54c6",
        "AlexW@contoso.onmicrosoft.com",
        "Alex Wilber",
        "Member",
        ["microsoftAuthenticatorPush", "softwareOneTimePasscode"],
        True,
    ),
    (
        "c6ad1942-4afa-47f8-8d48-afb5d8d69d2f",
        "AllanD@contoso.onmicrosoft.com",
        "Allan Deyoung",
        "Guest",
        [],
        False,
    ),
    (
        "c8096958-797c-44fa-8fde-a6fb62567cf0",
        "BiancaP@contoso.onmicrosoft.com",
        "Bianca Pisani",
        "Member",
        ["mobilePhone", "microsoftAuthenticatorPush", "softwareOneTimePasscode"],
        True,
    ),
]


@pytest.fixture
def docs_users(sim):
    for uid, upn, name, user_type, methods, _ in DOCS_USERS:
        sim.admin(
            "POST",
            f"/_sim/tenants/{CONTOSO}/users",
            json={
                "id": uid,
                "userPrincipalName": upn,
                "displayName": name,
                "userType": user_type,
                "methods": methods,
            },
        )
    return {u[0]: u for u in DOCS_USERS}


def _all(client, version: str = "v1.0", **params) -> list[dict]:
    """Every row, following @odata.nextLink (which must carry the query on)."""
    r = client.get(f"/{version}{REPORT}", params=params)
    assert r.status_code == 200, r.text
    body = r.json()
    rows = list(body["value"])
    while "@odata.nextLink" in body:
        body = client.get(body["@odata.nextLink"]).json()
        rows.extend(body["value"])
    return rows


def _refused(client, status: int, code: str, **params) -> dict:
    r = client.get(f"/v1.0{REPORT}", params=params)
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert error["code"] == code and error["message"]
    assert {"date", "request-id", "client-request-id"} <= set(error["innerError"])
    return error


def test_the_docs_example_request_answers_with_the_documented_shape(sim, graph, docs_users):
    """v1.0 "List userRegistrationDetails" example: GET …/v1.0/reports/authenticationMethods/
    userRegistrationDetails answers 200, the example's @odata.context and items with exactly its properties
    and JSON types (https://learn.microsoft.com/graph/api/authenticationmethodsroot-list-userregistrationdetails)."""
    c = graph(CONTOSO)
    r = c.get(f"/v1.0{REPORT}")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert (
        body["@odata.context"]
        == f"{sim.graph_base_url}/v1.0/$metadata#reports/authenticationMethods/userRegistrationDetails"
    )
    rows = _all(c)
    for row in rows:
        assert set(row) == set(DOCS_ITEM), set(row) ^ set(DOCS_ITEM)
        for name, kind in DOCS_ITEM.items():
            assert isinstance(row[name], kind), (name, row[name])
        assert all(
            isinstance(m, str) for m in row["methodsRegistered"] + row["systemPreferredAuthenticationMethods"]
        )
        assert row["userType"] in ("member", "guest")
    by_id = {row["id"]: row for row in rows}
    for uid, upn, name, user_type, methods, registered in docs_users.values():
        row = by_id[uid]
        assert (row["userPrincipalName"], row["userDisplayName"]) == (upn, name)
        assert row["userType"] == user_type.lower() and row["methodsRegistered"] == methods
        assert row["isMfaRegistered"] is registered and row["isMfaCapable"] is registered
    assert by_id[DOCS_USERS[0][0]]["systemPreferredAuthenticationMethods"] == ["push"]
    assert by_id[DOCS_USERS[1][0]]["systemPreferredAuthenticationMethods"] == []


def test_beta_items_also_carry_default_mfa_method(graph, docs_users):
    """The beta page's example items add defaultMfaMethod; the v1.0 resource has no such property
    (https://learn.microsoft.com/graph/api/authenticationmethodsroot-list-userregistrationdetails?view=graph-rest-beta)."""
    c = graph(CONTOSO)
    body = c.get(f"/beta{REPORT}").json()
    assert body["@odata.context"].endswith(
        "/beta/$metadata#reports/authenticationMethods/userRegistrationDetails"
    )
    assert all(isinstance(row["defaultMfaMethod"], str) for row in body["value"])
    one = c.get(f"/v1.0{REPORT}/{DOCS_USERS[0][0]}").json()
    assert "defaultMfaMethod" not in one and set(one) == {"@odata.context", *DOCS_ITEM}


@pytest.mark.parametrize(
    ("expression", "keep"),
    [
        ("isMfaRegistered eq false", lambda r: r["isMfaRegistered"] is False),
        ("isMfaRegistered eq true", lambda r: r["isMfaRegistered"] is True),
        ("isMfaCapable eq true", lambda r: r["isMfaCapable"] is True),
        ("isSsprRegistered eq false", lambda r: r["isSsprRegistered"] is False),
        ("isPasswordlessCapable eq false", lambda r: not r["isPasswordlessCapable"]),
        (
            "isSystemPreferredAuthenticationMethodEnabled eq false",
            lambda r: not r["isSystemPreferredAuthenticationMethodEnabled"],
        ),
        (
            "methodsRegistered/any(t: t eq 'microsoftAuthenticatorPush')",
            lambda r: "microsoftAuthenticatorPush" in r["methodsRegistered"],
        ),
        ("methodsRegistered/any(x:x eq 'mobilePhone')", lambda r: "mobilePhone" in r["methodsRegistered"]),
        (
            "systemPreferredAuthenticationMethods/any(m: m eq 'push')",
            lambda r: "push" in r["systemPreferredAuthenticationMethods"],
        ),
        (
            "userPrincipalName eq 'alexw@CONTOSO.onmicrosoft.com'",
            lambda r: r["userPrincipalName"].lower() == "alexw@contoso.onmicrosoft.com",
        ),
        ("startswith(userDisplayName,'b')", lambda r: r["userDisplayName"].lower().startswith("b")),
        (
            "userPreferredMethodForSecondaryAuthentication eq 'push'",
            lambda r: r["userPreferredMethodForSecondaryAuthentication"] == "push",
        ),
        ("userType eq 'member'", lambda r: r["userType"] == "member"),  # the members-only read
        ("userType eq 'Guest'", lambda r: r["userType"] == "guest"),  # values compare case-insensitively
        (
            "isMfaRegistered eq false and startswith(userPrincipalName, 'a')",
            lambda r: not r["isMfaRegistered"] and r["userPrincipalName"].lower().startswith("a"),
        ),
    ],
)
def test_documented_filters_keep_exactly_the_matching_rows(graph, docs_users, expression, keep):
    """Each property the list page's table and the resource page mark as filterable, with its operator
    (https://learn.microsoft.com/graph/api/resources/userregistrationdetails)."""
    c = graph(CONTOSO)
    everyone = _all(c)
    filtered = _all(c, **{"$filter": expression})
    assert [r["id"] for r in filtered] == [r["id"] for r in everyone if keep(r)]
    assert len(filtered) < len(everyone)  # the filter did something


def test_a_filtered_read_pages_with_the_filter_kept(graph, sim):
    """A filter keeps working across the server's pages (nextLink carries $filter and $skiptoken)."""
    c = graph(CONTOSO)
    for i in range(110):
        sim.admin(
            "POST",
            f"/_sim/tenants/{CONTOSO}/users",
            json={"userPrincipalName": f"new{i}@contoso.onmicrosoft.com"},
        )
    first = c.get(f"/v1.0{REPORT}", params={"$filter": "isMfaRegistered eq false"}).json()
    assert "$filter" in first["@odata.nextLink"] and "$skiptoken" in first["@odata.nextLink"]
    rows = _all(c, **{"$filter": "isMfaRegistered eq false"})
    assert len(rows) >= 110 and not any(r["isMfaRegistered"] for r in rows)
    assert len({r["id"] for r in rows}) == len(rows)


@pytest.mark.parametrize(
    ("orderby", "key", "descending"),
    [
        ("userPrincipalName", "userPrincipalName", False),
        ("userPrincipalName desc", "userPrincipalName", True),
        ("userDisplayName asc", "userDisplayName", False),
    ],
)
def test_orderby_sorts_on_the_two_documented_properties(graph, orderby, key, descending):
    """userDisplayName and userPrincipalName "Support … $orderby" (resource page)."""
    rows = _all(graph(CONTOSO), **{"$orderby": orderby})
    values = [r[key].lower() for r in rows]
    assert values == sorted(values, reverse=descending) and len(set(values)) > 1


@pytest.mark.parametrize("option", ["$top", "$select", "$count", "$search", "$expand", "$skip", "$TOP"])
def test_query_options_the_page_does_not_document_are_refused(graph, option):
    """The list page documents $filter only (and the resource page $orderby): the rest answer 400."""
    value = {"$select": "id", "$count": "true", "$search": '"alex"', "$expand": "x"}.get(option, "5")
    error = _refused(graph(CONTOSO), 400, "Request_UnsupportedQuery", **{option: value})
    assert option.lower() in error["message"]


@pytest.mark.parametrize(
    ("expression", "code"),
    [
        ("userType ne 'member'", "Request_UnsupportedQuery"),  # userType takes eq only
        ("isAdmin eq true", "Request_UnsupportedQuery"),  # nor on isAdmin
        ("isMfaRegistered ne true", "Request_UnsupportedQuery"),  # eq only
        ("startswith(userPreferredMethodForSecondaryAuthentication,'p')", "Request_UnsupportedQuery"),
        ("methodsRegistered/any(t: t ne 'email')", "Request_UnsupportedQuery"),  # any with eq only
        ("userType/any(t: t eq 'member')", "Request_UnsupportedQuery"),
        ("isMfaRegistered eq false or isAdmin eq true", "Request_UnsupportedQuery"),
        ("methodsRegistered eq 'email'", "BadRequest"),  # a collection: any() is the documented form
        ("isMfaRegistered eq 'false'", "BadRequest"),
        ("userPrincipalName eq alex", "BadRequest"),
        ("isMfaRegistered", "BadRequest"),
    ],
)
def test_undocumented_properties_and_operators_are_refused(graph, expression, code):
    _refused(graph(CONTOSO), 400, code, **{"$filter": expression})


@pytest.mark.parametrize(
    ("orderby", "code"),
    [("isMfaRegistered", "Request_UnsupportedQuery"), ("userPrincipalName up", "BadRequest")],
)
def test_orderby_on_anything_else_is_refused(graph, orderby, code):
    _refused(graph(CONTOSO), 400, code, **{"$orderby": orderby})


def test_a_tenant_without_premium_is_refused_whatever_the_query(graph):
    """The resource page sends readers to the report's licence requirements; Graph answers a tenant
    without Entra ID P1/P2 with 403 (observed code)."""
    for params in ({}, {"$filter": "isMfaRegistered eq false"}):
        r = graph(TAILSPIN).get(f"/v1.0{REPORT}", params=params)
        assert r.status_code == 403
        assert r.json()["error"]["code"] == "Authentication_RequestFromNonPremiumTenantOrB2CTenant"
