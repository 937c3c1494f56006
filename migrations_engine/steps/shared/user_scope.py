"""Which users a run touches, and storing what happened to each of them."""

from __future__ import annotations

from collections.abc import Iterator

from django.db.models import Exists, OuterRef, Value

from migrations_engine.audit.writer import record_reconciliation
from migrations_engine.choices import AuditKind, AuditOutcome, UserOutcomeStatus
from migrations_engine.graph.resources import per_user_mfa
from migrations_engine.models import AuditEvent, UserOutcome, UserSnapshot
from migrations_engine.steps.base import StepContext
from migrations_engine.steps.shared.write_engine import Change, Settled


def scope_rows(ctx: StepContext, snapshot_id: int | None = None):

    snapshot_id = snapshot_id or ctx.state["snapshot_id"]
    rows = UserSnapshot.objects.filter(snapshot_id=snapshot_id).exclude(
        user_id__in=ctx.state.get("break_glass_ids", [])
    )
    if ctx.mode == "pilot":
        rows = rows.filter(user_id__in=ctx.state.get("pilot_member_ids", []))
    return rows.order_by("pk")


def writes_left(ctx: StepContext) -> int:
    """About how many per-user writes this item has still to make (a hint for sharing the app's write
    budget, graph/fair_share.py, never a limit): each enabled or enforced user once, and with security
    defaults on each disabled user twice (bridged, then disabled), less what the item already wrote."""
    rows = scope_rows(ctx).order_by()
    pending = rows.filter(per_user_state__in=("enabled", "enforced")).count()
    if ctx.state.get("security_defaults_before"):
        pending += 2 * rows.filter(per_user_state="disabled").count()
    done = sum(int(ctx.item.counters.get(f"{p}_done", 0)) for p in ("bridge", "migrate"))
    return max(pending - done, 0)


def keyset_rows(rows, *fields: str, size: int = 2000) -> Iterator[tuple]:
    """`values_list(pk, *fields)` of `rows` in pk order, a page per query: memory stays flat, and no
    cursor is held open across the writes a step makes between pages."""
    last = 0
    while True:
        page = list(rows.filter(pk__gt=last).order_by("pk").values_list("pk", *fields)[:size])
        yield from page
        if len(page) < size:
            return
        last = page[-1][0]


def scope_user_ids(ctx: StepContext, *, per_user_state: str | None = None) -> Iterator[str]:
    """Every user in scope: all users (or the pilot group's members) except break-glass accounts;
    with `per_user_state`, only those the snapshot saw in that state."""
    rows = scope_rows(ctx)
    if per_user_state is not None:
        rows = rows.filter(per_user_state=per_user_state)
    for _, user_id in keyset_rows(rows, "user_id"):
        yield user_id


def succeeded(ctx: StepContext, purpose: str) -> Exists:
    """True for a row (with a `user_id`) whose user this item already changed for `purpose`."""

    return Exists(
        UserOutcome.objects.filter(
            item=ctx.item, purpose=purpose, status=UserOutcomeStatus.SUCCEEDED, user_id=OuterRef("user_id")
        )
    )


def scoped_changes(ctx: StepContext, *, purpose: str, only_states: set[str], wanted: str) -> Iterator[Change]:
    """Changes for in-scope users whose state (as this run left it) is in `only_states`, skipping users
    this purpose already changed (so a resumed step never repeats a write that took effect)."""
    rows = scope_rows(ctx).annotate(
        done=succeeded(ctx, purpose),
        bridged=succeeded(ctx, "bridge") if purpose == "migrate" else Value(False),
    )
    # A plan sends no bridge writes; show the disable step as it will run after the bridge.
    plan_bridge = ctx.plan and purpose == "migrate" and bool(ctx.state.get("security_defaults_before"))
    for _, user_id, upn, state, done, bridged in keyset_rows(
        rows, "user_id", "upn", "per_user_state", "done", "bridged"
    ):
        bridged_in_plan = plan_bridge and state == "disabled"
        current = "enabled" if bridged or bridged_in_plan else state
        if done or current not in only_states:
            continue
        yield Change(user_id=user_id, upn=upn, before=current, wanted=wanted)


def record_outcomes(ctx: StepContext, settled: list[Settled], *, purpose: str) -> None:
    """Store each user's outcome (one row per item, purpose and user; a retry updates it)."""

    UserOutcome.objects.bulk_create(
        [
            UserOutcome(
                item=ctx.item,
                user_id=s.change.user_id,
                upn=s.change.upn,
                before=s.change.before,
                wanted=s.change.wanted,
                status=s.status,
                http_status=s.http_status,
                error=s.error,
                purpose=purpose,
            )
            for s in settled
        ],
        update_conflicts=True,
        unique_fields=["item", "purpose", "user_id"],
        update_fields=["status", "http_status", "error", "before", "updated_at"],
    )


def reconcile_unknown_writes(ctx: StepContext, *, purpose: str) -> int:
    """Per-user writes of this step whose outcome is unknown (a lost answer, or a worker that died
    before recording it): read the users' states and settle them, so nothing is sent twice."""

    step = ctx.graph.audit.step if ctx.graph.audit else ""
    intents = list(
        AuditEvent.objects.filter(
            item_id=ctx.item.pk,
            step=step,
            action=per_user_mfa.SET_ACTION,
            outcome=AuditOutcome.INTENT,
            outcomes__outcome=AuditOutcome.UNKNOWN,
        )
        .exclude(outcomes__kind=AuditKind.RECONCILIATION)
        .distinct()
    )
    if not intents:
        return 0
    by_user = {}
    for row in intents:
        by_user[per_user_mfa.user_id_in(row.path)] = row
    current = ctx.wait(per_user_mfa.read_states(ctx.graph, list(by_user)))
    settled = []
    for user_id, row in by_user.items():
        wanted = per_user_mfa.state_in(row.request_body)
        applied = per_user_mfa.meets(current.get(user_id), wanted)
        record_reconciliation(
            ctx.graph.audit,
            intent=row,
            outcome="succeeded" if applied else "not_applied",
            detail={"read_back": current.get(user_id)},
        )
        if applied:
            before = per_user_mfa.state_in(row.before) or ""
            settled.append(Settled(Change(user_id, row.target, before, wanted), UserOutcomeStatus.SUCCEEDED))
    if settled:
        record_outcomes(ctx, settled, purpose=purpose)
    return len(intents)
