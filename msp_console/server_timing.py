"""`Server-Timing` on every response when SERVER_TIMING is on: how long the console spent on the request,
how much of it in the database, and how many queries it ran (`app;dur=41.2, db;dur=12.9;desc="7
queries"`). Browsers show it in their network panel; `bench/console_scale.py` reads it through gunicorn.
Off by default: a query count tells a client something about the data behind a page."""

from __future__ import annotations

import time

from django.db import connections


class _Counter:
    def __init__(self) -> None:
        self.queries, self.seconds = 0, 0.0

    def __call__(self, execute, sql, params, many, context):
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            self.queries += 1
            self.seconds += time.perf_counter() - started


class ServerTimingMiddleware:
    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request):
        counter = _Counter()
        started = time.perf_counter()
        with connections["default"].execute_wrapper(counter):
            response = self.get_response(request)
            if hasattr(response, "render") and not getattr(response, "is_rendered", True):
                response.render()  # a template's queries (lazy querysets) count too
        app_ms = (time.perf_counter() - started) * 1000
        response["Server-Timing"] = (
            f'app;dur={app_ms:.1f}, db;dur={counter.seconds * 1000:.1f};desc="{counter.queries} queries"'
        )
        return response
