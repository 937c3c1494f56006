"""The rollback pipeline: put a tenant back as its snapshot had it, without an MFA gap on the way.

Order: per-user states first (while the policy still covers everyone), then, if security defaults
were on, bridge SD-only users with per-user MFA, turn the policy back, turn SD on, and un-bridge.
"""

from __future__ import annotations

from migrations_engine.graph.resources import per_user_mfa, policies, security_defaults
from migrations_engine.graph.resources.policy_kinds import best_policy_state
from migrations_engine.models import TenantSnapshot, UserOutcome, UserSnapshot
from migrations_engine.steps.base import Step, StepContext, StepFailed
from migrations_engine.steps.optional.location import location_rollback_pending
from migrations_engine.steps.optional.session import session_rollback_pending
from migrations_engine.steps.shared.apply import apply_changes
from migrations_engine.steps.shared.census_after import census_from_verify
from migrations_engine.steps.shared.user_scope import keyset_rows, succeeded
from migrations_engine.steps.shared.write_engine import CHUNK, Change, chunks


class LoadSnapshot(Step):
    key = "load_snapshot"
    title = "Load snapshot"

    def run(self, ctx: StepContext) -> str:

        original = ctx.snapshot_item(ctx.run.rollback_of_id)
        if original is None:
            raise StepFailed(
                f"Run {ctx.run.rollback_of_id} holds no complete snapshot of this tenant: "
                "there is nothing to restore"
            )
        keep = (
            "policy_id",
            "policy_created",
            "policy_adopted",
            "policy_state_before",
            "break_glass_ids",
            "break_glass_group",
            "pilot_member_ids",
            # the optional steps' objects (steps/optional/session.py, steps/optional/location.py)
            "session_policy_id",
            "session_policy_created",
            "session_policy_before",
            "named_location_id",
            "named_location_created",
            "named_location_before",
        )
        ctx.save_state(
            snapshot_id=original.snapshot.pk,
            original_item_id=original.pk,
            security_defaults_before=original.snapshot.security_defaults,
            **{k: original.state[k] for k in keep if k in original.state},
        )
        return (
            f"snapshot of {original.snapshot.taken_at:%Y-%m-%d %H:%M} ({original.snapshot.user_count} users)"
        )


def _restore_changes(ctx: StepContext, *, states: set[str], purpose: str):
    """Users whose snapshot state is in `states` and whose current state differs from it."""

    rows = (
        UserSnapshot.objects.filter(snapshot_id=ctx.state["snapshot_id"], per_user_state__in=states)
        .exclude(user_id__in=ctx.state.get("break_glass_ids", []))
        .annotate(done=succeeded(ctx, purpose))
        .filter(done=False)
    )
    for chunk in chunks(keyset_rows(rows, "user_id", "upn", "per_user_state"), CHUNK):
        current = ctx.wait(per_user_mfa.read_states(ctx.graph, [c[1] for c in chunk]))
        for _, user_id, upn, state in chunk:
            if not per_user_mfa.meets(current.get(user_id), state):
                yield Change(user_id=user_id, upn=upn, before=current.get(user_id) or "", wanted=state)


class RestorePerUser(Step):
    key = "restore_per_user"
    title = "Restore per-user MFA"

    def run(self, ctx: StepContext) -> str:
        changes = _restore_changes(ctx, states={"enabled", "enforced"}, purpose="restore")
        return apply_changes(ctx, changes, purpose="restore", verb="per-user MFA restored from the snapshot")


class RollbackBridge(Step):
    key = "bridge"
    title = "Bridge for security defaults"

    def run(self, ctx: StepContext) -> str:
        if not ctx.state.get("security_defaults_before"):
            return "security defaults were off: nothing to bridge"

        rows = (
            UserSnapshot.objects.filter(snapshot_id=ctx.state["snapshot_id"], per_user_state="disabled")
            .exclude(user_id__in=ctx.state.get("break_glass_ids", []))
            .annotate(done=succeeded(ctx, "bridge"))
            .filter(done=False)
        )
        changes = (
            Change(user_id=u, upn=upn, before="disabled", wanted="enabled")
            for _, u, upn in keyset_rows(rows, "user_id", "upn")
        )
        return apply_changes(
            ctx, changes, purpose="bridge", verb="covered with per-user MFA for the hand-off"
        )


class RestorePolicy(Step):
    key = "restore_policy"
    title = "Turn the policy back"

    def run(self, ctx: StepContext) -> str:
        policy_id = ctx.state.get("policy_id")
        if not policy_id:
            return "the run made or adopted no policy"
        wanted = "disabled" if ctx.state.get("policy_created") else ctx.state.get("policy_state_before")
        policy = ctx.wait(policies.get_policy(ctx.graph, policy_id))
        if policy is None:
            return "the policy no longer exists"
        if not wanted or policy.get("state") == wanted:
            return f"policy already {policy.get('state')}"
        ctx.wait(
            policies.patch(
                ctx.graph,
                policy_id,
                {"state": wanted},
                action="policy.restore_state",
                before={"state": policy.get("state")},
            )
        )
        return f"policy set to {wanted}"


class RestoreSecurityDefaults(Step):
    key = "restore_security_defaults"
    title = "Security defaults back on"

    def run(self, ctx: StepContext) -> str:
        if not ctx.state.get("security_defaults_before"):
            return "security defaults were off before"
        if ctx.wait(security_defaults.is_on(ctx.graph)):
            return "security defaults already on"
        ctx.wait(security_defaults.switch(ctx.graph, True, action="sd.restore", before=False))
        return "security defaults on"


class Unbridge(Step):
    key = "unbridge"
    title = "Remove the bridge"

    def run(self, ctx: StepContext) -> str:

        bridged = (
            UserOutcome.objects.filter(item=ctx.item, purpose="bridge", status="succeeded")
            .annotate(done=succeeded(ctx, "unbridge"))
            .filter(done=False)
        )
        changes = (
            Change(user_id=u, upn=upn, before="enabled", wanted="disabled")
            for _, u, upn in keyset_rows(bridged, "user_id", "upn")
        )
        return apply_changes(
            ctx, changes, purpose="unbridge", verb="back to disabled as the snapshot had them"
        )


class VerifyRollback(Step):
    key = "verify_rollback"
    title = "Verify rollback"

    def run(self, ctx: StepContext) -> str:

        pending = []
        rows = UserSnapshot.objects.filter(snapshot_id=ctx.state["snapshot_id"]).exclude(
            user_id__in=ctx.state.get("break_glass_ids", [])
        )
        checked = wrong = 0
        read: dict[str, str] = {}
        for chunk in chunks(keyset_rows(rows, "user_id", "per_user_state"), CHUNK):
            current = ctx.wait(per_user_mfa.read_states(ctx.graph, [u for _, u, _ in chunk]))
            read.update(current)
            wrong += sum(1 for _, u, state in chunk if not per_user_mfa.meets(current.get(u), state))
            checked += len(chunk)
        if wrong:
            pending.append(f"{wrong} users differ from the snapshot")
        sd = ctx.wait(security_defaults.is_on(ctx.graph))
        if sd != bool(ctx.state.get("security_defaults_before")):
            pending.append(f"security defaults are {'on' if sd else 'off'}")
        parts = []
        for check in (session_rollback_pending, location_rollback_pending):
            more, part = check(ctx)
            pending += more
            parts += [part] if part else []
        if pending:
            raise StepFailed("Rollback not complete: " + "; ".join(pending), retryable=True)
        verdict = (
            f"Rolled back: {checked} users as in the snapshot, security defaults {'on' if sd else 'off'}"
        ) + "".join(f"; {part}" for part in parts)
        ctx.set_verdict(verdict)
        census_from_verify(
            ctx, "verify_rollback", read, security_defaults=sd, mfa_policy_state=_policy_state_before(ctx)
        )
        return verdict


def _policy_state_before(ctx: StepContext) -> str | None:
    """The census's policy column as the snapshot had it: the rollback turned the policy back."""

    snapshot = TenantSnapshot.objects.filter(pk=ctx.state.get("snapshot_id")).first()
    return best_policy_state(snapshot.policies or []) if snapshot else None
