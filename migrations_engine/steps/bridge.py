"""Step 8: with security defaults on, cover the users only they protect with per-user MFA first."""

from __future__ import annotations

from migrations_engine.steps.base import Step, StepContext, StepFailed
from migrations_engine.steps.shared.apply import apply_changes
from migrations_engine.steps.shared.user_scope import scope_user_ids, scoped_changes


class BridgeSecurityDefaults(Step):
    """Security defaults on: cover SD-only users with per-user MFA before SD goes off, so the SD → policy
    hand-off (two writes, and a crash could fall between them) never leaves anyone without MFA."""

    writes = True
    key = "bridge"
    title = "Bridge security defaults"

    def run(self, ctx: StepContext) -> str:
        if not ctx.state.get("security_defaults_before"):
            return "security defaults are off: nothing to bridge"
        unknown = sum(1 for _ in scope_user_ids(ctx, per_user_state="unknown"))
        if unknown:
            # The bridge cannot cover a user whose state it does not understand (see DisablePerUser), and
            # a crash between turning security defaults off and the policy on could leave them uncovered.
            raise StepFailed(
                f"{unknown} users have a per-user MFA state this console does not know, so they cannot be "
                "bridged: security defaults stay on. Check those users in the census CSV."
            )
        changes = scoped_changes(ctx, purpose="bridge", only_states={"disabled"}, wanted="enabled")
        return apply_changes(
            ctx, changes, purpose="bridge", verb="covered with per-user MFA for the hand-off"
        )
