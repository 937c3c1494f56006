"""Reading a listing one page ahead (graph/paging.py): the next page is asked while the caller works on
the current one, and stopping early leaves nothing in flight."""

from __future__ import annotations

import asyncio

from migrations_engine.graph.paging import read_ahead


def test_the_next_page_is_asked_while_the_caller_works_and_all_pages_arrive_in_order():
    asked: list[int] = []

    async def pages():
        for n in range(3):
            asked.append(n)
            await asyncio.sleep(0)
            yield [n]

    async def main():
        seen = []
        async for page in read_ahead(pages()):
            await asyncio.sleep(0.01)  # the caller's work on this page
            seen.append((page[0], list(asked)))
        return seen

    seen = asyncio.run(main())
    assert [page for page, _ in seen] == [0, 1, 2]
    assert seen[0][1] == [0, 1], "page 1 was not asked while page 0 was worked on"


def test_stopping_early_cancels_the_request_in_flight_and_closes_the_listing():
    events: list[str] = []

    async def pages():
        try:
            yield [0]
            events.append("page 1 asked")
            await asyncio.sleep(10)  # a slow request
            yield [1]
        finally:
            events.append("closed")

    async def main():
        listing = read_ahead(pages())
        first = await anext(listing)
        await asyncio.sleep(0.01)
        await listing.aclose()
        return first

    assert asyncio.run(asyncio.wait_for(main(), 2)) == [0]
    assert events == ["page 1 asked", "closed"]
