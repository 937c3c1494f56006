"""Seeded random crash trials: a real worker killed at a random point (maybe twice), resumed by the sweeper.

Each trial picks a demo tenant shape and one or two crash points from every step boundary and every
write's "answer received, outcome not yet recorded" instant, starts a full run, lets a real
`rqworker --burst` die there (`os._exit(137)`, as SIGKILL would), then only sweeps and runs workers
until the item is done. The suite runs a quick subset; `MSP_RELIABILITY_TRIALS=N` runs N seeds
(`python3 tasks.py reliability`), `MSP_TRIAL_SEED=S` replays one.
"""

from __future__ import annotations

import os
import random

import pytest

from migrations_engine.runs.pipeline import step_keys
from migrations_engine.runs.services import start_run
from tests.migrations_engine.pipeline_helpers import FAST, item_of, seed, sim_clock, sim_state, tenant_named
from tests.reliability.conftest import SHAPES, Trial, TrialFigures, measure, resume_until_done

pytestmark = pytest.mark.django_db(transaction=True)

WRITE_ACTIONS = ["policy.create", "policy.update_scope", "sd.disable", "policy.enable", "per_user_mfa.set"]
CRASH_POINTS = (
    [f"before_step:{key}" for key in step_keys("full")]
    + [f"after_step:{key}" for key in step_keys("full")]
    + [f"after_write:{action}" for action in WRITE_ACTIONS]
)
QUICK_TRIALS = 6


def trial_seeds() -> list[int]:
    if os.environ.get("MSP_TRIAL_SEED"):
        return [int(os.environ["MSP_TRIAL_SEED"])]
    return list(range(1, int(os.environ.get("MSP_RELIABILITY_TRIALS") or QUICK_TRIALS) + 1))


def trial_plan(trial_seed: int) -> tuple[str, list[str]]:
    """The tenant shape (in turn, so any four seeds in a row cover every shape) and the crash points."""
    rng = random.Random(trial_seed)
    shape = SHAPES[(trial_seed - 1) % len(SHAPES)]
    points = [rng.choice(CRASH_POINTS)]
    if rng.random() < 0.4:
        points.append(rng.choice(CRASH_POINTS))  # the resumed worker dies too
    return shape, points


@pytest.mark.parametrize("trial_seed", trial_seeds())
def test_a_run_killed_at_random_points_resumes_through_the_sweeper_exactly_once(
    fast_graph, tmp_path, queue, redis_url, trial_seed
):
    shape, points = trial_plan(trial_seed)
    print(f"trial seed={trial_seed} tenant={shape} point={','.join(points)}")
    with Trial(TrialFigures(scenario="crash", tenant=shape, seed=trial_seed, points=points)) as figures:
        seed(fast_graph, tmp_path)
        tenant = tenant_named(shape)
        before = sim_state(fast_graph, tenant)
        t0 = sim_clock(fast_graph)
        run = start_run(mode="full", tenants=[tenant], actor="test", options=FAST)
        figures.workers_died = resume_until_done(run, redis_url, crash_points=points)
        measure(figures, fast_graph, tenant, before, t0, item_of(run))


@pytest.mark.parametrize(
    ("shape", "points"),
    [
        ("northwind", ["after_write:policy.update_scope"]),  # the adopted policy's scope fix, answer lost
        ("fabrikam", ["after_write:sd.disable", "after_write:policy.enable"]),  # both halves of the cut-over
    ],
)
def test_fixed_crash_points_that_once_left_an_unknown_outcome_unsettled(
    fast_graph, tmp_path, queue, redis_url, shape, points
):
    print(f"trial fixed tenant={shape} point={','.join(points)}")
    with Trial(TrialFigures(scenario="crash-fixed", tenant=shape, points=points)) as figures:
        seed(fast_graph, tmp_path)
        tenant = tenant_named(shape)
        before = sim_state(fast_graph, tenant)
        t0 = sim_clock(fast_graph)
        run = start_run(mode="full", tenants=[tenant], actor="test", options=FAST)
        figures.workers_died = resume_until_done(run, redis_url, crash_points=points)
        assert figures.workers_died == len(points), f"only {figures.workers_died} of {points} fired"
        measure(figures, fast_graph, tenant, before, t0, item_of(run))
