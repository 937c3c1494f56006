"""The audit log in the console: filters, the detail page, streamed exports of the filtered set, and
the chain verification page, each scoped to the tenants a staff member may see."""

from __future__ import annotations

import csv
import io
import json

import pytest
from django.http import StreamingHttpResponse

from migrations_engine.audit import writer as audit
from migrations_engine.models import AuditEvent
from tests.migrations_engine.console_helpers import client_for, csrf_post, staff_user
from tests.migrations_engine.pipeline_helpers import work
from tests.migrations_engine.test_audit import TABLE, ctx_for, make_tenant, tamper, write

CHANGELIST = "/migrations_engine/auditevent/"


@pytest.fixture
def rows(db):
    """Contoso: runs 1 and 2; Fabrikam: run 2; one fleet row. Returns the tenants."""
    contoso, fabrikam = make_tenant("contoso"), make_tenant("fabrikam")
    audit.record_intents(ctx_for(contoso, run_id=1), [write(1), write(2)])
    audit.record_intents(ctx_for(contoso, run_id=2), [write(3)])
    audit.record_intents(
        ctx_for(fabrikam, run_id=2), [write(4, target="secret-user@fabrikam.onmicrosoft.com")]
    )
    audit.record_staff_action(actor="root", action="fleet.thing", detail={"note": "fleet only"})
    return contoso, fabrikam


def download(client, url: str) -> str:
    response = client.get(url)
    assert response.status_code == 200, response.status_code
    assert isinstance(response, StreamingHttpResponse)
    return b"".join(response.streaming_content).decode()


def csv_targets(text: str) -> list[str]:
    return [r["target"] for r in csv.DictReader(io.StringIO(text))]


def test_it_exports_exactly_the_filtered_changelist(rows):
    contoso, _ = rows
    client = client_for(staff_user("root", superuser=True))
    query = f"tenant__id__exact={contoso.pk}&run=2"
    listing = client.get(f"{CHANGELIST}?{query}").content.decode()
    assert f"/migrations_engine/auditevent/export/csv/?{query}" in listing.replace("&amp;", "&")
    assert "Export JSON lines" in listing and "Verify chains" in listing

    text = download(client, f"{CHANGELIST}export/csv/?{query}")
    assert csv_targets(text) == ["user3@contoso.onmicrosoft.com"]
    writes = f"{CHANGELIST}export/csv/?tenant__id__exact={contoso.pk}&kind__exact=graph_write"
    both_runs = csv_targets(download(client, writes))
    assert both_runs == [f"user{n}@contoso.onmicrosoft.com" for n in (1, 2, 3)]
    lines = download(client, f"{CHANGELIST}export/jsonl/?q=secret-user&outcome__exact=intent")
    assert [json.loads(line)["target"] for line in lines.splitlines()] == [
        "secret-user@fabrikam.onmicrosoft.com"
    ]

    exported = AuditEvent.objects.filter(action="audit.exported").order_by("id")
    assert exported.count() == 3 and exported[0].tenant_id == contoso.pk and exported[0].actor == "root"
    assert exported[0].detail["format"] == "csv" and exported[0].detail["filters"]["run"] == ["2"]


def test_it_shows_a_rows_evidence_and_its_json_side_by_side(rows):
    contoso, _ = rows
    client = client_for(staff_user("root", superuser=True))
    event = AuditEvent.objects.filter(tenant=contoso).first()

    page = client.get(f"{CHANGELIST}{event.pk}/change/").content.decode()

    assert 'id="audit-json"' in page and page.count("data-json-panel=") == 3
    assert "<pre>{\n  &quot;perUserMfaState&quot;: &quot;disabled&quot;\n}</pre>" in page
    assert event.client_request_id in page and event.row_hash in page
    assert client.post(f"{CHANGELIST}{event.pk}/change/", {}).status_code == 403


def test_a_staff_member_sees_and_exports_only_their_tenants_rows(rows):
    contoso, fabrikam = rows
    fleet = AuditEvent.objects.get(tenant=None)  # before the sign-in below adds its own fleet row
    client = client_for(staff_user("ops", contoso))
    foreign = AuditEvent.objects.get(tenant=fabrikam)

    listing = client.get(CHANGELIST).content.decode()
    assert "user1@contoso.onmicrosoft.com" in listing
    assert "secret-user" not in listing and "fleet.thing" not in listing and "Fabrikam" not in listing
    assert client.get(f"{CHANGELIST}{foreign.pk}/change/").status_code == 404
    assert client.get(f"{CHANGELIST}{fleet.pk}/change/").status_code == 404
    assert csv_targets(download(client, f"{CHANGELIST}export/csv/")) == [
        f"user{n}@contoso.onmicrosoft.com" for n in (1, 2, 3)
    ]
    assert csv_targets(download(client, f"{CHANGELIST}export/csv/?tenant__id__exact={fabrikam.pk}")) == []
    assert "secret-user" not in download(client, f"{CHANGELIST}export/jsonl/?q=secret-user")
    assert client.post(f"{CHANGELIST}export/csv/").status_code == 405


def test_the_verify_page_queues_checks_and_shows_the_first_tampered_row(rows, queue):
    contoso, fabrikam = rows
    victim = AuditEvent.objects.get(tenant=contoso, seq=2)
    tamper(f"UPDATE {TABLE} SET target = %s WHERE id = %s", ["someone-else", victim.pk])
    root = client_for(staff_user("root", superuser=True), csrf=True)

    page = root.get("/audit/verify/").content.decode()
    assert 'data-unchecked-chains="3"' in page and page.count('data-chain-ok="unknown"') == 3
    response = csrf_post(root, "/audit/verify/", "/audit/verify/", {"full": "0"})
    assert response.status_code == 302
    page = root.get("/audit/verify/").content.decode()
    assert "3 chain checks queued" in page and "3 checks queued." in page
    work(queue)  # a real rq worker runs the three chain checks

    page = root.get("/audit/verify/").content.decode()
    assert f'data-chain="{contoso.tenant_id}" data-chain-ok="false"' in page
    assert f"row {victim.pk}</a>" in page and "(seq 2): hash mismatch" in page
    assert f'data-chain="{fabrikam.tenant_id}" data-chain-ok="true"' in page
    assert 'data-chain="fleet" data-chain-ok="true"' in page
    assert 'data-broken-chains="1"' in page and "checks queued" not in page
    assert AuditEvent.objects.filter(action="audit.verify_requested", actor="root").count() == 1

    own = client_for(staff_user("ops", fabrikam)).get("/audit/verify/").content.decode()
    assert f'data-chain="{fabrikam.tenant_id}" data-chain-ok="true"' in own
    assert str(contoso.tenant_id) not in own and 'data-chain="fleet"' not in own


def test_the_verify_page_says_when_the_queue_is_down_and_marks_nothing_queued(rows, settings):
    settings.RQ_QUEUES = {
        "default": {"URL": "redis://127.0.0.1:9/0", "DEFAULT_TIMEOUT": 5}
    }  # nothing listens
    root = client_for(staff_user("root", superuser=True), csrf=True)
    response = csrf_post(root, "/audit/verify/", "/audit/verify/", {"full": "0"})
    assert response.status_code == 302
    page = root.get("/audit/verify/").content.decode()
    assert "The job queue (Redis) did not answer: no check was queued." in page
    assert 'id="verify-queued"' not in page and ">queued</span>" not in page
    assert not AuditEvent.objects.filter(action="audit.verify_requested").exists()
