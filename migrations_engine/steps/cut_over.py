"""Step 9: security defaults off and the policy on, together; security defaults back on if the policy
cannot be enabled."""

from __future__ import annotations

from django.utils import timezone

from migrations_engine.graph import GraphError, GraphUnavailable
from migrations_engine.graph.resources import policies, security_defaults
from migrations_engine.graph.resources.mfa_policy import POLICY_NAME
from migrations_engine.graph.resources.policies import PLANNED_POLICY
from migrations_engine.steps.base import Step, StepContext, StepFailed
from migrations_engine.steps.optional import session
from migrations_engine.steps.shared.polling import reads_enabled
from migrations_engine.steps.shared.reconcile import reconcile


class CutOver(Step):
    """Security defaults off and the policy on, together; SD back on if the policy cannot be enabled."""

    writes = True
    key = "cut_over"
    title = "Cut over"

    def run(self, ctx: StepContext) -> str:
        wait = float(ctx.settings.get("replication_wait_seconds", 60))
        sd = ctx.wait(security_defaults.is_on(ctx.graph))
        if ctx.plan:
            # An existing policy the plan would use that is already enforced needs no enabling.
            enable = ctx.state.get("plan_policy_state") != "enabled"
            if sd:
                ctx.diff(self.key, "turn security defaults off")
                ctx.wait(security_defaults.switch(ctx.graph, False, action="sd.disable"))
            if enable:
                ctx.diff(self.key, "enable policy", policy=POLICY_NAME)
                ctx.wait(policies.enable(ctx.graph, PLANNED_POLICY, action="policy.enable"))
            session.plan_promotion(ctx)
            parts = [("turn security defaults off", sd), ("enable the policy", enable)]
            parts.append(("enable the sign-in frequency policy", bool(ctx.settings.get("sign_in_frequency"))))
            would = [part for part, on in parts if on]
            return (
                "would " + " and ".join(would)
                if would
                else "nothing to change: the policy is already enabled"
            )
        policy_id = ctx.state["policy_id"]
        policy = ctx.wait(policies.get_policy(ctx.graph, policy_id, wait_seconds=wait))
        if policy is None:
            raise StepFailed(f"The policy {policy_id} cannot be read", retryable=True)
        # A resumed cut-over: settle what an earlier attempt's unanswered writes did, by reading.
        reconcile(ctx, "sd.disable", applied=not sd, evidence={"isEnabled": sd})
        reconcile(ctx, "sd.reenable", applied=sd, evidence={"isEnabled": sd})
        enabled = policy.get("state") == "enabled"
        reconcile(ctx, "policy.enable", applied=enabled, evidence={"state": policy.get("state")})
        if policy.get("state") == "enabled" and not sd:
            # A resumed cut-over may have stopped between the main policy and the session policy.
            promoted = session.promote(ctx)
            return "already cut over" + (f"; {promoted}" if promoted else "")
        if sd:
            ctx.wait(security_defaults.switch(ctx.graph, False, action="sd.disable", before=True))
            ctx.save_state(sd_turned_off=True)
        try:
            ctx.wait(policies.enable(ctx.graph, policy_id, action="policy.enable", was=policy.get("state")))
        except (GraphUnavailable, GraphError) as exc:
            readback = ctx.wait(policies.get_policy(ctx.graph, policy_id))
            enabled = readback is not None and readback.get("state") == "enabled"
            reconcile(
                ctx, "policy.enable", applied=enabled, evidence={"state": (readback or {}).get("state")}
            )
            if not enabled:
                self._compensate(ctx, sd)
                raise StepFailed(
                    f"Enabling the policy failed ({exc})"
                    + ("; security defaults were turned back on" if sd else "")
                    + ". Per-user MFA is untouched.",
                    retryable=not (isinstance(exc, GraphError) and 400 <= exc.status < 500),
                ) from exc
        if not reads_enabled(ctx, policy_id, seconds=wait):
            raise StepFailed("The policy does not read back as enabled yet", retryable=True)
        ctx.save_state(policy_enabled_at=timezone.now().isoformat())
        # Only now, with the MFA policy enforced: the sign-in frequency policy goes on with it. Its failure
        # never undoes the MFA policy (it is recorded; Verify tries again and reports it).
        promoted = session.promote(ctx)
        done = "security defaults off and policy enabled" if sd else "policy enabled"
        return done + (f"; {promoted}" if promoted else "")

    def _compensate(self, ctx: StepContext, sd_was_on: bool) -> None:
        if not sd_was_on:
            return
        try:
            ctx.wait(security_defaults.switch(ctx.graph, True, action="sd.reenable", before=False))
            ctx.save_state(sd_turned_off=False)
        except (GraphUnavailable, GraphError) as exc:
            raise StepFailed(
                f"Enabling the policy failed AND turning security defaults back on failed "
                f"({exc}). Users covered only by security defaults are still bridged with "
                "per-user MFA; a human must look now."
            ) from exc
