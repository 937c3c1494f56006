"""What-If (`POST /beta/identity/conditionalAccess/evaluate`): would a policy apply to a user's sign-in."""

from __future__ import annotations

from migrations_engine.graph.client import GraphClient

EXCHANGE_ONLINE = "00000002-0000-0ff1-ce00-000000000000"  # the app a sample sign-in goes to


async def policy_applies(graph: GraphClient, policy_id: str, user_id: str) -> bool:
    """Whether the policy applies to the user signing in to Exchange Online from anywhere."""
    body = {
        "signInIdentity": {"@odata.type": "#microsoft.graph.userSignIn", "userId": user_id},
        "signInContext": {
            "@odata.type": "#microsoft.graph.applicationContext",
            "includeApplications": [EXCHANGE_ONLINE],
        },
        "signInConditions": {},
        "appliedPoliciesOnly": False,
    }
    answer = await graph.evaluate(body)
    return any(p.get("id") == policy_id and p.get("policyApplies") for p in answer)
