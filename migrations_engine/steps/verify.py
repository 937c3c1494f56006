"""Step 11: poll until the end state holds (or the settle time runs out, naming what is still pending)."""

from __future__ import annotations

import time
from typing import Any

from migrations_engine.graph.resources import per_user_mfa, security_defaults
from migrations_engine.graph.resources.mfa_policy import baseline_of, kept_grant_note, scope_problems
from migrations_engine.graph.resources.policies import get_policy
from migrations_engine.graph.resources.what_if import policy_applies
from migrations_engine.models import UserSnapshot
from migrations_engine.steps.base import Step, StepContext, StepFailed
from migrations_engine.steps.optional import location, session
from migrations_engine.steps.shared.apply import apply_changes
from migrations_engine.steps.shared.census_after import census_from_verify
from migrations_engine.steps.shared.user_scope import keyset_rows, scope_rows
from migrations_engine.steps.shared.write_engine import CHUNK, Change, chunks
from migrations_engine.waiting import Deadline
from msp_console.words import counted
from tenants.choices import PolicyState


class Verify(Step):
    """Poll until the end state holds (or the settle time runs out, naming what is still pending)."""

    key = "verify"
    title = "Verify"

    def run(self, ctx: StepContext) -> str:
        if ctx.plan:
            return "nothing to verify in a plan"
        settle = float(ctx.settings.get("settle_seconds", 600))
        deadline = Deadline(settle, every=1, backoff=2, cap=30)
        redone = 0
        promoted_again = False
        while True:
            pending, verdict, stragglers, policy, read = self._check(ctx)
            policy_ready = not any(p.startswith("polic") for p in pending)
            extra, parts, baselines = self._optional(ctx)
            if (
                policy_ready
                and not promoted_again
                and any(p.startswith("sign-in frequency policy is") for p in extra)
            ):
                # The cut-over could not enable it (recorded): try once more now the MFA policy is enforced.
                promoted_again = True
                session.promote(ctx)
                continue
            pending += extra
            kept = kept_grant_note(policy, ctx.scope)
            verdict += "".join(f"; {part}" for part in [*parts, kept] if part)
            if stragglers and policy_ready and redone < self.MAX_REDO:
                # Per-user MFA came back on after the disable step: a write Graph applied after we had
                # given up on it (a late bridge write), or an admin. The policy is enforced, so turn it
                # off again (check-then-act, audited) rather than wait for what will never happen.
                redone += 1
                self._disable_again(ctx, stragglers)
                continue
            if not pending:
                # What the drift watch compares against, and what a re-run of this scope restores.
                ctx.save_state(policy_baseline=baseline_of(policy), **baselines)
                ctx.set_verdict(verdict)
                # What was just read is the tenant's census now (a pilot's policy covers one group: the
                # policy column, which is about all users, stays as the census had it).
                census_from_verify(
                    ctx,
                    "verify",
                    read,
                    security_defaults=False if ctx.mode == "full" else None,
                    mfa_policy_state=PolicyState.ENABLED if ctx.mode == "full" else None,
                )
                return verdict
            if (pause := deadline.next_pause()) is None:
                raise StepFailed(
                    "Not verified within the settle time; still pending: " + "; ".join(pending),
                    retryable=True,
                )
            time.sleep(pause)

    MAX_REDO = 3

    def _optional(self, ctx: StepContext) -> tuple[list[str], list[str], dict[str, Any]]:
        """The optional steps' objects (the sign-in frequency policy, the named location): what is still
        pending, the verdict's parts, and what the drift watch will compare with."""
        session_pending, session_part, session_baseline = session.session_check(ctx)
        location_pending, location_part, location_baseline = location.location_check(ctx)
        return (
            session_pending + location_pending,
            [session_part, location_part],
            {**session_baseline, **location_baseline},
        )

    def _disable_again(self, ctx: StepContext, stragglers: dict[str, str]) -> None:

        upns = dict(
            UserSnapshot.objects.filter(
                snapshot_id=ctx.state["snapshot_id"], user_id__in=list(stragglers)
            ).values_list("user_id", "upn")
        )
        changes = [
            Change(user_id=uid, upn=upns.get(uid, uid), before=state, wanted="disabled")
            for uid, state in stragglers.items()
        ]
        apply_changes(
            ctx, changes, purpose="straggler", verb="per-user MFA disabled again after it came back on"
        )

    def _check(self, ctx: StepContext) -> tuple[list[str], str, dict[str, str], dict | None, dict[str, str]]:
        pending: list[str] = []
        policy = ctx.wait(get_policy(ctx.graph, ctx.state["policy_id"]))
        if policy is None or policy.get("state") != "enabled":
            pending.append("policy is not enabled")
        elif problems := scope_problems(policy, ctx.scope):
            pending.append("policy: " + ", ".join(problems))
        if ctx.mode == "full" and ctx.wait(security_defaults.is_on(ctx.graph)):
            pending.append("security defaults are on")
        sample_size = int(ctx.settings.get("whatif_sample", 3))
        checked = left_alone = still_on = 0
        stragglers: dict[str, str] = {}
        read: dict[str, str] = {}
        sample: list[str] = []
        rows = keyset_rows(scope_rows(ctx), "user_id", "per_user_state")
        for chunk in chunks(rows, CHUNK):
            states = ctx.wait(per_user_mfa.read_states(ctx.graph, [uid for _, uid, _ in chunk]))
            read.update(states)
            for _, uid, snapshot_state in chunk:
                checked += 1
                if len(sample) < sample_size:
                    sample.append(uid)
                if snapshot_state == "unknown":
                    left_alone += 1  # never written (see DisablePerUser)
                elif states.get(uid) != "disabled":
                    still_on += 1
                    if states.get(uid) in ("enabled", "enforced"):
                        stragglers[uid] = states[uid]
            ctx.heartbeat()
        if still_on:
            pending.append(f"{still_on} users still have per-user MFA on")
        applies = self._what_if(ctx, policy, sample + ctx.state.get("break_glass_ids", []))
        wrong_sample = [u for u in sample if not applies.get(u)]
        wrong_bg = [u for u in ctx.state.get("break_glass_ids", []) if applies.get(u)]
        if wrong_sample:
            pending.append(f"What-If: policy does not apply to {len(wrong_sample)} sample users")
        if wrong_bg:
            pending.append(f"What-If: policy applies to {len(wrong_bg)} break-glass accounts")
        verdict = (
            f"Verified: policy enabled for {'the pilot group' if ctx.mode == 'pilot' else 'all users'}, "
            f"{checked - left_alone} users without per-user MFA, "
            f"{counted(len(ctx.state.get('break_glass_ids', [])), 'break-glass account')} excluded"
            + ("" if ctx.mode != "full" else ", security defaults off")
            + f"; What-If checked {len(sample)} users"
            + (
                f"; {left_alone} users in an unknown per-user MFA state were left as they are"
                if left_alone
                else ""
            )
        )
        return pending, verdict, stragglers, policy, read

    def _what_if(self, ctx: StepContext, policy: dict | None, user_ids: list[str]) -> dict[str, bool]:
        if policy is None:
            return {}
        return {uid: ctx.wait(policy_applies(ctx.graph, policy["id"], uid)) for uid in user_ids}
