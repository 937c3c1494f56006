"""In-memory directory state: tenants, users, groups, policies, security defaults, and the timeline.

Every state change goes through a ``Tenant`` method that appends a timeline event, so the
coverage check can replay exactly what happened and in which order.
"""

from __future__ import annotations

import copy
import itertools
from collections import deque
from dataclasses import dataclass, field

from graph_sim import clock
from graph_sim.faults import FaultDice, FaultRules, Faults
from graph_sim.licences import licence_tier

PER_USER_STATES = ("disabled", "enabled", "enforced")
# methodsRegistered values that count as a second factor (email and password do not).
MFA_METHODS = frozenset(
    {
        "microsoftAuthenticatorPush",
        "microsoftAuthenticatorPasswordless",
        "mobilePhone",
        "alternateMobilePhone",
        "officePhone",
        "softwareOneTimePasscode",
        "hardwareOneTimePasscode",
        "fido2",
        "windowsHelloForBusiness",
        "passKeyDeviceBound",
        "passKeyDeviceBoundAuthenticator",
        "temporaryAccessPass",
    }
)
SSPR_METHODS = frozenset(
    {
        "microsoftAuthenticatorPush",
        "mobilePhone",
        "email",
        "officePhone",
        "softwareOneTimePasscode",
        "alternateMobilePhone",
    }
)
SECURITY_DEFAULTS_ID = "00000000-0000-0000-0000-000000000005"
# mailboxSettings.userPurpose values (Graph v1.0); None on a User means "no Exchange Online mailbox".
MAILBOX_PURPOSES = ("user", "linked", "shared", "room", "equipment", "others")


@dataclass(slots=True)
class User:
    """A directory user with its legacy per-user MFA state and registered methods."""

    id: str
    upn: str
    display_name: str
    account_enabled: bool = True
    user_type: str = "Member"
    per_user_state: str = "disabled"
    methods: list[str] = field(default_factory=list)
    is_admin: bool = False
    break_glass: bool = False
    created: str = "2021-03-01T09:00:00Z"
    last_updated: str = "2024-01-01T00:00:00Z"
    mailbox_purpose: str | None = "user"  # mailboxSettings.userPurpose; None: no mailbox

    @property
    def is_mfa_registered(self) -> bool:
        return any(m in MFA_METHODS for m in self.methods)


@dataclass(slots=True)
class Group:
    """A security group; membership is direct (no nesting)."""

    id: str
    display_name: str
    member_ids: list[str]
    description: str | None = None


@dataclass(slots=True)
class Event:
    """One state change on a tenant's timeline; ``old``/``new`` are enough to replay it both ways."""

    seq: int
    t: float  # the tenant clock's monotonic() (simulated seconds)
    wall: str
    kind: str  # per_user_mfa | registration | security_defaults | policy | named_location | consent | user
    #          | mfa_service_policy
    subject: str  # user id, policy id, named location id, or "tenant"
    old: object
    new: object
    source: str  # graph | admin | signin | consent | auto (Graph's own enabled -> enforced move)

    def as_dict(self) -> dict:
        return {
            "seq": self.seq,
            "t": self.t,
            "wall": self.wall,
            "kind": self.kind,
            "subject": self.subject,
            "old": self.old,
            "new": self.new,
            "source": self.source,
        }


_event_seq = itertools.count(1)


class Tenant:
    """One customer tenant: its directory, policies, consent for the MSP app, faults and timeline."""

    def __init__(
        self,
        *,
        tenant_id: str,
        domain: str,
        display_name: str,
        skus: list[dict],
        security_defaults: bool,
        consent_granted: bool,
        roles: list[str],
        users: list[User],
        groups: list[Group] | None = None,
        policies: list[dict] | None = None,
        named_locations: list[dict] | None = None,
        notes: str = "",
        extra_domains: list[str] = (),
        seed: int = 0,
        managed_policy_ids: set[str] | None = None,
        mfa_service_policy: dict | None = None,
        sign_ins: list[dict] | None = None,
        directory_audits: list[dict] | None = None,
    ):
        self.id = tenant_id
        self.domain = domain
        self.domains = [domain, *extra_domains]
        self.display_name = display_name
        self.skus = skus
        self.security_defaults = security_defaults
        self.consent_granted = consent_granted
        self.roles = list(roles)
        self.users = users
        self.groups = {g.id: g for g in groups or []}
        self.policies: dict[str, dict] = {p["id"]: p for p in policies or []}
        self.named_locations: dict[str, dict] = {n["id"]: n for n in named_locations or []}
        self.managed_policy_ids = set(managed_policy_ids or ())
        # The undocumented legacy MFA service settings (GET /beta/policies/mfaServicePolicy); None: Graph
        # answers that path like an unknown segment for this tenant.
        self.mfa_service_policy = copy.deepcopy(mfa_service_policy)
        self.sign_ins: list[dict] = list(sign_ins or [])  # auditLogs/signIns entries, any order
        self.directory_audits: list[dict] = list(directory_audits or [])  # auditLogs/directoryAudits
        self.visible_at: dict[
            str, float
        ] = {}  # object id -> monotonic time it becomes visible (replication lag)
        self.enforce_due: dict[str, float] = {}  # user id -> monotonic time enabled moves on to enforced
        self.notes = notes
        self.faults = Faults()
        self.dice = FaultDice(seed, tenant_id)
        self.fault_rules = FaultRules()
        self.timeline: list[Event] = []
        self.clock: clock.Clock = clock.REAL  # the owning simulator's clock (FleetState sets it)
        self._reindex()

    def _reindex(self) -> None:
        self.by_id = {u.id: u for u in self.users}
        self.by_upn = {u.upn.lower(): u for u in self.users}
        self.member_of: dict[str, set[str]] = {}
        for g in self.groups.values():
            for uid in g.member_ids:
                self.member_of.setdefault(uid, set()).add(g.id)

    # -- look-ups -------------------------------------------------------------------------------
    @property
    def licence(self) -> str:
        return licence_tier(self.skus)

    @property
    def break_glass_upns(self) -> list[str]:
        return [u.upn for u in self.users if u.break_glass]

    @property
    def size_class(self) -> str:
        n = len(self.users)
        return "S" if n < 50 else "M" if n <= 500 else "L"

    def find_user(self, key: str) -> User | None:
        return self.by_id.get(key) or self.by_upn.get(key.lower())

    def groups_of(self, user_id: str) -> set[str]:
        return self.member_of.get(user_id, set())

    def is_visible(self, object_id: str, now: float | None = None) -> bool:
        until = self.visible_at.get(object_id)
        return until is None or (now if now is not None else self.clock.monotonic()) >= until

    # -- changes (each appends to the timeline) -------------------------------------------------
    def _record(self, kind: str, subject: str, old: object, new: object, source: str) -> Event:
        ev = Event(next(_event_seq), self.clock.monotonic(), clock.iso(), kind, subject, old, new, source)
        self.timeline.append(ev)
        return ev

    def set_per_user_state(self, user: User, state: str, source: str) -> bool:
        if state not in PER_USER_STATES:
            raise ValueError(state)
        if user.per_user_state == state:
            return False
        self._record("per_user_mfa", user.id, user.per_user_state, state, source)
        user.per_user_state = state
        return True

    def patch_per_user_state(self, user: User, state: str, *, enforce_after_s: float = 0.0) -> bool:
        """A Graph PATCH of the user's requirements. `enabled` for a user who has already registered an
        MFA method "changes automatically to enforced" (strongAuthenticationRequirements resource page);
        the page does not say when, so `enforce_after_s` (the tenant's fault knob) sets the delay: 0, at
        once (a GET right after the 204 reads enforced), or later (`settle` applies it)."""
        changed = self.set_per_user_state(user, state, "graph")
        self.enforce_due.pop(user.id, None)
        if state == "enabled" and user.is_mfa_registered:
            if enforce_after_s > 0:
                self.enforce_due[user.id] = self.clock.monotonic() + enforce_after_s
            else:
                changed = self.set_per_user_state(user, "enforced", "auto") or changed
        return changed

    def settle(self) -> None:
        """Apply the automatic moves to enforced that are due (called before a request is answered)."""
        if not self.enforce_due:
            return
        now = self.clock.monotonic()
        for user_id, due in list(self.enforce_due.items()):
            if due > now:
                continue
            del self.enforce_due[user_id]
            user = self.by_id.get(user_id)
            if user is not None and user.per_user_state == "enabled" and user.is_mfa_registered:
                self.set_per_user_state(user, "enforced", "auto")

    def add_user(self, user: User, source: str) -> None:
        """A user created in the directory (by an admin: the console itself never creates users)."""
        if user.id in self.by_id or user.upn.lower() in self.by_upn:
            raise ValueError(f"a user {user.upn!r} or with id {user.id!r} already exists")
        self.users.append(user)
        self.by_id[user.id] = user
        self.by_upn[user.upn.lower()] = user
        self._record("user", user.id, None, {"userPrincipalName": user.upn}, source)

    def register_methods(self, user: User, methods: list[str], source: str) -> None:
        """Register MFA methods; a user in ``enabled`` who completes registration moves to ``enforced``."""
        merged = list(dict.fromkeys([*user.methods, *methods]))
        if merged != user.methods:
            self._record("registration", user.id, list(user.methods), merged, source)
            user.methods = merged
            user.last_updated = clock.iso()
        if user.per_user_state == "enabled" and user.is_mfa_registered:
            self.set_per_user_state(user, "enforced", source)

    def set_security_defaults(self, enabled: bool, source: str) -> bool:
        if self.security_defaults == enabled:
            return False
        self._record("security_defaults", "tenant", self.security_defaults, enabled, source)
        self.security_defaults = enabled
        return True

    def put_policy(self, policy: dict, source: str, lag_s: float = 0.0) -> None:
        old = copy.deepcopy(self.policies.get(policy["id"]))
        self.policies[policy["id"]] = policy
        if old is None and lag_s > 0:
            self.visible_at[policy["id"]] = self.clock.monotonic() + lag_s
        self._record("policy", policy["id"], old, copy.deepcopy(policy), source)

    def delete_policy(self, policy_id: str, source: str) -> None:
        old = self.policies.pop(policy_id)
        self.visible_at.pop(policy_id, None)
        self._record("policy", policy_id, old, None, source)

    def put_named_location(self, location: dict, source: str, lag_s: float = 0.0) -> None:
        old = copy.deepcopy(self.named_locations.get(location["id"]))
        self.named_locations[location["id"]] = location
        if old is None and lag_s > 0:
            self.visible_at[location["id"]] = self.clock.monotonic() + lag_s
        self._record("named_location", location["id"], old, copy.deepcopy(location), source)

    def delete_named_location(self, location_id: str, source: str) -> None:
        old = self.named_locations.pop(location_id)
        self.visible_at.pop(location_id, None)
        self._record("named_location", location_id, old, None, source)

    def set_mfa_service_policy(self, policy: dict | None, source: str) -> None:
        """Set (or, with None, remove) the legacy MFA service settings."""
        old = copy.deepcopy(self.mfa_service_policy)
        self.mfa_service_policy = copy.deepcopy(policy)
        self._record("mfa_service_policy", "tenant", old, copy.deepcopy(policy), source)

    def add_sign_ins(self, entries: list[dict]) -> None:
        """Append sign-in log entries (not timeline events: they change no configuration)."""
        self.sign_ins.extend(entries)

    def add_directory_audit(self, entry: dict) -> None:
        self.directory_audits.append(entry)

    def set_consent(self, granted: bool, roles: list[str], source: str) -> None:
        old = {"granted": self.consent_granted, "roles": list(self.roles)}
        self.consent_granted = granted
        self.roles = list(roles) if granted else []
        self._record("consent", "tenant", old, {"granted": granted, "roles": list(self.roles)}, source)

    # -- views ---------------------------------------------------------------------------------
    def summary(self) -> dict:
        """The tenant's entry in fleet.json."""
        return {
            "tenant_id": self.id,
            "domain": self.domain,
            "domains": list(self.domains),
            "display_name": self.display_name,
            "consent_granted": self.consent_granted,
            "roles": list(self.roles),
            "licence": self.licence,
            "security_defaults": self.security_defaults,
            "user_count": len(self.users),
            "break_glass_upns": self.break_glass_upns,
            "groups": {g.display_name: g.id for g in self.groups.values()},
            "notes": self.notes,
        }

    def user_state(self, u: User) -> dict:
        return {
            "id": u.id,
            "userPrincipalName": u.upn,
            "displayName": u.display_name,
            "accountEnabled": u.account_enabled,
            "userType": u.user_type,
            "perUserMfaState": u.per_user_state,
            "methodsRegistered": list(u.methods),
            "isMfaRegistered": u.is_mfa_registered,
            "isAdmin": u.is_admin,
            "breakGlass": u.break_glass,
            "userPurpose": u.mailbox_purpose,
        }

    def snapshot(self) -> dict:
        """Everything an assertion may want, as plain JSON."""
        return {
            **self.summary(),
            "faults": self.faults.as_dict(),
            "fault_rules": self.fault_rules.as_list(),
            "users": [self.user_state(u) for u in self.users],
            "groups": [
                {"id": g.id, "displayName": g.display_name, "members": list(g.member_ids)}
                for g in self.groups.values()
            ],
            "policies": list(self.policies.values()),
            "microsoft_managed_policy_ids": sorted(self.managed_policy_ids),
            "named_locations": list(self.named_locations.values()),
            "mfa_service_policy": self.mfa_service_policy,
            "sign_in_count": len(self.sign_ins),
            "timeline_length": len(self.timeline),
        }


@dataclass
class AppRegistration:
    """The MSP's multi-tenant app: one client id, a secret and a certificate credential."""

    client_id: str
    client_secret: str
    display_name: str = "MSP MFA Migration Console"
    cert_pem: bytes = b""
    key_pem: bytes = b""
    thumbprint_sha1: str = ""  # hex upper
    thumbprint_sha256: str = ""  # hex upper
    public_key: object = None


class RequestLog:
    """A bounded ring of Graph requests, plus counters that survive the ring's overflow."""

    def __init__(self, size: int = 100_000):
        self.entries: deque[dict] = deque(maxlen=size)
        self._seq = itertools.count(1)
        self.counters: dict[str, int] = {"total": 0, "writes_effective": 0, "throttled": 0, "faults": 0}
        self.by_status: dict[int, int] = {}

    def add(self, **entry) -> dict:
        entry["seq"] = next(self._seq)
        self.entries.append(entry)
        self.counters["total"] += 1
        self.by_status[entry["status"]] = self.by_status.get(entry["status"], 0) + 1
        if entry.get("write_effective"):
            self.counters["writes_effective"] += 1
        if entry.get("throttled"):
            self.counters["throttled"] += 1
        if entry.get("fault"):
            self.counters["faults"] += 1
        return entry

    def since(self, seq: int = 0, tenant: str | None = None, limit: int = 10_000) -> list[dict]:
        # Sequence numbers in the ring are contiguous, so the first entry after ``seq`` is found by
        # arithmetic instead of walking the ring from its oldest entry in Python.
        entries = self.entries
        start = min(max(seq - entries[0]["seq"] + 1, 0), len(entries)) if entries else 0
        out = []
        for e in itertools.islice(entries, start, None):
            if e["seq"] > seq and (tenant is None or e.get("tenant_id") == tenant):
                out.append(e)
                if len(out) >= limit:
                    break
        return out


class FleetState:
    """All tenants of one simulator run, the app registration and the request log."""

    def __init__(
        self,
        tenants: list[Tenant],
        app: AppRegistration,
        fleet_name: str,
        seed: int,
        log_size: int = 100_000,
        sim_clock: clock.Clock | None = None,
    ):
        self.clock = sim_clock or clock.REAL
        for t in tenants:
            t.clock = self.clock
        self.fleet_name = fleet_name
        self.seed = seed
        self.app = app
        self.tenants: dict[str, Tenant] = {t.id: t for t in tenants}
        self.by_domain = {d.lower(): t for t in tenants for d in t.domains}
        self.log = RequestLog(log_size)

    def resolve(self, key: str) -> Tenant | None:
        """Tenant by GUID or by any of its domains (case-insensitive)."""
        return self.tenants.get(key.lower()) or self.by_domain.get(key.lower())
