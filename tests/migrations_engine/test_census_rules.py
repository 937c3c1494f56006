"""How the census reads licences and policies (pure rules, no Graph)."""

from __future__ import annotations

from migrations_engine.graph.resources.licences import AAD_PREMIUM_P1, AAD_PREMIUM_P2, licence_from_skus
from migrations_engine.graph.resources.policy_kinds import best_policy_state


def sku(plans, status="Enabled", enabled=10):
    return {
        "capabilityStatus": status,
        "prepaidUnits": {"enabled": enabled},
        "servicePlans": [{"servicePlanId": p} for p in plans],
    }


def test_it_finds_p1_inside_a_bundle():
    assert licence_from_skus([sku(["x", AAD_PREMIUM_P1, "y"])])[0] == "p1"


def test_it_prefers_p2():
    assert licence_from_skus([sku([AAD_PREMIUM_P1]), sku([AAD_PREMIUM_P2])])[0] == "p2"


def test_it_ignores_suspended_or_empty_skus():
    assert (
        licence_from_skus([sku([AAD_PREMIUM_P2], status="Suspended"), sku([AAD_PREMIUM_P1], enabled=0)])[0]
        == "free"
    )


def test_it_ranks_mfa_policies_by_state():
    mfa_all = {
        "conditions": {"users": {"includeUsers": ["All"]}, "applications": {"includeApplications": ["All"]}},
        "grantControls": {"operator": "OR", "builtInControls": ["mfa"]},
    }
    pilot = {**mfa_all, "conditions": {**mfa_all["conditions"], "users": {"includeGroups": ["g"]}}}
    assert best_policy_state([{**pilot, "state": "enabled"}]) == "none"
    assert best_policy_state(
        [{**mfa_all, "state": "disabled"}, {**mfa_all, "state": "enabledForReportingButNotEnforced"}]
    ) == ("enabledForReportingButNotEnforced")
