"""Streaming a step's per-user changes through the write engine and storing each user's outcome."""

from __future__ import annotations

from collections import Counter

from migrations_engine.steps.base import StepContext, StepFailed
from migrations_engine.steps.shared.user_scope import reconcile_unknown_writes, record_outcomes, writes_left
from migrations_engine.steps.shared.write_engine import CHUNK, Settled, WriteEngine, chunks

# The migration's writes: their pace follows the writes each tenant has left (graph/fair_share.py).
SHARED = ("bridge", "migrate")


def apply_changes(ctx: StepContext, changes, *, purpose: str, verb: str) -> str:
    """Stream changes through the write engine, storing each user's outcome as it settles; StepFailed if
    any user failed.

    `changes` must be a lazy iterable: unknown outcomes are settled first, and only then is the list of
    users still to change read from the database, a chunk at a time, while earlier chunks are written.
    """
    if ctx.plan:
        planned, sample = 0, []
        for chunk in chunks(changes, CHUNK):
            planned += len(chunk)
            sample.extend(c.upn for c in chunk[: 20 - len(sample)])
        if planned:
            ctx.diff(purpose, verb, users=planned, sample=sample)
        return f"would change {planned} users ({verb})"

    reconcile_unknown_writes(ctx, purpose=purpose)
    totals: Counter[str] = Counter()

    def store(settled: list[Settled]) -> None:
        if settled:
            record_outcomes(ctx, settled, purpose=purpose)
            done = sum(1 for s in settled if s.status == "succeeded")
            bad = [s for s in settled if s.status == "failed"]
            totals.update(done=done, failed=len(bad), throttled=sum(1 for s in bad if s.http_status == 429))
            ctx.count(**{f"{purpose}_done": done, f"{purpose}_failed": len(bad)})
        ctx.heartbeat()

    if purpose in SHARED:
        ctx.graph.share.expect(writes_left(ctx))
    engine = WriteEngine(ctx.graph, max_rounds=ctx.graph.config.max_attempts)
    ctx.wait(_started(engine))
    try:
        for chunk in chunks(changes, CHUNK):
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


async def _started(engine: WriteEngine) -> None:
    engine.start()  # its tasks live on the job's loop and run whenever the step waits on it
