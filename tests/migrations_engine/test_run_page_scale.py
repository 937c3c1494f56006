"""The run page of a large run: items by state at the top, a page of ITEMS_PER_PAGE tenants (problems
first), the failed users of the shown items in a fixed number of queries, and a progress endpoint that
sends only the items changed since the previous poll."""

from __future__ import annotations

import datetime
import uuid

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from migrations_engine.models import MigrationRun, RunItem, UserOutcome
from migrations_engine.runs import run_page
from tenants.models import CustomerTenant
from tests.migrations_engine.console_helpers import client_for, staff_user

pytestmark = pytest.mark.django_db


def big_run(tenants: int, *, failed_every: int = 4) -> MigrationRun:
    """A finished full run over `tenants` new tenants: every `failed_every`-th item failed with three
    failed users (the first with 120), the rest succeeded; all written an hour ago."""
    with time_machine.travel(timezone.now() - datetime.timedelta(hours=1), tick=False):
        tag = uuid.uuid4().hex[:8]
        made = CustomerTenant.objects.bulk_create(
            [
                CustomerTenant(
                    tenant_id=uuid.uuid4(),
                    primary_domain=f"t{n}-{tag}.example",
                    display_name=f"Tenant {n} {tag}",
                )
                for n in range(tenants)
            ]
        )
        ids = list(
            CustomerTenant.objects.filter(primary_domain__endswith=f"-{tag}.example").values_list(
                "pk", flat=True
            )
        )
        assert len(ids) == len(made)
        run = MigrationRun.objects.create(
            mode="full", status="failed", actor="root", finished_at=timezone.now()
        )
        items = RunItem.objects.bulk_create(
            [
                RunItem(run=run, tenant_id=pk, status="failed" if n % failed_every == 0 else "succeeded")
                for n, pk in enumerate(ids)
            ]
        )
        outcomes = []
        for n, item in enumerate(items):
            if item.status != "failed":
                continue
            for u in range(120 if n == 0 else 3):
                outcomes.append(
                    UserOutcome(
                        item=item,
                        user_id=f"u{u}",
                        upn=f"user{u:03d}@t{item.pk}.example",
                        before="enforced",
                        wanted="disabled",
                        status="failed",
                        http_status=403,
                        error="Forbidden",
                    )
                )
        UserOutcome.objects.bulk_create(outcomes)
    return run


def test_the_page_shows_one_page_of_tenants_problems_first_in_a_fixed_number_of_queries():
    client = client_for(staff_user("root", superuser=True))
    small, large = big_run(30), big_run(120)

    def render(run, query=""):
        with CaptureQueriesContext(connection) as queries:
            response = client.get(f"/migrations_engine/migrationrun/{run.pk}/change/{query}")
        assert response.status_code == 200
        return response.content.decode(), len(queries.captured_queries)

    small_page, small_queries = render(small)
    large_page, large_queries = render(large)
    assert large_queries == small_queries, (small_queries, large_queries)
    assert large_page.count('class="run-item"') == run_page.ITEMS_PER_PAGE
    assert 'data-state-count="failed">30<' in large_page and 'data-state-count="succeeded">90<' in large_page
    assert 'id="run-next-page"' in large_page and "Tenants 1–25 of 120" in large_page
    # Failed tenants come first: the whole first page is failed items, each with its failed users.
    assert large_page.count('data-item-status="failed"') == run_page.ITEMS_PER_PAGE
    assert "first 100 shown, 20 more" in large_page and large_page.count("data-failed-upn=") == 100 + 24 * 3

    succeeded, _ = render(large, "?state=succeeded&page=4")
    assert succeeded.count('data-item-status="succeeded"') == 15  # 90 succeeded: 25 + 25 + 25 + 15
    assert 'data-item-status="failed"' not in succeeded
    one = RunItem.objects.filter(run=large).select_related("tenant").order_by("pk")[7]
    found, _ = render(large, f"?q={one.tenant.primary_domain}")
    assert found.count('class="run-item"') == 1 and f'id="item-{one.pk}"' in found
    nothing, _ = render(large, "?q=no-such-tenant")
    assert "No tenant of this run matches." in nothing


def test_progress_sends_only_the_items_changed_since_the_last_poll():
    client = client_for(staff_user("root", superuser=True))
    run = big_run(40)
    url = f"/runs/{run.pk}/progress.json"
    everything = client.get(url).json()
    assert len(everything["items"]) == run_page.ITEMS_PER_PAGE and not everything["changed_only"]
    assert (everything["page"], everything["pages"]) == (1, 2)
    assert len(client.get(url, {"page": 2}).json()["items"]) == 40 - run_page.ITEMS_PER_PAGE
    assert {row["status"]: row["count"] for row in everything["summary"]} == {"failed": 10, "succeeded": 30}

    first = client.get(url, {"since": everything["now"]}).json()
    assert first["items"] == [] and first["changed_only"]
    moved = RunItem.objects.filter(run=run, status="failed").order_by("pk").first()
    RunItem.objects.filter(pk=moved.pk).update(status="queued")  # a retry: the queryset stamps changed_at
    second = client.get(url, {"since": first["now"]}).json()
    assert [item["id"] for item in second["items"]] == [moved.pk]
    assert second["active"] and {row["status"]: row["count"] for row in second["summary"]}["queued"] == 1
    assert client.get(url, {"since": "yesterday"}).status_code == 400
    assert client.get(url, {"since": "2026-01-01T00:00:00"}).status_code == 400  # no offset: ambiguous
