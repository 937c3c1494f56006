"""The audit list never scans the whole table for a page: no date hierarchy (a DISTINCT over every row),
no COUNT(*) past COUNT_CAP, and a period filter that is one range on the indexed `created_at`."""

from __future__ import annotations

import datetime

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from migrations_engine.audit import list_scale
from migrations_engine.audit.writer import record_staff_action
from migrations_engine.models import AuditEvent
from tests.migrations_engine.console_helpers import client_for, staff_user

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


def test_the_period_filter_keeps_only_recent_rows():
    with time_machine.travel(timezone.now() - datetime.timedelta(days=40)):
        record_staff_action(actor="root", action="test.old")  # rows are append-only: written back then
    record_staff_action(actor="root", action="test.recent")
    client = client_for(staff_user("root", superuser=True))
    page = client.get(LIST + "?period=30d").content.decode()
    assert "test.recent" in page and "test.old" not in page
    assert "test.old" in client.get(LIST + "?period=90d").content.decode()
