"""Waiting for Graph to show what a step did (replication lag): read again until it does or time is up."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from migrations_engine.graph.resources.policies import get_policy
from migrations_engine.steps.base import StepContext
from migrations_engine.waiting import Deadline

T = TypeVar("T")


def poll(read: Callable[[], T], *, until: Callable[[T], bool], seconds: float, every: float = 1.0) -> T:
    """`read()` until `until(result)` holds or `seconds` have passed, `every` seconds apart (less near
    the end); the last result either way, so the caller says what did not happen in time."""
    deadline = Deadline(seconds, every=every)
    while True:
        result = read()
        if until(result) or (pause := deadline.next_pause()) is None:
            return result
        time.sleep(pause)


def reads_enabled(ctx: StepContext, policy_id: str, *, seconds: float) -> bool:
    """Whether the policy reads back enabled within `seconds` (a 404 right after a write is lag)."""
    policy = poll(
        lambda: ctx.wait(get_policy(ctx.graph, policy_id, wait_seconds=seconds)),
        until=lambda p: bool(p) and p.get("state") == "enabled",
        seconds=seconds,
    )
    return bool(policy) and policy.get("state") == "enabled"
