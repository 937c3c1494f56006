"""Steps 3 and 4: read the tenant (security defaults, policies, every user's per-user state) into a snapshot,
then seal it: from then on a rollback can restore it."""

from __future__ import annotations

import asyncio
from collections import Counter

from migrations_engine.graph.resources import per_user_mfa, policies, security_defaults
from migrations_engine.graph.resources.users import user_pages
from migrations_engine.models import TenantSnapshot, UserSnapshot
from migrations_engine.steps.base import Step, StepContext, StepFailed


class Census(Step):
    """Reads SD, CA policies and every user's per-user state, streaming users into the snapshot."""

    key = "census"
    title = "Census"

    def run(self, ctx: StepContext) -> str:

        # Two reads against different limits (security defaults: resource units; policies: one request
        # per second per tenant), so both at once.
        sd, found = ctx.wait(_both(security_defaults.is_on(ctx.graph), policies.list_policies(ctx.graph)))
        if ctx.mode == "pilot" and sd:
            raise StepFailed(
                "Pilot refused: security defaults are on. Turning them off for a pilot would leave every "
                "user outside the pilot without MFA. Run a full migration, or a plan."
            )
        snapshot, _ = TenantSnapshot.objects.get_or_create(item=ctx.item, defaults={"tenant": ctx.tenant})
        if snapshot.complete:
            return "snapshot already taken"
        snapshot.users.all().delete()  # a partial census from a crashed attempt starts again
        pages = user_pages(ctx.graph)
        try:
            counts = self._read_users(ctx, snapshot, pages)
        finally:
            ctx.wait(pages.aclose())  # the next page may be in flight
        return self._finish(ctx, snapshot, sd, found, counts)

    @staticmethod
    def _read_users(ctx: StepContext, snapshot, pages) -> Counter[str]:
        """Each page of users with their per-user states into the snapshot; the counts by state."""
        counts: Counter[str] = Counter()
        while True:
            try:
                page = ctx.wait(pages.__anext__())
            except StopAsyncIteration:
                break
            ctx.graph.saw_users(sum(counts.values()) + len(page))  # a larger tenant has a larger RU budget
            states = ctx.wait(per_user_mfa.read_states(ctx.graph, [u["id"] for u in page]))
            unreadable = [u.get("userPrincipalName") for u in page if states.get(u["id"]) is None]
            if unreadable:
                raise StepFailed(
                    f"Could not read the per-user MFA state of {len(unreadable)} users "
                    f"(e.g. {unreadable[0]})",
                    retryable=True,
                )
            # A state this console does not know (Graph's "unknownFutureValue", or one added later) is kept
            # as "unknown": such users are never written (see DisablePerUser).
            states = {
                uid: (st if st in per_user_mfa.PER_USER_STATES else "unknown") for uid, st in states.items()
            }
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
        return counts

    @staticmethod
    def _finish(ctx: StepContext, snapshot, sd: bool, found: list, counts: Counter[str]) -> str:
        snapshot.security_defaults = sd
        snapshot.policies = found
        snapshot.user_count = sum(counts.values())
        snapshot.save()
        ctx.set_counters(
            users_total=snapshot.user_count,
            per_user_enabled=counts["enabled"],
            per_user_enforced=counts["enforced"],
            per_user_disabled=counts["disabled"],
        )
        ctx.save_state(security_defaults_before=sd, policy_count_before=len(found))
        unknown = f", {counts['unknown']} in an unknown state (left as they are)" if counts["unknown"] else ""
        return (
            f"{snapshot.user_count} users: {counts['enabled']} enabled, {counts['enforced']} enforced, "
            f"{counts['disabled']} disabled{unknown}; security defaults {'on' if sd else 'off'}; "
            f"{len(found)} CA policies"
        )


async def _both(first, second):
    return await asyncio.gather(first, second)


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
