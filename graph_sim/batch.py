"""JSON ``$batch``: up to 20 items, unique ids, relative URLs, ``dependsOn``; every item goes through
the same pipeline as a top-level request (auth, permissions, throttling, faults) and gets its own status."""

from __future__ import annotations

import asyncio

from graph_sim.graph_api import dispatch
from graph_sim.graph_http import GraphRequest, GraphResponse, error, parse_query, split_path

MAX_ITEMS = 20
METHODS = ("GET", "POST", "PATCH", "PUT", "DELETE")


# An item's own headers: Retry-After and Location, and the identity-and-access throttling headers
# (throttle.Decision.headers), so each item says what it cost and how full its limits are.
ITEM_HEADERS = frozenset(
    (
        "retry-after",
        "location",
        "x-ms-resource-unit",
        "x-ms-throttle-limit-percentage",
        "x-ms-throttle-scope",
        "x-ms-throttle-information",
    )
)


def _item_response(item_id: str, resp: GraphResponse) -> dict:
    headers = {k: v for k, v in resp.headers.items() if k.lower() in ITEM_HEADERS}
    out = {"id": item_id, "status": resp.status, "headers": headers}
    if resp.body is not None:
        headers["Content-Type"] = "application/json; charset=utf-8"
        out["body"] = resp.body
    return out


async def handle_batch(sim, outer: GraphRequest, tenant_id: str | None = None) -> GraphResponse:
    """The outer response; ``drop`` is set when an item committed a write and must lose its answer.
    Every item's answer is counted in the stats under ``tenant_id`` (the token's tenant)."""
    body = outer.body
    if not isinstance(body, dict) or not isinstance(body.get("requests"), list):
        return error(outer, 400, "BadRequest", "Invalid batch payload format.")
    items = body["requests"]
    if len(items) > MAX_ITEMS:
        return error(outer, 400, "BadRequest", f"Number of batch requests exceeded the limit of {MAX_ITEMS}.")
    if not items:
        return error(outer, 400, "BadRequest", "Invalid batch payload format: 'requests' is empty.")
    ids: list[str] = []
    for item in items:
        if not isinstance(item, dict) or not all(
            isinstance(item.get(k), str) and item.get(k) for k in ("id", "method", "url")
        ):
            return error(outer, 400, "BadRequest", "Each batch request needs 'id', 'method' and 'url'.")
        if item["id"] in ids:
            return error(
                outer, 400, "BadRequest", f"Batch request ids must be unique; '{item['id']}' is repeated."
            )
        ids.append(item["id"])
    for item in items:
        deps = item.get("dependsOn", [])
        if not isinstance(deps, list) or any(d not in ids or d == item["id"] for d in deps):
            return error(outer, 400, "BadRequest", f"Request '{item['id']}' has an invalid dependsOn.")

    tasks: dict[str, asyncio.Task] = {}

    async def run(item: dict) -> GraphResponse:
        for dep in item.get("dependsOn", []):
            dep_resp = await tasks[dep]
            if dep_resp.status >= 400:
                r = error(outer, 424, "FailedDependency", f"Dependent request '{dep}' failed.")
                return r
        return await _run_item(sim, outer, item)

    # Start in order so a chain of dependsOn items runs in sequence; independent items run concurrently.
    for item in items:
        tasks[item["id"]] = asyncio.ensure_future(run(item))
    results = [await tasks[item["id"]] for item in items]
    if tenant_id not in sim.state.tenants:
        tenant_id = None
    record = sim.stats.record
    for r in results:
        record(tenant_id, r, item=True)
    out = GraphResponse(
        200, {"responses": [_item_response(i["id"], r) for i, r in zip(items, results, strict=True)]}
    )
    out.drop = any(r.drop for r in results)
    return out


async def _run_item(sim, outer: GraphRequest, item: dict) -> GraphResponse:
    headers = {k.lower(): str(v) for k, v in (item.get("headers") or {}).items()}
    req = GraphRequest(
        method=item["method"].upper(),
        version=outer.version,
        segments=[],
        query={},
        headers={**headers, "authorization": outer.headers.get("authorization", "")},
        batch_parent=outer.request_id,
        client_request_id=headers.get("client-request-id") or outer.client_request_id,
    )
    url = item["url"]
    if "://" in url:
        return error(
            req,
            400,
            "BadRequest",
            "Batch request URLs must be relative to the version (e.g. '/users?$top=5').",
        )
    path, _, query = url.partition("?")
    req.segments, req.query, req.raw_path = split_path(path), parse_query(query), path
    if req.segments and req.segments[0] in ("v1.0", "beta"):
        return error(req, 400, "BadRequest", "Batch request URLs must not repeat the version segment.")
    if req.method not in METHODS:
        return error(req, 400, "BadRequest", f"Invalid method '{item['method']}'.")
    if req.segments == ["$batch"]:
        return error(req, 400, "BadRequest", "Nested batch requests are not supported.")
    if "body" in item:
        if "content-type" not in headers:
            return error(
                req, 400, "BadRequest", "Content-Type header must be specified when a body is present."
            )
        req.body, req.has_body = item["body"], True
    return await dispatch(sim, req)
