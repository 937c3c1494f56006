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

import copy
import time
from typing import Any

from django.utils import timezone

from migrations_engine.graph import GraphError, GraphUnavailable
from migrations_engine.runs.options import SIGN_IN_FREQUENCY_LIMITS
from migrations_engine.steps import graph_reads as reads
from migrations_engine.steps.base import Step, StepContext, StepFailed
from migrations_engine.steps.locations import read_legacy
from migrations_engine.steps.policy import REPORT_ONLY, fixed_conditions, normalized, scope_users
from migrations_engine.steps.reconcile import create_ours, delete_ours, find_ours, reconcile
from migrations_engine.steps.writes import patch_policy

SESSION_POLICY_NAME = "[SESSION] Sign-in frequency all users"
SESSION_FIELDS = ("id", "displayName", "state", "conditions", "grantControls", "sessionControls")


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


def frequency_control(frequency: dict[str, Any]) -> dict[str, Any]:
    """Graph's `signInFrequencySessionControl`, time based (authenticationType is not needed then)."""
    return {
        "isEnabled": True,
        "value": frequency["value"],
        "type": frequency["type"],
        "frequencyInterval": "timeBased",
    }


def describe(frequency: dict[str, Any]) -> str:
    return f"every {frequency['value']} {frequency['type']}"


def desired_session_policy(ctx: StepContext, frequency: dict[str, Any]) -> dict[str, Any]:
    return {
        "displayName": SESSION_POLICY_NAME,
        "state": REPORT_ONLY,
        "conditions": {
            "users": scope_users(ctx),
            "applications": {"includeApplications": ["All"]},
            "clientAppTypes": ["all"],
        },
        "sessionControls": {"signInFrequency": frequency_control(frequency)},
    }


def frequency_of(policy: dict[str, Any] | None) -> dict[str, Any]:
    control = ((policy or {}).get("sessionControls") or {}).get("signInFrequency") or {}
    return {
        "isEnabled": control.get("isEnabled"),
        "value": control.get("value"),
        "type": control.get("type"),
        "frequencyInterval": control.get("frequencyInterval") or "timeBased",
    }


def session_problems(policy: dict[str, Any], ctx: StepContext, frequency: dict[str, Any]) -> list[str]:
    """What keeps an existing session policy from being the one this run needs (empty when it fits)."""
    problems = []
    if frequency_of(policy) != frequency_control(frequency):
        now = frequency_of(policy)
        problems.append(
            f"sign-in frequency is {now['value']} {now['type']} (enabled {now['isEnabled']}), "
            f"not {describe(frequency)}"
        )
    if normalized(fixed_conditions(policy, ctx).get("users")) != normalized(
        ((policy.get("conditions") or {}).get("users")) or {}
    ):
        problems.append("users are not the run's scope with break-glass excluded")
    apps = (policy.get("conditions") or {}).get("applications") or {}
    if "All" not in (apps.get("includeApplications") or []):
        problems.append("does not cover all cloud apps")
    if (policy.get("conditions") or {}).get("locations"):
        problems.append("limited to some locations (it should apply everywhere)")
    if policy.get("state") == "disabled":
        problems.append("disabled")
    return problems


def session_fix(policy: dict[str, Any], ctx: StepContext, frequency: dict[str, Any]) -> dict[str, Any]:
    conditions = fixed_conditions(policy, ctx)
    conditions["locations"] = None
    control = {**(((policy.get("sessionControls") or {}).get("signInFrequency")) or {})}
    control.update(frequency_control(frequency))
    body: dict[str, Any] = {"conditions": conditions, "sessionControls": {"signInFrequency": control}}
    if policy.get("state") == "disabled":
        body["state"] = REPORT_ONLY  # report-only first: the cut-over enables it with the main policy
    return body


def blocks(policy: dict[str, Any]) -> bool:
    return "block" in (((policy.get("grantControls") or {}).get("builtInControls")) or [])


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
        problems = session_problems(policy, ctx, frequency)
        if not ctx.plan:
            reconcile(ctx, "session_policy.update", applied=not problems, evidence={"problems": problems})
        if problems:
            if ctx.plan:
                ctx.diff(
                    self.key, "update sign-in frequency policy", policy=SESSION_POLICY_NAME, fixes=problems
                )
            patch_policy(
                ctx,
                policy["id"],
                session_fix(policy, ctx, frequency),
                action="session_policy.update",
                before=_snapshot(policy),
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
            get=lambda pid: ctx.wait(reads.get_policy(ctx.graph, pid, wait_seconds=wait)),
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
            changes["session_policy_before"] = _snapshot(policy)
        ctx.save_state(**changes)
        return policy

    def _named(self, ctx: StepContext) -> list[dict[str, Any]]:
        return [
            p for p in ctx.wait(reads.list_policies(ctx.graph)) if p.get("displayName") == SESSION_POLICY_NAME
        ]

    def _create(self, ctx: StepContext, frequency: dict[str, Any], wait: float) -> dict[str, Any] | None:
        body = desired_session_policy(ctx, frequency)
        if ctx.plan:
            ctx.diff(
                self.key,
                "create sign-in frequency policy",
                policy=SESSION_POLICY_NAME,
                state=REPORT_ONLY,
                frequency=describe(frequency),
            )
            ctx.wait(ctx.graph.write("POST", reads.POLICIES, body=body, action="session_policy.create"))
            return None
        ctx.save_state(session_policy_before=None, session_create_attempted=True)
        policy, answered = create_ours(
            ctx,
            reads.POLICIES,
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


def _snapshot(policy: dict[str, Any]) -> dict[str, Any]:
    return {key: copy.deepcopy(policy.get(key)) for key in SESSION_FIELDS}


# --- promotion with the main policy (called by CutOver and Verify) --------------------------------


def plan_promotion(ctx: StepContext) -> None:
    if ctx.settings.get("sign_in_frequency"):
        ctx.diff("cut_over", "enable sign-in frequency policy", policy=SESSION_POLICY_NAME)
        ctx.wait(
            ctx.graph.write(
                "PATCH",
                f"{reads.POLICIES}/(session policy)",
                body={"state": "enabled"},
                action="session_policy.enable",
            )
        )


def promote(ctx: StepContext) -> str:
    """Enable the sign-in frequency policy (the main policy already reads back enabled). Never raises for
    Graph trouble: a failure is recorded (`session_policy_enable_failed`, a warning) and returned as text;
    the main policy is never touched here."""
    policy_id = ctx.state.get("session_policy_id")
    if not policy_id:
        return ""
    wait = float(ctx.settings.get("replication_wait_seconds", 60))
    try:
        policy = ctx.wait(reads.get_policy(ctx.graph, policy_id, wait_seconds=wait))
        if policy is None:
            return _promotion_failed(ctx, f"the sign-in frequency policy {policy_id} cannot be read")
        enabled = policy.get("state") == "enabled"
        reconcile(ctx, "session_policy.enable", applied=enabled, evidence={"state": policy.get("state")})
        if not enabled:
            patch_policy(
                ctx,
                policy_id,
                {"state": "enabled"},
                action="session_policy.enable",
                before={"state": policy.get("state")},
            )
        deadline = time.monotonic() + wait
        while True:
            readback = ctx.wait(reads.get_policy(ctx.graph, policy_id, wait_seconds=wait))
            if readback and readback.get("state") == "enabled":
                break
            if time.monotonic() > deadline:
                return _promotion_failed(ctx, "it does not read back as enabled")
            time.sleep(1)
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
    policy = ctx.wait(reads.get_policy(ctx.graph, policy_id))
    if policy is None:
        return ["sign-in frequency policy: gone"], "", {}
    pending = []
    if policy.get("state") != "enabled":
        failed = ctx.state.get("session_policy_enable_failed")
        pending.append(
            f"sign-in frequency policy is {policy.get('state')}"
            + (f" (enabling failed: {failed})" if failed else "")
        )
    problems = [p for p in session_problems(policy, ctx, frequency) if p != "disabled"]
    if problems:
        pending.append("sign-in frequency policy: " + ", ".join(problems))
    if blocks(policy):
        pending.append("sign-in frequency policy: blocks access")
    verdict = f"sign-in frequency {describe(frequency)} enforced"
    return pending, verdict, {"session_policy_baseline": _snapshot(policy)}


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
        policy = ctx.wait(reads.get_policy(ctx.graph, policy_id))
        if ctx.state.get("session_policy_created"):
            reconcile(ctx, "session_policy.delete", applied=policy is None, evidence={"found": bool(policy)})
            if policy is None:
                return "the sign-in frequency policy is already gone"
            delete_ours(
                ctx,
                f"{reads.POLICIES}/{policy_id}",
                action="session_policy.delete",
                target=policy_id,
                before=_snapshot(policy),
            )
            return "deleted the sign-in frequency policy this run created"
        if policy is None:
            return "the sign-in frequency policy no longer exists (deleted by someone)"
        body = restore_body(policy, ctx.state.get("session_policy_before") or {})
        reconcile(ctx, "session_policy.restore", applied=not body, evidence={"state": policy.get("state")})
        if not body:
            return "the sign-in frequency policy is already as before the run"
        patch_policy(ctx, policy_id, body, action="session_policy.restore", before=_snapshot(policy))
        return "the sign-in frequency policy put back: " + ", ".join(body)


def restore_body(policy: dict[str, Any], before: dict[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = {}
    if before.get("state") and policy.get("state") != before["state"]:
        body["state"] = before["state"]
    if normalized(frequency_of(policy)) != normalized(frequency_of(before)):
        body["sessionControls"] = copy.deepcopy(before.get("sessionControls"))
    return body


def session_rollback_pending(ctx: StepContext) -> tuple[list[str], str]:
    """For VerifyRollback: (pending, verdict part)."""
    policy_id = ctx.state.get("session_policy_id")
    if not policy_id:
        return [], ""
    policy = ctx.wait(reads.get_policy(ctx.graph, policy_id))
    if ctx.state.get("session_policy_created"):
        if policy is None:
            return [], "sign-in frequency policy deleted"
        return ["the sign-in frequency policy this run created still exists"], ""
    if policy is None:
        return [], "sign-in frequency policy gone (deleted by someone)"
    if restore_body(policy, ctx.state.get("session_policy_before") or {}):
        return ["the sign-in frequency policy differs from before the run"], ""
    return [], "sign-in frequency policy as before the run"
