"""Reading a paged collection one page ahead: while the caller works on a page (reads each user's
per-user state, writes rows), the next page's request is already on its way, so a long listing costs
no round trip per page on top of the work."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import TypeVar

T = TypeVar("T")


async def read_ahead(pages: AsyncIterator[T]) -> AsyncIterator[T]:
    """Yield what `pages` yields, asking for the next item as soon as one is handed out. Closing this
    generator (or an error in the caller) cancels the request in flight and closes `pages`."""
    iterator = aiter(pages)
    pending: asyncio.Future = asyncio.ensure_future(_next(iterator))
    try:
        while True:
            found, item = await pending
            if not found:
                return
            pending = asyncio.ensure_future(_next(iterator))
            yield item
    finally:
        if not pending.done():
            pending.cancel()
            await asyncio.gather(pending, return_exceptions=True)
        closing = getattr(iterator, "aclose", None)
        if closing is not None:
            await closing()


async def _next(iterator: AsyncIterator[T]) -> tuple[bool, T | None]:
    try:
        return True, await anext(iterator)
    except StopAsyncIteration:
        return False, None
