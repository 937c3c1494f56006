"""A process that takes tokens from one pacing bucket and reports when each was granted (for
test_pacing; a module of its own because spawned processes import it before Django is set up)."""

from __future__ import annotations

import asyncio
import time


def hammer(redis_url: str, key: str, rate: float, burst: float, count: int, out) -> None:
    import django

    django.setup()
    from migrations_engine.graph.pacing import Bucket, Pacer

    async def go() -> list[float]:
        pacer = Pacer(redis_url)
        bucket = Bucket(key, rate, burst)
        stamps = []
        for _ in range(count):
            await pacer.acquire([(bucket, 1.0)])
            stamps.append(time.time())
        await pacer.aclose()
        return stamps

    out.put(asyncio.run(go()))
