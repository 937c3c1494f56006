"""The MSP's own Entra ID tenant, where its staff sign in to the console: staff accounts (password,
registered MFA methods, groups, app roles), the console's sign-in app registration, and the tenant's
Conditional Access authentication contexts.

It is not one of the customer tenants the console migrates; the login side (``graph_sim.sign_in``)
answers for it at ``/{tenant}/oauth2/v2.0/authorize`` and the token endpoint's authorization-code grant.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

_NS = uuid.UUID("0b6e2f6c-4d8a-4f0e-9a53-3c7d2e1f9b40")
STAFF_TENANT_DOMAIN = "northbridge-msp.onmicrosoft.com"
STAFF_CLIENT_ID = "3c9e7a51-2b4d-4e6f-8a1c-5d7e9f0b2c4a"
STAFF_CLIENT_SECRET = "sim~StaffSignIn.9876543210zyxwvuTSRQ"
# Groups claims list at most this many ids in a JWT; past it the token carries an overage claim instead
# (https://learn.microsoft.com/entra/identity-platform/id-token-claims-reference#groups-overage-claim).
GROUPS_OVERAGE_LIMIT = 200
APP_ROLES = ("Console.Viewer", "Console.Operator", "Console.Approver", "Console.Administrator")


def _uid(*parts: object) -> str:
    return str(uuid.uuid5(_NS, "/".join(str(p) for p in parts)))


@dataclass(slots=True)
class StaffMember:
    """A person of the MSP's tenant. ``methods`` are registered MFA methods (empty: none registered)."""

    id: str
    upn: str
    display_name: str
    password: str
    methods: list[str] = field(default_factory=list)
    group_ids: list[str] = field(default_factory=list)
    app_roles: list[str] = field(default_factory=list)
    account_enabled: bool = True
    # A B2B guest: invited from another tenant (its id here); its ID token says acct=1 and that idp.
    home_tenant: str = ""


@dataclass(slots=True)
class StaffApp:
    """The console's sign-in app registration (single-tenant, web platform, a client secret).

    ``redirect_uris``: registered reply URLs; for http://localhost the port is not compared, as Entra ID
    does for loopback redirect URIs. ``group_claims``: groupMembershipClaims is SecurityGroup.
    ``optional_claims``: the ID token's optional claims (token configuration).
    ``requires_mfa``: a Conditional Access policy requires MFA for every sign-in to this app."""

    client_id: str = STAFF_CLIENT_ID
    client_secret: str = STAFF_CLIENT_SECRET
    display_name: str = "MSP MFA console (staff sign-in)"
    redirect_uris: list[str] = field(
        default_factory=lambda: [
            "http://localhost/account/entra/callback/",
            "https://localhost/account/entra/callback/",
            "https://127.0.0.1/account/entra/callback/",
            "http://127.0.0.1/account/entra/callback/",
            # Where Entra ID's sign-out sends the browser back to (post_logout_redirect_uri).
            "http://localhost/login/",
            "http://127.0.0.1/login/",
        ]
    )
    group_claims: bool = True
    optional_claims: list[str] = field(default_factory=lambda: ["auth_time", "acct"])
    requires_mfa: bool = False


@dataclass
class StaffDirectory:
    """The MSP's tenant. ``auth_contexts``: declared authentication context ids and what the Conditional
    Access policy targeting each requires ("mfa", or None when no policy targets it)."""

    tenant_id: str
    domain: str
    display_name: str
    app: StaffApp
    members: dict[str, StaffMember]
    groups: dict[str, str]  # id -> display name
    auth_contexts: dict[str, str | None]

    def find(self, upn: str) -> StaffMember | None:
        upn = upn.strip().lower()
        return next((m for m in self.members.values() if m.upn.lower() == upn), None)

    def matches(self, key: str) -> bool:
        return key.lower() in (self.tenant_id, self.domain)

    def summary(self) -> dict:
        """What fleet.json says about it: enough for a test or a demo to sign someone in."""
        return {
            "tenant_id": self.tenant_id,
            "domain": self.domain,
            "display_name": self.display_name,
            "client_id": self.app.client_id,
            "client_secret": self.app.client_secret,
            "redirect_uris": list(self.app.redirect_uris),
            "auth_contexts": dict(self.auth_contexts),
            "groups": [{"id": gid, "displayName": name} for gid, name in self.groups.items()],
            "members": [
                {
                    "id": m.id,
                    "upn": m.upn,
                    "password": m.password,
                    "mfa_registered": bool(m.methods),
                    "groups": [self.groups[g] for g in m.group_ids if g in self.groups],
                    "app_roles": list(m.app_roles),
                    "enabled": m.account_enabled,
                    "guest": bool(m.home_tenant),
                }
                for m in self.members.values()
            ],
        }


def demo_staff_directory() -> StaffDirectory:
    """Northbridge IT, the demo MSP: one person per case the console's sign-in must handle."""
    domain = STAFF_TENANT_DOMAIN
    groups = {
        _uid("group", name): name
        for name in (
            "Console Operators",
            "Console Approvers",
            "Console Administrators",
            "Helpdesk",
            "Finance",
        )
    }
    by_name = {name: gid for gid, name in groups.items()}
    # Someone in more groups than a token can list (the overage case).
    many = {_uid("group", f"Project {i:03d}"): f"Project {i:03d}" for i in range(GROUPS_OVERAGE_LIMIT + 20)}
    groups.update(many)

    def member(alias, name, *, methods=("microsoftAuthenticatorPush",), groups_of=(), roles=(), **kw):
        return StaffMember(
            id=_uid("user", alias),
            upn=f"{alias}@{domain}",
            display_name=name,
            password=f"Sim-{alias.capitalize()}-Pass!2026",
            methods=list(methods),
            group_ids=[by_name.get(g, g) for g in groups_of],
            app_roles=list(roles),
            **kw,
        )

    people = [
        member("ada", "Ada Operator", groups_of=["Console Operators", "Helpdesk"]),
        member("grace", "Grace Approver", methods=["passKeyDeviceBound"], roles=["Console.Approver"]),
        member("alan", "Alan Administrator", groups_of=["Console Administrators"]),
        member("linus", "Linus No-MFA", methods=[], groups_of=["Console Operators"]),
        member("mallory", "Mallory Unmapped", groups_of=["Finance"]),
        member("olga", "Olga Overage", groups_of=["Console Operators", *many]),
        member("dora", "Dora Disabled", groups_of=["Console Operators"], account_enabled=False),
        # A guest from a customer's tenant, put in the operators' group by mistake.
        member("gus", "Gus Guest", groups_of=["Console Operators"], home_tenant=_uid("tenant", "guest-home")),
    ]
    return StaffDirectory(
        tenant_id=_uid("tenant", domain),
        domain=domain,
        display_name="Northbridge IT",
        app=StaffApp(),
        members={m.id: m for m in people},
        groups=groups,
        # c1 is what the console asks for by default: a policy requires MFA for it. c2 is declared but
        # no policy targets it (so it is always "satisfied").
        auth_contexts={"c1": "mfa", "c2": None},
    )
