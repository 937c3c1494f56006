"""Property-based: random tenant shapes x a random crash point x random Graph faults, and the invariants
that must hold whatever happened (Hypothesis draws the examples; it prints a failing one so it replays).

Each example builds its own simulator (a generated one-tenant fleet, mutated into the drawn shape),
runs a full migration on a real rq worker (a worker *process* that dies at the drawn crash point, then
a resumed one), retries retryable failures, rolls a succeeded run back, and checks:

- no coverage gap since the run started (nor, in the rollback, for anyone who had MFA before);
- break-glass accounts are never written and every enabled tool policy excludes them;
- at most one "[GRANT] Require MFA all users";
- a succeeded run's snapshot restores: every user's per-user state and security defaults as before;
- a failed item is retryable (and a retry converges) or names its problem (break-glass, two candidates).

`MSP_HYPOTHESIS_EXAMPLES=N` runs N examples instead of the normal suite's 6.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

import pytest
import redis
from django.test import override_settings
from hypothesis import HealthCheck, Phase, event, given, note, settings
from hypothesis import strategies as st

from graph_sim.conditional_access import mfa_all_users_policy
from migrations_engine.models import RunItem
from migrations_engine.runs.pipeline import step_keys
from migrations_engine.runs.services import start_rollback, start_run
from tenants.models import CustomerTenant
from tenants.services import add_tenant, set_break_glass
from tests.migrations_engine.pipeline_helpers import (
    FAST,
    coverage_gaps,
    restored_as_graph_does,
    sim_clock,
    sim_log,
    sim_state,
    work,
    worker_process,
)
from tests.reliability.scenario import (
    assert_migrated,
    audit_matches_simulator,
    break_glass_written,
    drive,
    graph_settings,
    simulator,
    snapshot_states,
    tool_policies,
)

pytestmark = pytest.mark.django_db(transaction=True)

EXAMPLES = int(os.environ.get("MSP_HYPOTHESIS_EXAMPLES", "6"))
# Shrinking re-runs whole migrations many times; the failing example is printed (and replays with the
# printed @reproduce_failure blob) without it. MSP_HYPOTHESIS_SHRINK=1 shrinks.
PHASES = [Phase.explicit, Phase.reuse, Phase.generate] + (
    [Phase.shrink] if os.environ.get("MSP_HYPOTHESIS_SHRINK") else []
)
CRASH_POINTS = (
    [f"before_step:{key}" for key in step_keys("full")]
    + [f"after_step:{key}" for key in step_keys("full")]
    + [
        "after_write:policy.create",
        "after_write:policy.update_scope",
        "after_write:sd.disable",
        "after_write:policy.enable",
        "after_write:per_user_mfa.set",
    ]
)
MANAGED_TEMPLATE = "a3d0a415-b068-4326-9251-f9cdf9feeb64"


@dataclass(frozen=True)
class Shape:
    users: int
    states: tuple[str, ...]  # per-user MFA state of each non-break-glass user
    security_defaults: bool
    policies: tuple[str, ...]  # existing MFA-for-all: "managed" | "hand-report-only" | "hand-enabled"
    break_glass: int  # accounts configured (1 or 2)
    break_glass_problem: str  # "" | "missing" | "disabled" (the last configured account)
    strict_minimum: bool  # minimum_count = every configured account, else 1
    break_glass_state: str  # the break-glass accounts' own per-user state (never to be touched)


@st.composite
def shapes(draw) -> Shape:
    users = draw(st.integers(min_value=4, max_value=30))
    sd = draw(st.booleans())
    policy_kinds = ["managed", "hand-report-only"] + ([] if sd else ["hand-enabled"])
    n_policies = draw(st.sampled_from([0, 0, 0, 1, 1, 2]))
    return Shape(
        users=users,
        states=tuple(
            draw(
                st.lists(st.sampled_from(["disabled", "enabled", "enforced"]), min_size=users, max_size=users)
            )
        ),
        security_defaults=sd,
        policies=tuple(
            draw(st.lists(st.sampled_from(policy_kinds), min_size=n_policies, max_size=n_policies))
        ),
        break_glass=draw(st.integers(min_value=1, max_value=2)),
        break_glass_problem=draw(st.sampled_from(["", "", "", "", "missing", "disabled"])),
        strict_minimum=draw(st.booleans()),
        break_glass_state=draw(st.sampled_from(["disabled", "enforced"])),
    )


faults = st.fixed_dictionaries(
    {
        "rate_429": st.sampled_from([0.0, 0.05]),
        "retry_after_s": st.just(0.2),
        "rate_5xx": st.sampled_from([0.0, 0.03]),
        "drop_after_commit_rate": st.sampled_from([0.0, 0.05]),
        "replication_lag_s": st.sampled_from([0.0, 1.5]),
    }
)


def shape_tenant(tenant, shape: Shape) -> dict:
    """Mutate the simulator's generated tenant into `shape` (runs on the simulator's loop). Returns the
    break-glass configuration to store in the console."""
    [generated_bg] = [u for u in tenant.users if u.break_glass]
    others = [u for u in tenant.users if not u.break_glass][: shape.users]
    tenant.users = [*others, generated_bg]
    bg = [generated_bg]
    if shape.break_glass == 2:  # a second emergency account, made from the last ordinary user
        second = others.pop()
        second.break_glass = True
        bg.append(second)
    for user, state in zip(others, shape.states, strict=False):
        tenant.set_per_user_state(user, state, "admin")
    for user in bg:
        tenant.set_per_user_state(user, shape.break_glass_state, "admin")
    tenant._reindex()
    accounts = [u.upn for u in bg]
    if shape.break_glass_problem == "missing":
        bg[-1].break_glass = False  # not an account of this tenant any more: the config names a ghost
        tenant.users.remove(bg[-1])
        tenant._reindex()
        accounts[-1] = f"ghost-breakglass@{tenant.domain}"
    elif shape.break_glass_problem == "disabled":
        bg[-1].account_enabled = False
    tenant.set_security_defaults(shape.security_defaults, "admin")
    for n, kind in enumerate(shape.policies):
        policy = mfa_all_users_policy(
            f"00000000-0000-4000-8000-00000000000{n}",
            "Multifactor authentication for all users" if kind == "managed" else f"Require MFA (by hand {n})",
            "enabled" if kind == "hand-enabled" else "enabledForReportingButNotEnforced",
            "2024-11-04T08:12:45Z",
            template_id=MANAGED_TEMPLATE if kind == "managed" else None,
        )
        tenant.put_policy(policy, "admin")
        if kind == "managed":
            tenant.managed_policy_ids.add(policy["id"])
    return {
        "accounts": accounts,
        "minimum_count": len(accounts) if shape.strict_minimum else 1,
    }


def console_tenant(entry: dict) -> CustomerTenant:
    """The console's row for the simulator's tenant (the same seed may come back in a later example;
    every generated fleet calls its tenant gen00000, so the console's domain carries the tenant id)."""
    existing = CustomerTenant.objects.filter(tenant_id=entry["tenant_id"]).first()
    return existing or add_tenant(
        tenant_id=entry["tenant_id"],
        domain=f"{entry['tenant_id'][:8]}-{entry['domain']}",
        display_name=entry["display_name"],
        actor="test",
    )


def expected_stop(shape: Shape) -> str | None:
    """Why the run must stop before any write, or None when it should go through."""
    resolved = shape.break_glass - (1 if shape.break_glass_problem else 0)
    minimum = shape.break_glass if shape.strict_minimum else 1
    if resolved < minimum:
        return "break-glass"
    if len(shape.policies) > 1:
        return "two candidates"
    return None


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    print_blob=True,
    phases=PHASES,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    shape=shapes(),
    crash=st.one_of(st.none(), st.sampled_from(CRASH_POINTS)),
    knobs=faults,
    sim_seed=st.integers(min_value=1, max_value=10_000),
)
def test_every_run_keeps_the_invariants(redis_url, tmp_path, shape, crash, knobs, sim_seed):
    redis.Redis.from_url(redis_url).flushdb()
    with simulator(fleet="generated", tenants=1, users=shape.users + 1, seed=sim_seed) as sim:
        [entry] = sim.fleet["tenants"]
        tid = entry["tenant_id"]
        bg_config = sim.call(shape_tenant, sim.tenant(tid), shape)
        rq = {"default": {"URL": redis_url, "DEFAULT_TIMEOUT": 600}}
        with override_settings(**graph_settings(sim), RQ_QUEUES=rq):
            check_example(sim, tid, shape, crash, knobs, bg_config, redis_url)


def check_example(sim, tid, shape, crash, knobs, bg_config, redis_url) -> None:
    import django_rq

    queue = django_rq.get_queue("default")
    tenant = console_tenant(next(t for t in sim.fleet["tenants"] if t["tenant_id"] == tid))
    set_break_glass(tenant, actor="test", **bg_config)
    tenant.refresh_from_db()
    sim.admin("POST", f"/_sim/tenants/{tid}/faults", json=knobs)
    before = sim_state(sim, tenant)
    bg_ids = {u["id"] for u in before["users"] if u["breakGlass"]}
    t0 = sim_clock(sim)
    note(f"break-glass config {json.dumps(bg_config)}; tenant {tid}")

    run = start_run(mode="full", tenants=[tenant], actor="test", options=FAST)
    crashes = iter([crash] if crash else [])

    def process():
        point = next(crashes, None)
        if point:
            worker_process(redis_url, crash_points=point)
        else:
            work(queue)

    result = drive(run, process)
    item = RunItem.objects.get(run=run)
    note(f"first attempt {result.first}; final {result.final}; resumes {result.resumes}")
    state = sim_state(sim, tenant)

    # Invariants that hold whatever the outcome.
    assert item.status in ("succeeded", "failed"), (item.status, item.failure_reason, item.traceback)
    assert coverage_gaps(sim, tenant, since=t0) == []
    assert break_glass_written(sim, tenant, bg_ids) == []
    assert len(tool_policies(state)) <= 1
    for policy in state["policies"]:
        if policy["id"] == item.state.get("policy_id") and policy["state"] == "enabled":
            excluded = set(policy["conditions"]["users"].get("excludeUsers") or [])
            assert set(item.state["break_glass_ids"]) <= excluded
    audit_matches_simulator(sim, tenant, [run.pk])

    stop = expected_stop(shape)
    event(f"ended {item.status}" + (f" ({stop})" if stop else "") + (", crashed" if result.resumes else ""))
    event(f"retried {result.retries}x" if result.retries else "no retry")
    if stop:
        assert item.status == "failed" and not item.retryable, (stop, item.failure_reason)
        if stop == "break-glass":
            assert "break-glass" in item.failure_reason and "No change was made" in item.failure_reason
        else:
            assert "A human must choose" in item.failure_reason
        assert [r for r in sim_log(sim, tenant) if r.get("write_effective")] == []
        return
    # Otherwise it must get through: a failure may only be a retryable one, and the retries converged.
    for status, retryable, reason in result.first.values():
        crashed = crash and status == "running"  # the worker died at the crash point; then resumed
        assert crashed or status == "succeeded" or (status == "failed" and retryable and reason), (
            status,
            reason,
        )
    assert item.status == "succeeded", (item.failure_reason, item.traceback)
    assert_migrated(sim, tenant, item, before, t0, [run.pk])
    assert set(item.state["break_glass_ids"]) == bg_ids

    # The snapshot restores: every user's per-user state and security defaults as they were.
    snapshot = snapshot_states(item)
    assert snapshot == {u["id"]: u["perUserMfaState"] for u in before["users"]}
    t1 = sim_clock(sim)
    rollback = start_rollback(run, actor="test")
    back = drive(rollback, lambda: work(queue))
    rb_item = RunItem.objects.get(run=rollback)
    assert rb_item.status == "succeeded", (back.final, rb_item.traceback)
    after = sim_state(sim, tenant)
    assert {u["id"]: u["perUserMfaState"] for u in after["users"]} == restored_as_graph_does(
        snapshot, after["users"]
    )
    assert after["security_defaults"] == shape.security_defaults
    assert break_glass_written(sim, tenant, bg_ids) == []
    # Only users who had no MFA before the migration may lose it again in the rollback.
    had_mfa = {u["id"] for u in before["users"] if u["perUserMfaState"] != "disabled"}
    if shape.security_defaults or any(p == "hand-enabled" for p in shape.policies):
        had_mfa = {u["id"] for u in before["users"]}
    assert [g for g in coverage_gaps(sim, tenant, since=t1) if g["user_id"] in had_mfa] == []
    audit_matches_simulator(sim, tenant, [run.pk, rollback.pk])
