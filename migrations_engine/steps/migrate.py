"""The forward pipeline's steps, in order (design section 2)."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

from django.utils import timezone

from migrations_engine.census.read import PER_USER_STATES, USER_SELECT, licence_from_skus
from migrations_engine.graph import ConsentMissing, GraphError, GraphUnavailable, TokenError, missing_roles
from migrations_engine.models import TenantSnapshot, UserSnapshot
from migrations_engine.runs.migrated import baseline_policy, migrated_item
from migrations_engine.steps import graph_reads as reads
from migrations_engine.steps import locations, per_user, session
from migrations_engine.steps.base import POLICY_NAME, Step, StepContext, StepFailed
from migrations_engine.steps.census_after import census_from_verify
from migrations_engine.steps.policy import (
    REPORT_ONLY,
    baseline_of,
    desired_policy,
    is_candidate,
    kept_grant_note,
    restore_fix,
    scope_fix,
    scope_problems,
)
from migrations_engine.steps.reconcile import create_ours, reconcile
from migrations_engine.steps.user_scope import (
    keyset_rows,
    reconcile_unknown_writes,
    record_outcomes,
    scope_rows,
    scope_user_ids,
    scoped_changes,
)
from migrations_engine.steps.writes import patch_policy, set_security_defaults
from tenants.choices import PolicyState
from tenants.validators import break_glass_problems, describe_problems


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


class CheckLicence(Step):
    key = "check_licence"
    title = "Check Entra ID P1/P2"

    def run(self, ctx: StepContext) -> str:
        skus = ctx.wait(ctx.graph.get_json("/subscribedSkus")).get("value", [])
        tier, plans = licence_from_skus(skus)
        if tier == "free":
            raise StepFailed("Entra ID Free: Conditional Access needs Entra ID P1 or P2. Buy P1/P2 first.")
        ctx.save_state(licence=str(tier), licence_plans=plans)
        return f"Entra ID {str(tier).upper()} ({', '.join(plans)})"


class Census(Step):
    """Reads SD, CA policies and every user's per-user state, streaming users into the snapshot."""

    key = "census"
    title = "Census"

    def run(self, ctx: StepContext) -> str:

        sd = ctx.wait(reads.security_defaults_on(ctx.graph))
        if ctx.mode == "pilot" and sd:
            raise StepFailed(
                "Pilot refused: security defaults are on. Turning them off for a pilot would leave every "
                "user outside the pilot without MFA. Run a full migration, or a plan."
            )
        policies = ctx.wait(reads.list_policies(ctx.graph))
        snapshot, _ = TenantSnapshot.objects.get_or_create(item=ctx.item, defaults={"tenant": ctx.tenant})
        if snapshot.complete:
            return "snapshot already taken"
        snapshot.users.all().delete()  # a partial census from a crashed attempt starts again
        counts: Counter[str] = Counter()
        pages = ctx.graph.iter_pages("/users", query={"$select": USER_SELECT, "$top": 999})
        while True:
            try:
                page = ctx.wait(pages.__anext__())
            except StopAsyncIteration:
                break
            ctx.graph.saw_users(sum(counts.values()) + len(page))  # a larger tenant has a larger RU budget
            states = ctx.wait(per_user.read_states(ctx.graph, [u["id"] for u in page]))
            unreadable = [u.get("userPrincipalName") for u in page if states.get(u["id"]) is None]
            if unreadable:
                raise StepFailed(
                    f"Could not read the per-user MFA state of {len(unreadable)} users "
                    f"(e.g. {unreadable[0]})",
                    retryable=True,
                )
            # A state this console does not know (Graph's "unknownFutureValue", or one added later) is kept
            # as "unknown": such users are never written (see DisablePerUser).
            states = {uid: (st if st in PER_USER_STATES else "unknown") for uid, st in states.items()}
            UserSnapshot.objects.bulk_create(
                [
                    UserSnapshot(
                        snapshot=snapshot,
                        user_id=u["id"],
                        upn=u.get("userPrincipalName") or "",
                        per_user_state=states[u["id"]],
                        account_enabled=bool(u.get("accountEnabled", True)),
                        user_type=u.get("userType") or "",
                    )
                    for u in page
                ]
            )
            counts.update(states[u["id"]] for u in page)
            ctx.heartbeat()
        snapshot.security_defaults = sd
        snapshot.policies = policies
        snapshot.user_count = sum(counts.values())
        snapshot.save()
        ctx.set_counters(
            users_total=snapshot.user_count,
            per_user_enabled=counts["enabled"],
            per_user_enforced=counts["enforced"],
            per_user_disabled=counts["disabled"],
        )
        ctx.save_state(security_defaults_before=sd, policy_count_before=len(policies))
        unknown = f", {counts['unknown']} in an unknown state (left as they are)" if counts["unknown"] else ""
        return (
            f"{snapshot.user_count} users: {counts['enabled']} enabled, {counts['enforced']} enforced, "
            f"{counts['disabled']} disabled{unknown}; security defaults {'on' if sd else 'off'}; "
            f"{len(policies)} CA policies"
        )


class Snapshot(Step):
    """Seals the snapshot the census filled: from here on, rollback can restore it."""

    key = "snapshot"
    title = "Snapshot"

    def run(self, ctx: StepContext) -> str:

        snapshot = TenantSnapshot.objects.get(item=ctx.item)
        rows = snapshot.users.count()
        if rows != snapshot.user_count:
            raise StepFailed(
                f"Snapshot holds {rows} users, the census counted {snapshot.user_count}", retryable=True
            )
        TenantSnapshot.objects.filter(pk=snapshot.pk).update(complete=True)
        ctx.save_state(snapshot_id=snapshot.pk)
        return f"{rows} users, security defaults and {len(snapshot.policies)} policies saved"


class GuardBreakGlass(Step):
    """Fail closed: without the configured emergency accounts resolved and enabled, nothing is written."""

    key = "guard_break_glass"
    title = "Break-glass guard"

    def run(self, ctx: StepContext) -> str:
        config = getattr(ctx.tenant, "break_glass", None)
        if config is not None and (problems := break_glass_problems(config.accounts, config.minimum_count)):
            # A row written around the model's checks: say what is wrong, rather than guess what it meant.
            raise StepFailed(
                f"The break-glass configuration cannot be used ({describe_problems(problems)}): correct it "
                "on the tenant's page. No change was made."
            )
        if config is None or (not config.accounts and not config.group_id):
            raise StepFailed(
                "No break-glass accounts are configured for this tenant: add them first. No change was made."
            )
        found, missing = ctx.wait(
            reads.resolve_break_glass(
                ctx.graph, list(config.accounts), str(config.group_id) if config.group_id else None
            )
        )
        enabled = [u for u in found.values() if u.get("accountEnabled", True)]
        disabled = [u.get("userPrincipalName") for u in found.values() if not u.get("accountEnabled", True)]
        if len(enabled) < config.minimum_count:
            detail = []
            if missing:
                detail.append("not found: " + ", ".join(missing))
            if disabled:
                detail.append("disabled: " + ", ".join(disabled))
            raise StepFailed(
                f"Only {len(enabled)} break-glass accounts resolve and are enabled; {config.minimum_count} "
                f"required ({'; '.join(detail) or 'none configured resolve'}). No change was made."
            )
        changes: dict[str, Any] = {
            "break_glass_ids": sorted(found),
            "break_glass_upns": sorted(u.get("userPrincipalName", "") for u in found.values()),
            "break_glass_group": str(config.group_id) if config.group_id else None,
        }
        if ctx.mode == "pilot":
            members = ctx.wait(reads.group_members(ctx.graph, str(ctx.run.pilot_group_id)))
            if members is None:
                raise StepFailed(f"The pilot group {ctx.run.pilot_group_id} does not exist in this tenant")
            changes["pilot_member_ids"] = sorted(m["id"] for m in members if m["id"] not in found)
        ctx.save_state(**changes)
        note = f"; {len(missing)} configured entries not found" if missing else ""
        return f"{len(enabled)} break-glass accounts resolved and excluded{note}"


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
            policy = ctx.wait(reads.get_policy(ctx.graph, ctx.state["policy_id"], wait_seconds=wait))
            if policy is None:
                raise StepFailed(
                    f"The policy {ctx.state['policy_id']} this run made or adopted is gone; "
                    "a human should look before anything else is created"
                )
            if ctx.state.get("restores_item"):
                previous = type(ctx.item).objects.select_related("run").get(pk=ctx.state["restores_item"])
        else:
            policy, previous = self._verified_before(ctx)
            if policy is None:
                policy = self._find_or_create(ctx, wait)
                if policy is None:  # plan mode
                    return "would create the policy in report-only"
        if previous is not None:
            body, fixes = restore_fix(policy, baseline_policy(previous), ctx)
            action, change, evidence = "policy.restore", "restore policy as verified", {"fixes": fixes}
        else:
            fixes = scope_problems(policy, ctx)
            body = scope_fix(policy, ctx) if fixes else {}
            action, change, evidence = "policy.update_scope", "update policy scope", {"scope_problems": fixes}
        if not ctx.plan:
            # A fix whose answer was lost (the worker died) is settled by what the read shows.
            reconcile(ctx, action, applied=not fixes, evidence=evidence)
        if fixes:
            if ctx.plan:
                ctx.diff(self.key, change, policy=policy.get("displayName"), fixes=fixes)
            else:
                patch_policy(ctx, policy["id"], body, action=action, before=policy)
        kept = kept_grant_note(policy, ctx)
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
        policy = ctx.wait(reads.get_policy(ctx.graph, policy_id)) if policy_id else None
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
        candidates = self._candidates(ctx)
        if not candidates and ctx.state.get("create_attempted"):
            # A create was sent before and its answer is unknown: the policy may exist but not be
            # listed yet (replication lag). Wait it out by listing, never by creating again at once.
            deadline = time.monotonic() + wait
            while not candidates and time.monotonic() < deadline:
                time.sleep(min(2.0, max(0.1, deadline - time.monotonic())))
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
        body = desired_policy(ctx)
        if ctx.plan:
            ctx.diff(
                self.key,
                "create policy",
                policy=POLICY_NAME,
                state=REPORT_ONLY,
                excludes=len(body["conditions"]["users"]["excludeUsers"]),
            )
            ctx.wait(
                ctx.graph.write("POST", reads.POLICIES, body=body, action="policy.create", target=POLICY_NAME)
            )
            return None
        ctx.save_state(create_attempted=True, create_attempted_at=timezone.now().isoformat())
        policy, _ = create_ours(
            ctx,
            reads.POLICIES,
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
        deadline = time.monotonic() + wait
        while True:
            ours = [p for p in self._candidates(ctx) if p.get("displayName") == POLICY_NAME]
            if ours or time.monotonic() >= deadline:
                return ours[0] if len(ours) == 1 else None
            time.sleep(min(2.0, max(0.1, deadline - time.monotonic())))

    def _candidates(self, ctx: StepContext) -> list[dict[str, Any]]:
        return [p for p in ctx.wait(reads.list_policies(ctx.graph)) if is_candidate(p, ctx)]


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
        return _apply(ctx, changes, purpose="bridge", verb="covered with per-user MFA for the hand-off")


class CutOver(Step):
    """Security defaults off and the policy on, together; SD back on if the policy cannot be enabled."""

    writes = True
    key = "cut_over"
    title = "Cut over"

    def run(self, ctx: StepContext) -> str:
        wait = float(ctx.settings.get("replication_wait_seconds", 60))
        sd = ctx.wait(reads.security_defaults_on(ctx.graph))
        if ctx.plan:
            # An existing policy the plan would use that is already enforced needs no enabling.
            enable = ctx.state.get("plan_policy_state") != "enabled"
            if sd:
                ctx.diff(self.key, "turn security defaults off")
                ctx.wait(
                    ctx.graph.write(
                        "PATCH", reads.SECURITY_DEFAULTS, body={"isEnabled": False}, action="sd.disable"
                    )
                )
            if enable:
                ctx.diff(self.key, "enable policy", policy=POLICY_NAME)
                ctx.wait(
                    ctx.graph.write(
                        "PATCH",
                        f"{reads.POLICIES}/(policy)",
                        body={"state": "enabled"},
                        action="policy.enable",
                    )
                )
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
        policy = ctx.wait(reads.get_policy(ctx.graph, policy_id, wait_seconds=wait))
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
            set_security_defaults(ctx, False, action="sd.disable")
            ctx.save_state(sd_turned_off=True)
        try:
            patch_policy(
                ctx,
                policy_id,
                {"state": "enabled"},
                action="policy.enable",
                before={"state": policy.get("state")},
            )
        except (GraphUnavailable, GraphError) as exc:
            readback = ctx.wait(reads.get_policy(ctx.graph, policy_id))
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
        deadline = time.monotonic() + wait
        while True:
            readback = ctx.wait(reads.get_policy(ctx.graph, policy_id, wait_seconds=wait))
            if readback and readback.get("state") == "enabled":
                break
            if time.monotonic() > deadline:
                raise StepFailed("The policy does not read back as enabled yet", retryable=True)
            time.sleep(1)
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
            set_security_defaults(ctx, True, action="sd.reenable")
            ctx.save_state(sd_turned_off=False)
        except (GraphUnavailable, GraphError) as exc:
            raise StepFailed(
                f"Enabling the policy failed AND turning security defaults back on failed "
                f"({exc}). Users covered only by security defaults are still bridged with "
                "per-user MFA; a human must look now."
            ) from exc


class DisablePerUser(Step):
    """Per-user MFA off for every user in scope (methods are kept), only once the policy is enforced.

    A user whose per-user state the census could not name ("unknown": Graph's `unknownFutureValue`, or a
    state added after this code) is left as it is: writing `disabled` would replace a state we cannot
    read back into the snapshot, so a rollback could not restore it. Leaving it never removes MFA (the
    policy covers the user either way); Verify names those users instead of waiting for them.
    """

    writes = True
    plan_keys = ("migrate",)
    key = "disable_per_user"
    title = "Disable per-user MFA"

    def run(self, ctx: StepContext) -> str:
        if not ctx.plan:
            policy = ctx.wait(reads.get_policy(ctx.graph, ctx.state["policy_id"]))
            problems = [] if policy else ["cannot be read"]
            if policy and policy.get("state") != "enabled":
                problems.append(f"state is {policy.get('state')}")
            if policy:
                problems += scope_problems(policy, ctx)
            if problems:
                raise StepFailed("The policy is not ready, so per-user MFA stays on: " + "; ".join(problems))
        changes = scoped_changes(
            ctx, purpose="migrate", only_states={"enabled", "enforced"}, wanted="disabled"
        )
        return _apply(ctx, changes, purpose="migrate", verb="per-user MFA disabled")


def _apply(ctx: StepContext, changes, *, purpose: str, verb: str) -> str:
    """Stream changes through the write engine, storing each user's outcome as it settles; StepFailed if
    any user failed.

    `changes` must be a lazy iterable: unknown outcomes are settled first, and only then is the list of
    users still to change read from the database, a chunk at a time, while earlier chunks are written.
    """
    if ctx.plan:
        planned, sample = 0, []
        for chunk in per_user.chunks(changes, per_user.CHUNK):
            planned += len(chunk)
            sample.extend(c.upn for c in chunk[: 20 - len(sample)])
        if planned:
            ctx.diff(purpose, verb, users=planned, sample=sample)
        return f"would change {planned} users ({verb})"

    reconcile_unknown_writes(ctx, purpose=purpose)
    totals: Counter[str] = Counter()

    def store(settled: list[per_user.Settled]) -> None:
        if settled:
            record_outcomes(ctx, settled, purpose=purpose)
            done = sum(1 for s in settled if s.status == "succeeded")
            bad = [s for s in settled if s.status == "failed"]
            totals.update(done=done, failed=len(bad), throttled=sum(1 for s in bad if s.http_status == 429))
            ctx.count(**{f"{purpose}_done": done, f"{purpose}_failed": len(bad)})
        ctx.heartbeat()

    engine = per_user.WriteEngine(ctx.graph, max_rounds=ctx.graph.config.max_attempts)
    ctx.wait(_started(engine))
    try:
        for chunk in per_user.chunks(changes, per_user.CHUNK):
            ctx.wait(engine.put(chunk))
            store(engine.take_settled())
        ctx.wait(engine.finish())
    except BaseException:
        ctx.wait(engine.abort())
        raise
    finally:
        store(engine.take_settled())
    if totals["failed"]:
        raise StepFailed(
            f"{totals['failed']} users could not be changed ({verb}); see the per-user outcomes. "
            "Running the item again retries only them.",
            retryable=totals["throttled"] == totals["failed"],
        )
    return f"{totals['done']} users {verb}"


async def _started(engine: per_user.WriteEngine) -> None:
    engine.start()  # its tasks live on the job's loop and run whenever the step waits on it


class Verify(Step):
    """Poll until the end state holds (or the settle time runs out, naming what is still pending)."""

    key = "verify"
    title = "Verify"

    def run(self, ctx: StepContext) -> str:
        if ctx.plan:
            return "nothing to verify in a plan"
        settle = float(ctx.settings.get("settle_seconds", 600))
        deadline = time.monotonic() + settle
        delay = 1.0
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
            kept = kept_grant_note(policy, ctx)
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
                ctx.item.verdict = verdict
                type(ctx.item).objects.filter(pk=ctx.item.pk).update(verdict=verdict)
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
            if time.monotonic() + delay > deadline:
                raise StepFailed(
                    "Not verified within the settle time; still pending: " + "; ".join(pending),
                    retryable=True,
                )
            time.sleep(delay)
            delay = min(delay * 2, 30)

    MAX_REDO = 3

    def _optional(self, ctx: StepContext) -> tuple[list[str], list[str], dict[str, Any]]:
        """The optional steps' objects (the sign-in frequency policy, the named location): what is still
        pending, the verdict's parts, and what the drift watch will compare with."""
        session_pending, session_part, session_baseline = session.session_check(ctx)
        location_pending, location_part, location_baseline = locations.location_check(ctx)
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
            per_user.Change(user_id=uid, upn=upns.get(uid, uid), before=state, wanted="disabled")
            for uid, state in stragglers.items()
        ]
        _apply(ctx, changes, purpose="straggler", verb="per-user MFA disabled again after it came back on")

    def _check(self, ctx: StepContext) -> tuple[list[str], str, dict[str, str], dict | None, dict[str, str]]:
        pending: list[str] = []
        policy = ctx.wait(reads.get_policy(ctx.graph, ctx.state["policy_id"]))
        if policy is None or policy.get("state") != "enabled":
            pending.append("policy is not enabled")
        elif scope_problems(policy, ctx):
            pending.append("policy: " + ", ".join(scope_problems(policy, ctx)))
        if ctx.mode == "full" and ctx.wait(reads.security_defaults_on(ctx.graph)):
            pending.append("security defaults are on")
        sample_size = int(ctx.settings.get("whatif_sample", 3))
        checked = left_alone = still_on = 0
        stragglers: dict[str, str] = {}
        read: dict[str, str] = {}
        sample: list[str] = []
        rows = keyset_rows(scope_rows(ctx), "user_id", "per_user_state")
        for chunk in per_user.chunks(rows, per_user.CHUNK):
            states = ctx.wait(per_user.read_states(ctx.graph, [uid for _, uid, _ in chunk]))
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
            f"{len(ctx.state.get('break_glass_ids', []))} break-glass accounts excluded"
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
        result = {}
        for uid in user_ids:
            body = {
                "signInIdentity": {"@odata.type": "#microsoft.graph.userSignIn", "userId": uid},
                "signInContext": {
                    "@odata.type": "#microsoft.graph.applicationContext",
                    "includeApplications": ["00000002-0000-0ff1-ce00-000000000000"],
                },
                "signInConditions": {},
                "appliedPoliciesOnly": False,
            }
            answer = ctx.wait(ctx.graph.evaluate(body))
            result[uid] = any(p.get("id") == policy["id"] and p.get("policyApplies") for p in answer)
        return result
