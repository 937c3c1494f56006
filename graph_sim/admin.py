"""``/_sim/`` admin API: inspect state, read the request log and timeline, inject drift and faults.

Loopback only (the server binds 127.0.0.1), no auth, JSON in and out. Changes made here bypass Graph's
throttles and permissions but still land on the tenant timeline (source ``admin``).
"""

from __future__ import annotations

import bisect
import json
import uuid

from aiohttp import web

from graph_sim import audit_logs, clock, sign_in_policies
from graph_sim.app_key import SIM_KEY
from graph_sim.conditional_access import deep_merge, normalize_policy
from graph_sim.evaluator import coverage_gaps, requires_mfa, simulate_sign_in
from graph_sim.state import MAILBOX_PURPOSES, PER_USER_STATES, User
from graph_sim.throttle import ThrottleLimits


def _bad(message: str, status: int = 400) -> web.Response:
    return web.json_response({"error": message}, status=status)


async def _json(request: web.Request) -> dict:
    if not request.can_read_body:
        return {}
    try:
        data = await request.json()
    except (ValueError, json.JSONDecodeError) as exc:
        raise web.HTTPBadRequest(
            text=json.dumps({"error": f"invalid JSON: {exc}"}), content_type="application/json"
        ) from exc
    if not isinstance(data, dict):
        raise web.HTTPBadRequest(text='{"error": "expected a JSON object"}', content_type="application/json")
    return data


async def _json_any(request: web.Request) -> object:
    """The JSON body, object or array (``{}`` when there is none)."""
    if not request.can_read_body:
        return {}
    try:
        return await request.json()
    except (ValueError, json.JSONDecodeError) as exc:
        raise web.HTTPBadRequest(
            text=json.dumps({"error": f"invalid JSON: {exc}"}), content_type="application/json"
        ) from exc


def _tenant(request: web.Request):
    tenant = request.app[SIM_KEY].state.resolve(request.match_info["tid"])
    if tenant is None:
        raise web.HTTPNotFound(
            text=json.dumps({"error": f"unknown tenant {request.match_info['tid']!r}"}),
            content_type="application/json",
        )
    tenant.settle()
    return tenant


def _user(request: web.Request, tenant):
    user = tenant.find_user(request.match_info["uid"])
    if user is None:
        raise web.HTTPNotFound(
            text=json.dumps({"error": f"unknown user {request.match_info['uid']!r}"}),
            content_type="application/json",
        )
    return user


def _float(request: web.Request, name: str, default: float | None) -> float | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError as exc:
        raise web.HTTPBadRequest(
            text=json.dumps({"error": f"{name} must be a number"}), content_type="application/json"
        ) from exc


async def health(request: web.Request) -> web.Response:
    sim = request.app[SIM_KEY]
    return web.json_response(
        {
            "status": "ok",
            "fleet": sim.state.fleet_name,
            "tenants": len(sim.state.tenants),
            "clock": sim.clock.monotonic(),
            "time_scale": sim.clock.scale,
            "wall": clock.iso(),
            "throttle_enabled": sim.throttle.enabled,
            "base_url": sim.base_url,
        }
    )


async def fleet(request: web.Request) -> web.Response:
    return web.json_response(request.app[SIM_KEY].fleet_json())


async def tenant_state(request: web.Request) -> web.Response:
    return web.json_response(_tenant(request).snapshot())


async def timeline(request: web.Request) -> web.Response:
    tenant = _tenant(request)
    since_seq = int(request.query.get("since_seq", 0))
    # Event seqs grow along a timeline, so a poller's "what is new" does not rescan a long history.
    start = bisect.bisect_right(tenant.timeline, since_seq, key=lambda e: e.seq)
    return web.json_response(
        {"clock": tenant.clock.monotonic(), "events": [e.as_dict() for e in tenant.timeline[start:]]}
    )


async def coverage(request: web.Request) -> web.Response:
    tenant = _tenant(request)
    since = _float(request, "since", 0.0)
    until = _float(request, "until", None)
    gaps = coverage_gaps(tenant, since, until)
    return web.json_response(
        {
            "since": since,
            "until": until,
            "clock": tenant.clock.monotonic(),
            "gaps": [g.as_dict() for g in gaps],
        }
    )


async def requests_log(request: web.Request) -> web.Response:
    sim = request.app[SIM_KEY]
    tenant = request.query.get("tenant")
    if tenant:
        resolved = sim.state.resolve(tenant)
        tenant = resolved.id if resolved else tenant
    entries = sim.state.log.since(
        int(request.query.get("since_seq", 0)), tenant, int(request.query.get("limit", 10_000))
    )
    return web.json_response(
        {
            "requests": entries,
            "counters": sim.state.log.counters,
            "by_status": {str(k): v for k, v in sim.state.log.by_status.items()},
        }
    )


async def stats(request: web.Request) -> web.Response:
    """Running counters (see ``graph_sim.stats``); ``?tenant=<id or domain>`` keeps one tenant."""
    sim = request.app[SIM_KEY]
    key = request.query.get("tenant")
    if key is None:
        return web.json_response(sim.stats.as_dict())
    tenant = sim.state.resolve(key)
    if tenant is None:
        return _bad(f"unknown tenant {key!r}", 404)
    return web.json_response(sim.stats.as_dict([tenant.id]))


async def faults(request: web.Request) -> web.Response:
    tenant = _tenant(request)
    try:
        tenant.faults.update(await _json(request))
    except ValueError as exc:
        return _bad(str(exc))
    return web.json_response(tenant.faults.as_dict())


async def fault_rules(request: web.Request) -> web.Response:
    """GET: the rules with their firings; POST ``{"rules": [...], "replace": bool}`` (or a bare array):
    append (default) or replace; DELETE: remove them all. Every answer is ``{"rules": [...]}``."""
    tenant = _tenant(request)
    rules = tenant.fault_rules
    if request.method == "POST":
        data = await _json_any(request)
        if isinstance(data, list):
            data = {"rules": data}
        if not isinstance(data, dict) or "rules" not in data:
            return _bad('expected {"rules": [rule, ...], "replace": false} or a JSON array of rules')
        unknown = sorted(set(data) - {"rules", "replace"})
        if unknown:
            return _bad(f"unknown field(s) {unknown}; expected 'rules' and optionally 'replace'")
        replace = data.get("replace", False)
        if not isinstance(replace, bool):
            return _bad("replace must be a boolean")
        try:
            rules.add(data["rules"], replace=replace)
        except ValueError as exc:
            return _bad(str(exc))
    elif request.method == "DELETE":
        return web.json_response({"deleted": rules.clear(), "rules": []})
    return web.json_response({"rules": rules.as_list()})


async def throttle(request: web.Request) -> web.Response:
    sim = request.app[SIM_KEY]
    data = await _json(request)
    if "enabled" in data:
        if not isinstance(data["enabled"], bool):
            return _bad("enabled must be a boolean")
        sim.throttle.enabled = data["enabled"]
    if "limits" in data:
        try:
            sim.throttle.limits = ThrottleLimits(**{**sim.throttle.limits.__dict__, **data["limits"]})
        except TypeError as exc:
            return _bad(str(exc))
        sim.throttle.reset()
    if data.get("reset"):
        sim.throttle.reset()
    return web.json_response({"enabled": sim.throttle.enabled, "limits": sim.throttle.limits.__dict__})


async def consent(request: web.Request) -> web.Response:
    from graph_sim.auth import FULL_ROLES

    tenant = _tenant(request)
    data = await _json(request)
    granted = data.get("granted", True)
    roles = data.get("roles", FULL_ROLES)
    if not isinstance(granted, bool) or not isinstance(roles, list):
        return _bad("expected {'granted': bool, 'roles': [..]}")
    tenant.set_consent(granted, roles, "admin")
    return web.json_response({"consent_granted": tenant.consent_granted, "roles": tenant.roles})


async def register(request: web.Request) -> web.Response:
    tenant = _tenant(request)
    user = _user(request, tenant)
    data = await _json(request)
    methods = data.get("methods") or ["microsoftAuthenticatorPush"]
    tenant.register_methods(user, methods, "admin")
    return web.json_response(tenant.user_state(user))


async def signin(request: web.Request) -> web.Response:
    tenant = _tenant(request)
    user = _user(request, tenant)
    data = await _json(request)
    return web.json_response(
        simulate_sign_in(
            tenant, user, register_if_prompted=data.get("register", True), methods=data.get("methods")
        )
    )


async def requires(request: web.Request) -> web.Response:
    tenant = _tenant(request)
    user = _user(request, tenant)
    ip = request.query.get("ip") or None
    required, reasons = requires_mfa(tenant, user, _float(request, "at", None), ip)
    return web.json_response({"userId": user.id, "mfaRequired": required, "reasons": reasons})


async def security_defaults(request: web.Request) -> web.Response:
    tenant = _tenant(request)
    data = await _json(request)
    if not isinstance(data.get("enabled"), bool):
        return _bad("expected {'enabled': bool}")
    tenant.set_security_defaults(data["enabled"], "admin")
    return web.json_response({"security_defaults": tenant.security_defaults})


async def per_user_mfa(request: web.Request) -> web.Response:
    tenant = _tenant(request)
    user = _user(request, tenant)
    data = await _json(request)
    state = data.get("state", data.get("perUserMfaState"))
    if state not in PER_USER_STATES:
        return _bad(f"state must be one of {PER_USER_STATES}")
    tenant.set_per_user_state(user, state, "admin")
    return web.json_response(tenant.user_state(user))


def _portal_admin(tenant) -> dict:
    """``initiatedBy.user`` of a change made behind Graph's back (an admin in the portal)."""
    return {
        "id": None,
        "displayName": "Portal Admin",
        "userPrincipalName": f"admin@{tenant.domain}",
        "ipAddress": "192.0.2.10",
    }


async def mfa_service_policy(request: web.Request) -> web.Response:
    """GET the legacy MFA service settings; POST an object to set them (any shape: the resource is
    undocumented, so tests may inject odd data such as IPv6 trusted IPs); DELETE to make the beta path
    answer like an unknown segment for this tenant."""
    tenant = _tenant(request)
    if request.method == "POST":
        data = await _json(request)
        if not data:
            return _bad("expected the mfaServicePolicy object (POST {}) — use DELETE to remove it")
        tenant.set_mfa_service_policy({"id": "mfaServicePolicy", **data}, "admin")
    elif request.method == "DELETE":
        tenant.set_mfa_service_policy(None, "admin")
    return web.json_response({"mfa_service_policy": tenant.mfa_service_policy})


def _sign_in_from(tenant, spec: object, i: int) -> dict:
    if not isinstance(spec, dict):
        raise ValueError(f"signIns[{i}] must be an object")
    key = spec.get("userId") or spec.get("userPrincipalName")
    user = tenant.find_user(str(key)) if key else None
    if user is None:
        raise ValueError(f"signIns[{i}]: unknown user {key!r} (give userId or userPrincipalName)")
    client = spec.get("clientAppUsed", "Browser")
    if not isinstance(client, str) or not client:
        raise ValueError(f"signIns[{i}].clientAppUsed must be a string")
    if "createdDateTime" in spec:
        try:
            created = audit_logs.parse_datetime(str(spec["createdDateTime"]))
        except ValueError as exc:
            raise ValueError(
                f"signIns[{i}].createdDateTime must be an ISO 8601 timestamp with a zone"
            ) from exc
    else:
        hours = spec.get("hoursAgo", 0)
        if not isinstance(hours, int | float) or isinstance(hours, bool):
            raise ValueError(f"signIns[{i}].hoursAgo must be a number")
        created = audit_logs.hours_ago(clock.utcnow(), hours)
    code = spec.get("errorCode", 0)
    if not isinstance(code, int) or isinstance(code, bool):
        raise ValueError(f"signIns[{i}].errorCode must be an integer")
    return audit_logs.sign_in(
        user_id=user.id,
        upn=user.upn,
        display_name=user.display_name,
        client_app=client,
        created=created,
        app_display_name=spec.get("appDisplayName"),
        ip=str(spec.get("ipAddress", "198.51.100.23")),
        error=(code, spec.get("failureReason") or "Other.") if code else None,
        entry_id=spec.get("id"),
    )


async def sign_ins(request: web.Request) -> web.Response:
    """GET a tenant's sign-in log entries; POST ``{"signIns": [spec, ...], "replace": false}`` (or a bare
    array) to add entries, each spec ``{"userPrincipalName" | "userId", "clientAppUsed"?,
    "appDisplayName"?, "createdDateTime"? | "hoursAgo"?, "ipAddress"?, "errorCode"?, "failureReason"?,
    "id"?}``; DELETE clears them."""
    tenant = _tenant(request)
    if request.method == "POST":
        data = await _json_any(request)
        if isinstance(data, list):
            data = {"signIns": data}
        if not isinstance(data, dict) or not isinstance(data.get("signIns"), list):
            return _bad('expected {"signIns": [spec, ...], "replace": false} or a JSON array of specs')
        try:
            entries = [_sign_in_from(tenant, spec, i) for i, spec in enumerate(data["signIns"])]
        except ValueError as exc:
            return _bad(str(exc))
        if data.get("replace"):
            tenant.sign_ins.clear()
        sign_in_policies.stamp(tenant, entries)
        tenant.add_sign_ins(entries)
        return web.json_response({"added": entries, "count": len(tenant.sign_ins)})
    if request.method == "DELETE":
        deleted = len(tenant.sign_ins)
        tenant.sign_ins.clear()
        return web.json_response({"deleted": deleted, "count": 0})
    return web.json_response({"signIns": audit_logs.newest_first(tenant.sign_ins, "createdDateTime")})


async def policy_drift(request: web.Request) -> web.Response:
    """Patch a CA policy behind Graph's back (drift: disabled policy, removed exclusion)."""
    tenant = _tenant(request)
    pid = request.match_info["pid"]
    if pid not in tenant.policies:
        return _bad(f"unknown policy {pid!r}", 404)
    merged = normalize_policy(deep_merge(tenant.policies[pid], await _json(request)))
    merged["modifiedDateTime"] = clock.iso()
    tenant.put_policy(merged, "admin")
    tenant.add_directory_audit(
        audit_logs.directory_audit(
            activity="Update conditional access policy",
            operation="Update",
            target_id=pid,
            target_name=merged["displayName"],
            user=_portal_admin(tenant),
        )
    )
    return web.json_response(merged)


async def policy_delete(request: web.Request) -> web.Response:
    """Delete a CA policy behind Graph's back (drift: an admin deleted it in the portal). Microsoft-managed
    policies cannot be deleted, as in Entra."""
    tenant = _tenant(request)
    pid = request.match_info["pid"]
    if pid not in tenant.policies:
        return _bad(f"unknown policy {pid!r}", 404)
    if pid in tenant.managed_policy_ids:
        return _bad("Microsoft-managed policies cannot be deleted", 409)
    tenant.add_directory_audit(
        audit_logs.directory_audit(
            activity="Delete conditional access policy",
            operation="Delete",
            target_id=pid,
            target_name=tenant.policies[pid]["displayName"],
            user=_portal_admin(tenant),
        )
    )
    tenant.delete_policy(pid, "admin")
    return web.json_response({"deleted": pid})


async def user_create(request: web.Request) -> web.Response:
    """Create a user behind Graph's back (an admin adding a new hire in the portal): new users start
    without registered methods unless ``methods`` says otherwise."""
    tenant = _tenant(request)
    data = await _json(request)
    upn = data.get("userPrincipalName")
    if not isinstance(upn, str) or "@" not in upn:
        return _bad("expected {'userPrincipalName': 'name@domain', ...}")
    if upn.rsplit("@", 1)[1].lower() not in {d.lower() for d in tenant.domains}:
        return _bad(f"{upn!r} is not in one of the tenant's domains {tenant.domains}")
    state = data.get("perUserMfaState", "disabled")
    methods = data.get("methods", [])
    if state not in PER_USER_STATES:
        return _bad(f"perUserMfaState must be one of {PER_USER_STATES}")
    if not isinstance(methods, list) or not all(isinstance(m, str) for m in methods):
        return _bad("methods must be a list of method names")
    purpose = data.get("userPurpose", "user")
    if purpose is not None and purpose not in MAILBOX_PURPOSES:
        return _bad(f"userPurpose must be null (no mailbox) or one of {MAILBOX_PURPOSES}")
    user = User(
        id=str(data.get("id") or uuid.uuid4()),
        upn=upn,
        display_name=str(data.get("displayName") or upn.split("@")[0]),
        account_enabled=bool(data.get("accountEnabled", True)),
        user_type=str(data.get("userType") or "Member"),
        per_user_state=state,
        methods=list(methods),
        created=clock.iso(),
        last_updated=clock.iso(),
        mailbox_purpose=purpose,
    )
    try:
        tenant.add_user(user, "admin")
    except ValueError as exc:
        return _bad(str(exc), 409)
    return web.json_response(tenant.user_state(user), status=201)


async def reset(request: web.Request) -> web.Response:
    sim = request.app[SIM_KEY]
    sim.reset()
    return web.json_response({"status": "reset", "clock": sim.clock.monotonic()})


def add_routes(app: web.Application) -> None:
    t = "/_sim/tenants/{tid}"
    app.router.add_get("/_sim/health", health)
    app.router.add_get("/_sim/fleet", fleet)
    app.router.add_get("/_sim/requests", requests_log)
    app.router.add_get("/_sim/stats", stats)
    app.router.add_post("/_sim/throttle", throttle)
    app.router.add_post("/_sim/reset", reset)
    app.router.add_get(f"{t}/state", tenant_state)
    app.router.add_get(f"{t}/timeline", timeline)
    app.router.add_get(f"{t}/coverage", coverage)
    app.router.add_post(f"{t}/faults", faults)
    for method in ("GET", "POST", "DELETE"):
        app.router.add_route(method, f"{t}/fault-rules", fault_rules)
    app.router.add_post(f"{t}/consent", consent)
    app.router.add_post(f"{t}/security-defaults", security_defaults)
    app.router.add_post(f"{t}/policies/{{pid}}", policy_drift)
    app.router.add_delete(f"{t}/policies/{{pid}}", policy_delete)
    app.router.add_post(f"{t}/users", user_create)
    for method in ("GET", "POST", "DELETE"):
        app.router.add_route(method, f"{t}/mfa-service-policy", mfa_service_policy)
        app.router.add_route(method, f"{t}/signins", sign_ins)
    app.router.add_post(f"{t}/users/{{uid}}/register", register)
    app.router.add_post(f"{t}/users/{{uid}}/signin", signin)
    app.router.add_post(f"{t}/users/{{uid}}/per-user-mfa", per_user_mfa)
    app.router.add_get(f"{t}/users/{{uid}}/requires-mfa", requires)
