"""Setting per-user MFA states in `$batch`es: the engine behind every per-user step.

Writes go 20 to a `/beta/$batch`, a few batches in flight, paced by the Graph client (which shares its
buckets with every worker through Redis). Per item: 204 is done; 429 is sent again after its own
Retry-After (as a new audited intent: nothing was applied); a 5xx or lost answer is *unknown* and is
settled by reading the user's state, never by blindly re-sending; 403/404 are recorded against the
user. Outcomes are stored per user, so a resumed step skips users already done.
"""

from __future__ import annotations

import asyncio
import heapq
import time
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import islice

from asgiref.sync import sync_to_async

from migrations_engine.audit.writer import record_reconciliation
from migrations_engine.choices import UserOutcomeStatus
from migrations_engine.graph import BatchResult, GraphClient, GraphUnavailable
from migrations_engine.graph.resources.per_user_mfa import BATCH, VERSION, meets, read_states, set_item

BATCHES_IN_FLIGHT = 4  # writes: pacing allows one batch per second per tenant; 4 cover slow answers
CHUNK = 400  # users read from the database (or stored) at a time


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


class WriteEngine:
    """Sets per-user states as a stream: fed chunk by chunk, it keeps `in_flight` batches of 20 going.

    It runs as tasks on the job's event loop while the step feeds it (`put` waits while enough work is
    queued, so a step's database reads stay a few chunks ahead and memory stays flat), and hands back
    what settled (`take_settled`) for the step to store. Per item: 2xx done; 429/424 sent again after
    its own Retry-After as a new audited intent; 5xx or no answer read back first (the write may have
    landed) and sent again only if it did not; any other 4xx recorded as failed. An item still not
    done after `max_rounds` attempts is failed with the last reason.
    """

    def __init__(self, graph: GraphClient, *, max_rounds: int, in_flight: int = BATCHES_IN_FLIGHT) -> None:
        if graph.dry_run:
            raise ValueError("WriteEngine sends writes; a plan records its per-user changes as a diff")
        self.graph = graph
        self.max_rounds = max_rounds
        self.in_flight = in_flight
        self.queue_limit = CHUNK * 2
        self._ready: deque[tuple[Change, int]] = deque()  # (change, attempts so far)
        self._later: list[tuple[float, int, Change, int]] = []  # heap: (not before, seq, change, attempts)
        self._seq = 0
        self._busy = 0
        self._closed = False
        self._settled: list[Settled] = []
        self._error: BaseException | None = None
        self._cv = asyncio.Condition()
        self._tasks: list[asyncio.Task] = []

    def start(self) -> None:
        self._tasks = [asyncio.ensure_future(self._sender()) for _ in range(self.in_flight)]

    @property
    def queued(self) -> int:
        return len(self._ready) + len(self._later)

    async def put(self, changes: list[Change]) -> None:
        """Queue changes; waits while more than two chunks are already queued."""
        async with self._cv:
            while self.queued >= self.queue_limit and self._error is None:
                await self._cv.wait()
            self._raise_if_failed()
            self._ready.extend((c, 0) for c in changes)
            self._cv.notify_all()

    def take_settled(self) -> list[Settled]:
        settled, self._settled = self._settled, []
        return settled

    async def finish(self) -> None:
        """No more changes: wait until every queued one has settled."""
        async with self._cv:
            self._closed = True
            self._cv.notify_all()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._raise_if_failed()

    async def abort(self) -> None:
        """Stop sending (a batch in flight records its outcome as unknown, to be read back later)."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise self._error

    async def _sender(self) -> None:
        try:
            while (batch := await self._next_batch()) is not None:
                try:
                    retry = await self._send(batch)
                finally:
                    async with self._cv:
                        self._busy -= 1
                        self._cv.notify_all()
                if retry:
                    async with self._cv:
                        for wait, change, attempts in retry:
                            self._seq += 1
                            heapq.heappush(
                                self._later, (time.monotonic() + wait, self._seq, change, attempts)
                            )
                        self._cv.notify_all()
        except Exception as exc:  # a bug or a database error: stop every sender, the step re-raises
            async with self._cv:
                self._error = self._error or exc
                self._closed = True
                self._ready.clear()
                self._later.clear()
                self._cv.notify_all()

    async def _next_batch(self) -> list[tuple[Change, int]] | None:
        async with self._cv:
            while True:
                now = time.monotonic()
                while self._later and self._later[0][0] <= now:
                    _, _, change, attempts = heapq.heappop(self._later)
                    self._ready.append((change, attempts))
                if self._ready:
                    batch = [self._ready.popleft() for _ in range(min(BATCH, len(self._ready)))]
                    self._busy += 1
                    self._cv.notify_all()  # room for put()
                    return batch
                if self._closed and not self._later and self._busy == 0:
                    return None
                timeout = self._later[0][0] - now if self._later else None
                try:
                    await asyncio.wait_for(self._cv.wait(), timeout)
                except TimeoutError:
                    pass

    async def _send(self, batch: list[tuple[Change, int]]) -> list[tuple[float, Change, int]]:
        """One batch; settles what it can and returns (wait, change, attempts) to send again."""
        items = [
            set_item(str(i), c.user_id, upn=c.upn, wanted=c.wanted, before=c.before)
            for i, (c, _) in enumerate(batch)
        ]
        try:
            results = await self.graph.batch_writes(items, version=VERSION)
        except GraphUnavailable as exc:
            rows = getattr(exc, "audit_intents", [None] * len(batch))
            results = {str(i): BatchResult(str(i), 0, None, intent=row) for i, row in enumerate(rows)}
        retry: list[tuple[float, Change, int]] = []
        unknown: list[tuple[Change, int, BatchResult]] = []
        for item, (change, attempts) in zip(items, batch, strict=True):
            result = results.get(item.id) or BatchResult(item.id, 0, None)
            attempts += 1
            if result.ok:
                self._settle(change, UserOutcomeStatus.SUCCEEDED, result.status)
            elif result.status in (429, 424):  # throttled, or not run for a failed dependency: not applied
                wait = result.retry_after or min(30.0, 0.5 * 2**attempts)
                retry.append((wait, change, attempts))
            elif result.status == 0 or result.status >= 500:
                unknown.append((change, attempts, result))
            else:
                code = result.error_code or f"HTTP {result.status}"
                self._settle(change, UserOutcomeStatus.FAILED, result.status, code)
        if unknown:
            retry += await self._read_back(unknown)
        out = []
        for wait, change, attempts in retry:
            if attempts >= self.max_rounds:
                self._settle(
                    change, UserOutcomeStatus.FAILED, 429, "still throttled or unanswered after every attempt"
                )
            else:
                out.append((wait, change, attempts))
        return out

    async def _read_back(
        self, unknown: list[tuple[Change, int, BatchResult]]
    ) -> list[tuple[float, Change, int]]:
        """The write may have applied: read before deciding to send it again."""
        current = await read_states(self.graph, [c.user_id for c, _, _ in unknown])
        again = []
        for change, attempts, result in unknown:
            applied = meets(current.get(change.user_id), change.wanted)
            if result.intent is not None:
                await sync_to_async(record_reconciliation, thread_sensitive=True)(
                    self.graph.audit,
                    intent=result.intent,
                    outcome="succeeded" if applied else "not_applied",
                    detail={"applied": applied, "read_back": current.get(change.user_id)},
                )
            if applied:
                self._settle(change, UserOutcomeStatus.SUCCEEDED, None)
            else:
                again.append((min(30.0, 0.5 * 2**attempts), change, attempts))
        return again

    def _settle(self, change: Change, status: str, http_status: int | None, error: str = "") -> None:
        self._settled.append(Settled(change, status, http_status, error))
