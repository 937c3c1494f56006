"""Runs and the audit log are visible to staff in the console, and nothing there can change them."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from migrations_engine.models import AuditEvent
from migrations_engine.runs.services import start_run
from tests.migrations_engine.pipeline_helpers import FAST, seed, tenant_named, work

pytestmark = pytest.mark.django_db(transaction=True)


def test_it_lists_runs_and_audit_rows_read_only(client, fast_graph, tmp_path, queue):
    seed(fast_graph, tmp_path)
    run = start_run(mode="full", tenants=[tenant_named("woodgrove")], actor="test", options=FAST)
    work(queue)
    client.force_login(get_user_model().objects.create_superuser("staff", "", "pw-for-tests-only"))

    runs = client.get("/migrations_engine/migrationrun/").content.decode()
    assert "Succeeded" in runs
    detail = client.get(f"/migrations_engine/migrationrun/{run.pk}/change/").content.decode()
    assert "Woodgrove Bank" in detail and "Verified" in detail
    audit = client.get("/migrations_engine/auditevent/?action=policy.create").content.decode()
    assert "policy.create" in audit and "woodgrove" in audit

    row = AuditEvent.objects.first()
    assert client.post(f"/migrations_engine/auditevent/{row.pk}/delete/", {"post": "yes"}).status_code == 403
    assert client.get("/migrations_engine/migrationrun/add/").status_code == 403
    assert AuditEvent.objects.filter(pk=row.pk).exists()
