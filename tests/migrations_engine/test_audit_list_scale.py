"""The audit list never scans the whole table for a page: no date hierarchy (a DISTINCT over every row),
no COUNT(*) past COUNT_CAP, and a period filter that is one range on the indexed `created_at`."""

from __future__ import annotations

import datetime
import html
import re

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from migrations_engine.audit import list_scale
from migrations_engine.audit.admin import AuditEventAdmin
from migrations_engine.audit.writer import record_intents, record_staff_action
from migrations_engine.models import AuditEvent
from tests.migrations_engine.console_helpers import client_for, staff_user
from tests.migrations_engine.test_audit import ctx_for, make_tenant, write

pytestmark = pytest.mark.django_db

LIST = "/migrations_engine/auditevent/"


def test_a_page_counts_at_most_the_cap_and_says_there_are_more(monkeypatch):
    monkeypatch.setattr(list_scale, "COUNT_CAP", 5)
    for n in range(8):
        record_staff_action(actor="root", action=f"test.row{n}")
    client = client_for(staff_user("root", superuser=True))
    rows = AuditEvent.objects.count()
    with CaptureQueriesContext(connection) as queries:
        page = client.get(LIST).content.decode()
    counts = [q["sql"] for q in queries.captured_queries if "COUNT(" in q["sql"].upper()]
    assert counts and all("LIMIT" in sql.upper() for sql in counts), counts  # never an unbounded count
    assert not any(
        "DISTINCT" in q["sql"].upper() and "created_at" in q["sql"] for q in queries.captured_queries
    )
    assert rows > 5 and "More than 5 audit events match" in page
    assert "more than 5 audit events" in page and "6 audit events" not in page
    filtered = client.get(LIST + "?period=1y").content.decode()
    assert "more than 5 results" in filtered


def test_the_period_filter_keeps_only_recent_rows():
    with time_machine.travel(timezone.now() - datetime.timedelta(days=40)):
        record_staff_action(actor="root", action="test.old")  # rows are append-only: written back then
    record_staff_action(actor="root", action="test.recent")
    client = client_for(staff_user("root", superuser=True))
    page = client.get(LIST + "?period=30d").content.decode()
    assert "test.recent" in page and "test.old" not in page
    assert "test.old" in client.get(LIST + "?period=90d").content.decode()


def _actions(page: str) -> list[str]:
    return re.findall(r"test\.row(\d+)", page)


def test_older_rows_go_on_from_the_last_row_of_a_page(monkeypatch):
    monkeypatch.setattr(AuditEventAdmin, "list_per_page", 3)
    for n in range(8):
        with time_machine.travel(timezone.now() + datetime.timedelta(seconds=n), tick=False):
            record_staff_action(actor="root", action=f"test.row{n}")
    client = client_for(staff_user("root", superuser=True))
    first = client.get(LIST).content.decode()
    assert _actions(first) == ["7", "6", "5"] and "audit-newest" not in first
    older = re.search(r'href="([^"]+)" id="audit-older"', first).group(1)
    second = client.get(LIST + html.unescape(older)).content.decode()
    assert _actions(second) == ["4", "3", "2"] and 'id="audit-newest"' in second
    assert _actions(client.get(LIST + "?before=999999").content.decode()) == []  # no such row: nothing
    oldest = client.get(LIST + "?o=0").content.decode()  # created_at ascending: a keyset would be wrong
    assert _actions(oldest)[:1] == ["0"] and 'id="audit-older"' not in oldest
    assert _actions(client.get(LIST + "?before=x").content.decode()) == []
    for bad in ("?before=" + "9" * 30, "?run=" + "9" * 30, "?before=0"):  # past a bigint: nothing, no error
        response = client.get(LIST + bad)
        assert response.status_code == 200 and _actions(response.content.decode()) == []


def test_the_search_finds_ids_exactly_and_targets_by_their_beginning():
    ctx = ctx_for(make_tenant("contoso"))
    intent = record_intents(ctx, [write(1, target="Alice.Smith@contoso.onmicrosoft.com")])[0]
    record_intents(ctx, [write(2, target="bob@contoso.onmicrosoft.com")])
    client = client_for(staff_user("root", superuser=True))

    def found(term: str) -> list[str]:
        page = client.get(LIST, {"q": term}).content.decode()
        return sorted(set(re.findall(r"(alice\.smith|bob)@contoso", page, flags=re.I)))

    assert found(intent.client_request_id) == ["Alice.Smith"]
    assert found(intent.client_request_id[:8]) == []  # ids match whole, not a piece of one
    assert found("alice.SM") == ["Alice.Smith"]  # a target by its beginning, any case
    assert found("smith") == []  # not from the middle: that would read every row
