"""The few single-object writes steps make (Graph errors propagate: the runner turns them into failures)."""

from __future__ import annotations

from typing import Any

from migrations_engine.steps import graph_reads as reads
from migrations_engine.steps.base import StepContext


def set_security_defaults(ctx: StepContext, enabled: bool, *, action: str) -> None:
    ctx.wait(
        ctx.graph.write(
            "PATCH",
            reads.SECURITY_DEFAULTS,
            body={"isEnabled": enabled},
            action=action,
            before={"isEnabled": not enabled},
        )
    )


def patch_policy(ctx: StepContext, policy_id: str, body: dict[str, Any], *, action: str, before: Any) -> None:
    ctx.wait(
        ctx.graph.write(
            "PATCH",
            f"{reads.POLICIES}/{policy_id}",
            body=body,
            action=action,
            target=policy_id,
            before=before,
        )
    )
