"""Seeded fleets: the fixed ``demo`` fleet (every interesting case) and ``generated`` N x M fleets."""

from __future__ import annotations

import random
import uuid

from graph_sim import audit_logs, clock
from graph_sim.auth import FULL_ROLES
from graph_sim.conditional_access import mfa_all_users_policy, normalize_policy
from graph_sim.licences import subscribed_sku
from graph_sim.state import Group, Tenant, User

_NS = uuid.UUID("5f1d2a3e-8c4b-4f6a-9e2d-7b1c0a9d8e7f")
DEMO_CLIENT_ID = "8f4c2d1e-6a3b-4c5d-9e7f-a1b2c3d4e5f6"
DEMO_CLIENT_SECRET = "sim~DemoSecret.0123456789abcdefGHIJ"
MANAGED_MFA_TEMPLATE_ID = "a3d0a415-b068-4326-9251-f9cdf9feeb64"

FIRST = [
    "Adele",
    "Alex",
    "Allan",
    "Bianca",
    "Brian",
    "Cameron",
    "Christie",
    "Debra",
    "Diego",
    "Emily",
    "Enrico",
    "Grady",
    "Henrietta",
    "Irvin",
    "Isaiah",
    "Johanna",
    "Joni",
    "Lee",
    "Lidia",
    "Lynne",
    "Megan",
    "Miriam",
    "Nestor",
    "Patti",
    "Pradeep",
    "Raul",
    "Sanjay",
    "Tomas",
    "Wanda",
    "Yuki",
]
LAST = [
    "Vance",
    "Wilber",
    "Deyoung",
    "Pai",
    "Johnson",
    "White",
    "Cline",
    "Berger",
    "Siciliani",
    "Braun",
    "Rossi",
    "Archie",
    "Gonzalez",
    "Mayer",
    "Hobbs",
    "Lauer",
    "Sherman",
    "Gu",
    "Holloway",
    "Robbins",
    "Bowen",
    "Graham",
    "Wilke",
    "Fernandez",
    "Gupta",
    "Razi",
    "Kumar",
    "Novak",
    "Lopez",
    "Tanaka",
]
METHOD_SETS = [
    ["microsoftAuthenticatorPush", "softwareOneTimePasscode"],
    ["mobilePhone"],
    ["microsoftAuthenticatorPush", "mobilePhone", "email"],
    ["fido2", "microsoftAuthenticatorPush"],
    ["softwareOneTimePasscode"],
    ["windowsHelloForBusiness", "microsoftAuthenticatorPush"],
]


def _uid(*parts: object) -> str:
    return str(uuid.uuid5(_NS, "/".join(map(str, parts))))


def _sku(tid: str, part: str, enabled: int, consumed: int) -> dict:
    return subscribed_sku(tid, part, enabled, consumed)


def _make_users(
    tid: str,
    domain: str,
    n: int,
    rng: random.Random,
    *,
    mix: tuple[float, float, float],
    unregistered: float,
    admins: int = 2,
) -> list[User]:
    """n members named firstname.lastnameNN@domain with a (disabled, enabled, enforced) state mix."""
    users = []
    for i in range(n):
        first, last = FIRST[i % len(FIRST)], LAST[(i * 7 + i // len(FIRST)) % len(LAST)]
        state = rng.choices(("disabled", "enabled", "enforced"), weights=mix)[0]
        registered = state == "enforced" or rng.random() >= unregistered
        if state == "enabled" and registered:
            # Enabled users who registered were moved to enforced; keep a few "enabled + registered"
            # that an admin re-enabled (documented: they stay enabled until re-registration).
            registered = rng.random() < 0.3
        users.append(
            User(
                id=_uid(tid, "user", i),
                upn=f"{first.lower()}.{last.lower()}{i:02d}@{domain}",
                display_name=f"{first} {last}",
                per_user_state=state,
                methods=list(rng.choice(METHOD_SETS)) if registered else [],
                is_admin=i < admins,
            )
        )
    return users


def _break_glass(tid: str, domain: str, n: int) -> list[User]:
    return [
        User(
            id=_uid(tid, "bg", i),
            upn=f"bg{i + 1}@{domain}",
            display_name=f"Break Glass {i + 1}",
            per_user_state="disabled",
            methods=["fido2"],
            is_admin=True,
            break_glass=True,
            mailbox_purpose=None,  # unlicensed cloud-only accounts: no mailbox
        )
        for i in range(n)
    ]


def _mfa_service_policy(
    trusted_ips: list[str],
    *,
    trusted: bool,
    skip_federated: bool,
    remember_days: int | None,
    app_passwords: bool,
) -> dict:
    """The simulator's assumed shape of the undocumented ``/beta/policies/mfaServicePolicy``."""
    return {
        "id": "mfaServicePolicy",
        "trustedIps": {"isEnabled": trusted, "ipRanges": list(trusted_ips)},
        "skipMfaForFederatedUsers": skip_federated,
        "rememberMfaOnTrustedDevices": {"isEnabled": remember_days is not None, "days": remember_days or 90},
        "appPasswords": {"isAllowed": app_passwords},
    }


def _sign_ins(
    tid: str, users: list[User], legacy: list[tuple[User, str, tuple[int, str] | None]], modern_users: int
) -> list[dict]:
    """Sign-in log entries of the last 14 days: three per legacy (user, clientAppUsed, error) and two
    modern ones (Browser, then Mobile Apps and Desktop clients) for each of the first ``modern_users``
    enabled members. Timestamps are relative to when the fleet is built."""
    now = clock.utcnow()
    apps = list(audit_logs.MODERN_APPS)
    out = []
    members = [u for u in users if u.account_enabled and not u.break_glass and u.user_type == "Member"]
    for i, u in enumerate(members[:modern_users]):
        for j, client in enumerate(audit_logs.MODERN_CLIENT_APPS):
            out.append(
                audit_logs.sign_in(
                    user_id=u.id,
                    upn=u.upn,
                    display_name=u.display_name,
                    client_app=client,
                    app_display_name=apps[(i + j) % len(apps)],
                    created=audit_logs.hours_ago(now, 2 + (i * 7 + j * 31) % 330),
                    ip=f"198.51.100.{10 + i % 200}",
                    entry_id=_uid(tid, "signin", u.id, j),
                )
            )
    for k, (u, client, error) in enumerate(legacy):
        for j in range(3):
            out.append(
                audit_logs.sign_in(
                    user_id=u.id,
                    upn=u.upn,
                    display_name=u.display_name,
                    client_app=client,
                    created=audit_logs.hours_ago(now, 1 + k * 5 + j * 96),
                    ip="192.0.2.77" if client != "Exchange ActiveSync" else "198.51.100.250",
                    error=error,
                    entry_id=_uid(tid, "signin-legacy", u.id, j),
                )
            )
    return out


def _enforced_members(users: list[User], n: int) -> list[User]:
    return [u for u in users if u.per_user_state == "enforced" and not u.is_admin and not u.break_glass][:n]


def demo_fleet(seed: int = 0) -> list[Tenant]:
    """Seven fixed tenants; GUIDs and domains never change so docs and tests can name them."""
    tenants = []

    # 1. P2 (EMS E5 + O365 E3), per-user mix, unregistered users, 2 break-glass accounts, SD off.
    tid, dom = "11111111-1111-4111-8111-111111111111", "contoso.onmicrosoft.com"
    rng = random.Random(f"{seed}:{tid}")
    users = _make_users(tid, dom, 148, rng, mix=(0.3, 0.2, 0.5), unregistered=0.2) + _break_glass(tid, dom, 2)
    pilot = Group(
        _uid(tid, "group", "pilot"), "MFA Pilot", [u.id for u in users[2:22]], "Pilot users for CA MFA"
    )
    imap, smtp, eas = _enforced_members(users, 3)
    pop3 = next(u for u in users[2:] if u.per_user_state == "disabled")
    contoso_legacy = [
        (imap, "IMAP4", None),
        (smtp, "Authenticated SMTP", None),
        (eas, "Exchange ActiveSync", None),
    ]
    tenants.append(
        Tenant(
            tenant_id=tid,
            domain=dom,
            extra_domains=["contoso.com"],
            display_name="Contoso Ltd",
            skus=[_sku(tid, "EMSPREMIUM", 200, 150), _sku(tid, "ENTERPRISEPACK", 200, 150)],
            security_defaults=False,
            consent_granted=True,
            roles=FULL_ROLES,
            users=users,
            groups=[pilot],
            seed=seed,
            mfa_service_policy=_mfa_service_policy(
                ["203.0.113.0/24", "198.51.100.16/28"],
                trusted=True,
                skip_federated=False,
                remember_days=14,
                app_passwords=True,
            ),
            sign_ins=_sign_ins(tid, users, [*contoso_legacy, (pop3, "POP3", None)], modern_users=40),
            notes="P2 via EMS E5; per-user MFA mix (disabled/enabled/enforced), ~20% not MFA-registered; "
            "2 cloud-only break-glass accounts; SD off; >100 users so default paging applies; 'MFA Pilot' "
            "group. mfaServicePolicy: trusted IPs 203.0.113.0/24 + 198.51.100.16/28, remember MFA 14 days, "
            f"app passwords allowed. Sign-ins: enforced {imap.upn} (IMAP4), {smtp.upn} (Authenticated SMTP), "
            f"{eas.upn} (Exchange ActiveSync) succeed (app passwords); per-user-disabled {pop3.upn} uses "
            "POP3; 40 members sign in with modern clients.",
        )
    )

    # 2. Business Premium (P1 only inside SPB), SD on, per-user mostly disabled.
    tid, dom = "22222222-2222-4222-8222-222222222222", "fabrikam.onmicrosoft.com"
    rng = random.Random(f"{seed}:{tid}")
    users = _make_users(tid, dom, 39, rng, mix=(0.85, 0.05, 0.10), unregistered=0.3) + _break_glass(
        tid, dom, 1
    )
    tenants.append(
        Tenant(
            tenant_id=tid,
            domain=dom,
            display_name="Fabrikam Inc",
            skus=[_sku(tid, "SPB", 45, 40)],
            security_defaults=True,
            consent_granted=True,
            roles=FULL_ROLES,
            users=users,
            seed=seed,
            sign_ins=_sign_ins(tid, users, [], modern_users=15),
            notes="Business Premium: AAD_PREMIUM only as a plan inside the SPB bundle (match plans, not "
            "SKUs); "
            "security defaults ON; per-user mostly disabled; 1 break-glass account. No mfaServicePolicy "
            "(the beta path answers 400 'Resource not found for the segment'); modern sign-ins only.",
        )
    )

    # 3. Entra ID Free (Business Basic/Standard only), SD on.
    tid, dom = "33333333-3333-4333-8333-333333333333", "tailspin.onmicrosoft.com"
    rng = random.Random(f"{seed}:{tid}")
    users = _make_users(tid, dom, 24, rng, mix=(0.7, 0.1, 0.2), unregistered=0.4) + _break_glass(tid, dom, 1)
    tenants.append(
        Tenant(
            tenant_id=tid,
            domain=dom,
            display_name="Tailspin Toys",
            skus=[
                _sku(tid, "O365_BUSINESS_ESSENTIALS", 20, 18),
                _sku(tid, "O365_BUSINESS_PREMIUM", 10, 7),
                _sku(tid, "FLOW_FREE", 10000, 3),
            ],
            security_defaults=True,
            consent_granted=True,
            roles=FULL_ROLES,
            users=users,
            seed=seed,
            sign_ins=_sign_ins(tid, users, [], modern_users=10),
            notes="Entra ID Free (Business Basic + Standard only): no CA; userRegistrationDetails and "
            "auditLogs/signIns answer 403; SD on; no mfaServicePolicy.",
        )
    )

    # 4. P1 with a Microsoft-managed 'MFA for all users' policy in report-only.
    tid, dom = "44444444-4444-4444-8444-444444444444", "northwind.onmicrosoft.com"
    rng = random.Random(f"{seed}:{tid}")
    users = _make_users(tid, dom, 58, rng, mix=(0.4, 0.15, 0.45), unregistered=0.15) + _break_glass(
        tid, dom, 2
    )
    managed = mfa_all_users_policy(
        _uid(tid, "managed-mfa"),
        "Multifactor authentication for all users",
        "enabledForReportingButNotEnforced",
        "2024-11-04T08:12:45.1234567Z",
        template_id=MANAGED_MFA_TEMPLATE_ID,
    )
    legacy = normalize_policy(
        {
            "id": _uid(tid, "managed-legacy"),
            "templateId": "0b2282f9-2862-4178-88b5-d79340b36cb8",
            "displayName": "Block legacy authentication",
            "createdDateTime": "2024-11-04T08:12:45.2345678Z",
            "modifiedDateTime": None,
            "state": "enabledForReportingButNotEnforced",
            "conditions": {
                "clientAppTypes": ["exchangeActiveSync", "other"],
                "applications": {"includeApplications": ["All"]},
                "users": {"includeUsers": ["All"]},
            },
            "grantControls": {"operator": "OR", "builtInControls": ["block"]},
        }
    )
    users.append(
        User(
            _uid(tid, "shared", "accounts"),
            f"accounts@{dom}",
            "Accounts Payable (shared)",
            account_enabled=False,
            mailbox_purpose="shared",
        )
    )
    managed_audits = [
        audit_logs.directory_audit(
            activity="Add conditional access policy",
            operation="Add",
            target_id=pol["id"],
            target_name=pol["displayName"],
            app=audit_logs.managed_policy_manager(),
            when=audit_logs.parse_datetime(pol["createdDateTime"]),
            entry_id=f"IPCGraph_{_uid(tid, 'audit', pol['id'])}",
        )
        for pol in (managed, legacy)
    ]
    tenants.append(
        Tenant(
            tenant_id=tid,
            domain=dom,
            display_name="Northwind Traders",
            skus=[_sku(tid, "AAD_PREMIUM", 70, 60), _sku(tid, "ENTERPRISEPACK", 70, 60)],
            security_defaults=False,
            consent_granted=True,
            roles=FULL_ROLES,
            users=users,
            seed=seed,
            policies=[managed, legacy],
            managed_policy_ids={managed["id"], legacy["id"]},
            directory_audits=managed_audits,
            mfa_service_policy=_mfa_service_policy(
                [], trusted=False, skip_federated=False, remember_days=None, app_passwords=False
            ),
            sign_ins=_sign_ins(tid, users, [], modern_users=20),
            notes="P1 standalone; Microsoft-managed 'Multifactor authentication for all users' policy "
            "exists in "
            "report-only (adopt it, don't duplicate); managed policies cannot be deleted or renamed; their "
            "creation is in auditLogs/directoryAudits, initiated by 'Microsoft Managed Policy Manager'. "
            "mfaServicePolicy present with everything off. Shared mailbox accounts@ (accountEnabled false, "
            "userPurpose shared). Modern sign-ins only.",
        )
    )

    # 5. Consent not granted yet.
    tid, dom = "55555555-5555-4555-8555-555555555555", "adatum.onmicrosoft.com"
    rng = random.Random(f"{seed}:{tid}")
    users = _make_users(tid, dom, 29, rng, mix=(0.5, 0.2, 0.3), unregistered=0.2) + _break_glass(tid, dom, 1)
    tenants.append(
        Tenant(
            tenant_id=tid,
            domain=dom,
            display_name="Adatum Corporation",
            skus=[_sku(tid, "SPE_E3", 35, 30)],
            security_defaults=False,
            consent_granted=False,
            roles=[],
            users=users,
            seed=seed,
            notes="P1 (Microsoft 365 E3) but admin consent NOT granted: token requests fail with "
            "AADSTS7000229 "
            "until the admin-consent page is accepted.",
        )
    )

    # 6. Partial consent.
    tid, dom = "66666666-6666-4666-8666-666666666666", "litware.onmicrosoft.com"
    rng = random.Random(f"{seed}:{tid}")
    users = _make_users(tid, dom, 19, rng, mix=(0.3, 0.3, 0.4), unregistered=0.2) + _break_glass(tid, dom, 1)
    partial = [r for r in FULL_ROLES if r != "Policy.ReadWrite.AuthenticationMethod"]
    tenants.append(
        Tenant(
            tenant_id=tid,
            domain=dom,
            display_name="Litware Inc",
            skus=[_sku(tid, "SPE_E3", 25, 20)],
            security_defaults=False,
            consent_granted=True,
            roles=partial,
            users=users,
            seed=seed,
            mfa_service_policy=_mfa_service_policy(
                ["198.51.100.64/26"],
                trusted=True,
                skip_federated=False,
                remember_days=None,
                app_passwords=False,
            ),
            sign_ins=_sign_ins(tid, users, [], modern_users=10),
            notes="P1; consent granted for an older permission set: Policy.ReadWrite.AuthenticationMethod "
            "missing "
            "(per-user MFA PATCH answers 403). mfaServicePolicy: trusted IPs 198.51.100.64/26 only.",
        )
    )

    # 7. Break-glass group, guests with #EXT# UPNs, an apostrophe UPN, unicode display names.
    tid, dom = "77777777-7777-4777-8777-777777777777", "woodgrove.onmicrosoft.com"
    rng = random.Random(f"{seed}:{tid}")
    users = _make_users(tid, dom, 28, rng, mix=(0.3, 0.2, 0.5), unregistered=0.2)
    users += [
        User(
            _uid(tid, "guest", 1),
            f"jane.doe_gmail.com#EXT#@{dom}",
            "Jane Doe (Guest)",
            user_type="Guest",
            per_user_state="disabled",
            methods=["mobilePhone"],
        ),
        User(
            _uid(tid, "guest", 2),
            f"ravi_partner.example#EXT#@{dom}",
            "Ravi Partner",
            user_type="Guest",
            per_user_state="enforced",
            methods=["microsoftAuthenticatorPush"],
        ),
        User(
            _uid(tid, "apostrophe"),
            f"o'brien@{dom}",
            "Siobhán O'Brien",
            per_user_state="enforced",
            methods=["microsoftAuthenticatorPush"],
        ),
        User(_uid(tid, "unicode"), f"zoe.angstrom@{dom}", "Zoë Ångström 李雷", per_user_state="enabled"),
    ]
    for guest in users[-4:-2]:
        guest.mailbox_purpose = None  # guests have no mailbox in the resource tenant
    bg = _break_glass(tid, dom, 2)
    bg[0].upn, bg[1].upn = f"emergency.access1@{dom}", f"emergency.access2@{dom}"
    users += bg
    # Accounts a readiness check must not count as people who still have to register for MFA.
    users += [
        User(
            _uid(tid, "shared", "info"),
            f"info@{dom}",
            "Woodgrove Info (shared)",
            account_enabled=False,
            mailbox_purpose="shared",
        ),
        User(
            _uid(tid, "room", "boardroom"),
            f"boardroom@{dom}",
            "Boardroom",
            account_enabled=False,
            mailbox_purpose="room",
        ),
        User(_uid(tid, "leaver"), f"former.employee@{dom}", "Former Employee", account_enabled=False),
    ]
    obrien = next(u for u in users if u.upn.startswith("o'brien@"))
    eas, imap = _enforced_members(users[:28], 2)
    no_app_passwords = audit_logs.MFA_REQUIRED_ERROR
    woodgrove_legacy = [
        (obrien, "Authenticated SMTP", no_app_passwords),
        (eas, "Exchange ActiveSync", no_app_passwords),
        (imap, "IMAP4", no_app_passwords),
    ]
    hq = {
        "@odata.type": "#microsoft.graph.ipNamedLocation",
        "id": _uid(tid, "location", "hq"),
        "displayName": "Woodgrove HQ",
        "createdDateTime": "2023-02-14T10:00:00.0000000Z",
        "modifiedDateTime": "2023-02-14T10:00:00.0000000Z",
        "isTrusted": True,
        "ipRanges": [
            {"@odata.type": "#microsoft.graph.iPv4CidrRange", "cidrAddress": "192.0.2.0/25"},
            {"@odata.type": "#microsoft.graph.iPv6CidrRange", "cidrAddress": "2001:db8:1000::/48"},
        ],
    }
    bg_group = Group(
        _uid(tid, "group", "bg"),
        "Emergency Access Accounts",
        [u.id for u in bg],
        "Break-glass accounts, excluded from every CA policy",
    )
    tenants.append(
        Tenant(
            tenant_id=tid,
            domain=dom,
            extra_domains=["woodgrovebank.com"],
            display_name="Woodgrove Bank",
            skus=[_sku(tid, "SPB", 40, 34)],
            security_defaults=False,
            consent_granted=True,
            roles=FULL_ROLES,
            users=users,
            groups=[bg_group],
            named_locations=[hq],
            seed=seed,
            mfa_service_policy=_mfa_service_policy(
                ["192.0.2.0/25"], trusted=True, skip_federated=True, remember_days=14, app_passwords=False
            ),
            sign_ins=_sign_ins(tid, users, woodgrove_legacy, modern_users=20),
            notes="P1 (SPB); break-glass accounts in the 'Emergency Access Accounts' group; guests with "
            "#EXT# UPNs, "
            "an apostrophe UPN (o'brien@) and unicode display names. Trusted IP named location 'Woodgrove "
            "HQ' (192.0.2.0/25, 2001:db8:1000::/48). mfaServicePolicy: trusted IPs 192.0.2.0/25, skip MFA "
            "for federated users, remember MFA 14 days, app passwords NOT allowed. Disabled accounts: info@ "
            "(shared mailbox), boardroom@ (room mailbox), former.employee@. Sign-ins: enforced "
            f"{obrien.upn} (Authenticated SMTP), {eas.upn} (Exchange ActiveSync), {imap.upn} (IMAP4) fail "
            "with 50076 (MFA required, no app passwords); 20 members sign in with modern clients.",
        )
    )
    return tenants


def generated_fleet(n_tenants: int, n_users: int, seed: int) -> list[Tenant]:
    """N tenants x M users, deterministic from the seed; all P1/P2, consented, one break-glass account
    each; every fifth tenant (index 4, 9, ...) has security defaults on, so a wave meets the SD hand-off."""
    rng = random.Random(seed)
    tenants = []
    for t in range(n_tenants):
        tid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        dom = f"gen{t:05d}.onmicrosoft.com"
        p2 = t % 3 == 0
        skus = [_sku(tid, "EMSPREMIUM" if p2 else "SPB", n_users + 10, n_users)]
        users = []
        getbits, rand = rng.getrandbits, rng.random
        for i in range(n_users - 1):
            x = rand()
            state = "enforced" if x < 0.5 else "enabled" if x < 0.65 else "disabled"
            registered = state == "enforced" or rand() < 0.6
            users.append(
                User(
                    str(uuid.UUID(int=getbits(128), version=4)),
                    f"user{i:06d}@{dom}",
                    f"User {i:06d}",
                    per_user_state=state,
                    methods=["microsoftAuthenticatorPush"] if registered else [],
                    is_admin=i < 2,
                )
            )
        users.append(
            User(
                str(uuid.UUID(int=getbits(128), version=4)),
                f"breakglass@{dom}",
                "Break Glass",
                methods=["fido2"],
                is_admin=True,
                break_glass=True,
            )
        )
        tenants.append(
            Tenant(
                tenant_id=tid,
                domain=dom,
                display_name=f"Generated Tenant {t:05d}",
                skus=skus,
                security_defaults=t % 5 == 4,
                consent_granted=True,
                roles=FULL_ROLES,
                users=users,
                seed=seed,
                notes="generated",
            )
        )
    return tenants
