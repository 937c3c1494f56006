"""Sharing the app's write budget by the writes each tenant has left (graph/fair_share.py): the
arithmetic, and two clients of different tenants agreeing on their shares through a real Redis."""

from __future__ import annotations

import asyncio
import time

import pytest

from migrations_engine.graph.fair_share import STALE_S, FairShare, water_fill
from migrations_engine.graph.pacing import Pacer, PacingRates


def test_shares_follow_the_work_left_and_none_passes_the_tenant_cap():
    # 16 tenants with 1,300 writes left and 4 with 2,700 (security defaults: bridged, then disabled).
    left = {f"t{n}": 1300.0 for n in range(16)} | {f"sd{n}": 2700.0 for n in range(4)}
    rates = water_fill(left, 225.0, 19.0)
    assert sum(rates.values()) == pytest.approx(225.0)
    assert all(rates[f"sd{n}"] <= 19.0 for n in range(4))
    # Every tenant finishes at about the same time: writes left / rate is the same for all.
    finish = {k: left[k] / rates[k] for k in left}
    assert max(finish.values()) / min(finish.values()) == pytest.approx(1.0, rel=0.02)


def test_a_long_pole_is_capped_and_the_rest_share_what_is_left():
    left = {"big": 10_000.0} | {f"t{n}": 100.0 for n in range(20)}
    rates = water_fill(left, 225.0, 19.0)
    assert rates["big"] == 19.0
    assert all(rates[f"t{n}"] == pytest.approx((225.0 - 19.0) / 20) for n in range(20))
    # Fewer tenants than the app's budget can feed: each at its own cap.
    assert water_fill({"a": 5.0, "b": 50.0}, 225.0, 19.0) == {"a": 19.0, "b": 19.0}
    assert water_fill({"a": 0.0, "b": 0.0}, 10.0, 19.0) == {"a": 5.0, "b": 5.0}


def test_tenants_agree_through_redis_and_a_stale_entry_stops_counting(redis_url):
    rates = PacingRates(time_scale=1.0)
    app = "app-fair-share-test"

    async def main():
        others = [FairShare(Pacer(redis_url), app, f"tenant-{n}", rates) for n in range(15)]
        small = FairShare(Pacer(redis_url), app, "tenant-small", rates)
        try:
            assert await small.rate() is None, "a client without a hint of writes left has no share"
            small.expect(300)
            assert await small.rate() == pytest.approx(19.0), "alone, a tenant writes at its own cap"
            for other in others:
                other.expect(1000)
                await other.rate()
            small.expect(300)
            expected = water_fill(
                {f"tenant-{n}": 1000.0 for n in range(15)} | {"tenant-small": 300.0}, 225, 19
            )
            assert await small.rate() == pytest.approx(expected["tenant-small"])
            assert expected["tenant-small"] < 19.0 / 2
            small.wrote(300)
            assert await small.rate() is None, "nothing left: the tenant no longer paces by a share"
            for other in others:
                await other.aclose()
            await small.pacer.shared_redis().hset(
                small.key, "tenant-gone", f"99999 {time.time() - 2 * STALE_S}"
            )
            small.expect(100)
            assert await small.rate() == pytest.approx(19.0), "a stale entry still counted"
        finally:
            for client in [*others, small]:
                await client.aclose()
                await client.pacer.aclose()

    asyncio.run(main())
