"""Reads every collection and object shares: all pages of a collection, an object just created."""

from __future__ import annotations

import asyncio
from typing import Any

from migrations_engine.graph.client import GraphClient
from migrations_engine.graph.errors import GraphError
from migrations_engine.waiting import Deadline


async def list_all(graph: GraphClient, path: str) -> list[dict[str, Any]]:
    """Every object of a collection, page after page."""
    found: list[dict[str, Any]] = []
    async for page in graph.iter_pages(path):
        found.extend(page)
    return found


async def get_after_create(
    graph: GraphClient, path: str, *, wait_seconds: float = 0
) -> dict[str, Any] | None:
    """An object by path; right after a create Graph may answer 404 for a while (replication lag), so a
    404 is retried with backoff for up to `wait_seconds` before it counts as gone (None)."""
    deadline = Deadline(wait_seconds, every=0.5, backoff=2, cap=10)
    while True:
        try:
            return await graph.get_json(path)
        except GraphError as exc:
            if exc.status != 404:
                raise
            if (pause := deadline.next_pause()) is None:
                return None
        await asyncio.sleep(pause)
