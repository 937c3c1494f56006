"""Step 10: per-user MFA off for every user in scope, only once the policy is enforced."""

from __future__ import annotations

from migrations_engine.graph.resources.mfa_policy import scope_problems
from migrations_engine.graph.resources.policies import get_policy
from migrations_engine.steps.base import Step, StepContext, StepFailed
from migrations_engine.steps.shared.apply import apply_changes
from migrations_engine.steps.shared.user_scope import scoped_changes


class DisablePerUser(Step):
    """Per-user MFA off for every user in scope (methods are kept), only once the policy is enforced.

    A user whose per-user state the census could not name ("unknown": Graph's `unknownFutureValue`, or a
    state added after this code) is left as it is: writing `disabled` would replace a state we cannot
    read back into the snapshot, so a rollback could not restore it. Leaving it never removes MFA (the
    policy covers the user either way); Verify names those users instead of waiting for them.
    """

    writes = True
    plan_keys = ("migrate",)
    key = "disable_per_user"
    title = "Disable per-user MFA"

    def run(self, ctx: StepContext) -> str:
        if not ctx.plan:
            policy = ctx.wait(get_policy(ctx.graph, ctx.state["policy_id"]))
            problems = [] if policy else ["cannot be read"]
            if policy and policy.get("state") != "enabled":
                problems.append(f"state is {policy.get('state')}")
            if policy:
                problems += scope_problems(policy, ctx.scope)
            if problems:
                raise StepFailed("The policy is not ready, so per-user MFA stays on: " + "; ".join(problems))
        changes = scoped_changes(
            ctx, purpose="migrate", only_states={"enabled", "enforced"}, wanted="disabled"
        )
        return apply_changes(ctx, changes, purpose="migrate", verb="per-user MFA disabled")
