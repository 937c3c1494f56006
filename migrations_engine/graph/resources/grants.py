"""A Conditional Access policy's grant controls: the built-in `mfa` control or an authentication strength,
how strong each is, and the grant a run's `grant` option asks for.

https://learn.microsoft.com/graph/api/resources/conditionalaccessgrantcontrols
"""

from __future__ import annotations

from typing import Any

# Built-in authentication strengths (Microsoft's fixed ids).
STRENGTH_MFA = "00000000-0000-0000-0000-000000000002"
STRENGTH_PASSWORDLESS = "00000000-0000-0000-0000-000000000003"
STRENGTH_PHISHING_RESISTANT = "00000000-0000-0000-0000-000000000004"
# A run's `grant` option: its label and the strength it asks for (None: the built-in `mfa` control).
GRANTS = {
    "mfa": ("Require multifactor authentication (built-in control)", None),
    "mfa_strength": ("Authentication strength: Multifactor authentication", STRENGTH_MFA),
    "phishing_resistant": ("Authentication strength: Phishing-resistant MFA", STRENGTH_PHISHING_RESISTANT),
}
# How strong a grant is, to tell an upgrade from a downgrade: the built-in `mfa` control and the built-in
# "Multifactor authentication" strength ask the same; "Passwordless MFA" more; phishing-resistant most.
# A custom strength is not ranked (it may be stronger than any built-in one).
STRENGTH_RANKS = {STRENGTH_MFA: 1, STRENGTH_PASSWORDLESS: 2, STRENGTH_PHISHING_RESISTANT: 3}
MFA_GRANT = {"operator": "OR", "builtInControls": ["mfa"]}


def grant_controls(grant: str) -> dict[str, Any]:
    """The `grantControls` a run's `grant` option creates a policy with: the built-in `mfa` control, or
    the built-in authentication strength by id (Graph's documented create shape; never both, since with
    OR plain MFA would satisfy the policy beside a stronger strength)."""
    strength = GRANTS.get(grant or "mfa", GRANTS["mfa"])[1]
    if strength is None:
        return dict(MFA_GRANT, builtInControls=["mfa"])
    return {"operator": "OR", "builtInControls": [], "authenticationStrength": {"id": strength}}


def asks_mfa(policy: dict[str, Any]) -> bool:
    """The policy's grant asks for MFA (the control, or any authentication strength)."""
    grant = policy.get("grantControls") or {}
    return "mfa" in (grant.get("builtInControls") or []) or bool(grant.get("authenticationStrength"))


def blocks(policy: dict[str, Any]) -> bool:
    return "block" in (((policy.get("grantControls") or {}).get("builtInControls")) or [])


def strength_id(grant: dict[str, Any] | None) -> str | None:
    strength = (grant or {}).get("authenticationStrength")
    return str(strength.get("id")) if isinstance(strength, dict) and strength.get("id") else None


def grant_matches(grant: dict[str, Any] | None, option: str) -> bool:
    """The grant asks exactly what the option asks: the `mfa` control and no strength, or the option's
    strength and not the `mfa` control (with OR, `mfa` beside a strength would let plain MFA through)."""
    grant = grant or {}
    wanted = GRANTS[option][1]
    has_mfa = "mfa" in (grant.get("builtInControls") or [])
    if wanted is None:
        return has_mfa and strength_id(grant) is None
    return strength_id(grant) == wanted and not has_mfa


def grant_rank(grant: dict[str, Any] | None) -> int | None:
    """1 for MFA, more for stronger built-in strengths, None for a custom strength (0: no MFA)."""
    grant = grant or {}
    sid = strength_id(grant)
    if sid is None:
        return 1 if "mfa" in (grant.get("builtInControls") or []) else 0
    if "mfa" in (grant.get("builtInControls") or []) and grant.get("operator", "OR") == "OR":
        return 1  # either satisfies: plain MFA is enough
    return STRENGTH_RANKS.get(sid)


def describe_grant(grant: dict[str, Any] | None) -> str:
    sid = strength_id(grant)
    if sid is None:
        return "the mfa control" if "mfa" in ((grant or {}).get("builtInControls") or []) else "no MFA"
    name = next((label for label, gid in GRANTS.values() if gid == sid), None)
    return name or f"authentication strength {sid}"


def is_downgrade(grant: dict[str, Any] | None, option: str) -> bool:
    """Moving `grant` to `option` would ask less (or maybe less: a custom strength is never replaced)."""
    current = grant_rank(grant)
    wanted = grant_rank(grant_controls(option))
    return current is None or current > (wanted or 0)


def fixed_grant(grant: dict[str, Any] | None, option: str) -> dict[str, Any]:
    """`grant` changed to ask what `option` asks, other controls and the operator kept (the whole object
    is sent: Graph replaces grantControls as a whole)."""
    grant = grant or {}
    others = [c for c in grant.get("builtInControls") or [] if c != "mfa"]
    wanted = GRANTS[option][1]
    return {
        "operator": grant.get("operator") or "OR",
        "builtInControls": others + ["mfa"] if wanted is None else others,
        "customAuthenticationFactors": list(grant.get("customAuthenticationFactors") or []),
        "termsOfUse": list(grant.get("termsOfUse") or []),
        "authenticationStrength": None if wanted is None else {"id": wanted},
    }


def grant_signature(grant: dict[str, Any] | None) -> tuple:
    """What a grant asks, for comparing two reads (a strength by id: Graph returns its whole object)."""
    grant = grant or {}
    return (
        grant.get("operator") or "OR",
        tuple(sorted(grant.get("builtInControls") or [])),
        tuple(sorted(grant.get("customAuthenticationFactors") or [])),
        tuple(sorted(grant.get("termsOfUse") or [])),
        strength_id(grant),
    )
