"""JSON $batch semantics: limits, per-item statuses, dependsOn and 424, Content-Type rule."""

from __future__ import annotations

from tests.graph_sim.conftest import CONTOSO, LITWARE

JSON = {"Content-Type": "application/json"}


def _by_id(r) -> dict:
    assert r.status_code == 200
    return {i["id"]: i for i in r.json()["responses"]}


def test_it_refuses_more_than_twenty_items(graph):
    body = {"requests": [{"id": str(i), "method": "GET", "url": "/organization"} for i in range(21)]}
    r = graph().post("/v1.0/$batch", json=body)
    assert r.status_code == 400 and r.json()["error"]["code"] == "BadRequest"
    body["requests"] = body["requests"][:20]
    assert graph().post("/v1.0/$batch", json=body).status_code == 200


def test_it_refuses_duplicate_ids(graph):
    body = {"requests": [{"id": "1", "method": "GET", "url": "/organization"}] * 2}
    assert graph().post("/v1.0/$batch", json=body).status_code == 400


def test_it_answers_each_item_with_its_own_status(sim, graph):
    user = next(u for u in sim.tenant(LITWARE).users if u.per_user_state == "enforced")
    r = graph(LITWARE).post(
        "/beta/$batch",
        json={
            "requests": [
                {"id": "a", "method": "GET", "url": f"/users/{user.id}/authentication/requirements"},
                {"id": "b", "method": "GET", "url": "/users/nobody@litware.onmicrosoft.com"},
                {
                    "id": "c",
                    "method": "PATCH",
                    "url": f"/users/{user.id}/authentication/requirements",
                    "headers": JSON,
                    "body": {"perUserMfaState": "disabled"},
                },  # partial consent: 403
                {"id": "d", "method": "GET", "url": "/organization?$select=id"},
            ]
        },
    )
    items = _by_id(r)
    assert items["a"]["status"] == 200 and items["a"]["body"]["perUserMfaState"] == "enforced"
    assert items["b"]["status"] == 404 and items["b"]["body"]["error"]["code"] == "Request_ResourceNotFound"
    assert (
        items["c"]["status"] == 403 and items["c"]["body"]["error"]["code"] == "Authorization_RequestDenied"
    )
    assert items["d"]["status"] == 200
    assert [i["id"] for i in r.json()["responses"]] == ["a", "b", "c", "d"]


def test_it_fails_dependents_of_a_failed_item_with_424(sim, graph):
    user = next(u for u in sim.tenant(CONTOSO).users if u.per_user_state == "enforced")
    r = graph(CONTOSO).post(
        "/beta/$batch",
        json={
            "requests": [
                {
                    "id": "1",
                    "method": "PATCH",
                    "url": "/users/ghost@contoso.onmicrosoft.com/authentication/requirements",
                    "headers": JSON,
                    "body": {"perUserMfaState": "disabled"},
                },
                {
                    "id": "2",
                    "dependsOn": ["1"],
                    "method": "PATCH",
                    "url": f"/users/{user.id}/authentication/requirements",
                    "headers": JSON,
                    "body": {"perUserMfaState": "disabled"},
                },
                {
                    "id": "3",
                    "method": "PATCH",
                    "url": f"/users/{user.id}/authentication/requirements",
                    "headers": JSON,
                    "body": {"perUserMfaState": "disabled"},
                },
                {
                    "id": "4",
                    "dependsOn": ["3"],
                    "method": "GET",
                    "url": f"/users/{user.id}/authentication/requirements",
                },
            ]
        },
    )
    items = _by_id(r)
    assert items["1"]["status"] == 404
    assert items["2"]["status"] == 424
    assert items["3"]["status"] == 204 and "body" not in items["3"]
    assert items["4"]["status"] == 200 and items["4"]["body"]["perUserMfaState"] == "disabled"  # ran after 3
    assert user.per_user_state == "disabled"


def test_it_refuses_an_item_body_without_content_type(sim, graph):
    user = next(u for u in sim.tenant(CONTOSO).users if u.per_user_state == "enforced")
    r = graph(CONTOSO).post(
        "/beta/$batch",
        json={
            "requests": [
                {
                    "id": "1",
                    "method": "PATCH",
                    "url": f"/users/{user.id}/authentication/requirements",
                    "body": {"perUserMfaState": "disabled"},
                },
                {"id": "2", "method": "GET", "url": "https://graph.microsoft.com/v1.0/organization"},
            ]
        },
    )
    items = _by_id(r)
    assert items["1"]["status"] == 400 and user.per_user_state == "enforced"
    assert items["2"]["status"] == 400  # absolute URLs are not accepted in items


def test_it_needs_a_token_for_the_batch_itself(sim):
    r = sim.http.post(
        "/v1.0/$batch", json={"requests": [{"id": "1", "method": "GET", "url": "/organization"}]}
    )
    assert r.status_code == 401
