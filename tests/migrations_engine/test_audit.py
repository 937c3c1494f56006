"""The audit log: append-only rows, per-tenant hash chains, redaction, verification and export."""

from __future__ import annotations

import csv
import datetime
import io
import json
import threading
import time
import uuid

import pytest
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connection, connections, transaction
from django.utils import timezone

from migrations_engine.audit import writer as audit
from migrations_engine.audit.models import GENESIS_HASH, AuditImmutable
from migrations_engine.audit.verification import verify_chain
from migrations_engine.audit.writer import AuditContext, WriteIntent, WriteOutcome
from migrations_engine.models import AuditChainHead, AuditEvent
from tenants.services import add_tenant

needs_postgresql = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="needs PostgreSQL (DATABASE_URL)"
)
TABLE = AuditEvent._meta.db_table
TRIGGER = "migrations_engine_auditevent_append_only"


def make_tenant(name: str):
    return add_tenant(
        tenant_id=str(uuid.uuid4()), domain=f"{name}.onmicrosoft.com", display_name=name.title(), actor="test"
    )


@pytest.fixture
def tenant(db):
    return make_tenant("contoso")


@pytest.fixture
def other_tenant(db):
    return make_tenant("fabrikam")


def ctx_for(tenant, **kwargs) -> AuditContext:
    return AuditContext(actor="scheduler:wave-3", tenant_id=tenant.pk if tenant else None, **kwargs)


def write(n: int = 0, **kwargs) -> WriteIntent:
    fields = {
        "method": "PATCH",
        "path": f"/beta/users/{n}/authentication/requirements",
        "body": {"perUserMfaState": "disabled"},
        "target": f"user{n}@contoso.onmicrosoft.com",
        "action": "peruser.disable",
        "client_request_id": str(uuid.uuid4()),
    }
    return WriteIntent(**{**fields, **kwargs})


def raw_sql(sql: str, params=None) -> None:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def tamper(sql: str, params=None) -> None:
    """Change rows behind the ORM's back, as someone with database access could."""
    if connection.vendor == "postgresql":
        # ALTER TABLE refuses while the test transaction holds deferred foreign-key checks: run them now.
        raw_sql("SET CONSTRAINTS ALL IMMEDIATE")
        raw_sql(f"ALTER TABLE {TABLE} DISABLE TRIGGER {TRIGGER}")
        try:
            raw_sql(sql, params)
        finally:
            raw_sql(f"ALTER TABLE {TABLE} ENABLE TRIGGER {TRIGGER}")
            raw_sql("SET CONSTRAINTS ALL DEFERRED")
    else:
        raw_sql(sql, params)


def export(**options) -> str:
    out = io.StringIO()
    call_command("export_audit", stdout=out, stderr=io.StringIO(), **options)
    return out.getvalue()


def exported_rows(text: str, fmt: str) -> list[dict]:
    if fmt == "csv":
        return list(csv.DictReader(io.StringIO(text)))
    return [json.loads(line) for line in text.splitlines()]


# --- appending and the chain -----------------------------------------------------------------------


def test_it_chains_intents_and_outcomes_in_order(tenant):
    ctx = ctx_for(tenant, run_id=7, item_id=70, step="disable_per_user")
    intents = audit.record_intents(ctx, [write(1), write(2)])
    outcomes = audit.record_outcomes(
        ctx,
        [
            WriteOutcome(intent=intents[0], outcome="succeeded", http_status=204, request_id="req-1"),
            WriteOutcome(intent=intents[1], outcome="failed", http_status=400, error="Bad request"),
        ],
    )

    rows = list(AuditEvent.objects.filter(chain=str(tenant.tenant_id)).order_by("seq"))
    assert [r.seq for r in rows] == [1, 2, 3, 4]
    assert [r.outcome for r in rows] == ["intent", "intent", "succeeded", "failed"]
    assert rows[0].prev_hash == GENESIS_HASH
    assert all(rows[i].prev_hash == rows[i - 1].row_hash for i in range(1, 4))
    assert all(r.row_hash == r.compute_hash() for r in rows)
    assert [o.intent_id for o in outcomes] == [i.pk for i in intents]
    assert rows[2].client_request_id == intents[0].client_request_id
    assert (rows[2].http_status, rows[2].request_id, rows[2].run_id, rows[2].item_id) == (204, "req-1", 7, 70)
    assert rows[0].step == "disable_per_user" and rows[0].actor == "scheduler:wave-3"
    assert list(intents[1].outcomes.all()) == [outcomes[1]]
    head = AuditChainHead.objects.get(chain=str(tenant.tenant_id))
    assert (head.seq, head.row_hash) == (4, rows[-1].row_hash)
    assert verify_chain() == []


def test_it_keeps_two_tenants_chains_independent(tenant, other_tenant):
    for _ in range(3):
        audit.record_intent(ctx_for(tenant), write())
        audit.record_intent(ctx_for(other_tenant), write())
    audit.record_staff_action(actor="alice", action="run.started", run_id=3)

    for t in (tenant, other_tenant):
        assert list(AuditEvent.objects.filter(tenant=t).order_by("id").values_list("seq", flat=True)) == [
            1,
            2,
            3,
        ]
    fleet = AuditEvent.objects.get(chain="fleet")
    assert (fleet.seq, fleet.prev_hash, fleet.tenant_id) == (1, GENESIS_HASH, None)

    victim = AuditEvent.objects.get(tenant=tenant, seq=2)
    tamper(f"UPDATE {TABLE} SET target = %s WHERE id = %s", ["someone-else", victim.pk])
    problems = verify_chain()
    assert [(p.event_id, p.chain) for p in problems] == [(victim.pk, str(tenant.tenant_id))]
    assert verify_chain(str(other_tenant.tenant_id)) == []


def test_it_records_a_dry_run_as_one_row_with_no_outcome(tenant):
    dry = audit.record_intent(ctx_for(tenant), write(1, dry_run=True))

    assert dry.outcome == "dry_run" and dry.seq == 1
    assert AuditEvent.objects.count() == 1
    with pytest.raises(ValueError, match="intent row"):
        audit.record_outcome(ctx_for(tenant), WriteOutcome(intent=dry, outcome="succeeded"))


def test_it_reconciles_an_unknown_outcome_against_its_intent(tenant):
    ctx = ctx_for(tenant, run_id=1)
    intent = audit.record_intent(
        ctx, write(1, method="POST", path="/v1.0/identity/conditionalAccess/policies")
    )
    audit.record_outcome(ctx, WriteOutcome(intent=intent, outcome="unknown", error="read timed out"))

    row = audit.record_reconciliation(
        ctx, intent=intent, outcome="succeeded", detail={"found": "policy 1234 exists"}
    )

    row.refresh_from_db()
    assert (row.kind, row.outcome, row.intent_id, row.seq) == ("reconciliation", "reconciled", intent.pk, 3)
    assert row.detail == {"found": "policy 1234 exists", "result": "succeeded"}
    assert sorted(intent.outcomes.values_list("outcome", flat=True)) == ["reconciled", "unknown"]
    with pytest.raises(ValueError):
        audit.record_reconciliation(ctx, intent=intent, outcome="maybe", detail={})
    assert verify_chain() == []


def test_it_refuses_to_write_inside_an_outer_transaction(tenant):
    # A rolled-back business transaction must not take the audit row with it.
    with pytest.raises(RuntimeError), transaction.atomic():
        audit.record_intent(ctx_for(tenant), write())
    assert not AuditEvent.objects.exists()


def test_it_refuses_a_write_without_a_client_request_id(tenant):
    with pytest.raises(ValueError, match="client_request_id"):
        audit.record_intent(ctx_for(tenant), write(client_request_id=""))


# --- append-only -----------------------------------------------------------------------------------


def test_it_refuses_orm_updates_and_deletes(tenant):
    event = audit.record_intent(ctx_for(tenant), write())
    event.target = "changed"

    with pytest.raises(AuditImmutable):
        event.save()
    with pytest.raises(AuditImmutable):
        AuditEvent.objects.get(pk=event.pk).save()
    with pytest.raises(AuditImmutable):
        event.delete()
    with pytest.raises(AuditImmutable):
        AuditEvent.objects.filter(pk=event.pk).update(target="changed")
    with pytest.raises(AuditImmutable):
        AuditEvent.objects.all().delete()
    with pytest.raises(AuditImmutable):
        AuditEvent.objects.bulk_update([event], ["target"])
    assert AuditEvent.objects.get(pk=event.pk).target == "user0@contoso.onmicrosoft.com"


@needs_postgresql
def test_it_refuses_raw_sql_updates_and_deletes_on_postgresql(tenant):
    event = audit.record_intent(ctx_for(tenant), write())

    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        raw_sql(f"UPDATE {TABLE} SET target = 'changed' WHERE id = %s", [event.pk])
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        raw_sql(f"DELETE FROM {TABLE} WHERE id = %s", [event.pk])
    assert AuditEvent.objects.get(pk=event.pk).target == "user0@contoso.onmicrosoft.com"


def test_it_protects_a_tenant_with_audit_rows_from_deletion(tenant):
    from django.db.models import ProtectedError

    audit.record_intent(ctx_for(tenant), write())
    with pytest.raises(ProtectedError):
        tenant.delete()


# --- verification ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "broken_seq", "reason"),
    [
        ("edit", 3, "hash mismatch"),
        ("delete_middle", 4, "seq gap"),
        ("delete_last", 4, "rows after this one are missing"),
        ("relink", 3, "prev_hash mismatch"),
    ],
)
def test_it_names_the_first_tampered_row(tenant, change, broken_seq, reason):
    ctx = ctx_for(tenant)
    events = audit.record_intents(ctx, [write(n) for n in range(5)])
    by_seq = {e.seq: e for e in events}
    if change == "edit":
        tamper(f"UPDATE {TABLE} SET path = %s WHERE id = %s", ["/v1.0/users/victim", by_seq[3].pk])
    elif change == "delete_middle":
        tamper(f"DELETE FROM {TABLE} WHERE id = %s", [by_seq[3].pk])
    elif change == "delete_last":
        tamper(f"DELETE FROM {TABLE} WHERE id = %s", [by_seq[5].pk])
    else:
        tamper(f"UPDATE {TABLE} SET prev_hash = %s WHERE id = %s", [GENESIS_HASH, by_seq[3].pk])

    problems = verify_chain(str(tenant.tenant_id))

    assert len(problems) == 1
    problem = problems[0]
    assert (problem.event_id, problem.seq, problem.chain) == (
        by_seq[broken_seq].pk,
        broken_seq,
        str(tenant.tenant_id),
    )
    assert reason in problem.reason
    with pytest.raises(CommandError) as excinfo:
        call_command("verify_audit", stdout=io.StringIO())
    assert f"row id {by_seq[broken_seq].pk}, chain {tenant.tenant_id}, seq {broken_seq}" in str(excinfo.value)


def test_it_reports_intact_chains(tenant, other_tenant):
    audit.record_intents(ctx_for(tenant), [write(1), write(2)])
    audit.record_intent(ctx_for(other_tenant), write(3))
    audit.record_staff_action(actor="alice", action="consent.recorded", tenant_id=other_tenant.pk)

    out = io.StringIO()
    call_command("verify_audit", stdout=out)
    assert out.getvalue().strip() == "4 rows in 2 chains verified"
    out = io.StringIO()
    call_command("verify_audit", "--tenant", "contoso.onmicrosoft.com", stdout=out)
    assert out.getvalue().strip() == "2 rows in 1 chain verified (no rows since the last check)"
    with pytest.raises(CommandError, match="No customer tenant"):
        call_command("verify_audit", "--tenant", "nobody.example", stdout=io.StringIO())


# --- redaction -------------------------------------------------------------------------------------

SECRET_BODY = {
    "displayName": "Require MFA",
    "client_secret": "s3cr3t-client-value",
    "headers": {"Authorization": "Bearer eyJhbGciOi.eyJzdWIiOi.c2lnbmF0dXJl"},
    "keyCredentials": [{"key": "TUlJQ0-private-key"}],
    "nested": [{"passwordProfile": {"password": "Hunter2!"}}, {"note": "x" * 5000}],
}
SECRETS = ("s3cr3t-client-value", "eyJhbGciOi", "TUlJQ0-private-key", "Hunter2!")


def test_it_redacts_secrets_without_touching_the_input():
    original = json.loads(json.dumps(SECRET_BODY))

    redacted = audit.redact(SECRET_BODY)

    assert SECRET_BODY == original
    assert redacted["displayName"] == "Require MFA"
    assert redacted["client_secret"] == "[redacted]"
    assert redacted["headers"]["Authorization"] == "[redacted]"
    assert redacted["keyCredentials"] == "[redacted]"
    assert redacted["nested"][0]["passwordProfile"] == "[redacted]"
    assert len(redacted["nested"][1]["note"]) < 4100 and redacted["nested"][1]["note"].startswith("x" * 4000)
    assert audit.redact({"message": "sent Bearer abc.def.ghi"}) == {"message": "sent [redacted]"}
    assert not any(s in json.dumps(redacted) for s in SECRETS)


def test_it_never_stores_or_exports_a_secret(tenant):
    ctx = ctx_for(tenant, run_id=5)
    intent = audit.record_intent(ctx, write(1, method="POST", body=SECRET_BODY, before={"token": "Hunter2!"}))
    audit.record_outcome(
        ctx,
        WriteOutcome(
            intent=intent,
            outcome="failed",
            error="401 for Bearer eyJhbGciOi.eyJzdWIiOi.c2lnbmF0dXJl",
            after={"secretText": "s3cr3t-client-value"},
        ),
    )
    audit.record_staff_action(actor="alice", action="consent.recorded", detail={"assertion": "Hunter2!"})

    stored = json.dumps(list(AuditEvent.objects.values()), default=str)
    assert not any(s in stored for s in SECRETS)
    for fmt in ("csv", "jsonl"):
        text = export(format=fmt)
        assert "Require MFA" in text
        assert not any(s in text for s in SECRETS)
    assert verify_chain() == []


# --- export ----------------------------------------------------------------------------------------


@pytest.fixture
def clock(monkeypatch):
    """Stop the clock: `clock(hours)` sets it to 2025-01-01 00:00 UTC plus that many hours."""
    now = {"value": timezone.now()}
    monkeypatch.setattr(timezone, "now", lambda: now["value"])

    def set_hours(hours: int) -> None:
        now["value"] = datetime.datetime(2025, 1, 1, tzinfo=datetime.UTC) + datetime.timedelta(hours=hours)

    return set_hours


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_it_exports_filtered_by_tenant_time_and_run(tenant, other_tenant, clock, fmt):
    for hour, (who, run) in enumerate([(tenant, 1), (tenant, 2), (other_tenant, 2), (tenant, 2)]):
        clock(hour)
        audit.record_intent(ctx_for(who, run_id=run), write(hour))
    clock(10)  # the exports' own rows come later

    def targets(**options) -> list[str]:
        return [r["target"] for r in exported_rows(export(format=fmt, **options), fmt)]

    assert targets() == [f"user{n}@contoso.onmicrosoft.com" for n in range(4)]
    assert targets(tenant=str(tenant.tenant_id)) == [
        "user0@contoso.onmicrosoft.com",
        "user1@contoso.onmicrosoft.com",
        "user3@contoso.onmicrosoft.com",
    ]
    assert targets(tenant="fabrikam.onmicrosoft.com") == ["user2@contoso.onmicrosoft.com"]
    assert targets(since="2025-01-01T01:00:00Z", until="2025-01-01T03:00:00Z") == [
        "user1@contoso.onmicrosoft.com",
        "user2@contoso.onmicrosoft.com",
    ]
    assert targets(run=2, tenant="contoso.onmicrosoft.com") == [
        "user1@contoso.onmicrosoft.com",
        "user3@contoso.onmicrosoft.com",
    ]
    row = exported_rows(export(format=fmt, run=1), fmt)[0]
    event = AuditEvent.objects.get(run_id=1, kind="graph_write")
    assert (row["row_hash"], row["prev_hash"], row["chain"]) == (
        event.row_hash,
        GENESIS_HASH,
        str(tenant.tenant_id),
    )
    body = json.loads(row["request_body"]) if fmt == "csv" else row["request_body"]
    assert body == {"perUserMfaState": "disabled"}
    # Each export is itself a staff action on the chain it read.
    assert AuditEvent.objects.filter(action="audit.exported").count() == 6


def test_it_streams_a_large_export_to_a_file(tenant, tmp_path, django_assert_max_num_queries):
    ctx = ctx_for(tenant, run_id=9)
    started = time.perf_counter()
    for batch in range(250):
        audit.record_intents(ctx, [write(batch * 20 + n) for n in range(20)])
    elapsed = time.perf_counter() - started
    print(f"\naudit insert rate ({connection.vendor}): {5000 / elapsed:,.0f} rows/s in batches of 20")
    target = tmp_path / "audit.csv"

    # One read query however many rows (no per-row queries), plus the tenant lookup and the export's own row.
    with django_assert_max_num_queries(12):
        call_command("export_audit", tenant=str(tenant.tenant_id), output=str(target), stderr=io.StringIO())

    with target.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 5000
    assert [int(r["seq"]) for r in rows] == list(range(1, 5001))
    assert verify_chain() == []


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"since": "last tuesday"}, "--since 'last tuesday' is not an ISO date"),
        ({"until": "2025-13-01"}, "--until '2025-13-01' is not an ISO date"),
        ({"tenant": "nobody.example"}, "No customer tenant with id or domain 'nobody.example'"),
        ({"format": "xml"}, "--format must be one of csv, jsonl"),
        ({"since": "2025-02-01", "until": "2025-01-01"}, "--until must be later than --since"),
    ],
)
def test_it_refuses_bad_export_options_and_writes_nothing(tenant, tmp_path, options, message):
    audit.record_intent(ctx_for(tenant), write())
    target = tmp_path / "out.csv"

    with pytest.raises(CommandError, match=message):
        call_command("export_audit", output=str(target), **options)

    assert not target.exists()
    assert not AuditEvent.objects.filter(action="audit.exported").exists()


# --- concurrency (PostgreSQL) ----------------------------------------------------------------------


@needs_postgresql
@pytest.mark.django_db(transaction=True)
def test_it_keeps_a_chain_gap_free_under_concurrent_appends():
    tenant = make_tenant("concurrent")
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def append(worker: int) -> None:
        try:
            barrier.wait()
            for batch in range(20):
                audit.record_intents(
                    ctx_for(tenant, item_id=worker), [write(worker * 1000 + batch * 5 + n) for n in range(5)]
                )
        except BaseException as exc:  # reported to the main thread
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=append, args=(w,)) for w in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert errors == []
    seqs = list(AuditEvent.objects.filter(tenant=tenant).order_by("seq").values_list("seq", flat=True))
    assert seqs == list(range(1, 201))
    assert set(AuditEvent.objects.values_list("item_id", flat=True)) == {1, 2}
    assert verify_chain() == []
