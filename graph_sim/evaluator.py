"""Sign-in evaluation: does a user need MFA (per-user state, security defaults, enabled CA policies)?

Used by the What-If endpoint, the admin sign-in action and the coverage invariant: at every instant
every non-break-glass user who was covered must stay covered by per-user MFA, SD or an enabled policy.
"""

from __future__ import annotations

import copy
import ipaddress
from dataclasses import asdict, dataclass

from graph_sim.auth_strengths import satisfies_mfa
from graph_sim.conditional_access import MFA_TRUSTED_IPS_LOCATION_ID
from graph_sim.state import Tenant, User

OFFICE365_APPS = {
    "00000002-0000-0ff1-ce00-000000000000",
    "00000003-0000-0ff1-ce00-000000000000",
    "cc15fd57-2c6c-4117-a88c-83b1d56b4bbe",
    "Office365",
}
MODERN_CLIENTS = {"all", "browser", "mobileAppsAndDesktopClients"}


class StateView:
    """The parts of a tenant the evaluator reads, possibly rewound to an earlier instant."""

    def __init__(self, tenant: Tenant):
        self.tenant = tenant
        self.security_defaults = tenant.security_defaults
        self.policies: dict[str, dict] = dict(tenant.policies)
        self.named_locations: dict[str, dict] = dict(tenant.named_locations)
        self.mfa_service_policy: dict | None = tenant.mfa_service_policy
        self.states: dict[str, str] = {}  # user id -> per-user state, where it differs from live

    def state_of(self, user: User) -> str:
        return self.states.get(user.id, user.per_user_state)

    def apply(self, ev, forward: bool) -> None:
        value = ev.new if forward else ev.old
        if ev.kind == "per_user_mfa":
            self.states[ev.subject] = value
        elif ev.kind == "security_defaults":
            self.security_defaults = value
        elif ev.kind == "policy":
            if value is None:
                self.policies.pop(ev.subject, None)
            else:
                self.policies[ev.subject] = value
        elif ev.kind == "named_location":
            if value is None:
                self.named_locations.pop(ev.subject, None)
            else:
                self.named_locations[ev.subject] = value
        elif ev.kind == "mfa_service_policy":
            self.mfa_service_policy = value


def view_at(tenant: Tenant, at: float | None) -> StateView:
    """Rewind the live state by undoing every timeline event after ``at`` (None: now)."""
    view = StateView(tenant)
    if at is not None:
        for ev in reversed(tenant.timeline):
            if ev.t <= at:
                break
            view.apply(ev, forward=False)
    return view


def _users_match(cond: dict, tenant: Tenant, user: User) -> bool:
    users = cond.get("users") or {}
    groups = tenant.groups_of(user.id)
    include = users.get("includeUsers") or []
    included = (
        "All" in include
        or user.id in include
        or ("GuestsOrExternalUsers" in include and user.user_type == "Guest")
        or bool(groups.intersection(users.get("includeGroups") or []))
        or (bool(users.get("includeRoles")) and user.is_admin)
        or (user.user_type == "Guest" and bool(users.get("includeGuestsOrExternalUsers")))
    )
    if not included or "None" in include:
        return False
    excluded = (
        user.id in (users.get("excludeUsers") or [])
        or ("GuestsOrExternalUsers" in (users.get("excludeUsers") or []) and user.user_type == "Guest")
        or bool(groups.intersection(users.get("excludeGroups") or []))
        or (bool(users.get("excludeRoles")) and user.is_admin)
        or (user.user_type == "Guest" and bool(users.get("excludeGuestsOrExternalUsers")))
    )
    return not excluded


def requires_mfa_grant(policy: dict) -> bool:
    """The grant asks for MFA: the ``mfa`` built-in control, or an authentication strength whose
    ``requirementsSatisfied`` is ``mfa``. Session controls alone never do."""
    grant = policy.get("grantControls") or {}
    return "mfa" in (grant.get("builtInControls") or []) or satisfies_mfa(grant.get("authenticationStrength"))


# -- network locations -------------------------------------------------------------------------------
def _in_ranges(addr, cidrs) -> bool:
    for cidr in cidrs:
        try:
            if addr in ipaddress.ip_network(str(cidr), strict=False):
                return True
        except (ValueError, TypeError):
            continue
    return False


def _mfa_trusted_ip(addr, mfa_service_policy: dict | None) -> bool:
    """The legacy MFA service's trusted IPs (part of "All trusted networks and locations")."""
    trusted = (mfa_service_policy or {}).get("trustedIps") or {}
    return bool(trusted.get("isEnabled")) and _in_ranges(addr, trusted.get("ipRanges") or [])


def _location_hit(loc_id: str, addr, country: str | None, view: StateView) -> bool | None:
    """Whether the sign-in is in this location; None when the sign-in details don't say."""
    if loc_id == "All":
        return True
    if loc_id in ("AllTrusted", MFA_TRUSTED_IPS_LOCATION_ID):
        if addr is None:
            return None
        if _mfa_trusted_ip(addr, view.mfa_service_policy):
            return True
        return loc_id == "AllTrusted" and any(
            loc.get("isTrusted")
            and _in_ranges(addr, [r.get("cidrAddress") for r in loc.get("ipRanges") or []])
            for loc in view.named_locations.values()
        )
    loc = view.named_locations.get(loc_id)
    if loc is None:
        return False
    if loc.get("@odata.type") == "#microsoft.graph.countryNamedLocation":
        if not country:
            return None
        return country.upper() in {c.upper() for c in loc.get("countriesAndRegions") or []}
    if addr is None:
        return None
    return _in_ranges(addr, [r.get("cidrAddress") for r in loc.get("ipRanges") or []])


def _any_hit(ids: list[str], addr, country, view: StateView) -> bool | None:
    hits = [_location_hit(i, addr, country, view) for i in ids]
    if any(h is True for h in hits):
        return True
    return None if any(h is None for h in hits) else False


def location_verdict(
    locations: dict | None, view: StateView, ip: str | None, country: str | None = None
) -> str:
    """``applies``, ``location`` (the sign-in is outside the policy's locations) or ``notEnoughInformation``
    (the decision depends on an IP or country the sign-in details don't give)."""
    if not locations:
        return "applies"
    addr = None
    if ip:
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            addr = None
    included = _any_hit(locations.get("includeLocations") or [], addr, country, view)
    excluded = _any_hit(locations.get("excludeLocations") or [], addr, country, view)
    if included is False or excluded is True:
        return "location"
    if included is None or excluded is None:
        return "notEnoughInformation"
    return "applies"


def policy_covers(
    policy: dict, tenant: Tenant, user: User, view: StateView | None = None, ip: str | None = None
) -> bool:
    """An enabled MFA policy for all apps and modern clients that includes this user, from every location
    (or, given a sign-in ``ip``, from that address): a policy that leaves out some locations does not
    cover a user who may sign in from them."""
    if policy.get("state") != "enabled" or not requires_mfa_grant(policy):
        return False
    cond = policy.get("conditions") or {}
    apps = cond.get("applications") or {}
    if "All" not in (apps.get("includeApplications") or []) or apps.get("excludeApplications"):
        return False
    client_types = set(cond.get("clientAppTypes") or ["all"])
    if not client_types & MODERN_CLIENTS:
        return False
    if (
        cond.get("locations")
        and location_verdict(cond["locations"], view or StateView(tenant), ip) != "applies"
    ):
        return False
    return _users_match(cond, tenant, user)


def _reasons(view: StateView, user: User, ip: str | None = None) -> list[str]:
    reasons = []
    state = view.state_of(user)
    if state in ("enabled", "enforced"):
        reasons.append(f"perUserMfa:{state}")
    if view.security_defaults:
        reasons.append("securityDefaults")
    for p in view.policies.values():
        if policy_covers(p, view.tenant, user, view, ip):
            reasons.append(f"conditionalAccess:{p['id']}")
    return reasons


def requires_mfa(
    tenant: Tenant, user: User | str, at: float | None = None, ip: str | None = None
) -> tuple[bool, list[str]]:
    """(MFA required at sign-in, why) now or at monotonic time ``at``; ``ip`` evaluates location-scoped
    policies for a sign-in from that address (without it they count only if no location is left out)."""
    if isinstance(user, str):
        user = tenant.find_user(user)
    reasons = _reasons(view_at(tenant, at), user, ip)
    return bool(reasons), reasons


@dataclass
class Gap:
    """An interval in which a user who was covered at ``since`` had no MFA requirement."""

    user_id: str
    user_principal_name: str
    start: float
    end: float | None  # None: still uncovered at ``until``
    start_event_seq: int
    end_event_seq: int | None

    def as_dict(self) -> dict:
        return asdict(self)


def _covered(view: StateView, tenant: Tenant, user: User) -> bool:
    if view.state_of(user) in ("enabled", "enforced") or view.security_defaults:
        return True
    return any(policy_covers(p, tenant, user, view) for p in view.policies.values())


def coverage_gaps(tenant_state: Tenant, since: float, until: float | None = None) -> list[Gap]:
    """Replay the timeline from ``since`` and report every coverage gap of every non-break-glass user."""
    tenant = tenant_state
    view = view_at(tenant, since)
    # A user created after `since` was not there to be covered (and is not watched).
    created_later = {ev.subject for ev in tenant.timeline if ev.kind == "user" and ev.t > since}
    watched = [
        u
        for u in tenant.users
        if not u.break_glass and u.id not in created_later and _covered(view, tenant, u)
    ]
    by_id = {u.id: u for u in watched}
    open_gaps: dict[str, Gap] = {}
    gaps: list[Gap] = []
    for ev in tenant.timeline:
        if ev.t <= since:
            continue
        if until is not None and ev.t > until:
            break
        view.apply(copy.copy(ev), forward=True)
        if ev.kind == "per_user_mfa":
            affected = [by_id[ev.subject]] if ev.subject in by_id else []
        elif ev.kind in ("security_defaults", "policy", "named_location", "mfa_service_policy"):
            affected = watched
        else:
            continue
        for u in affected:
            covered = _covered(view, tenant, u)
            gap = open_gaps.get(u.id)
            if not covered and gap is None:
                open_gaps[u.id] = Gap(u.id, u.upn, ev.t, None, ev.seq, None)
            elif covered and gap is not None:
                gap.end, gap.end_event_seq = ev.t, ev.seq
                gaps.append(open_gaps.pop(u.id))
    gaps.extend(open_gaps.values())
    gaps.sort(key=lambda g: (g.start_event_seq, g.user_principal_name))
    return gaps


# -- What-If ---------------------------------------------------------------------------------------
class WhatIfError(ValueError):
    """A request body the evaluate action refuses (400)."""


def what_if(tenant: Tenant, body: dict) -> list[dict]:
    """The ``value`` of ``POST /identity/conditionalAccess/evaluate`` for this tenant's policies."""
    if not isinstance(body, dict):
        raise WhatIfError("The request body must be a JSON object.")
    identity, context = body.get("signInIdentity"), body.get("signInContext")
    conditions = body.get("signInConditions")
    if not isinstance(identity, dict) or not isinstance(context, dict) or not isinstance(conditions, dict):
        raise WhatIfError("signInIdentity, signInContext and signInConditions are required.")
    if identity.get("@odata.type") != "#microsoft.graph.userSignIn" or not identity.get("userId"):
        raise WhatIfError("signInIdentity must be a #microsoft.graph.userSignIn with a userId.")
    user = tenant.find_user(str(identity["userId"]))
    if user is None:
        raise WhatIfError(f"User '{identity['userId']}' was not found in the tenant.")
    ctx_type = context.get("@odata.type")
    if ctx_type not in (
        "#microsoft.graph.applicationContext",
        "#microsoft.graph.userActionContext",
        "#microsoft.graph.authContext",
    ):
        raise WhatIfError("signInContext must be an applicationContext, userActionContext or authContext.")
    client_app = conditions.get("clientAppType") or "browser"
    ip = conditions.get("ipAddress")
    if ip is not None:
        try:
            ipaddress.ip_address(str(ip))
        except ValueError as exc:
            raise WhatIfError(f"signInConditions.ipAddress '{ip}' is not a valid IP address.") from exc
    view = StateView(tenant)
    out = []
    for policy in tenant.policies.values():
        if not tenant.is_visible(policy["id"]):
            continue
        cond = policy.get("conditions") or {}
        reasons: list[str] = []
        if policy.get("state") == "disabled":
            reasons.append("policyNotEnabled")
        else:
            if not _users_match(cond, tenant, user):
                reasons.append("users")
            apps = cond.get("applications") or {}
            if ctx_type == "#microsoft.graph.applicationContext":
                wanted = set(context.get("includeApplications") or [])
                inc, exc = (
                    set(apps.get("includeApplications") or []),
                    set(apps.get("excludeApplications") or []),
                )
                hit = (
                    "All" in inc
                    or bool(wanted & inc)
                    or ("Office365" in inc and bool(wanted & OFFICE365_APPS))
                )
                if not hit or (wanted & exc):
                    reasons.append("application")
            elif ctx_type == "#microsoft.graph.userActionContext":
                if context.get("userAction") not in (apps.get("includeUserActions") or []):
                    reasons.append("userActions")
            elif context.get("authenticationContextValue") not in (
                apps.get("includeAuthenticationContextClassReferences") or []
            ):
                reasons.append("authenticationContext")
            types = cond.get("clientAppTypes") or ["all"]
            if "all" not in types and client_app not in types:
                reasons.append("clientApps")
            platforms = cond.get("platforms")
            if platforms:
                platform = conditions.get("devicePlatform")
                if not platform:
                    reasons.append("notEnoughInformation")
                elif not ({"all", platform} & set(platforms.get("includePlatforms") or [])) or (
                    platform in (platforms.get("excludePlatforms") or [])
                ):
                    reasons.append("devicePlatform")
            verdict = location_verdict(cond.get("locations"), view, ip, conditions.get("country"))
            if verdict != "applies":
                reasons.append(verdict)
            for levels_key, given_key, reason in (
                ("signInRiskLevels", "signInRiskLevel", "signInRisk"),
                ("userRiskLevels", "userRiskLevel", "userRisk"),
            ):
                levels = cond.get(levels_key) or []
                if levels:
                    given = conditions.get(given_key)
                    if not given:
                        reasons.append("notEnoughInformation")
                    elif given not in levels:
                        reasons.append(reason)
        applies = not reasons
        if body.get("appliedPoliciesOnly") and not applies:
            continue
        result = copy.deepcopy(policy)
        result["policyApplies"] = applies
        result["analysisReasons"] = "notSet" if applies else ",".join(dict.fromkeys(reasons))
        out.append(result)
    return out


def simulate_sign_in(
    tenant: Tenant, user: User, *, register_if_prompted: bool = True, methods: list[str] | None = None
) -> dict:
    """One interactive sign-in: evaluate, register if MFA is required and the user has no method, and
    apply the documented enabled -> enforced move for a registered user."""
    required, reasons = requires_mfa(tenant, user)
    registered_now = False
    before = user.per_user_state
    if required and not user.is_mfa_registered and register_if_prompted:
        tenant.register_methods(user, methods or ["microsoftAuthenticatorPush"], "signin")
        registered_now = True
    if user.per_user_state == "enabled" and user.is_mfa_registered:
        tenant.set_per_user_state(user, "enforced", "signin")
    return {
        "userId": user.id,
        "mfaRequired": required,
        "reasons": reasons,
        "registeredNow": registered_now,
        "perUserMfaStateBefore": before,
        "perUserMfaState": user.per_user_state,
        "isMfaRegistered": user.is_mfa_registered,
    }
