"""Step 1: the customer's admin consent holds, for this tenant, with every permission the run needs."""

from __future__ import annotations

from migrations_engine.graph import TokenError, missing_roles
from migrations_engine.graph.permissions import missing_roles_in_words
from migrations_engine.steps.base import Step, StepContext, StepFailed, graph_failure


class VerifyConsent(Step):
    key = "verify_consent"
    title = "Verify consent"

    def run(self, ctx: StepContext) -> str:
        try:
            token = ctx.wait(ctx.graph.app_token())
        except TokenError as exc:  # consent missing or withdrawn, or the login service refused
            raise graph_failure(exc) from exc
        if wrong := token.wrong_tenant(ctx.tenant.tenant_id):
            raise StepFailed(wrong)
        if missing := missing_roles(token.roles):
            raise StepFailed(missing_roles_in_words(missing))
        return f"{len(token.roles)} permissions granted"
