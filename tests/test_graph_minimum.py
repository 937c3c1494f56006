"""Graph's minimum time, the throughput bench's yardstick (bench/graph_minimum.py), from the documented
limits: 20 writes/s per tenant, 70,000 writes per 5 min per app, 3,500 / 5,000 / 8,000 resource units per
10 s for S / M / L tenants (learn.microsoft.com: "Microsoft Graph service-specific throttling limits",
identity and access service limits)."""

from __future__ import annotations

import pytest

from bench import graph_minimum as gm


@pytest.mark.parametrize(("users", "size"), [(1, "S"), (49, "S"), (50, "M"), (500, "M"), (501, "L")])
def test_tenant_sizes_follow_graphs_classes(users, size):
    assert gm.size_class(users) == size


def test_one_large_tenant_is_bound_by_its_own_writes_and_reads():
    # 20,000 users read before and after at 800 RU/s (50 s), 12,000 writes at 20/s (600 s).
    assert gm.fleet_minimum_s([gm.TenantWork(users=20_000, writes=12_000)]) == pytest.approx(650.0)


def test_a_fleet_is_bound_by_the_app_cap_plus_one_read_tail():
    fleet = [gm.TenantWork(users=2_000, writes=1_300)] * 20
    # 26,000 writes at 233.3/s = 111.4 s, plus 2.5 s of reads before the first write and after the last.
    assert gm.fleet_minimum_s(fleet) == pytest.approx(26_000 / (70_000 / 300) + 5.0)
    few = [gm.TenantWork(users=2_000, writes=1_300)] * 2  # two tenants cannot reach the app cap
    assert gm.fleet_minimum_s(few) == pytest.approx(1_300 / 20 + 5.0)


def test_census_share_of_the_read_limit():
    assert gm.census_pct_of_read_limit(2_000, 2.5) == pytest.approx(100.0)
    assert gm.census_pct_of_read_limit(2_000, 20.0) == pytest.approx(12.5)
    assert gm.census_pct_of_read_limit(2_000, 0) is None


def test_the_gates_reports_overlap_the_per_user_reads_and_bound_small_tenants():
    # 9 report requests at 5 per 10 s: 5 at once, 4 ten seconds later.
    assert gm.report_floor_s(9) == 10.0 and gm.report_floor_s(5) == 0.0 and gm.report_floor_s(0) == 0.0
    big = gm.TenantWork(users=20_000, writes=12_000, report_requests=9)  # 25 s of per-user reads > 10 s
    assert gm.fleet_minimum_s([big]) == pytest.approx(650.0)
    small = [gm.TenantWork(users=500, writes=325, report_requests=9)] * 200
    # 65,000 writes at the app cap, 10 s of reports before the first write, 1 s of reads after the last.
    assert gm.fleet_minimum_s(small) == pytest.approx(65_000 / (70_000 / 300) + 10.0 + 1.0)


def test_a_census_is_bound_by_the_registration_reports_pages_or_the_resource_units():
    # 2,000 users: 20 report pages + the audits = 21 requests at 5 per 10 s = 40 s > 2.5 s of RU reads.
    assert gm.census_minimum_s(1, 2_000) == pytest.approx(40.0)
    # 200 tenants of 500: 6 report requests each (10 s) < 100,000 reads at the app's 7,500 RU/s.
    assert gm.census_minimum_s(200, 500) == pytest.approx(100_000 / 7_500)
    assert gm.census_minimum_s(0, 500) == 0.0
