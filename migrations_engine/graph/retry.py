"""Retry timing: Graph's Retry-After when it gives one, exponential backoff with jitter when not."""

from __future__ import annotations

from tenacity import RetryCallState
from tenacity.wait import wait_base

from migrations_engine.graph.errors import GraphError

MAX_RETRY_AFTER = 300.0


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header; Graph sends fractional values such as "2.128".

    HTTP dates are not used by Graph; anything unparsable counts as absent (so backoff applies).
    """
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    if seconds < 0:
        return None
    return min(seconds, MAX_RETRY_AFTER)


class wait_retry_after(wait_base):  # noqa: N801 - tenacity's naming
    """Wait what the last GraphError's Retry-After said, else defer to `fallback`."""

    def __init__(self, fallback: wait_base) -> None:
        self.fallback = fallback

    def __call__(self, retry_state: RetryCallState) -> float:
        outcome = retry_state.outcome
        exc = outcome.exception() if outcome is not None else None
        if isinstance(exc, GraphError) and exc.retry_after is not None:
            return exc.retry_after
        return self.fallback(retry_state)
