"""What every step gets and may raise."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from django.db.models import F
from django.utils import timezone

from migrations_engine.graph import ConsentMissing, GraphClient, GraphError, TokenError
from migrations_engine.graph.resources.mfa_policy import Scope
from migrations_engine.models import RunItem

T = TypeVar("T")


class StepFailed(Exception):
    """An expected failure: the tenant stops here with this reason (shown as *failed*, not a bug).

    `retryable` says whether running the item again may succeed without a human changing anything
    (throttling exhausted, Graph unreachable, settle time ran out).
    """

    def __init__(self, reason: str, *, retryable: bool = False) -> None:
        self.reason = reason
        self.retryable = retryable
        super().__init__(reason)


def graph_failure(exc: Exception) -> StepFailed:
    """Graph or login trouble that outlived the client's retries, as a failure a human can read.

    Throttling, 5xx and no answer are retryable; a 4xx means Graph refused and a retry alone won't help.
    """

    if isinstance(exc, ConsentMissing):
        return StepFailed(exc.in_words)
    if isinstance(exc, TokenError):
        return StepFailed(str(exc), retryable=exc.code == "login_unreachable")
    if isinstance(exc, GraphError):
        return StepFailed(
            f"Graph answered {exc.status} {exc.code}: {exc.message} (request-id {exc.request_id or '?'})",
            retryable=exc.status == 429 or exc.status >= 500,
        )
    return StepFailed(str(exc), retryable=True)


@dataclass
class StepContext:
    """Everything a step may touch: its tenant, run and item, the Graph client, the checkpoint state."""

    item: Any  # RunItem
    run: Any  # MigrationRun
    tenant: Any  # CustomerTenant
    graph: GraphClient
    loop: asyncio.AbstractEventLoop
    settings: dict[str, Any] = field(default_factory=dict)
    log: logging.Logger = field(default_factory=lambda: logging.getLogger("migrations_engine.steps"))
    # Reads started early (Step.reads), by step key: tasks on `loop` that run while other steps wait on it.
    early_reads: dict[str, asyncio.Task] = field(default_factory=dict)

    @property
    def mode(self) -> str:
        return self.run.mode

    @property
    def plan(self) -> bool:
        """Plan mode: steps 1-5 are real, every write is recorded as intended, never sent."""
        return self.run.mode == "plan"

    @property
    def state(self) -> dict[str, Any]:
        return self.item.state

    @property
    def scope(self) -> Scope:
        """Who this run's policy covers (from the break-glass guard's checkpoint) and the grant it asks."""
        return Scope.of(self.state, self.mode, self.run.pilot_group_id, self.settings)

    def wait(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run Graph I/O on this job's event loop (one loop and one client per job)."""
        return self.loop.run_until_complete(coro)

    def start_early_reads(self, later: list[Step], done: set[str]) -> None:
        """Start the reads of each later step whose `prefetch_after` step is done (or that has none)."""
        for step in later:
            if step.key in self.early_reads or (step.prefetch_after and step.prefetch_after not in done):
                continue
            coro = step.reads(self)
            if coro is not None:
                self.early_reads[step.key] = self.loop.create_task(coro, name=f"early reads: {step.key}")

    def early(self, step: Step) -> Any:
        """What `step.reads` found: the task started early, or (a job resumed at this step, or a step
        run on its own) the same reads now. Their errors are raised here, in the step that needs them."""
        task = self.early_reads.pop(step.key, None)
        return self.wait(task if task is not None else step.reads(self))

    def cancel_early_reads(self) -> None:
        """The job is ending: stop the reads nobody will use (a step failed before it needed them)."""
        tasks = list(self.early_reads.values())
        self.early_reads.clear()
        for task in tasks:
            task.cancel()
        if tasks:
            self.loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))

    def save_state(self, **changes: Any) -> None:
        """Checkpoint: persist state before and after writes so a resumed job knows what happened."""
        self.item.state.update(changes)
        RunItem.objects.filter(pk=self.item.pk).update(state=self.item.state, heartbeat_at=timezone.now())

    def count(self, **increments: int) -> None:

        for key, value in increments.items():
            self.item.counters[key] = self.item.counters.get(key, 0) + value
        RunItem.objects.filter(pk=self.item.pk).update(counters=self.item.counters)

    def set_counters(self, **values: Any) -> None:

        self.item.counters.update(values)
        RunItem.objects.filter(pk=self.item.pk).update(counters=self.item.counters)

    def warn(self, text: str) -> None:
        """A warning staff must read (kept in `state["warnings"]`, counted in `counters["warnings"]`);
        the same text twice (a resumed step) is kept once."""
        warnings = list(self.item.state.get("warnings") or [])
        if text in warnings:
            return
        self.save_state(warnings=[*warnings, text])
        self.count(warnings=1)

    def diff(self, step: str, change: str, **detail: Any) -> None:
        """Plan mode: record an intended change a human can read."""

        self.item.plan_diff.append({"step": step, "change": change, **detail})
        RunItem.objects.filter(pk=self.item.pk).update(plan_diff=self.item.plan_diff)

    def set_verdict(self, verdict: str) -> None:
        """The item's one-line result, as the run page and the fleet show it."""
        self.item.verdict = verdict
        RunItem.objects.filter(pk=self.item.pk).update(verdict=verdict)

    def earlier_item(self, pk: int) -> RunItem:
        """Another run's item this one continues (e.g. the verified run a re-run restores)."""
        return RunItem.objects.select_related("run").get(pk=pk)

    def snapshot_item(self, run_id: int) -> RunItem | None:
        """This tenant's item of run `run_id` that holds a complete snapshot (what a rollback restores)."""
        return (
            RunItem.objects.filter(run_id=run_id, tenant=self.tenant, snapshot__complete=True)
            .select_related("snapshot")
            .first()
        )

    def heartbeat(self) -> None:

        RunItem.objects.filter(pk=self.item.pk).update(heartbeat_at=timezone.now(), attempt=F("attempt"))


class Step:
    """One pipeline step. `run` returns a short line for the step log or raises StepFailed."""

    key: ClassVar[str]
    title: ClassVar[str]
    # A step that changes the tenant; in a plan it only records what it would change (StepContext.diff).
    writes: ClassVar[bool] = False
    # Other names its plan entries carry (StepContext.diff's `step`), besides its key.
    plan_keys: ClassVar[tuple[str, ...]] = ()
    # A step with Graph reads that can begin before it runs (`reads`) starts them once this step is done
    # (the runner calls StepContext.start_early_reads), so they overlap the steps between.
    prefetch_after: ClassVar[str] = ""

    def reads(self, ctx: StepContext) -> Coroutine[Any, Any, Any] | None:
        """Graph reads only, no database (they run on the job's event loop while other steps work);
        the step takes their result with `ctx.early(self)`. None: nothing to read early."""
        return None

    def run(self, ctx: StepContext) -> str:
        raise NotImplementedError
