"""Step 1: the customer's admin consent holds, for this tenant, with every permission the run needs."""

from __future__ import annotations

from migrations_engine.graph import ConsentMissing, TokenError, missing_roles
from migrations_engine.steps.base import Step, StepContext, StepFailed


class VerifyConsent(Step):
    key = "verify_consent"
    title = "Verify consent"

    def run(self, ctx: StepContext) -> str:
        try:
            token = ctx.wait(ctx.graph.app_token())
        except ConsentMissing as exc:
            raise StepFailed(
                f"Admin consent is not granted (AADSTS{exc.aadsts or '?'}): the customer's admin must consent"
            ) from exc
        except TokenError as exc:
            raise StepFailed(str(exc), retryable=exc.code == "login_unreachable") from exc
        if token.tenant_id.lower() != str(ctx.tenant.tenant_id).lower():
            raise StepFailed(f"The token is for tenant {token.tenant_id}, not {ctx.tenant.tenant_id}")
        missing = missing_roles(token.roles)
        if missing:
            raise StepFailed(
                "Missing permissions: " + ", ".join(missing) + ". Ask the customer to re-consent."
            )
        return f"{len(token.roles)} permissions granted"
