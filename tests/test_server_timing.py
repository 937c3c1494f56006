"""SERVER_TIMING on: every response says the console's time, its database time and its query count."""

from __future__ import annotations

import re

import pytest

from tests.migrations_engine.console_helpers import client_for, staff_user

pytestmark = pytest.mark.django_db


def test_responses_carry_server_timing_only_when_asked(settings):
    client = client_for(staff_user("root", superuser=True))
    assert "Server-Timing" not in client.get("/tenants/customertenant/").headers
    settings.MIDDLEWARE = ["msp_console.server_timing.ServerTimingMiddleware", *settings.MIDDLEWARE]
    client = client_for(staff_user("root2", superuser=True))
    header = client.get("/tenants/customertenant/").headers["Server-Timing"]
    match = re.fullmatch(r'app;dur=([\d.]+), db;dur=([\d.]+);desc="(\d+) queries"', header)
    assert match, header
    app_ms, db_ms, queries = float(match[1]), float(match[2]), int(match[3])
    assert 0 < db_ms <= app_ms and queries >= 3
