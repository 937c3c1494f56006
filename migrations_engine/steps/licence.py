"""Step 2: Conditional Access needs Entra ID P1 or P2."""

from __future__ import annotations

from migrations_engine.graph.resources.licences import licence_from_skus, subscribed_skus
from migrations_engine.steps.base import Step, StepContext, StepFailed


class CheckLicence(Step):
    key = "check_licence"
    title = "Check Entra ID P1/P2"

    def run(self, ctx: StepContext) -> str:
        skus = ctx.wait(subscribed_skus(ctx.graph))
        tier, plans = licence_from_skus(skus)
        if tier == "free":
            raise StepFailed("Entra ID Free: Conditional Access needs Entra ID P1 or P2. Buy P1/P2 first.")
        ctx.save_state(licence=str(tier), licence_plans=plans)
        return f"Entra ID {str(tier).upper()} ({', '.join(plans)})"
