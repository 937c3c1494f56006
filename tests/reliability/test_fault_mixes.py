"""Full runs of demo tenants on real rq workers with the simulator's Graph fault knobs on.

Each mix must end in the verified end state within a bounded wall time, or stop as a *failed* item that
says why and is retryable, after which a retry converges. Success is never taken on the run's word: the
simulator's state, coverage timeline and write log are checked (one policy, no gap, audit = writes).
Run with `-s` to see each mix's figures.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from migrations_engine.census.services import enqueue_census
from migrations_engine.runs.services import start_run
from tests.migrations_engine.pipeline_helpers import (
    FAST,
    seed,
    sim_clock,
    sim_state,
    tenant_named,
    work,
    worker_processes,
)
from tests.reliability.scenario import Drive, assert_migrated, drive, graph_settings, simulator, traffic

pytestmark = pytest.mark.django_db(transaction=True)

# Security defaults on (the bridge and the SD hand-off) and off (150 users, 2 break-glass accounts).
TENANTS = ["fabrikam", "contoso"]


@dataclass(frozen=True)
class Mix:
    name: str
    faults: dict
    budget_s: float  # wall time for the whole run, retries included
    settings: dict = field(default_factory=dict)
    limits: dict = field(default_factory=dict)
    expect_fault: str = ""  # a fault the simulator's log must show (proof the knob really fired)
    late_landing_ok: bool = False  # see scenario.audit_matches_simulator


MIXES = [
    Mix("429-bursts-retry-after", {"rate_429": 0.3, "retry_after_s": 0.3}, 90, expect_fault="fault_429"),
    Mix(
        "429-no-retry-after",
        {"rate_429_no_retry_after": 0.1},
        90,
        expect_fault="fault_429_no_retry_after",
    ),
    Mix("5xx", {"rate_5xx": 0.1}, 90, expect_fault="fault_503"),
    # Graph holds a request past our read timeout (and may still apply it after we gave up).
    Mix(
        "timeouts",
        {"timeout_rate": 0.02, "timeout_hold_s": 1.5},
        120,
        settings={"GRAPH_READ_TIMEOUT": 0.75},
        expect_fault="fault_timeout",
        late_landing_ok=True,
    ),
    Mix("dropped-after-commit", {"drop_after_commit_rate": 0.25}, 90, expect_fault="fault_drop_after_commit"),
    Mix("replication-lag", {"replication_lag_s": 3.0}, 90),
]


def report(name: str, tenant, stats: dict, result: Drive) -> None:
    status, retryable, reason = result.first[tenant.pk]
    first = status if status == "succeeded" else f"{status} (retryable={retryable}): {reason[:160]}"
    print(
        f"\n[{name}] {tenant.primary_domain}: writes={stats['writes']} throttled={stats['throttled']} "
        f"faults={stats['faults']} requests={stats['requests']} item_retries={result.retries} "
        f"resumes={result.resumes} wall={result.seconds:.1f}s first attempt: {first}"
    )


def check_first_attempt(result: Drive) -> None:
    """Never an errored item or a silent stop: a first attempt either succeeded or failed retryably with
    a reason a human can read."""
    for status, retryable, reason in result.first.values():
        assert status in ("succeeded", "failed"), (status, reason)
        if status == "failed":
            assert retryable and reason.strip(), reason


def migrate_under(mix: Mix, settings, tmp_path, process, *, extra_jobs=None):
    with simulator(limits=mix.limits) as sim:
        for name, value in graph_settings(sim, **mix.settings).items():
            setattr(settings, name, value)
        seed(sim, tmp_path)
        tenants = [tenant_named(name) for name in TENANTS]
        before = {t.pk: sim_state(sim, t) for t in tenants}
        for tenant in tenants:
            sim.admin("POST", f"/_sim/tenants/{tenant.tenant_id}/faults", json=mix.faults)
        t0 = sim_clock(sim)
        run = start_run(mode="full", tenants=tenants, actor="test", options=FAST)
        if extra_jobs:
            extra_jobs(tenants)
        result = drive(run, process)
        check_first_attempt(result)
        assert all(status == "succeeded" for status, _, _ in result.final.values()), result.final
        stats = {}
        for tenant in tenants:
            item = run.items.get(tenant=tenant)
            assert item.verdict.startswith("Verified"), item.verdict
            assert_migrated(
                sim, tenant, item, before[tenant.pk], t0, [run.pk], late_landing_ok=mix.late_landing_ok
            )
            stats[tenant.pk] = traffic(sim, tenant)
            report(mix.name, tenant, stats[tenant.pk], result)
        assert result.seconds < mix.budget_s, f"{mix.name} took {result.seconds:.0f} s"
        if mix.expect_fault:
            assert sum(s.get(mix.expect_fault, 0) for s in stats.values()), f"{mix.expect_fault} never fired"
        return sim, tenants, stats, result


@pytest.mark.parametrize("mix", MIXES, ids=[m.name for m in MIXES])
def test_a_full_run_under_a_fault_mix_converges_or_fails_retryably(mix, settings, tmp_path, queue):
    migrate_under(mix, settings, tmp_path, lambda: work(queue))


def test_ca_throttling_across_concurrent_workers_is_backed_off_without_retry_after(
    settings, tmp_path, queue, redis_url
):
    """Graph's real 1 request/s per tenant for Conditional Access (429 *without* Retry-After), our client
    pacing set above it, and three worker processes at once: each tenant's run item and a census job of
    the same tenant read its CA policies concurrently, so the no-Retry-After backoff must carry them."""
    mix = Mix(
        "ca-1rps-3-workers",
        {},
        120,
        settings={"GRAPH_CA_REQUESTS_PER_SECOND": 4.0},
        limits={"ca_window_s": 1.0},
    )

    def three_workers():
        codes = worker_processes(redis_url, 3)
        assert codes == [0, 0, 0], codes

    def census_jobs(tenants):
        for tenant in tenants:
            enqueue_census(tenant.pk, actor="test")

    _, tenants, stats, _ = migrate_under(mix, settings, tmp_path, three_workers, extra_jobs=census_jobs)
    assert sum(s["ca_throttled"] for s in stats.values()) > 0, "the CA limit never answered 429"
    for tenant in tenants:
        tenant.refresh_from_db()
        assert tenant.census_status == "ok", (tenant.census_status, tenant.census_message)
