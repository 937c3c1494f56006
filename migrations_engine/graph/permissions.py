"""The application permissions the console needs in every customer tenant, in plain words."""

from __future__ import annotations

from collections.abc import Iterable

# Role name -> why the console needs it (shown to the customer's admin before consent).
REQUIRED_ROLES: dict[str, str] = {
    "Organization.Read.All": "Read the tenant's licences, to check for Entra ID P1/P2.",
    "User.Read.All": "List users, to count them and find break-glass accounts.",
    "GroupMember.Read.All": "Read members of the break-glass and pilot groups.",
    "Policy.Read.All": (
        "Read per-user MFA states, security defaults, Conditional Access policies, authentication "
        "strengths and the legacy MFA service settings (trusted IPs, remember MFA)."
    ),
    "Policy.ReadWrite.ConditionalAccess": (
        "Create and enable the 'Require MFA all users' policy, and the optional trusted-IPs named location "
        "and sign-in frequency policy."
    ),
    "Application.Read.All": (
        "Graph requires it, with the two policy permissions, to create or change a Conditional Access "
        "policy (it checks the apps a policy names); the console reads no application of yours."
    ),
    "Policy.ReadWrite.SecurityDefaults": "Turn security defaults off at cut-over (on again in a rollback).",
    "Policy.ReadWrite.AuthenticationMethod": "Set per-user MFA to disabled (registered methods are kept).",
    "AuditLog.Read.All": (
        "Read the MFA registration report, sign-ins by legacy clients (readiness) and which policies "
        "Microsoft manages (directory audit log)."
    ),
}


def missing_roles(granted: Iterable[str], needed: Iterable[str] = REQUIRED_ROLES) -> list[str]:
    """The `needed` roles (by default every required one) a token does not carry, in their order."""
    have = set(granted)
    return [role for role in needed if role not in have]


def missing_roles_in_words(missing: Iterable[str]) -> str:
    """What the console says when a token lacks permissions, the same in a run and the drift watch."""
    return "Missing permissions: " + ", ".join(missing) + ". Ask the customer's admin to consent again."
