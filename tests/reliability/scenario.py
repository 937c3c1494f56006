"""Shared helpers for the fault-mix and state-machine tests: a simulator with fast throttles, driving a
run to its end (resuming crashed items, retrying retryable failures) and the end-state invariants."""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from migrations_engine.choices import AuditOutcome, ItemStatus
from migrations_engine.graph.resources.mfa_policy import POLICY_NAME
from migrations_engine.models import AuditEvent, MigrationRun, RunItem, UserSnapshot
from migrations_engine.runs.services import resume_stalled, retry_failed
from tests.conftest import FAST_LIMITS
from tests.migrations_engine.pipeline_helpers import coverage_gaps, sim_log, sim_state

REQUIREMENTS = "/authentication/requirements"


def graph_settings(sim, **extra) -> dict:
    """Console settings pointing at `sim` with 10x-speed pacing (as the `fast_graph` fixture sets)."""
    fleet = sim.fleet
    return {
        "GRAPH_AUTHORITY_HOST": fleet["authority_host"],
        "GRAPH_BASE_URL": fleet["graph_base_url"],
        "GRAPH_CA_BUNDLE": fleet["ca_bundle"],
        "GRAPH_CLIENT_ID": fleet["client_id"],
        "GRAPH_ALLOWED_HOSTS": [],
        "GRAPH_CLIENT_CERTIFICATE_THUMBPRINT": "",
        "GRAPH_CLIENT_SECRET": "",
        "GRAPH_CLIENT_PRIVATE_KEY_FILE": fleet["client_private_key"],
        "GRAPH_CLIENT_CERTIFICATE_FILE": fleet["client_certificate"],
        "GRAPH_PACING_TIME_SCALE": 10.0,  # the 10x-speed throttle windows below
        **extra,
    }


@contextlib.contextmanager
def simulator(*, limits: dict | None = None, **opts) -> Iterator:
    """A simulator of the caller's own with the 10x-speed throttles (plus `limits` overrides)."""
    from graph_sim.testing import running_simulator
    from graph_sim.throttle import ThrottleLimits

    with running_simulator(limits=ThrottleLimits(**{**FAST_LIMITS, **(limits or {})}), **opts) as sim:
        yield sim


# -- driving a run ---------------------------------------------------------------------------------


@dataclass
class Drive:
    """How a run went: the first attempt's outcome per tenant, then how many re-queues it took."""

    first: dict[int, tuple[str, bool, str]] = field(
        default_factory=dict
    )  # tenant pk -> status, retryable, why
    resumes: int = 0  # items re-queued after a worker died
    retries: int = 0  # retryable failures re-queued
    final: dict[int, tuple[str, bool, str]] = field(default_factory=dict)
    seconds: float = 0.0


def _outcomes(run: MigrationRun) -> dict[int, tuple[str, bool, str]]:
    return {
        i.tenant_id: (i.status, i.retryable, i.failure_reason or i.traceback)
        for i in RunItem.objects.filter(run=run)
    }


def drive(run: MigrationRun, process: Callable[[], object], *, max_retries: int = 4) -> Drive:
    """Process the queue until every item is finished: items a dead worker left *running* are resumed,
    retryable failures are retried (up to `max_retries` re-queues in all); anything else stays as is."""
    result = Drive()
    started = time.monotonic()
    process()
    result.first = _outcomes(run)
    for _ in range(max_retries):
        run.refresh_from_db()
        items = list(RunItem.objects.filter(run=run))
        if any(i.status == ItemStatus.RUNNING for i in items):
            result.resumes += resume_stalled(run, actor="test")
        elif any(i.status == ItemStatus.FAILED and i.retryable for i in items):
            result.retries += retry_failed(run, actor="test")
        else:
            break
        process()
    result.final = _outcomes(run)
    result.seconds = time.monotonic() - started
    return result


# -- what the simulator saw ------------------------------------------------------------------------


def traffic(sim, tenant) -> dict[str, int]:
    """Counts from the simulator's request log for one tenant (batch items are logged one by one)."""
    log = sim_log(sim, tenant)
    faults = Counter(r["fault"] for r in log if r.get("fault"))
    return {
        "requests": len(log),
        "writes": sum(1 for r in log if r.get("write_effective")),
        "throttled": sum(1 for r in log if r["status"] == 429),
        "throttled_by_limit": sum(1 for r in log if r.get("throttled")),
        "ca_throttled": sum(1 for r in log if r.get("throttled") == "ca"),
        **{f"fault_{k}": v for k, v in sorted(faults.items())},
        "faults": sum(faults.values()),
    }


def tool_policies(state: dict) -> list[dict]:
    return [p for p in state["policies"] if p["displayName"] == POLICY_NAME]


def break_glass_written(sim, tenant, break_glass_ids: set[str]) -> list[dict]:
    """Effective writes to a break-glass account's per-user MFA state (there must be none)."""
    return [
        r
        for r in sim_log(sim, tenant)
        if r.get("write_effective")
        and REQUIREMENTS in r["path"]
        and r["path"].split("/users/")[1].split("/")[0] in break_glass_ids
    ]


def audit_matches_simulator(sim, tenant, run_ids: list[int], *, late_landing_ok: bool = False) -> None:
    """`pipeline_helpers.audit_matches_simulator`, limited to the given runs' audit rows (a tenant row
    may carry rows of earlier examples against earlier simulators).

    `late_landing_ok`: Graph held a request past our read timeout and applied it after we had read the
    target, found it unchanged, recorded `not_applied` and sent the same write again. Such an intent is
    accepted when a later intent with the same path and body succeeded (the effect is accounted for)."""
    applied = [r["client_request_id"] for r in sim_log(sim, tenant) if r.get("write_effective")]
    assert len(applied) == len(set(applied)), "a write took effect twice under one client-request-id"
    intents = {
        e.client_request_id: e
        for e in AuditEvent.objects.filter(
            tenant=tenant, run_id__in=run_ids, outcome=AuditOutcome.INTENT
        ).prefetch_related("outcomes")
    }
    missing = [cid for cid in applied if cid not in intents]
    assert not missing, f"{len(missing)} writes took effect without an audit intent"
    succeeded = set()
    for cid, intent in intents.items():
        outcomes = {o.outcome for o in intent.outcomes.all()}
        results = {
            o.detail.get("result") for o in intent.outcomes.all() if o.outcome == AuditOutcome.RECONCILED
        }
        assert outcomes, f"intent {intent.pk} ({intent.action}) has no outcome"
        if "succeeded" in outcomes or "succeeded" in results:
            succeeded.add(cid)

    def describe(cids):
        return [
            (intents[c].action, intents[c].target, sorted(o.outcome for o in intents[c].outcomes.all()))
            for c in cids
        ]

    if late_landing_ok:
        done = {(intents[c].path, str(intents[c].request_body)) for c in succeeded}
        for cid in set(applied) - succeeded:
            intent = intents[cid]
            results = {o.detail.get("result") for o in intent.outcomes.all()}
            if "not_applied" in results and (intent.path, str(intent.request_body)) in done:
                succeeded.add(cid)
    assert succeeded == set(applied), (
        f"applied, but the audit does not say so: {describe(set(applied) - succeeded)}; "
        f"the audit says succeeded, the simulator never applied it: {describe(succeeded - set(applied))}"
    )


def assert_migrated(
    sim, tenant, item: RunItem, before: dict, t0: float, run_ids: list[int], *, late_landing_ok: bool = False
) -> None:
    """The verified end state of a full run, checked on the simulator, not on the run's word."""
    state = sim_state(sim, tenant)
    assert not state["security_defaults"], "security defaults still on"
    bg_ids = set(item.state.get("break_glass_ids", []))
    still_on = [
        u["userPrincipalName"]
        for u in state["users"]
        if u["id"] not in bg_ids and u["perUserMfaState"] != "disabled"
    ]
    assert not still_on, f"per-user MFA still on for {still_on[:5]}"
    assert len(tool_policies(state)) <= 1, "more than one tool policy"
    policy = next(p for p in state["policies"] if p["id"] == item.state["policy_id"])
    assert policy["state"] == "enabled"
    excluded = set(policy["conditions"]["users"].get("excludeUsers") or [])
    assert bg_ids <= excluded, f"break-glass not excluded: {bg_ids - excluded}"
    assert policy["conditions"]["users"]["includeUsers"] == ["All"]
    if not item.state.get("policy_adopted"):
        assert len(tool_policies(state)) == 1
    before_bg = {u["id"]: u["perUserMfaState"] for u in before["users"] if u["id"] in bg_ids}
    assert {u["id"]: u["perUserMfaState"] for u in state["users"] if u["id"] in bg_ids} == before_bg
    assert break_glass_written(sim, tenant, bg_ids) == []
    assert coverage_gaps(sim, tenant, since=t0) == []
    creates = [
        r
        for r in sim_log(sim, tenant)
        if r.get("write_effective")
        and r["method"] == "POST"
        and r["path"].startswith("/v1.0/identity/conditionalAccess/policies")
    ]
    assert len(creates) <= 1, f"the policy was created {len(creates)} times"
    audit_matches_simulator(sim, tenant, run_ids, late_landing_ok=late_landing_ok)


def snapshot_states(item: RunItem) -> dict[str, str]:
    return dict(UserSnapshot.objects.filter(snapshot__item=item).values_list("user_id", "per_user_state"))
