"""Settle writes whose outcome is unknown by what a read shows, and record it in the audit log."""

from __future__ import annotations

from typing import Any

from migrations_engine.audit import record_reconciliation
from migrations_engine.choices import AuditKind, AuditOutcome
from migrations_engine.steps.base import StepContext


def unknown_intents(ctx: StepContext, action: str) -> list:
    """This item's intents for `action` whose outcome is unknown and not yet reconciled."""
    from migrations_engine.models import AuditEvent

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
