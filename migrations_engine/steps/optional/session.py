"""Remember MFA on trusted devices → a sign-in frequency session control (the article series' part 3;
optional, run option `sign_in_frequency`), promoted with the main policy, and its rollback.

A second policy, "[SESSION] Sign-in frequency all users": the main policy's users (all users or the
pilot group, break-glass excluded the same way), all cloud apps, `sessionControls.signInFrequency`
(time based, days or hours), no grant controls. It is created in report-only (or adopted by name), and
the cut-over enables it right after the main policy reads back enabled. It applies at every location:
with a trusted named location, users there still get MFA and are re-asked at this frequency (rather
than skipping MFA on trusted IPs).

If enabling it fails, the main policy stays enabled (it is what protects users; the session control only
sets how often they are re-asked): the failure is recorded, Verify tries once more and, if it still is not
enabled, the item fails with the reason (a retry resumes at Verify and tries again).
"""

from __future__ import annotations

from typing import Any

from django.utils import timezone

from migrations_engine.graph import GraphError, GraphUnavailable
from migrations_engine.graph.resources import policies
from migrations_engine.graph.resources.grants import blocks
from migrations_engine.graph.resources.policies import PLANNED_SESSION_POLICY, REPORT_ONLY
from migrations_engine.graph.resources.session_policy import (
    SESSION_POLICY_NAME,
    describe,
    desired_session_policy,
    restore_body,
    session_fix,
    session_problems,
    snapshot_of,
)
from migrations_engine.runs.options import SIGN_IN_FREQUENCY_LIMITS
from migrations_engine.steps.base import Step, StepContext, StepFailed
from migrations_engine.steps.shared.legacy_settings import read_legacy
from migrations_engine.steps.shared.polling import reads_enabled
from migrations_engine.steps.shared.reconcile import create_ours, delete_ours, find_ours, reconcile


def wanted_frequency(ctx: StepContext) -> dict[str, Any] | None:
    """{"value", "type"} from the run's option, or from the legacy remember-MFA days; None when off.
    StepFailed when the legacy setting is asked for and gives no usable number."""
    option = ctx.settings.get("sign_in_frequency")
    if not option:
        return None
    if not option.get("from_legacy"):
        return {"value": int(option["value"]), "type": option["type"]}
    if ctx.state.get("sign_in_frequency_from_legacy"):
        return dict(ctx.state["sign_in_frequency_from_legacy"])  # a resumed run keeps what it read
    legacy = read_legacy(ctx)
    low, high = SIGN_IN_FREQUENCY_LIMITS["days"]
    if not legacy.read:
        why = f"the MFA service settings could not be read ({legacy.reason})"
    elif legacy.remember_enabled is not True:
        why = "'remember MFA on trusted devices' is off in the MFA service settings"
    elif legacy.remember_days is None or not low <= legacy.remember_days <= high:
        why = f"the MFA service settings' remember-MFA days ({legacy.remember_days!r}) are not {low}-{high}"
    else:
        frequency = {"value": legacy.remember_days, "type": "days"}
        ctx.save_state(sign_in_frequency_from_legacy=frequency)
        return frequency
    raise StepFailed(
        f"Sign-in frequency from the legacy settings: {why}. Start the run with a sign-in frequency value "
        "(days or hours) instead. Nothing was changed by this step."
    )


# --- the forward step -----------------------------------------------------------------------------


class SignInFrequency(Step):
    """The sign-in frequency policy in report-only: created, or adopted by name and fixed by id."""

    writes = True
    key = "sign_in_frequency"
    title = "Remember MFA → sign-in frequency"

    def run(self, ctx: StepContext) -> str:
        frequency = wanted_frequency(ctx)
        if frequency is None:
            return "off (no sign-in frequency asked for)"
        wait = float(ctx.settings.get("replication_wait_seconds", 60))
        where = (
            "; it applies at every location, the trusted named location included: MFA everywhere, "
            "re-asked at this frequency (not skipped on trusted IPs)"
            if ctx.settings.get("named_location")
            else ""
        )
        source = (
            " (the legacy remember-MFA days)" if ctx.settings["sign_in_frequency"].get("from_legacy") else ""
        )
        policy = self._ours(ctx, wait)
        if policy is None:
            policy = self._create(ctx, frequency, wait)
            verb = "would create" if policy is None else "created"
            return (
                f"{verb} '{SESSION_POLICY_NAME}' in report-only, sign-in {describe(frequency)}{source}{where}"
            )
        if blocks(policy):
            raise StepFailed(
                f"The policy '{SESSION_POLICY_NAME}' ({policy.get('id')}) also blocks access: enabling it "
                "would lock users out. A human must fix or rename it; nothing was changed."
            )
        problems = session_problems(policy, ctx.scope, frequency)
        if not ctx.plan:
            reconcile(ctx, "session_policy.update", applied=not problems, evidence={"problems": problems})
        if problems:
            if ctx.plan:
                ctx.diff(
                    self.key, "update sign-in frequency policy", policy=SESSION_POLICY_NAME, fixes=problems
                )
            ctx.wait(
                policies.patch(
                    ctx.graph,
                    policy["id"],
                    session_fix(policy, ctx.scope, frequency),
                    action="session_policy.update",
                    before=snapshot_of(policy),
                )
            )
        verb = (
            "would adopt" if ctx.plan else "adopted"
        ) + f" '{SESSION_POLICY_NAME}' ({policy.get('state')})"
        fixed = f"; {'would fix' if ctx.plan else 'fixed'}: {', '.join(problems)}" if problems else ""
        return f"{verb}, sign-in {describe(frequency)}{source}{fixed}{where}"

    def _ours(self, ctx: StepContext, wait: float) -> dict[str, Any] | None:
        by_id = bool(ctx.state.get("session_policy_id"))
        policy = find_ours(
            ctx,
            what="sign-in frequency policy",
            name=SESSION_POLICY_NAME,
            id_key="session_policy_id",
            attempted_key="session_create_attempted",
            action="session_policy.create",
            get=lambda pid: ctx.wait(policies.get_policy(ctx.graph, pid, wait_seconds=wait)),
            named=lambda: self._named(ctx),
            wait=wait,
        )
        if by_id or policy is None:
            return policy
        if ctx.plan:
            ctx.diff(
                self.key, "adopt sign-in frequency policy", policy=SESSION_POLICY_NAME, id=policy.get("id")
            )
            return policy
        made_here = (
            ctx.state.get("session_create_attempted") and ctx.state.get("session_policy_before", "") is None
        )
        changes: dict[str, Any] = {
            "session_policy_id": policy["id"],
            "session_policy_created": bool(made_here),
        }
        if "session_policy_before" not in ctx.state:
            changes["session_policy_before"] = snapshot_of(policy)
        ctx.save_state(**changes)
        return policy

    def _named(self, ctx: StepContext) -> list[dict[str, Any]]:
        return ctx.wait(policies.named(ctx.graph, SESSION_POLICY_NAME))

    def _create(self, ctx: StepContext, frequency: dict[str, Any], wait: float) -> dict[str, Any] | None:
        body = desired_session_policy(ctx.scope, frequency)
        if ctx.plan:
            ctx.diff(
                self.key,
                "create sign-in frequency policy",
                policy=SESSION_POLICY_NAME,
                state=REPORT_ONLY,
                frequency=describe(frequency),
            )
            ctx.wait(policies.create(ctx.graph, body, action="session_policy.create"))
            return None
        ctx.save_state(session_policy_before=None, session_create_attempted=True)
        policy, answered = create_ours(
            ctx,
            policies.POLICIES,
            body,
            action="session_policy.create",
            target=SESSION_POLICY_NAME,
            what="the sign-in frequency policy",
            find=lambda: self._ours(ctx, wait),
            wait=wait,
        )
        if not answered:
            return policy
        ctx.save_state(session_policy_id=policy["id"], session_policy_created=True)
        return policy


# --- promotion with the main policy (called by CutOver and Verify) --------------------------------


def plan_promotion(ctx: StepContext) -> None:
    if ctx.settings.get("sign_in_frequency"):
        ctx.diff("cut_over", "enable sign-in frequency policy", policy=SESSION_POLICY_NAME)
        ctx.wait(policies.enable(ctx.graph, PLANNED_SESSION_POLICY, action="session_policy.enable"))


def promote(ctx: StepContext) -> str:
    """Enable the sign-in frequency policy (the main policy already reads back enabled). Never raises for
    Graph trouble: a failure is recorded (`session_policy_enable_failed`, a warning) and returned as text;
    the main policy is never touched here."""
    policy_id = ctx.state.get("session_policy_id")
    if not policy_id:
        return ""
    wait = float(ctx.settings.get("replication_wait_seconds", 60))
    try:
        policy = ctx.wait(policies.get_policy(ctx.graph, policy_id, wait_seconds=wait))
        if policy is None:
            return _promotion_failed(ctx, f"the sign-in frequency policy {policy_id} cannot be read")
        enabled = policy.get("state") == "enabled"
        reconcile(ctx, "session_policy.enable", applied=enabled, evidence={"state": policy.get("state")})
        if not enabled:
            ctx.wait(
                policies.enable(ctx.graph, policy_id, action="session_policy.enable", was=policy.get("state"))
            )
        if not reads_enabled(ctx, policy_id, seconds=wait):
            return _promotion_failed(ctx, "it does not read back as enabled")
    except (GraphError, GraphUnavailable) as exc:
        # An unknown outcome (5xx, no answer) is settled by the next promotion's read (reconcile above).
        return _promotion_failed(ctx, str(exc))
    ctx.save_state(session_policy_enable_failed="", session_policy_enabled_at=timezone.now().isoformat())
    return "sign-in frequency policy enabled" if not enabled else "sign-in frequency policy already enabled"


def _promotion_failed(ctx: StepContext, why: str) -> str:
    ctx.save_state(session_policy_enable_failed=why[:500])
    ctx.warn(
        f"The sign-in frequency policy could not be enabled ({why[:300]}). The MFA policy stays enabled; "
        "run the item again to retry, or enable it by hand."
    )
    return f"the sign-in frequency policy could NOT be enabled ({why[:300]}); the MFA policy stays enabled"


def session_check(ctx: StepContext) -> tuple[list[str], str, dict[str, Any]]:
    """For Verify: (pending, verdict part, what to remember for the drift watch)."""
    policy_id = ctx.state.get("session_policy_id")
    if not ctx.settings.get("sign_in_frequency") or not policy_id:
        return [], "", {}
    frequency = wanted_frequency(ctx)
    policy = ctx.wait(policies.get_policy(ctx.graph, policy_id))
    if policy is None:
        return ["sign-in frequency policy: gone"], "", {}
    pending = []
    if policy.get("state") != "enabled":
        failed = ctx.state.get("session_policy_enable_failed")
        pending.append(
            f"sign-in frequency policy is {policy.get('state')}"
            + (f" (enabling failed: {failed})" if failed else "")
        )
    problems = [p for p in session_problems(policy, ctx.scope, frequency) if p != "disabled"]
    if problems:
        pending.append("sign-in frequency policy: " + ", ".join(problems))
    if blocks(policy):
        pending.append("sign-in frequency policy: blocks access")
    verdict = f"sign-in frequency {describe(frequency)} enforced"
    return pending, verdict, {"session_policy_baseline": snapshot_of(policy)}


# --- rollback -------------------------------------------------------------------------------------


class RestoreSessionPolicy(Step):
    """The sign-in frequency policy off: deleted if this run created it, put back (state and session
    controls) if it was adopted."""

    key = "restore_session_policy"
    title = "Sign-in frequency policy back"

    def run(self, ctx: StepContext) -> str:
        policy_id = ctx.state.get("session_policy_id")
        if not policy_id:
            return "the run made or adopted no sign-in frequency policy"
        policy = ctx.wait(policies.get_policy(ctx.graph, policy_id))
        if ctx.state.get("session_policy_created"):
            reconcile(ctx, "session_policy.delete", applied=policy is None, evidence={"found": bool(policy)})
            if policy is None:
                return "the sign-in frequency policy is already gone"
            delete_ours(
                ctx,
                policies.policy_path(policy_id),
                action="session_policy.delete",
                target=policy_id,
                before=snapshot_of(policy),
            )
            return "deleted the sign-in frequency policy this run created"
        if policy is None:
            return "the sign-in frequency policy no longer exists (deleted by someone)"
        body = restore_body(policy, ctx.state.get("session_policy_before") or {})
        reconcile(ctx, "session_policy.restore", applied=not body, evidence={"state": policy.get("state")})
        if not body:
            return "the sign-in frequency policy is already as before the run"
        ctx.wait(
            policies.patch(
                ctx.graph, policy_id, body, action="session_policy.restore", before=snapshot_of(policy)
            )
        )
        return "the sign-in frequency policy put back: " + ", ".join(body)


def session_rollback_pending(ctx: StepContext) -> tuple[list[str], str]:
    """For VerifyRollback: (pending, verdict part)."""
    policy_id = ctx.state.get("session_policy_id")
    if not policy_id:
        return [], ""
    policy = ctx.wait(policies.get_policy(ctx.graph, policy_id))
    if ctx.state.get("session_policy_created"):
        if policy is None:
            return [], "sign-in frequency policy deleted"
        return ["the sign-in frequency policy this run created still exists"], ""
    if policy is None:
        return [], "sign-in frequency policy gone (deleted by someone)"
    if restore_body(policy, ctx.state.get("session_policy_before") or {}):
        return ["the sign-in frequency policy differs from before the run"], ""
    return [], "sign-in frequency policy as before the run"
