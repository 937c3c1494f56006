"""Secrets never reach the database, the logs, the exports or Redis.

Recognisable secrets are seeded: a client secret made for this test (the simulator is told to accept
it), the certificate's private key, and every access token the simulator issued. Then a census (with
the certificate), a full run on a real rq worker (with the secret), and audit exports in both formats.
Afterwards every text of every row of every table, every log record at DEBUG, the export files and
every RQ key in Redis are searched for them, and for anything shaped like a JWT.
"""

from __future__ import annotations

import logging
import re
import secrets
import zlib

import pytest
from django.apps import apps
from django.core.management import call_command

from migrations_engine.graph import GraphConfig
from migrations_engine.graph import auth as graph_auth
from migrations_engine.runs.services import start_run
from tests.conftest import point_settings_at
from tests.migrations_engine.pipeline_helpers import FAST, item_of, seed, tenant_named, work

pytestmark = pytest.mark.django_db(transaction=True)

JWT = re.compile(rb"eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}")


def pem_body_pieces(pem: str) -> list[str]:
    """Distinctive pieces of a PEM's base64 body (a leak of any line would contain one)."""
    lines = [line for line in pem.splitlines() if line and not line.startswith("-----")]
    return [line[8:40] for line in lines if len(line) >= 40]


def every_row_text() -> list[tuple[str, bytes]]:
    """(model label, text) for every row of every table, all columns."""
    found = []
    for model in apps.get_models():
        if not model._meta.managed:  # django-rq's dashboard entry has no table
            continue
        for row in model.objects.all().values().iterator():
            found.append((model._meta.label, repr(row).encode()))
    return found


def redis_texts(connection) -> list[tuple[str, bytes]]:
    """Every value under every RQ key, with job payloads decompressed."""
    found = []
    for key in connection.scan_iter("rq:*"):
        kind = connection.type(key)
        values: list[bytes] = []
        if kind == b"hash":
            values = list(connection.hgetall(key).values())
        elif kind == b"string":
            values = [connection.get(key)]
        elif kind in (b"list",):
            values = connection.lrange(key, 0, -1)
        elif kind == b"set":
            values = list(connection.smembers(key))
        elif kind == b"zset":
            values = [member for member, _ in connection.zrange(key, 0, -1, withscores=True)]
        for value in values:
            found.append((key.decode(), value))
            try:
                found.append((key.decode() + " (decompressed)", zlib.decompress(value)))
            except zlib.error:
                pass
    return found


def test_no_secret_or_token_is_stored_logged_exported_or_queued(
    settings, fast_graph, tmp_path, queue, caplog
):
    caplog.set_level(logging.DEBUG)
    for name in list(logging.root.manager.loggerDict):
        caplog.set_level(logging.DEBUG, logger=name)
    marker_secret = "MARKER-" + secrets.token_urlsafe(24)
    fast_graph.call(setattr, fast_graph.simulator.state.app, "client_secret", marker_secret)
    key_pem = open(fast_graph.fleet["client_private_key"]).read()
    seed(fast_graph, tmp_path)

    # A census with the certificate credential (the secret is set too, and must be ignored)...
    settings.GRAPH_CLIENT_SECRET = marker_secret
    call_command("census", "--all")
    # ...then a full run with the secret credential, on a real rq worker.
    point_settings_at(settings, fast_graph, certificate=False)
    settings.GRAPH_CLIENT_SECRET = marker_secret
    config = GraphConfig.from_settings()
    for entry in fast_graph.fleet["tenants"]:
        graph_auth.forget_tokens(config, entry["tenant_id"])
    tenant = tenant_named("contoso")
    run = start_run(mode="full", tenants=[tenant], actor="test", options=FAST)
    work(queue)
    assert item_of(run).status == "succeeded", item_of(run).failure_reason

    exports = []
    for fmt in ("csv", "jsonl"):
        path = tmp_path / f"audit.{fmt}"
        call_command("export_audit", "--format", fmt, "--output", str(path))
        exports.append((path.name, path.read_bytes()))
    assert all(len(data) > 1000 for _, data in exports)

    tokens = list(fast_graph.simulator.tokens._verified)
    assert len(tokens) >= 2  # the census's and the run's tokens, at least
    markers = [marker_secret, *pem_body_pieces(key_pem), *tokens, *(t.split(".")[2][:40] for t in tokens)]
    places = (
        every_row_text()
        + [(f"log {r.name}", (r.getMessage() + (r.exc_text or "")).encode()) for r in caplog.records]
        + exports
        + redis_texts(queue.connection)
    )
    assert len(caplog.records) > 50 and any(p.startswith("rq:job:") for p, _ in places)
    leaks = [(place, marker[:12]) for place, text in places for marker in markers if marker.encode() in text]
    leaks += [(place, "a JWT") for place, text in places if JWT.search(text)]
    assert leaks == []
