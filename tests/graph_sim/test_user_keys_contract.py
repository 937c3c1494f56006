"""Addressing a user by UPN as Get user documents it (https://learn.microsoft.com/graph/api/user-get, the
HTTP request tip): a UPN that begins with '$' fails as `/users/$x@y.com` with 400 Bad Request and works as
`/users('$x@y.com')`; a B2B guest's '#' is encoded as %23 (`/users/AdeleVance_adatum.com%23EXT%23@…`)."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from tests.graph_sim.conftest import WOODGROVE

DOLLAR_UPN = "$svc.scanner@woodgrove.onmicrosoft.com"


@pytest.fixture
def dollar_user(sim):
    return sim.admin("POST", f"/_sim/tenants/{WOODGROVE}/users", json={"userPrincipalName": DOLLAR_UPN})


@pytest.mark.parametrize("path", [f"/v1.0/users/{DOLLAR_UPN}", f"/v1.0/users/{quote(DOLLAR_UPN, safe='@')}"])
def test_a_dollar_upn_after_a_slash_is_a_bad_request(graph, dollar_user, path):
    r = graph(WOODGROVE).get(path)
    assert r.status_code == 400 and r.json()["error"]["code"] == "BadRequest"


def test_a_dollar_upn_in_the_key_form_is_found_also_in_a_batch(graph, dollar_user):
    c = graph(WOODGROVE)
    r = c.get(f"/v1.0/users('{DOLLAR_UPN}')")
    assert r.status_code == 200 and r.json()["id"] == dollar_user["id"]
    items = c.post(
        "/v1.0/$batch",
        json={
            "requests": [
                {"id": "1", "method": "GET", "url": f"/users('{DOLLAR_UPN}')"},
                {"id": "2", "method": "GET", "url": f"/users/{DOLLAR_UPN}"},
            ]
        },
    ).json()["responses"]
    by_id = {i["id"]: i for i in items}
    assert by_id["1"]["status"] == 200 and by_id["2"]["status"] == 400


def test_the_documented_ext_guest_form_is_found(graph):
    r = graph(WOODGROVE).get("/v1.0/users/jane.doe_gmail.com%23EXT%23@woodgrove.onmicrosoft.com")
    assert r.status_code == 200 and "#EXT#" in r.json()["userPrincipalName"]
