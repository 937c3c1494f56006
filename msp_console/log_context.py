"""Logging as JSON lines (one object per line on stdout, for a container's log collector), with the id of
the web request or of the run and item a worker is on in every line.

`LOG_FORMAT=json` (the default with DEBUG off) or `plain`. The ids live in context variables: the
middleware sets the request id (a well-formed `X-Request-ID` from the proxy, else a new one, echoed in
the response), the runner sets the run and item ids while it works on an item.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")
RUN_ID: contextvars.ContextVar[int | None] = contextvars.ContextVar("run_id", default=None)
ITEM_ID: contextvars.ContextVar[int | None] = contextvars.ContextVar("item_id", default=None)
_GOOD_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")


class JsonLinesFormatter(logging.Formatter):
    """One JSON object per record: time (UTC), level, logger, message, the context ids, the traceback."""

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, var in (("request_id", REQUEST_ID), ("run_id", RUN_ID), ("item_id", ITEM_ID)):
            value = var.get()
            if value not in (None, ""):
                line[key] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


class RequestIdMiddleware:
    """Give every request an id for its log lines (the proxy's `X-Request-ID` when well-formed)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        wanted = request.META.get("HTTP_X_REQUEST_ID", "")
        request_id = wanted if _GOOD_REQUEST_ID.match(wanted) else uuid.uuid4().hex
        token = REQUEST_ID.set(request_id)
        try:
            response = self.get_response(request)
        finally:
            REQUEST_ID.reset(token)
        response["X-Request-ID"] = request_id
        return response


@contextmanager
def working_on(run_id: int, item_id: int) -> Iterator[None]:
    """The run and item a worker's log lines are about, for the duration of the block."""
    run_token, item_token = RUN_ID.set(run_id), ITEM_ID.set(item_id)
    try:
        yield
    finally:
        RUN_ID.reset(run_token)
        ITEM_ID.reset(item_token)
