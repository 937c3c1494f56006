"""Graph resource handlers and the per-request pipeline (auth -> route -> permission -> throttle ->
fault rules -> random fault knobs -> handler -> log). Paths follow Microsoft Graph v1.0 and beta as
documented."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import quote

from graph_sim import audit_logs, auth_strengths, clock, registration_report
from graph_sim.conditional_access import (
    MAX_NAMED_LOCATIONS,
    READ_ONLY,
    SD_ENABLED_MESSAGE,
    deep_merge,
    locations_referenced,
    normalize_policy,
    validate_named_location,
    validate_policy,
    validate_references,
)
from graph_sim.evaluator import WhatIfError, what_if
from graph_sim.faults import RULE_ERRORS
from graph_sim.graph_http import GraphRequest, GraphResponse, dollar_key_segment, error
from graph_sim.state import PER_USER_STATES, SECURITY_DEFAULTS_ID, SSPR_METHODS, Tenant, User
from graph_sim.throttle import format_retry_after

INSUFFICIENT = "Insufficient privileges to complete the operation."
USER_DEFAULT_V1 = (
    "businessPhones",
    "displayName",
    "givenName",
    "jobTitle",
    "mail",
    "mobilePhone",
    "officeLocation",
    "preferredLanguage",
    "surname",
    "userPrincipalName",
    "id",
)

# Permission alternatives: the request passes if the token's roles contain every role of one set.
P_USERS = ({"User.Read.All"}, {"User.ReadWrite.All"}, {"Directory.Read.All"}, {"Directory.ReadWrite.All"})
P_ORG = ({"Organization.Read.All"}, {"Organization.ReadWrite.All"}, {"Directory.Read.All"})
P_GROUPS = ({"GroupMember.Read.All"}, {"Group.Read.All"}, {"Group.ReadWrite.All"}, {"Directory.Read.All"})
P_POLICY_READ = ({"Policy.Read.All"},)
P_AUTH_REQ_READ = ({"Policy.Read.All"}, {"Policy.ReadWrite.AuthenticationMethod"})
P_AUTH_REQ_WRITE = ({"Policy.ReadWrite.AuthenticationMethod"},)
P_SD_WRITE = ({"Policy.ReadWrite.SecurityDefaults"},)
P_CA_READ = ({"Policy.Read.All"}, {"Policy.Read.ConditionalAccess"}, {"Policy.ReadWrite.ConditionalAccess"})
P_CA_WRITE = ({"Policy.ReadWrite.ConditionalAccess", "Policy.Read.All"},)
# Create and Update conditionalAccessPolicy (conditionalaccessroot-post-policies, conditionalaccesspolicy-
# update): "Policy.Read.All, Policy.ReadWrite.ConditionalAccess and Application.Read.All".
P_CA_POLICY_WRITE = ({"Policy.ReadWrite.ConditionalAccess", "Policy.Read.All", "Application.Read.All"},)
P_REPORTS = ({"AuditLog.Read.All"},)
P_AUDIT_LOGS = ({"AuditLog.Read.All"}, {"Directory.Read.All"})  # signIns, directoryAudits
P_STRENGTH_READ = (
    {"Policy.Read.AuthenticationMethod"},
    {"Policy.Read.All"},
    {"Policy.ReadWrite.AuthenticationMethod"},
    {"Policy.ReadWrite.ConditionalAccess"},
)
P_MAILBOX_SETTINGS = ({"MailboxSettings.Read"}, {"MailboxSettings.ReadWrite"})


@dataclass
class Route:
    method: str
    pattern: tuple[str, ...]
    handler: Callable
    perms: tuple[set[str], ...]
    write: bool = False
    family: str | None = None  # "ca" | "reports" | None
    versions: tuple[str, ...] = ("v1.0", "beta")
    ru: int = 1
    # For resources that exist in some tenants only: when it says False, Graph answers like an unknown
    # segment (400), before permissions and throttles.
    present: Callable | None = None


def _compile(pattern: tuple[str, ...]) -> tuple[tuple[str | None, str | None], ...]:
    """Per segment (parameter name, None) or (None, lower-case literal), worked out once per route."""
    return tuple((p[1:-1], None) if p.startswith("{") else (None, p.lower()) for p in pattern)


def _match(compiled: tuple[tuple[str | None, str | None], ...], segments: list[str]) -> dict | None:
    if len(compiled) != len(segments):
        return None
    params = {}
    for (name, literal), s in zip(compiled, segments, strict=True):
        if name is not None:
            params[name] = s
        elif literal != s.lower():
            return None
    return params


# -- helpers ---------------------------------------------------------------------------------------
def _ctx(sim, req: GraphRequest, fragment: str) -> str:
    return f"{sim.base_url}/{req.version}/$metadata#{fragment}"


def _ok(body: dict, status: int = 200, headers: dict | None = None, write: bool = False) -> GraphResponse:
    return GraphResponse(status, body, dict(headers or {}), write_effective=write)


def _no_content(write: bool = True) -> GraphResponse:
    return GraphResponse(204, None, {}, write_effective=write)


def _user_not_found(req: GraphRequest, key: str) -> GraphResponse:
    return error(
        req,
        404,
        "Request_ResourceNotFound",
        f"Resource '{key}' does not exist or one of its queried reference-property objects are not present.",
    )


def _encode_token(kind: str, offset: int) -> str:
    raw = f"{kind}|{offset}|{(offset * 7919 + len(kind)) % 65521}".encode()
    return "RFNwdAIA" + base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_token(kind: str, token: str) -> int | None:
    try:
        raw = base64.urlsafe_b64decode(token[8:] + "=" * (-len(token[8:]) % 4)).decode()
        k, off, check = raw.split("|")
        offset = int(off)
    except (ValueError, UnicodeDecodeError):
        return None
    if not token.startswith("RFNwdAIA") or k != kind or int(check) != (offset * 7919 + len(kind)) % 65521:
        return None
    return offset


def _unsupported_options(req: GraphRequest, allowed: tuple[str, ...]) -> GraphResponse | None:
    for opt in ("$filter", "$search", "$orderby", "$expand", "$count", "$skip"):
        if opt in req.query and opt not in allowed:
            return error(
                req,
                400,
                "Request_UnsupportedQuery",
                f"The simulator does not implement {opt} on this resource.",
            )
    return None


def _page(
    sim,
    req: GraphRequest,
    items: list,
    kind: str,
    path: str,
    to_json: Callable,
    context: str,
    default_top: int = 100,
    max_top: int = 999,
) -> GraphResponse:
    top_raw = req.query.get("$top")
    top = default_top
    if top_raw is not None:
        try:
            top = int(top_raw)
        except ValueError:
            top = -1
        if not 1 <= top <= max_top:
            return error(
                req,
                400,
                "Request_UnsupportedQuery",
                f"Invalid page size specified: '{top_raw}'. Must be between 1 and {max_top} inclusive.",
            )
    offset = 0
    if "$skiptoken" in req.query:
        decoded = _decode_token(kind, req.query["$skiptoken"])
        if decoded is None:
            return error(
                req,
                400,
                "Directory_ExpiredPageToken",
                "The specified page token value has expired and can no longer be included in your request.",
            )
        offset = decoded
    page = items[offset : offset + top]
    body = {"@odata.context": context, "value": [to_json(x) for x in page]}
    if offset + top < len(items):
        keep = [(k, v) for k, v in req.query.items() if k != "$skiptoken"]
        keep.append(("$skiptoken", _encode_token(kind, offset + top)))
        qs = "&".join(f"{k}={quote(v, safe=',$()')}" for k, v in keep)
        body["@odata.nextLink"] = f"{sim.base_url}/{req.version}/{path}?{qs}"
    return _ok(body)


# -- users -----------------------------------------------------------------------------------------
def _guest_mail(u: User) -> str | None:
    if "#EXT#" in u.upn:
        local = u.upn.split("#EXT#")[0]
        name, _, domain = local.rpartition("_")
        return f"{name}@{domain}" if name else None
    return u.upn


def user_json(u: User, tenant: Tenant) -> dict:
    first, _, last = u.display_name.partition(" ")
    return {
        "id": u.id,
        "userPrincipalName": u.upn,
        "displayName": u.display_name,
        "givenName": first or None,
        "surname": last or None,
        "mail": _guest_mail(u),
        "accountEnabled": u.account_enabled,
        "userType": u.user_type,
        "jobTitle": "Administrator" if u.is_admin else None,
        "businessPhones": [],
        "mobilePhone": None,
        "officeLocation": None,
        "preferredLanguage": "en-US",
        "usageLocation": "GB",
        "createdDateTime": u.created,
        "onPremisesSyncEnabled": None,
        "creationType": None,
        "externalUserState": "Accepted" if u.user_type == "Guest" else None,
    }


_USER_PROPS = {k.lower(): k for k in user_json(User("x", "x@x", "x"), None)}  # type: ignore[arg-type]


def _select(
    req: GraphRequest, type_name: str, known: dict[str, str]
) -> tuple[list[str] | None, GraphResponse | None]:
    raw = req.query.get("$select")
    if raw is None:
        return None, None
    chosen = []
    for name in (p.strip() for p in raw.split(",")):
        if not name:
            continue
        canonical = known.get(name.lower())
        if canonical is None:
            return None, error(
                req,
                400,
                "Request_BadRequest",
                f"Could not find a property named '{name}' on type '{type_name}'.",
            )
        chosen.append(canonical)
    return chosen, None


def _project_user(req: GraphRequest, tenant: Tenant, selected: list[str] | None):
    def project(u: User) -> dict:
        full = user_json(u, tenant)
        if selected is not None:
            return {k: full[k] for k in selected}
        if req.version == "v1.0":
            return {k: full[k] for k in USER_DEFAULT_V1}
        return full

    return project


def list_users(sim, tenant: Tenant, req: GraphRequest, p: dict) -> GraphResponse:
    bad = _unsupported_options(req, ())
    if bad:
        return bad
    selected, err = _select(req, "Microsoft.DirectoryServices.User", _USER_PROPS)
    if err:
        return err
    ctx = _ctx(sim, req, f"users({','.join(selected)})" if selected else "users")
    return _page(sim, req, tenant.users, "users", "users", _project_user(req, tenant, selected), ctx)


def get_user(sim, tenant: Tenant, req: GraphRequest, p: dict) -> GraphResponse:
    u = tenant.find_user(p["id"])
    if u is None:
        return _user_not_found(req, p["id"])
    selected, err = _select(req, "Microsoft.DirectoryServices.User", _USER_PROPS)
    if err:
        return err
    ctx = _ctx(sim, req, f"users({','.join(selected)})/$entity" if selected else "users/$entity")
    return _ok({"@odata.context": ctx, **_project_user(req, tenant, selected)(u)})


def get_requirements(sim, tenant: Tenant, req: GraphRequest, p: dict) -> GraphResponse:
    u = tenant.find_user(p["id"])
    if u is None:
        return _user_not_found(req, p["id"])
    return _ok(
        {
            "@odata.context": _ctx(sim, req, f"users('{u.id}')/authentication/requirements/$entity"),
            "perUserMfaState": u.per_user_state,
        }
    )


def patch_requirements(sim, tenant: Tenant, req: GraphRequest, p: dict) -> GraphResponse:
    u = tenant.find_user(p["id"])
    if u is None:
        return _user_not_found(req, p["id"])
    body = req.body
    if not isinstance(body, dict) or "perUserMfaState" not in body:
        return error(req, 400, "BadRequest", "The request body must contain 'perUserMfaState'.")
    unknown = [k for k in body if k not in ("perUserMfaState", "@odata.type")]
    if unknown:
        return error(
            req,
            400,
            "BadRequest",
            f"Property '{unknown[0]}' does not exist on type "
            "'microsoft.graph.strongAuthenticationRequirements'.",
        )
    if body["perUserMfaState"] not in PER_USER_STATES:
        return error(
            req,
            400,
            "BadRequest",
            f"Invalid value '{body['perUserMfaState']}' for property 'perUserMfaState'. Allowed values: "
            "disabled, enabled, enforced.",
        )
    if tenant.patch_per_user_state(u, body["perUserMfaState"], enforce_after_s=tenant.faults.enforce_after_s):
        sim.stats.per_user_change(tenant.id, body["perUserMfaState"])
    return _no_content()


# -- organization, licences, groups ----------------------------------------------------------------
def get_organization(sim, tenant: Tenant, req: GraphRequest, p: dict) -> GraphResponse:
    org = {
        "id": tenant.id,
        "displayName": tenant.display_name,
        "tenantType": "AAD",
        "countryLetterCode": "GB",
        "createdDateTime": "2019-06-01T10:00:00Z",
        "onPremisesSyncEnabled": None,
        "verifiedDomains": [
            {
                "name": d,
                "isDefault": i == 0,
                "isInitial": d.endswith(".onmicrosoft.com"),
                "type": "Managed",
                "capabilities": "Email, OfficeCommunicationsOnline",
            }
            for i, d in enumerate(tenant.domains)
        ],
    }
    return _ok({"@odata.context": _ctx(sim, req, "organization"), "value": [org]})


def list_skus(sim, tenant: Tenant, req: GraphRequest, p: dict) -> GraphResponse:
    return _ok({"@odata.context": _ctx(sim, req, "subscribedSkus"), "value": tenant.skus})


def _group_json(g) -> dict:
    return {
        "id": g.id,
        "displayName": g.display_name,
        "description": g.description,
        "mailEnabled": False,
        "securityEnabled": True,
        "groupTypes": [],
        "mail": None,
        "createdDateTime": "2022-01-10T08:00:00Z",
    }


def list_groups(sim, tenant: Tenant, req: GraphRequest, p: dict) -> GraphResponse:
    bad = _unsupported_options(req, ())
    return bad or _page(
        sim, req, list(tenant.groups.values()), "groups", "groups", _group_json, _ctx(sim, req, "groups")
    )


def get_group(sim, tenant: Tenant, req: GraphRequest, p: dict) -> GraphResponse:
    g = tenant.groups.get(p["id"])
    if g is None:
        return _user_not_found(req, p["id"])
    return _ok({"@odata.context": _ctx(sim, req, "groups/$entity"), **_group_json(g)})


def list_members(sim, tenant: Tenant, req: GraphRequest, p: dict) -> GraphResponse:
    g = tenant.groups.get(p["id"])
    if g is None:
        return _user_not_found(req, p["id"])
    bad = _unsupported_options(req, ())
    if bad:
        return bad
    selected, err = _select(req, "Microsoft.DirectoryServices.DirectoryObject", _USER_PROPS)
    if err:
        return err
    project = _project_user(req, tenant, selected)
    members = [tenant.by_id[m] for m in g.member_ids if m in tenant.by_id]
    return _page(
        sim,
        req,
        members,
        f"members:{g.id}",
        f"groups/{g.id}/members",
        lambda u: {"@odata.type": "#microsoft.graph.user", **project(u)},
        _ctx(sim, req, "directoryObjects"),
    )


# -- security defaults -----------------------------------------------------------------------------
def _sd_json(sim, req, tenant: Tenant) -> dict:
    return {
        "@odata.context": _ctx(sim, req, "policies/identitySecurityDefaultsEnforcementPolicy"),
        "id": SECURITY_DEFAULTS_ID,
        "displayName": "Security Defaults",
        "description": "Security defaults is a set of basic identity security mechanisms recommended by "
        "Microsoft. "
        "When enabled, these recommendations will be automatically enforced in your organization. "
        "Administrators and users will be better protected from common identity related attacks.",
        "isEnabled": tenant.security_defaults,
    }


def get_sd(sim, tenant: Tenant, req: GraphRequest, p: dict) -> GraphResponse:
    return _ok(_sd_json(sim, req, tenant))


def patch_sd(sim, tenant: Tenant, req: GraphRequest, p: dict) -> GraphResponse:
    body = req.body
    if not isinstance(body, dict):
        return error(req, 400, "BadRequest", "The request body must be a JSON object.")
    for k in body:
        if k not in ("isEnabled", "displayName", "description", "@odata.type"):
            return error(
                req,
                400,
                "BadRequest",
                f"Property '{k}' does not exist on type "
                "'microsoft.graph.identitySecurityDefaultsEnforcementPolicy'.",
            )
    if "isEnabled" in body:
        if not isinstance(body["isEnabled"], bool):
            return error(req, 400, "BadRequest", "Property 'isEnabled' must be a boolean.")
        if (
            body["isEnabled"]
            and not tenant.security_defaults
            and any(pol.get("state") == "enabled" for pol in tenant.policies.values())
        ):
            return error(
                req,
                400,
                "BadRequest",
                "Conditional Access policies are enabled in the tenant. You must disable Conditional Access "
                "policies before enabling Security defaults.",
            )
        tenant.set_security_defaults(body["isEnabled"], "graph")
    return _no_content()


# -- conditional access ----------------------------------------------------------------------------
def _policy_not_found(req: GraphRequest, pid: str) -> GraphResponse:
    return error(req, 404, "ResourceNotFound", f"The policy with id '{pid}' was not found.")


def _render_policy(sim, req: GraphRequest, pol: dict) -> dict:
    """A policy as Graph returns it: an authentication strength comes expanded, with its own context."""
    grant = pol.get("grantControls")
    if not isinstance(grant, dict) or not grant.get("authenticationStrength"):
        return pol
    annotated = {}
    for key, value in grant.items():
        if key == "authenticationStrength":
            annotated["authenticationStrength@odata.context"] = _ctx(
                sim,
                req,
                f"identity/conditionalAccess/policies('{pol['id']}')/grantControls/authenticationStrength/$entity",
            )
        annotated[key] = value
    return {**pol, "grantControls": annotated}


def _audit_app(sim) -> dict:
    app = sim.state.app
    return {
        "appId": app.client_id,
        "displayName": app.display_name,
        "servicePrincipalId": None,
        "servicePrincipalName": None,
    }


def _audit(sim, tenant: Tenant, activity: str, operation: str, obj: dict, kind: str = "Policy") -> None:
    """A directoryAudit entry for a Conditional Access change made through Graph by the MSP app."""
    tenant.add_directory_audit(
        audit_logs.directory_audit(
            activity=activity,
            operation=operation,
            target_id=obj["id"],
            target_name=obj.get("displayName") or "",
            target_type=kind,
            app=_audit_app(sim),
        )
    )


def list_policies(sim, tenant: Tenant, req: GraphRequest, p: dict) -> GraphResponse:
    bad = _unsupported_options(req, ())
    if bad:
        return bad
    now = tenant.clock.monotonic()
    value = [
        _render_policy(sim, req, pol) for pid, pol in tenant.policies.items() if tenant.is_visible(pid, now)
    ]
    return _ok({"@odata.context": _ctx(sim, req, "identity/conditionalAccess/policies"), "value": value})


def get_policy(sim, tenant: Tenant, req: GraphRequest, p: dict) -> GraphResponse:
    pol = tenant.policies.get(p["id"])
    if pol is None or not tenant.is_visible(p["id"]):
        return _policy_not_found(req, p["id"])
    return _ok(
        {
            "@odata.context": _ctx(sim, req, "identity/conditionalAccess/policies/$entity"),
            **_render_policy(sim, req, pol),
        }
    )


def create_policy(sim, tenant: Tenant, req: GraphRequest, p: dict) -> GraphResponse:
    if not isinstance(req.body, dict):
        return error(req, 400, "BadRequest", "The request body must be a conditionalAccessPolicy object.")
    body = {k: v for k, v in req.body.items() if k not in READ_ONLY}
    problem = validate_policy(body) or validate_references(body, set(tenant.named_locations))
    if problem:
        return error(req, 400, "BadRequest", problem)
    if body["state"] == "enabled" and tenant.security_defaults:
        return error(req, 400, "BadRequest", SD_ENABLED_MESSAGE)
    policy = normalize_policy(
        {
            "id": str(uuid.uuid4()),
            "templateId": None,
            **body,
            "createdDateTime": clock.iso(),
            "modifiedDateTime": None,
        }
    )
    tenant.put_policy(policy, "graph", lag_s=tenant.faults.replication_lag_s)
    _audit(sim, tenant, "Add conditional access policy", "Add", policy)
    location = f"{sim.base_url}/{req.version}/identity/conditionalAccess/policies/{policy['id']}"
    body = {
        "@odata.context": _ctx(sim, req, "identity/conditionalAccess/policies/$entity"),
        **_render_policy(sim, req, policy),
    }
    return _ok(body, 201, {"Location": location}, write=True)


def patch_policy(sim, tenant: Tenant, req: GraphRequest, p: dict) -> GraphResponse:
    current = tenant.policies.get(p["id"])
    if current is None:
        return _policy_not_found(req, p["id"])
    if not isinstance(req.body, dict):
        return error(req, 400, "BadRequest", "The request body must be a conditionalAccessPolicy object.")
    patch = {k: v for k, v in req.body.items() if k not in READ_ONLY}
    if (
        p["id"] in tenant.managed_policy_ids
        and patch.get("displayName", current["displayName"]) != current["displayName"]
    ):
        return error(req, 400, "BadRequest", "Microsoft-managed policies can't be renamed.")
    merged = normalize_policy(deep_merge(current, patch))
    problem = validate_policy(merged) or validate_references(merged, set(tenant.named_locations))
    if problem:
        return error(req, 400, "BadRequest", problem)
    if merged["state"] == "enabled" and tenant.security_defaults:
        return error(req, 400, "BadRequest", SD_ENABLED_MESSAGE)
    merged["modifiedDateTime"] = clock.iso()
    tenant.put_policy(merged, "graph")
    _audit(sim, tenant, "Update conditional access policy", "Update", merged)
    return _no_content()


def delete_policy(sim, tenant: Tenant, req: GraphRequest, p: dict) -> GraphResponse:
    if p["id"] not in tenant.policies:
        return _policy_not_found(req, p["id"])
    if p["id"] in tenant.managed_policy_ids:
        return error(req, 400, "BadRequest", "Microsoft-managed policies can't be deleted.")
    _audit(sim, tenant, "Delete conditional access policy", "Delete", tenant.policies[p["id"]])
    tenant.delete_policy(p["id"], "graph")
    return _no_content()


def _location_not_found(req: GraphRequest, lid: str) -> GraphResponse:
    return error(req, 404, "ResourceNotFound", f"The named location with id '{lid}' was not found.")


def list_locations(sim, tenant: Tenant, req: GraphRequest, p: dict) -> GraphResponse:
    bad = _unsupported_options(req, ())
    if bad:
        return bad
    now = tenant.clock.monotonic()
    value = [loc for lid, loc in tenant.named_locations.items() if tenant.is_visible(lid, now)]
    return _ok(
        {"@odata.context": _ctx(sim, req, "identity/conditionalAccess/namedLocations"), "value": value}
    )


def get_location(sim, tenant: Tenant, req: GraphRequest, p: dict) -> GraphResponse:
    loc = tenant.named_locations.get(p["id"])
    if loc is None or not tenant.is_visible(p["id"]):
        return _location_not_found(req, p["id"])
    return _ok({"@odata.context": _ctx(sim, req, "identity/conditionalAccess/namedLocations/$entity"), **loc})


def create_location(sim, tenant: Tenant, req: GraphRequest, p: dict) -> GraphResponse:
    if not isinstance(req.body, dict):
        return error(req, 400, "BadRequest", "The request body must be a namedLocation object.")
    problem = validate_named_location(req.body, partial=False)
    if problem:
        return error(req, 400, "BadRequest", problem)
    if len(tenant.named_locations) >= MAX_NAMED_LOCATIONS:
        return error(
            req, 400, "BadRequest", f"A tenant can't have more than {MAX_NAMED_LOCATIONS} named locations."
        )
    body = {k: v for k, v in req.body.items() if k not in READ_ONLY}
    now = clock.iso()
    loc = {
        "@odata.type": body["@odata.type"],
        "id": str(uuid.uuid4()),
        "displayName": body["displayName"],
        "createdDateTime": now,
        "modifiedDateTime": now,
    }
    if body["@odata.type"] == "#microsoft.graph.ipNamedLocation":
        loc.update(isTrusted=bool(body.get("isTrusted", False)), ipRanges=body["ipRanges"])
    else:
        loc.update(
            countriesAndRegions=body.get("countriesAndRegions", []),
            includeUnknownCountriesAndRegions=bool(body.get("includeUnknownCountriesAndRegions", False)),
            countryLookupMethod=body.get("countryLookupMethod", "clientIpAddress"),
        )
    tenant.put_named_location(loc, "graph", lag_s=tenant.faults.replication_lag_s)
    _audit(sim, tenant, "Add named location", "Add", loc)
    location = f"{sim.base_url}/{req.version}/identity/conditionalAccess/namedLocations/{loc['id']}"
    return _ok(
        {"@odata.context": _ctx(sim, req, "identity/conditionalAccess/namedLocations/$entity"), **loc},
        201,
        {"Location": location},
        write=True,
    )


def patch_location(sim, tenant: Tenant, req: GraphRequest, p: dict) -> GraphResponse:
    current = tenant.named_locations.get(p["id"])
    if current is None:
        return _location_not_found(req, p["id"])
    if not isinstance(req.body, dict):
        return error(req, 400, "BadRequest", "The request body must be a namedLocation object.")
    problem = validate_named_location(req.body, partial=True)
    if problem:
        return error(req, 400, "BadRequest", problem)
    if req.body["@odata.type"] != current["@odata.type"]:
        return error(req, 400, "BadRequest", "The '@odata.type' of a named location can't be changed.")
    updated = {**current, **{k: v for k, v in req.body.items() if k not in READ_ONLY}}
    updated["modifiedDateTime"] = clock.iso()
    tenant.put_named_location(updated, "graph")
    _audit(sim, tenant, "Update named location", "Update", updated)
    return _no_content()


def delete_location(sim, tenant: Tenant, req: GraphRequest, p: dict) -> GraphResponse:
    loc = tenant.named_locations.get(p["id"])
    if loc is None:
        return _location_not_found(req, p["id"])
    # Documented: "Locations marked as trusted can't be deleted without first removing the trusted
    # designation". A location a policy still names can't go either. Both messages are the simulator's.
    if loc.get("isTrusted"):
        return error(
            req,
            400,
            "BadRequest",
            "A named location marked as trusted can't be deleted. Set isTrusted to false first.",
        )
    users = locations_referenced(tenant.policies.values()).get(p["id"])
    if users:
        return error(
            req,
            400,
            "BadRequest",
            f"The named location is referenced by Conditional Access policies ({', '.join(users)}) and can't "
            "be deleted.",
        )
    _audit(sim, tenant, "Delete named location", "Delete", loc)
    tenant.delete_named_location(p["id"], "graph")
    return _no_content()


def evaluate(sim, tenant: Tenant, req: GraphRequest, p: dict) -> GraphResponse:
    try:
        value = what_if(tenant, req.body)
    except WhatIfError as exc:
        return error(req, 400, "BadRequest", str(exc))
    return _ok(
        {"@odata.context": _ctx(sim, req, "Collection(microsoft.graph.whatIfAnalysisResult)"), "value": value}
    )


# -- reports ---------------------------------------------------------------------------------------
def registration_json(u: User, beta: bool) -> dict:
    mfa = u.is_mfa_registered
    default = next(
        (
            m
            for m in u.methods
            if m in ("microsoftAuthenticatorPush", "mobilePhone", "softwareOneTimePasscode", "fido2")
        ),
        None,
    )
    body = {
        "id": u.id,
        "userPrincipalName": u.upn,
        "userDisplayName": u.display_name,
        "userType": "guest" if u.user_type == "Guest" else "member",
        "isAdmin": u.is_admin,
        "isSsprRegistered": any(m in SSPR_METHODS for m in u.methods),
        "isSsprEnabled": True,
        "isSsprCapable": any(m in SSPR_METHODS for m in u.methods),
        "isMfaRegistered": mfa,
        "isMfaCapable": mfa and u.account_enabled,
        "isPasswordlessCapable": any(
            m in ("fido2", "windowsHelloForBusiness", "microsoftAuthenticatorPasswordless") for m in u.methods
        ),
        "methodsRegistered": list(u.methods),
        "isSystemPreferredAuthenticationMethodEnabled": True,
        "systemPreferredAuthenticationMethods": ["push"] if "microsoftAuthenticatorPush" in u.methods else [],
        "userPreferredMethodForSecondaryAuthentication": {
            "microsoftAuthenticatorPush": "push",
            "mobilePhone": "sms",
            "softwareOneTimePasscode": "oath",
            "fido2": "none",
        }.get(default or "", "none"),
        "lastUpdatedDateTime": u.last_updated,
    }
    body["defaultMfaMethod"] = {
        "microsoftAuthenticatorPush": "microsoftAuthenticatorPush",
        "mobilePhone": "sms",
        "softwareOneTimePasscode": "softwareOneTimePasscode",
    }.get(default or "", "none")
    return body


def _non_premium(req: GraphRequest) -> GraphResponse:
    return error(
        req,
        403,
        "Authentication_RequestFromNonPremiumTenantOrB2CTenant",
        "Tenant does not have a SKU required for this call.",
    )


def list_registration(sim, tenant: Tenant, req: GraphRequest, p: dict) -> GraphResponse:
    if tenant.licence == "Free":
        return _non_premium(req)
    try:
        query = registration_report.parse(req.query)
    except audit_logs.FilterError as exc:
        return error(req, 400, exc.code, str(exc))
    beta = req.version == "beta"
    items, to_json = query.rows(
        tenant.users, lambda u: registration_report.for_version(registration_json(u, beta), req.version)
    )
    return _page(
        sim,
        req,
        items,
        "reg",
        "reports/authenticationMethods/userRegistrationDetails",
        to_json,
        _ctx(sim, req, "reports/authenticationMethods/userRegistrationDetails"),
    )


def get_registration(sim, tenant: Tenant, req: GraphRequest, p: dict) -> GraphResponse:
    if tenant.licence == "Free":
        return _non_premium(req)
    u = tenant.by_id.get(p["id"])
    if u is None:
        return _user_not_found(req, p["id"])
    return _ok(
        {
            "@odata.context": _ctx(sim, req, "reports/authenticationMethods/userRegistrationDetails/$entity"),
            **registration_report.for_version(registration_json(u, req.version == "beta"), req.version),
        }
    )


# -- legacy MFA service settings (undocumented beta resource) ----------------------------------------
def _unknown_segment(req: GraphRequest, segment: str) -> GraphResponse:
    """How Graph answers a path segment it does not know (observed: 400 BadRequest)."""
    return error(req, 400, "BadRequest", f"Resource not found for the segment '{segment}'.")


def _mfa_service_policy_present(tenant: Tenant, req: GraphRequest) -> bool:
    return req.version == "beta" and tenant.mfa_service_policy is not None


def get_mfa_service_policy(sim, tenant: Tenant, req: GraphRequest, p: dict) -> GraphResponse:
    """The simulator's assumed shape (Microsoft does not document this resource; see README)."""
    return _ok(
        {
            "@odata.context": _ctx(sim, req, "policies/mfaServicePolicy/$entity"),
            "id": "mfaServicePolicy",
            **{k: v for k, v in tenant.mfa_service_policy.items() if k != "id"},
        }
    )


# -- authentication strengths (built-in only) ---------------------------------------------------------
def _strength_json(sim, req: GraphRequest, s: dict) -> dict:
    return {
        **s,
        "combinationConfigurations@odata.context": _ctx(
            sim, req, f"policies/authenticationStrengthPolicies('{s['id']}')/combinationConfigurations"
        ),
        "combinationConfigurations": [],
    }


def list_strengths(sim, tenant: Tenant, req: GraphRequest, p: dict) -> GraphResponse:
    bad = _unsupported_options(req, ("$filter",))
    if bad:
        return bad
    strengths = [auth_strengths.strength(sid) for sid in auth_strengths.BUILT_IN_STRENGTHS]
    raw = req.query.get("$filter")
    if raw is not None:
        fields = {
            "policytype": ("string", lambda e: e["policyType"]),
            "displayname": ("string", lambda e: e["displayName"]),
        }
        try:
            keep = audit_logs.compile_filter(raw, fields)
        except audit_logs.FilterError as exc:
            return error(req, 400, exc.code, str(exc))
        strengths = [s for s in strengths if keep(s)]
    return _ok(
        {
            "@odata.context": _ctx(sim, req, "policies/authenticationStrengthPolicies"),
            "value": [_strength_json(sim, req, s) for s in strengths],
        }
    )


def get_strength(sim, tenant: Tenant, req: GraphRequest, p: dict) -> GraphResponse:
    found = auth_strengths.strength(p["id"])
    if found is None:
        return error(
            req, 404, "ResourceNotFound", f"Authentication strength policy '{p['id']}' was not found."
        )
    return _ok(
        {
            "@odata.context": _ctx(sim, req, "policies/authenticationStrengthPolicies/$entity"),
            **_strength_json(sim, req, found),
        }
    )


# -- mailbox settings (userPurpose tells shared/room/equipment mailboxes apart) -----------------------
_NO_MAILBOX = "The mailbox is either inactive, soft-deleted, or is hosted on-premise."


def _mailbox_settings(u: User) -> dict:
    return {
        "archiveFolder": None,
        "timeZone": "GMT Standard Time",
        "delegateMeetingMessageDeliveryOptions": "sendToDelegateOnly",
        "dateFormat": "dd/MM/yyyy",
        "timeFormat": "HH:mm",
        "userPurpose": u.mailbox_purpose,
        "automaticRepliesSetting": {
            "status": "disabled",
            "externalAudience": "all",
            "internalReplyMessage": "",
            "externalReplyMessage": "",
            "scheduledStartDateTime": {"dateTime": "2024-01-01T00:00:00.0000000", "timeZone": "UTC"},
            "scheduledEndDateTime": {"dateTime": "2024-01-02T00:00:00.0000000", "timeZone": "UTC"},
        },
        "language": {"locale": "en-GB", "displayName": "English (United Kingdom)"},
        "workingHours": {
            "daysOfWeek": ["monday", "tuesday", "wednesday", "thursday", "friday"],
            "startTime": "09:00:00.0000000",
            "endTime": "17:30:00.0000000",
            "timeZone": {"name": "GMT Standard Time"},
        },
    }


_MAILBOX_PROPS = {k.lower(): k for k in _mailbox_settings(User("x", "x@x", "x"))}


def get_mailbox_settings(sim, tenant: Tenant, req: GraphRequest, p: dict) -> GraphResponse:
    u = tenant.find_user(p["id"])
    if u is None:
        return _user_not_found(req, p["id"])
    if u.mailbox_purpose is None:
        return error(req, 404, "MailboxNotEnabledForRESTAPI", _NO_MAILBOX)
    selected, err = _select(req, "microsoft.graph.mailboxSettings", _MAILBOX_PROPS)
    if err:
        return err
    settings = _mailbox_settings(u)
    if selected is not None:
        settings = {k: settings[k] for k in selected}
    return _ok({"@odata.context": _ctx(sim, req, f"users('{u.id}')/mailboxSettings"), **settings})


def get_user_purpose(sim, tenant: Tenant, req: GraphRequest, p: dict) -> GraphResponse:
    u = tenant.find_user(p["id"])
    if u is None:
        return _user_not_found(req, p["id"])
    if u.mailbox_purpose is None:
        return error(req, 404, "MailboxNotEnabledForRESTAPI", _NO_MAILBOX)
    return _ok(
        {
            "@odata.context": _ctx(sim, req, f"users('{u.id}')/mailboxSettings/userPurpose"),
            "value": u.mailbox_purpose,
        }
    )


# -- audit logs: sign-ins (P1/P2 only) and directory audits -------------------------------------------
_SIGN_INS_NON_PREMIUM = "Neither tenant is B2C or tenant doesn't have premium license"


def _filtered_log(req: GraphRequest, entries: list[dict], fields: dict, time_key: str):
    bad = _unsupported_options(req, ("$filter",))
    if bad:
        return None, bad
    raw = req.query.get("$filter")
    if raw is not None:
        try:
            keep = audit_logs.compile_filter(raw, fields)
        except audit_logs.FilterError as exc:
            return None, error(req, 400, exc.code, str(exc))
        entries = [e for e in entries if keep(e)]
    return audit_logs.newest_first(entries, time_key), None


def list_sign_ins(sim, tenant: Tenant, req: GraphRequest, p: dict) -> GraphResponse:
    if tenant.licence == "Free":
        return error(req, 403, "Authentication_RequestFromNonPremiumTenantOrB2CTenant", _SIGN_INS_NON_PREMIUM)
    return _log_page(
        sim, req, tenant.sign_ins, audit_logs.SIGN_IN_FILTERS, "createdDateTime", "signIns", "signins"
    )


def get_sign_in(sim, tenant: Tenant, req: GraphRequest, p: dict) -> GraphResponse:
    if tenant.licence == "Free":
        return error(req, 403, "Authentication_RequestFromNonPremiumTenantOrB2CTenant", _SIGN_INS_NON_PREMIUM)
    entry = next((e for e in tenant.sign_ins if e["id"] == p["id"]), None)
    if entry is None:
        return error(req, 404, "ResourceNotFound", f"Sign-in with id '{p['id']}' was not found.")
    return _ok({"@odata.context": _ctx(sim, req, "auditLogs/signIns/$entity"), **entry})


def list_directory_audits(sim, tenant: Tenant, req: GraphRequest, p: dict) -> GraphResponse:
    return _log_page(
        sim,
        req,
        tenant.directory_audits,
        audit_logs.AUDIT_FILTERS,
        "activityDateTime",
        "directoryAudits",
        "audits",
    )


def _log_page(
    sim, req: GraphRequest, log: list, fields: dict, time_key: str, name: str, kind: str
) -> GraphResponse:
    """One page of an audit log (`auditLogs/<name>`), filtered, newest first, at most 1,000 entries."""
    entries, bad = _filtered_log(req, log, fields, time_key)
    if bad:
        return bad
    path = f"auditLogs/{name}"
    return _page(
        sim, req, entries, kind, path, lambda e: e, _ctx(sim, req, path), default_top=1000, max_top=1000
    )


CA = ("identity", "conditionalAccess")
REG = ("reports", "authenticationMethods", "userRegistrationDetails")
ROUTES: list[Route] = [
    Route("GET", ("users",), list_users, P_USERS, ru=2),
    Route("GET", ("users", "{id}"), get_user, P_USERS, ru=2),
    Route(
        "GET",
        ("users", "{id}", "authentication", "requirements"),
        get_requirements,
        P_AUTH_REQ_READ,
        versions=("beta",),
    ),
    Route(
        "PATCH",
        ("users", "{id}", "authentication", "requirements"),
        patch_requirements,
        P_AUTH_REQ_WRITE,
        write=True,
        versions=("beta",),
    ),
    Route("GET", ("organization",), get_organization, P_ORG),
    Route("GET", ("subscribedSkus",), list_skus, P_ORG, ru=3),
    Route("GET", ("groups",), list_groups, P_GROUPS),
    Route("GET", ("groups", "{id}"), get_group, P_GROUPS),
    Route("GET", ("groups", "{id}", "members"), list_members, P_GROUPS),
    Route("GET", ("policies", "identitySecurityDefaultsEnforcementPolicy"), get_sd, P_POLICY_READ),
    Route(
        "PATCH", ("policies", "identitySecurityDefaultsEnforcementPolicy"), patch_sd, P_SD_WRITE, write=True
    ),
    Route("GET", (*CA, "policies"), list_policies, P_CA_READ, family="ca"),
    Route("POST", (*CA, "policies"), create_policy, P_CA_POLICY_WRITE, write=True, family="ca"),
    Route("GET", (*CA, "policies", "{id}"), get_policy, P_CA_READ, family="ca"),
    Route("PATCH", (*CA, "policies", "{id}"), patch_policy, P_CA_POLICY_WRITE, write=True, family="ca"),
    Route("DELETE", (*CA, "policies", "{id}"), delete_policy, P_CA_WRITE, write=True, family="ca"),
    Route("GET", (*CA, "namedLocations"), list_locations, P_CA_READ, family="ca"),
    Route("POST", (*CA, "namedLocations"), create_location, P_CA_WRITE, write=True, family="ca"),
    Route("GET", (*CA, "namedLocations", "{id}"), get_location, P_CA_READ, family="ca"),
    Route("PATCH", (*CA, "namedLocations", "{id}"), patch_location, P_CA_WRITE, write=True, family="ca"),
    Route("DELETE", (*CA, "namedLocations", "{id}"), delete_location, P_CA_WRITE, write=True, family="ca"),
    Route("POST", (*CA, "evaluate"), evaluate, P_CA_READ),
    Route("GET", REG, list_registration, P_REPORTS, family="reports"),
    Route("GET", (*REG, "{id}"), get_registration, P_REPORTS, family="reports"),
    Route(
        "GET",
        ("policies", "mfaServicePolicy"),
        get_mfa_service_policy,
        P_POLICY_READ,
        present=_mfa_service_policy_present,
    ),
    Route("GET", ("policies", "authenticationStrengthPolicies"), list_strengths, P_STRENGTH_READ),
    Route("GET", ("policies", "authenticationStrengthPolicies", "{id}"), get_strength, P_STRENGTH_READ),
    Route("GET", ("users", "{id}", "mailboxSettings"), get_mailbox_settings, P_MAILBOX_SETTINGS),
    Route("GET", ("users", "{id}", "mailboxSettings", "userPurpose"), get_user_purpose, P_MAILBOX_SETTINGS),
    Route("GET", ("auditLogs", "signIns"), list_sign_ins, P_AUDIT_LOGS, family="reports"),
    Route("GET", ("auditLogs", "signIns", "{id}"), get_sign_in, P_AUDIT_LOGS, family="reports"),
    Route("GET", ("auditLogs", "directoryAudits"), list_directory_audits, P_AUDIT_LOGS, family="reports"),
]
DIRECTORY_ROOTS = {"users", "groups", "organization", "subscribedskus", "directoryobjects"}
# Every pattern starts with a literal segment: index the routes by (length, first segment), and group
# the routes that share a pattern (GET/PATCH/DELETE of one resource), so a request's path is matched once
# against the few patterns that can fit instead of once per route.
_ROUTE_INDEX: dict[tuple[int, str], list[tuple[tuple, list[Route]]]] = {}
for _route in ROUTES:
    if _route.pattern[0].startswith("{"):
        raise RuntimeError(f"route {_route.pattern} must start with a literal segment")
    _groups = _ROUTE_INDEX.setdefault((len(_route.pattern), _route.pattern[0].lower()), [])
    _compiled = _compile(_route.pattern)
    _same = next((routes for compiled, routes in _groups if compiled == _compiled), None)
    if _same is None:
        _groups.append((_compiled, [_route]))
    else:
        _same.append(_route)


def find_route(req: GraphRequest) -> tuple[Route | None, dict, GraphResponse | None]:
    path_matches = False
    segments = req.segments
    candidates = _ROUTE_INDEX.get((len(segments), segments[0].lower()), ()) if segments else ()
    for compiled, routes in candidates:
        params = None
        for route in routes:
            if req.version not in route.versions:
                continue
            if params is None:
                params = _match(compiled, segments)
                if params is None:
                    break
            path_matches = True
            if route.method == req.method:
                return route, params, None
    if path_matches:
        return (
            None,
            {},
            error(
                req, 405, "Request_BadRequest", "Specified HTTP method is not allowed for the request target."
            ),
        )
    last = req.segments[-1] if req.segments else ""
    root = req.segments[0].lower() if req.segments else ""
    code = "Request_ResourceNotFound" if root in DIRECTORY_ROOTS else "ResourceNotFound"
    return None, {}, error(req, 404, code, f"Resource not found for the segment '{last}'.")


# -- the pipeline ----------------------------------------------------------------------------------
def _unauthorized(req: GraphRequest, message: str) -> GraphResponse:
    return error(
        req,
        401,
        "InvalidAuthenticationToken",
        message,
        {
            "WWW-Authenticate": 'Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/'
            'authorize", client_id="00000003-0000-0000-c000-000000000000"'
        },
    )


async def dispatch(sim, req: GraphRequest) -> GraphResponse:
    """Answer one Graph request (top-level or a $batch item) and log it."""
    tenant = None
    claims: dict = {}
    route = None
    resp = None
    auth = req.headers.get("authorization", "")
    if not auth:
        resp = _unauthorized(req, "Access token is empty.")
    elif not auth.lower().startswith("bearer "):
        resp = _unauthorized(req, "Access token validation failure.")
    else:
        verified, problem = sim.tokens.verify(auth[7:].strip())
        if verified is None:
            resp = _unauthorized(req, problem)
        else:
            claims = verified
            tenant = sim.state.tenants.get(claims["tid"])
            if tenant is None:
                resp = _unauthorized(req, "Access token validation failure. Invalid tenant.")
    if resp is None and (key := dollar_key_segment(req.raw_path)) is not None:
        resp = error(
            req,
            400,
            "BadRequest",
            f"Invalid segment '{key}': only system query options start with '$'; address a key that "
            f"starts with '$' as ('{key}').",
        )
    if resp is None:
        route, params, resp = find_route(req)
    if resp is None and route.present is not None and not route.present(tenant, req):
        resp = _unknown_segment(req, req.segments[-1])
    if resp is None:
        roles = set(claims.get("roles") or ())
        if not any(needed <= roles for needed in route.perms):
            resp = error(req, 403, "Authorization_RequestDenied", INSUFFICIENT)
    if resp is None:
        resp = await _run(sim, tenant, claims, route, params, req)
    _log(sim, req, tenant, claims, route, resp)
    if req.batch_parent is None:  # batch items are counted by the batch, with its tenant
        sim.stats.record(tenant.id if tenant else None, resp, item=False)
    resp.headers.setdefault("request-id", req.request_id)
    resp.headers.setdefault("client-request-id", req.client_request_id)
    return resp


async def _run(
    sim, tenant: Tenant, claims: dict, route: Route, params: dict, req: GraphRequest
) -> GraphResponse:
    faults = tenant.faults
    sim_clock = sim.clock
    tenant.settle()
    if faults.latency_ms:
        await sim_clock.sleep(faults.latency_ms / 1000)
    ru = route.ru
    if route.ru == 2 and "$select" in req.query:
        ru = 1
    decision = sim.throttle.check(
        app_id=claims["appid"],
        tenant_id=tenant.id,
        size_class=tenant.size_class,
        ru=ru,
        is_write=route.write,
        family=route.family,
        now=sim_clock.monotonic(),
    )
    if not decision.allowed:
        headers = (
            {}
            if decision.retry_after is None
            else {"Retry-After": format_retry_after(sim_clock.to_real(decision.retry_after))}
        )
        resp = error(req, 429, "TooManyRequests", "Too many requests.", {**headers, **decision.headers()})
        resp.throttled = decision.limit
        return resp
    rule = tenant.fault_rules.match(req.method, _rule_path(req), req.body, route.write)
    if rule is not None:
        return _apply_rule(sim, tenant, route, params, req, rule)
    roll = tenant.dice.roll(faults, route.write)
    if roll.timeout:
        await sim_clock.sleep(faults.timeout_hold_s)
    if roll.status_5xx == 503:
        resp = error(req, 503, "serviceNotAvailable", "Service unavailable. Please retry later.")
        resp.fault = "503"
        return resp
    if roll.status_5xx == 504:
        resp = error(req, 504, "gatewayTimeout", "The gateway did not receive a timely response.")
        resp.fault = "504"
        return resp
    if roll.throttle_429:
        headers = (
            {"Retry-After": format_retry_after(sim_clock.to_real(faults.retry_after_s))}
            if roll.throttle_retry_after
            else {}
        )
        resp = error(req, 429, "TooManyRequests", "Too many requests.", headers)
        resp.fault = "429" if roll.throttle_retry_after else "429_no_retry_after"
        return resp
    resp = route.handler(sim, tenant, req, params)
    resp.headers.update(decision.headers())  # x-ms-resource-unit, x-ms-throttle-limit-percentage
    if roll.timeout:
        resp.fault = "timeout"
    if resp.write_effective and roll.drop_after_commit:
        resp.drop, resp.fault = True, "drop_after_commit"
    return resp


def _rule_path(req: GraphRequest) -> str:
    """The path fault rules match against: ``/{version}/{segments}``, decoded, without the query."""
    return f"/{req.version}/{'/'.join(req.segments)}"


def _apply_rule(sim, tenant: Tenant, route: Route, params: dict, req: GraphRequest, rule) -> GraphResponse:
    """A status rule answers with the Graph error envelope and changes nothing; a drop_after_commit rule
    runs the handler and, if it succeeded, loses the response (a failed write does not use up a firing)."""
    if rule.drop_after_commit:
        resp = route.handler(sim, tenant, req, params)
        if resp.status < 400:
            rule.fire()
            resp.drop, resp.fault, resp.fault_rule = True, "rule", rule.id
        return resp
    rule.fire()
    code, message = RULE_ERRORS[rule.status]
    headers = (
        {"Retry-After": format_retry_after(sim.clock.to_real(rule.retry_after))}
        if rule.retry_after is not None
        else {}
    )
    resp = error(req, rule.status, code, message, headers)
    resp.fault, resp.fault_rule = "rule", rule.id
    return resp


def _log(sim, req: GraphRequest, tenant, claims: dict, route, resp: GraphResponse) -> None:
    query = "&".join(f"{k}={v}" for k, v in req.query.items())
    sim.state.log.add(
        t=sim.clock.monotonic(),
        wall=clock.iso(),
        method=req.method,
        path=f"/{req.version}/{'/'.join(req.segments)}" + (f"?{query}" if query else ""),
        tenant_id=tenant.id if tenant else claims.get("tid"),
        app_id=claims.get("appid"),
        client_request_id=req.client_request_id,
        request_id=req.request_id,
        status=resp.status,
        write=bool(route and route.write),
        write_effective=resp.write_effective,
        throttled=resp.throttled,
        fault=resp.fault,
        fault_rule=resp.fault_rule,
        dropped=resp.drop,
        batch_parent=req.batch_parent,
    )
