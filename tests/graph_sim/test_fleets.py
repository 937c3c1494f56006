"""Generated fleets: deterministic, every fifth tenant on security defaults, and quick to build at
benchmark size (20 x 2,000 users and one 20,000-user tenant)."""

from __future__ import annotations

import time

from graph_sim.fleets import generated_fleet


def test_every_fifth_generated_tenant_has_security_defaults_on():
    tenants = generated_fleet(10, 20, seed=3)
    assert [t.security_defaults for t in tenants] == [False, False, False, False, True] * 2
    again = generated_fleet(10, 20, seed=3)
    assert [t.id for t in tenants] == [t.id for t in again]
    assert [u.per_user_state for u in tenants[0].users] == [u.per_user_state for u in again[0].users]


def test_benchmark_fleets_build_in_well_under_two_seconds():
    t0 = time.perf_counter()
    fleet = generated_fleet(20, 2000, seed=1)
    t1 = time.perf_counter()
    [big] = generated_fleet(1, 20_000, seed=1)
    t2 = time.perf_counter()
    assert len(fleet) == 20 and all(len(t.users) == 2000 for t in fleet)
    assert len(big.users) == 20_000 and big.size_class == "L" and len(big.by_id) == 20_000
    assert t1 - t0 < 2.0 and t2 - t1 < 2.0, (t1 - t0, t2 - t1)
