"""Reading and setting per-user MFA states in `$batch`es: the engine behind every per-user step.

Writes go 20 to a `/beta/$batch`, a few batches in flight, paced by the Graph client. Per item: 204 is
done; 429 is sent again after its own Retry-After (as a new audited intent: nothing was applied); a
5xx or lost answer is *unknown* and is settled by reading the user's state, never by blindly re-sending;
403/404 are recorded against the user. Outcomes are stored per user, so a resumed step skips users
already done.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import islice

from asgiref.sync import sync_to_async

from migrations_engine.audit import record_reconciliation
from migrations_engine.choices import UserOutcomeStatus
from migrations_engine.graph import BatchItem, BatchResult, GraphClient, GraphUnavailable

BATCH = 20
BATCHES_IN_FLIGHT = 4
CHUNK = BATCH * BATCHES_IN_FLIGHT * 5
REQUIREMENTS = "/users/{id}/authentication/requirements"


@dataclass(frozen=True)
class Change:
    """Set one user's per-user MFA state from `before` to `wanted`."""

    user_id: str
    upn: str
    before: str
    wanted: str


@dataclass
class Settled:
    """How one user's change ended."""

    change: Change
    status: str
    http_status: int | None = None
    error: str = ""


def chunks(iterable: Iterable, size: int) -> Iterator[list]:
    it = iter(iterable)
    while chunk := list(islice(it, size)):
        yield chunk


async def read_states(graph: GraphClient, user_ids: list[str]) -> dict[str, str | None]:
    """Current per-user MFA state by user id (None when unreadable), read in batches of 20."""
    gate = asyncio.Semaphore(BATCHES_IN_FLIGHT)
    states: dict[str, str | None] = {}

    async def one(ids: list[str]) -> None:
        items = [BatchItem(str(i), "GET", REQUIREMENTS.format(id=uid)) for i, uid in enumerate(ids)]
        async with gate:
            results = await graph.batch_reads(items, version="beta")
        for item, uid in zip(items, ids, strict=True):
            result = results.get(item.id)
            ok = result is not None and result.ok and isinstance(result.body, dict)
            states[uid] = str(result.body.get("perUserMfaState")) if ok else None

    await asyncio.gather(*(one(ids) for ids in chunks(user_ids, BATCH)))
    return states


async def apply_changes(graph: GraphClient, changes: list[Change], *, max_rounds: int) -> list[Settled]:
    """Apply up to a few hundred changes; returns one Settled per change. (Plans never call this: a plan
    lists the users it would change instead of recording a dry-run row per user.)"""
    if graph.dry_run:
        raise ValueError("apply_changes sends writes; a plan records its per-user changes as a diff")
    pending = {c.user_id: c for c in changes}
    settled: dict[str, Settled] = {}
    gate = asyncio.Semaphore(BATCHES_IN_FLIGHT)

    async def send(batch: list[Change]) -> dict[str, tuple[int, str, object]]:
        items = [
            BatchItem(
                str(i),
                "PATCH",
                REQUIREMENTS.format(id=c.user_id),
                body={"perUserMfaState": c.wanted},
                target=c.upn,
                action="per_user_mfa.set",
                before={"perUserMfaState": c.before},
            )
            for i, c in enumerate(batch)
        ]
        async with gate:
            try:
                results = await graph.batch_writes(items, version="beta")
            except GraphUnavailable as exc:
                rows = getattr(exc, "audit_intents", [None] * len(batch))
                return {
                    c.user_id: (0, "no answer", BatchResult(str(i), 0, None, intent=row))
                    for i, (c, row) in enumerate(zip(batch, rows, strict=True))
                }
        out = {}
        for item, change in zip(items, batch, strict=True):
            r = results[item.id]
            out[change.user_id] = (r.status, r.error_code, r)
        return out

    for round_number in range(1, max_rounds + 1):
        if not pending:
            break
        answers: dict[str, tuple[int, str, object]] = {}
        for part in await asyncio.gather(*(send(b) for b in chunks(list(pending.values()), BATCH))):
            answers.update(part)
        unknown: list[Change] = []
        waits: list[float] = []
        for uid, (status, code, result) in answers.items():
            change = pending[uid]
            if 200 <= status < 300:
                settled[uid] = Settled(change, UserOutcomeStatus.SUCCEEDED, status)
                del pending[uid]
            elif status in (429, 424):  # throttled, or not run because a dependency failed: not applied
                waits.append(getattr(result, "retry_after", None) or 1.0)
            elif status == 0 or status >= 500:
                unknown.append(change)
            else:
                settled[uid] = Settled(change, UserOutcomeStatus.FAILED, status, code or f"HTTP {status}")
                del pending[uid]
        if unknown:
            # The write may have applied: read before deciding to send it again.
            current = await read_states(graph, [c.user_id for c in unknown])
            for change in unknown:
                result = answers[change.user_id][2]
                applied = current.get(change.user_id) == change.wanted
                if result is not None and getattr(result, "intent", None) is not None:
                    await sync_to_async(record_reconciliation, thread_sensitive=True)(
                        graph.audit,
                        intent=result.intent,
                        outcome="succeeded" if applied else "not_applied",
                        detail={"applied": applied, "read_back": current.get(change.user_id)},
                    )
                if applied:
                    settled[change.user_id] = Settled(change, UserOutcomeStatus.SUCCEEDED, None)
                    del pending[change.user_id]
        if pending and round_number < max_rounds:
            await asyncio.sleep(max(waits) if waits else min(30.0, 0.5 * 2**round_number))
    for change in pending.values():
        settled[change.user_id] = Settled(
            change, UserOutcomeStatus.FAILED, 429, "still throttled or unanswered after every attempt"
        )
    return [settled[c.user_id] for c in changes]
