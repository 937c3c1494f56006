"""Log lines as JSON with the request id (web) or the run and item ids (workers)."""

from __future__ import annotations

import json
import logging

import pytest

from msp_console.log_context import JsonLinesFormatter, working_on
from tests.migrations_engine.pipeline_helpers import FAST, seed, tenant_named, work


class Lines(logging.Handler):
    """Keeps every record formatted as the production console handler would."""

    def __init__(self):
        super().__init__()
        self.setFormatter(JsonLinesFormatter())
        self.lines: list[dict] = []

    def emit(self, record):
        self.lines.append(json.loads(self.format(record)))


def test_a_line_is_one_json_object_with_the_context_ids_and_the_traceback():
    handler, log = Lines(), logging.getLogger("msp.test")
    log.addHandler(handler)
    try:
        with working_on(12, 34):
            try:
                raise ValueError('bad "quoted"\nvalue')
            except ValueError:
                log.exception("failed for %s", "tenant ü")
        log.warning("outside")
    finally:
        log.removeHandler(handler)
    inside, outside = handler.lines
    assert inside["message"] == "failed for tenant ü" and inside["level"] == "ERROR"
    assert inside["run_id"] == 12 and inside["item_id"] == 34
    assert "ValueError" in inside["exception"] and inside["time"].endswith("+00:00")
    assert "run_id" not in outside and outside["logger"] == "msp.test"


@pytest.mark.django_db
def test_every_response_carries_its_request_id(client):
    fresh = client.get("/login/")
    assert len(fresh["X-Request-ID"]) == 32
    kept = client.get("/login/", HTTP_X_REQUEST_ID="proxy-abc-12345678")
    assert kept["X-Request-ID"] == "proxy-abc-12345678"
    forged = client.get("/login/", HTTP_X_REQUEST_ID="evil\nline injected")
    assert forged["X-Request-ID"] != "evil\nline injected" and len(forged["X-Request-ID"]) == 32


@pytest.mark.django_db(transaction=True)
def test_a_workers_lines_carry_the_run_and_item_ids(fast_graph, tmp_path, queue):
    from migrations_engine.runs.services import start_run

    seed(fast_graph, tmp_path)
    handler, log = Lines(), logging.getLogger("migrations_engine")
    log.addHandler(handler)
    try:
        run = start_run(mode="plan", tenants=[tenant_named("contoso")], actor="test", options=FAST)
        work(queue)
    finally:
        log.removeHandler(handler)
    item = run.items.get()
    ours = [line for line in handler.lines if line.get("run_id") == run.pk]
    assert ours and all(line["item_id"] == item.pk for line in ours)
