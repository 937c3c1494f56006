"""Pacing: the GCRA arithmetic, the buckets each request counts against, and buckets shared through a
real Redis by separate processes (the property that lets any number of workers stay under Graph's
limits)."""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import time

import pytest
from django.core.exceptions import ImproperlyConfigured

from migrations_engine.graph import GraphConfig
from migrations_engine.graph.errors import GraphConfigError
from migrations_engine.graph.pacing import (
    LOCAL,
    Bucket,
    LocalBuckets,
    Pacer,
    PacingRates,
    request_family,
    request_ru,
    size_class,
)
from tests.migrations_engine import pacing_hammer


def test_a_bucket_spaces_requests_at_its_rate_after_the_burst():
    buckets = LocalBuckets()
    b = Bucket("k", rate=10, burst=2)
    waits = [buckets.reserve([(b, 1)], now=100.0) for _ in range(5)]
    assert waits == pytest.approx([0, 0, 0.1, 0.2, 0.3])
    # Time passing refills it, never beyond the burst.
    assert buckets.reserve([(b, 1)], now=200.0) == 0
    assert buckets.reserve([(b, 1)], now=200.0) == 0
    assert buckets.reserve([(b, 1)], now=200.0) == pytest.approx(0.1)


def test_a_request_waits_for_its_slowest_bucket_and_is_counted_in_all_of_them():
    buckets = LocalBuckets()
    fast, slow = Bucket("fast", rate=100, burst=20), Bucket("slow", rate=1, burst=1)
    assert buckets.reserve([(fast, 20), (slow, 1)], now=0.0) == 0
    # The second batch may not go before the slow bucket allows it, a second later ...
    assert buckets.reserve([(fast, 20), (slow, 1)], now=0.0) == pytest.approx(1.0)
    # ... and the fast bucket was charged at that instant: a fast-only request right after waits 0.2 s.
    assert buckets.reserve([(fast, 20)], now=1.0) == pytest.approx(0.2)


def test_a_batch_counts_against_the_tenant_and_app_write_and_ru_budgets():
    rates = PacingRates()
    claims = rates.buckets("app", "tid", writes=20, ru=20, family=None, user_count=2000)
    by_key = {b.key.removeprefix("msp:pace:app:"): (b, cost) for b, cost in claims}
    assert set(by_key) == {"tid:ru", "ru", "tid:writes", "writes"}
    assert by_key["tid:writes"][0].rate == 19 and by_key["tid:writes"][1] == 20
    # 19/s for 150 s plus a full burst stays under Graph's 3,000 writes per 150 s.
    assert 19 * 150 + by_key["tid:writes"][0].burst <= 3000
    assert by_key["writes"][0].rate * 300 + by_key["writes"][0].burst <= 70_000
    # A large tenant (> 500 users) has the 8,000 RU per 10 s budget.
    ru = by_key["tid:ru"][0]
    assert ru.rate * 10 + ru.burst <= 0.9 * 8000 and ru.rate * 10 > 0.8 * 8000


def test_ca_and_report_requests_have_their_own_one_request_buckets():
    rates = PacingRates()
    url = "https://graph.microsoft.com/v1.0/identity/conditionalAccess/policies"
    assert request_family(url) == "ca"
    assert request_family(url.replace("/v1.0/", "/beta/") + "/evaluate") is None  # What-If is not CA-paced
    assert request_family("https://g/beta/reports/authenticationMethods/userRegistrationDetails") == "reports"
    # Sign-ins and directory audits count against the same identity-and-access reports limit.
    assert request_family("https://g/v1.0/auditLogs/signIns?$filter=clientAppUsed eq 'IMAP4'") == "reports"
    assert request_family("https://g/v1.0/auditLogs/directoryAudits") == "reports"
    ca = [b for b, _ in rates.buckets("a", "t", writes=0, ru=1, family="ca", user_count=None)]
    assert [b.rate for b in ca if b.key.endswith(":ca")] == [0.9]
    assert [b.burst for b in ca if b.key.endswith(":ca")] == [1]
    reports = [b for b, _ in rates.buckets("a", "t", writes=0, ru=1, family="reports", user_count=None)]
    (report,) = [b for b in reports if b.key.endswith(":report-log")]
    assert report.burst == 5 and report.window >= 10  # at most 5 requests in any 10 s


@pytest.mark.parametrize("through_redis", [True, False])
def test_report_requests_go_five_at_once_and_never_six_in_a_window(redis_url, through_redis):
    """Graph allows 5 report requests per 10 s per app and tenant (throttling-limits, identity and access
    reports): 9 requests take one window (5 now, 4 a window later), where a rate that never exceeds it
    (1, then 0.4/s) takes twice as long; no 10.5 s window ever holds more than 5, also with several pacers
    (workers) booking at once."""
    LOCAL.clear()
    rates = PacingRates(time_scale=50.0)  # a window of 0.21 s
    key = f"t{time.time_ns()}"
    claims = [c for c in rates.buckets("app", key, writes=0, ru=1, family="reports", user_count=None)]
    window = next(b.window for b, _ in claims if b.window)
    assert window >= 10 / rates.time_scale, "the window is shorter than Graph's 10 s"

    async def go() -> list[float]:
        pacers = [Pacer(redis_url if through_redis else "") for _ in range(3)]
        sent: list[float] = []

        async def one(pacer: Pacer) -> None:
            await pacer.acquire(claims)
            sent.append(time.monotonic())

        try:
            await asyncio.gather(*(one(pacers[n % 3]) for n in range(11)))
        finally:
            for pacer in pacers:
                await pacer.aclose()
        return sorted(sent)

    sent = asyncio.run(go())
    first = sent[0]
    assert sum(1 for at in sent if at - first < window / 2) == 5, "the first five did not go at once"
    assert sent[5] - first >= window * 0.95
    assert sent[-1] - first < 2 * window + 0.1, "eleven requests took more than two windows"
    for n in range(len(sent) - 5):
        assert sent[n + 5] - sent[n] >= window * 0.95, f"six requests within one window at {n}"


def test_resource_units_follow_graphs_costs():
    assert request_ru("GET", "https://g/v1.0/users") == 2
    assert request_ru("GET", "https://g/v1.0/users?$select=id") == 1
    assert request_ru("GET", "https://g/v1.0/subscribedSkus") == 3
    assert request_ru("PATCH", "https://g/beta/users/x/authentication/requirements") == 1
    assert request_ru("POST", "https://g/beta/$batch", items=17) == 17
    assert [size_class(n) for n in (None, 0, 49, 50, 500, 501)] == ["S", "S", "S", "M", "M", "L"]


def test_the_time_scale_multiplies_every_rate_but_not_the_bursts():
    plain = PacingRates().buckets("a", "t", writes=20, ru=20, family="ca", user_count=10)
    fast = PacingRates(time_scale=10).buckets("a", "t", writes=20, ru=20, family="ca", user_count=10)
    for (b1, _), (b10, _) in zip(plain, fast, strict=True):
        assert b10.rate == pytest.approx(10 * b1.rate)
        assert b10.burst == b1.burst


def test_bad_pacing_settings_are_refused(monkeypatch):
    with pytest.raises(GraphConfigError, match="pacing"):
        GraphConfig(
            authority_host="https://login.example",
            base_url="https://graph.example",
            client_id="x",
            client_secret="y",
            writes_per_second=0,
        )
    monkeypatch.setenv("GRAPH_PACING", "sometimes")
    from msp_console.env import env_choice

    with pytest.raises(ImproperlyConfigured, match="GRAPH_PACING must be one of redis, local"):
        env_choice("GRAPH_PACING", ("redis", "local"))


# --- shared through Redis --------------------------------------------------------------------------

RATE, BURST, PER_PROCESS, PROCESSES = 40.0, 4.0, 30, 3


def _grants_from_processes(redis_url: str, key: str) -> list[float]:
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    args = (redis_url, key, RATE, BURST, PER_PROCESS, out)
    procs = [ctx.Process(target=pacing_hammer.hammer, args=args) for _ in range(PROCESSES)]
    for p in procs:
        p.start()
    stamps = [t for _ in procs for t in out.get(timeout=60)]
    for p in procs:
        p.join(10)
    return sorted(stamps)


def _most_in_any_second(stamps: list[float]) -> int:
    best, j = 0, 0
    for i, t in enumerate(stamps):
        while stamps[j] <= t - 1.0:
            j += 1
        best = max(best, i - j + 1)
    return best


def test_processes_sharing_redis_stay_under_one_bucket_together(redis_url):
    stamps = _grants_from_processes(redis_url, f"msp:pace:test:{time.time_ns()}")
    assert len(stamps) == PER_PROCESS * PROCESSES
    # The three processes together never exceed the one bucket: burst + rate in any second (+1 for
    # the boundary), and the whole lot takes as long as the rate says.
    assert _most_in_any_second(stamps) <= BURST + RATE + 1
    assert stamps[-1] - stamps[0] >= (len(stamps) - BURST) / RATE - 0.1


def test_without_redis_each_process_paces_alone_and_together_they_overshoot(redis_url):
    """The control: the same processes with in-process buckets go three times as fast."""
    stamps = _grants_from_processes("", "msp:pace:test:local")
    assert _most_in_any_second(stamps) > BURST + RATE + 1


def test_redis_down_paces_in_this_process_and_says_so(caplog):
    LOCAL.clear()
    pacer = Pacer("redis://127.0.0.1:1/0")
    bucket = Bucket("msp:pace:test:down", rate=1000, burst=1)

    async def go():
        await pacer.acquire([(bucket, 1.0)])
        await pacer.aclose()

    with caplog.at_level(logging.WARNING, logger="migrations_engine.graph.pacing"):
        asyncio.run(go())
    assert "msp:pace:test:down" in LOCAL._tat
    assert "Redis unreachable" in caplog.text


def test_a_tenant_waiting_for_its_own_slot_does_not_hold_up_the_others():
    """Tenant A has booked its bucket well ahead; tenant B, with room in its own bucket, must not queue
    behind A's future slot in the app's shared bucket."""
    LOCAL.clear()
    shared = Bucket("msp:pace:test:app", rate=1000, burst=20, shared=True)
    tenant_a, tenant_b = Bucket("msp:pace:test:a", 2, 1), Bucket("msp:pace:test:b", 2, 1)
    done: dict[str, float] = {}

    async def send(name: str, own: Bucket, delay: float = 0) -> None:
        await asyncio.sleep(delay)
        await Pacer("").acquire([(own, 1.0), (shared, 1.0)])
        done[name] = time.monotonic()

    async def go() -> float:
        start = time.monotonic()
        await asyncio.gather(*(send(f"a{i}", tenant_a) for i in range(3)), send("b", tenant_b, 0.05))
        return start

    start = asyncio.run(go())
    assert done["a2"] - start == pytest.approx(1.0, abs=0.15)  # A's third request waits for its own slot
    assert done["b"] - start < 0.2  # B goes at once
