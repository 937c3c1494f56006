"""Settle writes whose outcome is unknown by what a read shows, and record it in the audit log."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from migrations_engine.audit.writer import record_reconciliation
from migrations_engine.choices import AuditKind, AuditOutcome
from migrations_engine.graph import GraphError, GraphUnavailable
from migrations_engine.models import AuditEvent
from migrations_engine.steps.base import StepContext, StepFailed
from migrations_engine.steps.shared.polling import poll


def unknown_intents(ctx: StepContext, action: str) -> list:
    """This item's intents for `action` whose outcome is unknown and not yet reconciled."""

    return list(
        AuditEvent.objects.filter(
            item_id=ctx.item.pk,
            action=action,
            outcome=AuditOutcome.INTENT,
            outcomes__outcome=AuditOutcome.UNKNOWN,
        )
        .exclude(outcomes__kind=AuditKind.RECONCILIATION)
        .distinct()
        .order_by("seq")
    )


def reconcile(ctx: StepContext, action: str, *, applied: bool, evidence: dict[str, Any]) -> int:
    """Record what a read showed about every unknown `action` write of this item."""
    rows = unknown_intents(ctx, action)
    for row in rows:
        record_reconciliation(
            ctx.graph.audit, intent=row, outcome="succeeded" if applied else "not_applied", detail=evidence
        )
    return len(rows)


def find_ours(
    ctx: StepContext,
    *,
    what: str,
    name: str,
    id_key: str,
    attempted_key: str,
    action: str,
    get: Callable[[str], dict[str, Any] | None],
    named: Callable[[], list[dict[str, Any]]],
    wait: float,
) -> dict[str, Any] | None:
    """The object this run made or adopted: by the id in `ctx.state[id_key]` (gone → stop for a human), or
    the one listed under our `name`, or None. A create sent before whose answer was lost
    (`ctx.state[attempted_key]`) is waited for by listing (replication lag), never sent again, and its
    audit intent is settled by what the listing shows. Two of our name stop for a human."""
    if ctx.state.get(id_key):
        found = get(ctx.state[id_key])
        if found is None:
            raise StepFailed(
                f"The {what} {ctx.state[id_key]} this run made or adopted is gone; "
                "a human should look before another is created"
            )
        return found
    # A create whose answer was lost may not be listed yet: wait it out by listing.
    listed = poll(named, until=bool, seconds=wait if ctx.state.get(attempted_key) else 0)
    if not ctx.plan and ctx.state.get(attempted_key):
        reconcile(ctx, action, applied=bool(listed), evidence={"listed": [o.get("id") for o in listed]})
    if len(listed) > 1:
        raise StepFailed(
            f"There are {len(listed)} {what} objects called '{name}' ("
            + ", ".join(str(o.get("id")) for o in listed)
            + "). A human must choose which to keep; nothing was changed."
        )
    return listed[0] if listed else None


def delete_ours(ctx: StepContext, path: str, *, action: str, target: str, before: dict[str, Any]) -> None:
    """DELETE an object this run created. Gone already (404: someone deleted it meanwhile, or our own
    earlier DELETE landed without its answer) is the outcome wanted, not a failure."""
    try:
        ctx.wait(ctx.graph.write("DELETE", path, action=action, target=target, before=before))
    except GraphError as exc:
        if exc.status != 404:
            raise


def create_ours(
    ctx: StepContext,
    path: str,
    body: dict[str, Any],
    *,
    action: str,
    target: str,
    what: str,
    find: Callable[[], dict[str, Any] | None],
    wait: float,
) -> tuple[dict[str, Any], bool]:
    """POST an object of ours: (it, True) from the answer. Refused (4xx): raised, nothing was made. No
    clear answer (timeout, 5xx): it may have been made, so `find` lists for it, waiting out the lag, and
    records it: (it, False); not listed after `wait` seconds is a retryable failure (the next attempt
    lists again before creating)."""
    try:
        response = ctx.wait(ctx.graph.write("POST", path, body=body, action=action, target=target))
    except (GraphUnavailable, GraphError) as exc:
        if isinstance(exc, GraphError) and exc.status < 500:
            raise
        found = find()
        if found is None:
            raise StepFailed(
                f"Creating {what} got no clear answer ({exc}) and it is not listed after {wait:.0f} s; "
                "the next attempt lists again before creating",
                retryable=True,
            ) from exc
        return found, False
    return response.body, True
