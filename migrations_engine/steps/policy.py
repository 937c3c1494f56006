"""Step 7: the MFA policy in report-only, created or adopted (never a second one), or restored by id as an
earlier verified run of the same scope left it."""

from __future__ import annotations

from typing import Any

from django.utils import timezone

from migrations_engine.graph.resources import policies
from migrations_engine.graph.resources.mfa_policy import (
    POLICY_NAME,
    desired_policy,
    is_candidate,
    kept_grant_note,
    restore_fix,
    scope_fix,
    scope_problems,
)
from migrations_engine.graph.resources.policies import REPORT_ONLY
from migrations_engine.runs.migrated import baseline_policy, migrated_item
from migrations_engine.steps.base import Step, StepContext, StepFailed
from migrations_engine.steps.shared.polling import poll
from migrations_engine.steps.shared.reconcile import create_ours, reconcile


class EnsurePolicy(Step):
    """Create the policy in report-only, or adopt the one equivalent policy; never a second one.

    A tenant already migrated in the same scope (a re-run, e.g. a drift remediation) gets the policy its
    last verified run made or adopted back, by id: disabled → report-only (the cut-over enables it),
    conditions and grant as that run verified them. Deleted, it is created (or adopted) like the first
    time."""

    writes = True
    key = "ensure_policy"
    title = "Policy in report-only"

    def run(self, ctx: StepContext) -> str:

        wait = float(ctx.settings.get("replication_wait_seconds", 60))
        policy = previous = None
        if ctx.state.get("policy_id"):
            policy = ctx.wait(policies.get_policy(ctx.graph, ctx.state["policy_id"], wait_seconds=wait))
            if policy is None:
                raise StepFailed(
                    f"The policy {ctx.state['policy_id']} this run made or adopted is gone; "
                    "a human should look before anything else is created"
                )
            if ctx.state.get("restores_item"):
                previous = ctx.earlier_item(ctx.state["restores_item"])
        else:
            policy, previous = self._verified_before(ctx)
            if policy is None:
                policy = self._find_or_create(ctx, wait)
                if policy is None:  # plan mode
                    return "would create the policy in report-only"
        if previous is not None:
            body, fixes = restore_fix(policy, baseline_policy(previous), ctx.scope)
            action, change, evidence = "policy.restore", "restore policy as verified", {"fixes": fixes}
        else:
            fixes = scope_problems(policy, ctx.scope)
            body = scope_fix(policy, ctx.scope) if fixes else {}
            action, change, evidence = "policy.update_scope", "update policy scope", {"scope_problems": fixes}
        if not ctx.plan:
            # A fix whose answer was lost (the worker died) is settled by what the read shows.
            reconcile(ctx, action, applied=not fixes, evidence=evidence)
        if fixes:
            if ctx.plan:
                ctx.diff(self.key, change, policy=policy.get("displayName"), fixes=fixes)
            else:
                ctx.wait(policies.patch(ctx.graph, policy["id"], body, action=action, before=policy))
        kept = kept_grant_note(policy, ctx.scope)
        if kept:
            ctx.warn(kept)
        if ctx.plan:
            ctx.save_state(plan_policy_state=policy.get("state"))  # for the cut-over's plan
            return f"would use policy '{policy.get('displayName')}'" + (f"; {kept}" if kept else "")
        return (
            f"policy '{policy.get('displayName')}' ({policy['id']}) in state {policy.get('state')}"
            + (f"; fixed: {', '.join(fixes)}" if fixes else "")
            + (f"; {kept}" if kept else "")
        )

    def _verified_before(self, ctx: StepContext) -> tuple[dict[str, Any] | None, Any]:
        """(the policy, the run item) of this tenant's last verified run in the same scope, when that
        policy still exists; (None, None) otherwise."""

        previous = migrated_item(ctx.tenant)
        if previous is None or previous.pk == ctx.item.pk or previous.run.mode != ctx.mode:
            return None, None
        if ctx.mode == "pilot" and str(previous.run.pilot_group_id) != str(ctx.run.pilot_group_id):
            return None, None
        policy_id = previous.state.get("policy_id")
        policy = ctx.wait(policies.get_policy(ctx.graph, policy_id)) if policy_id else None
        if policy is None:
            return None, None
        if not ctx.plan:
            ctx.save_state(
                policy_id=policy["id"],
                policy_adopted=True,
                policy_state_before=policy.get("state"),
                restores_item=previous.pk,
            )
        return policy, previous

    def _find_or_create(self, ctx: StepContext, wait: float) -> dict[str, Any] | None:
        if ctx.state.get("create_attempted"):
            # A create was sent before and its answer is unknown: the policy may exist but not be
            # listed yet (replication lag). Wait it out by listing, never by creating again at once.
            candidates = poll(lambda: self._candidates(ctx), until=bool, seconds=wait, every=2.0)
        else:
            candidates = self._candidates(ctx)
        if len(candidates) > 1:
            names = "; ".join(
                f"'{p.get('displayName')}' ({p.get('id')}, {p.get('state')})" for p in candidates
            )
            raise StepFailed(
                f"{len(candidates)} policies already require MFA for these users: {names}. "
                "A human must choose which to keep; nothing was changed."
            )
        if ctx.state.get("create_attempted") and not ctx.plan:
            ours = [p for p in candidates if p.get("displayName") == POLICY_NAME]
            reconcile(
                ctx, "policy.create", applied=bool(ours), evidence={"listed": [p.get("id") for p in ours]}
            )
        if candidates:
            policy = candidates[0]
            if ctx.plan:
                ctx.diff(
                    self.key, "adopt existing policy", policy=policy.get("displayName"), id=policy.get("id")
                )
                return policy
            ctx.save_state(
                policy_id=policy["id"], policy_adopted=True, policy_state_before=policy.get("state")
            )
            return policy
        body = desired_policy(ctx.scope)
        if ctx.plan:
            ctx.diff(
                self.key,
                "create policy",
                policy=POLICY_NAME,
                state=REPORT_ONLY,
                excludes=len(body["conditions"]["users"]["excludeUsers"]),
            )
            ctx.wait(policies.create(ctx.graph, body, action="policy.create", target=POLICY_NAME))
            return None
        ctx.save_state(create_attempted=True, create_attempted_at=timezone.now().isoformat())
        policy, _ = create_ours(
            ctx,
            policies.POLICIES,
            body,
            action="policy.create",
            target=POLICY_NAME,
            what="the policy",
            find=lambda: self._listed_after_lost_answer(ctx, wait),
            wait=wait,
        )
        ctx.save_state(policy_id=policy["id"], policy_created=True, policy_state_before=None)
        return policy

    def _listed_after_lost_answer(self, ctx: StepContext, wait: float) -> dict[str, Any] | None:
        """The create may have applied: find it by listing (waiting out replication lag), never by
        creating again."""
        policy = self._wait_for_listed(ctx, wait)
        reconcile(
            ctx,
            "policy.create",
            applied=policy is not None,
            evidence={"listed": policy.get("id") if policy else None},
        )
        return policy

    def _wait_for_listed(self, ctx: StepContext, wait: float) -> dict[str, Any] | None:
        ours = poll(
            lambda: [p for p in self._candidates(ctx) if p.get("displayName") == POLICY_NAME],
            until=bool,
            seconds=wait,
            every=2.0,
        )
        return ours[0] if len(ours) == 1 else None

    def _candidates(self, ctx: StepContext) -> list[dict[str, Any]]:
        scope = ctx.scope
        return [p for p in ctx.wait(policies.list_policies(ctx.graph)) if is_candidate(p, scope)]
