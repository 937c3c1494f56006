"""Scheduled audit exports: periods in the console's time zone, catch-up, exactly once (threads, processes,
crashes), manifests that verify against the chain and fail when anything was changed, the CLI, the console.
"""

from __future__ import annotations

import datetime
import hashlib
import io
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import time_machine
from django.contrib.auth.models import Permission
from django.core.management import CommandError, call_command
from django.db import connection, connections
from django.http import StreamingHttpResponse
from django.utils import timezone

from migrations_engine.audit import writer as audit
from migrations_engine.audit.export import (
    CHUNK_CHARS,
    COLUMNS,
    STORED_COLUMNS,
    iter_chunks,
    read_rows,
    write_rows,
)
from migrations_engine.audit.models import EVIDENCE_FIELDS, GENESIS_HASH, compute_row_hash
from migrations_engine.audit.writer import WriteOutcome
from migrations_engine.exports import services as scheduled_exports
from migrations_engine.exports.services import (
    create_schedule,
    due_periods,
    export_due,
    period_containing,
    period_from,
)
from migrations_engine.exports.tasks import export_due_job
from migrations_engine.exports.verify import verify_export
from migrations_engine.models import AuditEvent, ExportFile, ExportSchedule
from migrations_engine.schedules import AUDIT_EXPORTS_ID as EXPORT_SCHEDULE_ID
from migrations_engine.schedules import ensure
from tests.migrations_engine.console_helpers import client_for, staff_user
from tests.migrations_engine.pipeline_helpers import ROOT, _database_url
from tests.migrations_engine.test_audit import TABLE, ctx_for, make_tenant, tamper, write

needs_postgresql = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="needs PostgreSQL (DATABASE_URL)"
)
EXPORT_PERMISSIONS = ("add_exportschedule", "change_exportschedule", "view_exportschedule", "view_exportfile")


@pytest.fixture(autouse=True)
def export_dir(settings, tmp_path) -> Path:
    settings.AUDIT_EXPORT_DIR = tmp_path / "exports"
    settings.TIME_ZONE = "UTC"
    return settings.AUDIT_EXPORT_DIR


@pytest.fixture
def contoso(db):
    return make_tenant("contoso")


@pytest.fixture
def fabrikam(db):
    return make_tenant("fabrikam")


def utc(text: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))


def travel(moment: str | datetime.datetime):
    return time_machine.travel(utc(moment) if isinstance(moment, str) else moment, tick=False)


def new_schedule(name: str, tenant=None, *, at: str, frequency: str = "daily", fmt: str = "csv"):
    with travel(at):
        return create_schedule(name=name, tenant=tenant, frequency=frequency, fmt=fmt, actor="test")


def staff_row(tenant, at: str, **detail) -> AuditEvent:
    with travel(at):
        return audit.record_staff_action(
            actor="ops", action="test.thing", tenant_id=tenant.pk if tenant else None, detail=detail
        )


def run_due(at: str | datetime.datetime, **options) -> scheduled_exports.ExportReport:
    with travel(at):
        return export_due(**options)


def manifest_of(export: ExportFile) -> dict:
    return json.loads(Path(export.manifest_path).read_text(encoding="utf-8"))


def exported(name: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action="audit.exported", detail__schedule_name=name).order_by("id"))


# --- periods ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("frequency", "moment", "start", "end"),
    [
        ("daily", "2025-01-15T13:00Z", "2025-01-15T00:00Z", "2025-01-16T00:00Z"),
        ("daily", "2025-01-15T00:00Z", "2025-01-15T00:00Z", "2025-01-16T00:00Z"),
        ("weekly", "2025-01-15T13:00Z", "2025-01-13T00:00Z", "2025-01-20T00:00Z"),  # a Wednesday
        ("weekly", "2025-01-13T00:00Z", "2025-01-13T00:00Z", "2025-01-20T00:00Z"),  # Monday, midnight
        ("weekly", "2025-01-19T23:59:59Z", "2025-01-13T00:00Z", "2025-01-20T00:00Z"),  # Sunday night
        ("weekly", "2025-01-01T12:00Z", "2024-12-30T00:00Z", "2025-01-06T00:00Z"),  # across the new year
        ("monthly", "2025-02-28T23:00Z", "2025-02-01T00:00Z", "2025-03-01T00:00Z"),
        ("monthly", "2024-02-29T12:00Z", "2024-02-01T00:00Z", "2024-03-01T00:00Z"),
        ("monthly", "2024-12-31T23:59Z", "2024-12-01T00:00Z", "2025-01-01T00:00Z"),
    ],
)
def test_periods_run_midnight_to_midnight_monday_to_monday_and_first_to_first(frequency, moment, start, end):
    period = period_containing(utc(moment), frequency)
    assert (period.start, period.end) == (utc(start), utc(end))
    following = period_from(period.end, frequency)
    assert following.start == period.end and following.end > following.start


def test_periods_keep_to_the_wall_clock_across_daylight_saving(settings):
    settings.TIME_ZONE = "Europe/London"
    spring = period_containing(utc("2025-03-30T12:00Z"), "daily")  # clocks go forward at 01:00: 23 hours
    assert (spring.start, spring.end) == (utc("2025-03-30T00:00Z"), utc("2025-03-30T23:00Z"))
    assert spring.stem == "20250330T0000+0000_20250331T0000+0100"
    autumn = period_containing(utc("2025-10-26T12:00Z"), "daily")  # clocks go back at 02:00: 25 hours
    assert (autumn.start, autumn.end) == (utc("2025-10-25T23:00Z"), utc("2025-10-27T00:00Z"))
    # 00:30 on 31 March in London is still 30 March in UTC: it belongs to London's 31 March.
    assert period_containing(utc("2025-03-30T23:30Z"), "daily").start == utc("2025-03-30T23:00Z")
    week = period_containing(utc("2025-03-27T12:00Z"), "weekly")
    assert (week.start, week.end) == (utc("2025-03-24T00:00Z"), utc("2025-03-30T23:00Z"))
    month = period_containing(utc("2025-10-15T12:00Z"), "monthly")
    assert (month.start, month.end) == (utc("2025-09-30T23:00Z"), utc("2025-11-01T00:00Z"))
    after = period_from(spring.end, "daily")
    assert after.end - after.start == datetime.timedelta(hours=24)

    settings.TIME_ZONE = "America/Santiago"  # midnight itself is skipped: 7 September starts at 01:00
    skipped = period_containing(utc("2025-09-07T12:00Z"), "daily")
    assert (skipped.start, skipped.end) == (utc("2025-09-07T04:00Z"), utc("2025-09-08T03:00Z"))
    assert skipped.stem == "20250907T0100-0300_20250908T0000-0300"


def test_a_period_after_a_time_zone_change_runs_to_the_next_boundary(settings):
    settings.TIME_ZONE = "America/New_York"
    # The last export ended at UTC midnight; New York's days end at 05:00 UTC: no gap, no overlap.
    bridge = period_from(utc("2025-01-10T00:00Z"), "daily")
    assert (bridge.start, bridge.end) == (utc("2025-01-10T00:00Z"), utc("2025-01-10T05:00Z"))
    assert period_from(bridge.end, "daily").end == utc("2025-01-11T05:00Z")


# --- export_due ------------------------------------------------------------------------------------


def test_it_catches_up_every_missed_period_oldest_first_and_writes_each_once(contoso, export_dir):
    schedule = new_schedule("Contoso daily", contoso, at="2025-01-01T10:00Z")
    for day in (1, 2, 3):
        staff_row(contoso, f"2025-01-0{day}T11:00Z", day=day)
        staff_row(contoso, f"2025-01-0{day}T12:00Z", day=day)

    assert run_due("2025-01-01T23:59Z").written == []  # the first day has not ended
    report = run_due("2025-01-04T00:30Z")  # the scheduler was down for two days

    assert [e.period_start for e in report.written] == [utc(f"2025-01-0{d}T00:00Z") for d in (1, 2, 3)]
    assert [e.rows for e in report.written] == [2, 2, 2]
    folder = export_dir / "contoso-daily"
    assert sorted(p.name for p in folder.iterdir()) == [
        f"2025010{d}T0000+0000_2025010{d + 1}T0000+0000{suffix}"
        for d in (1, 2, 3)
        for suffix in (".csv", ".manifest.json")
    ]
    assert run_due("2025-01-04T05:00Z").written == []  # twice: nothing more
    schedule.refresh_from_db()
    assert schedule.last_period_end == utc("2025-01-04T00:00Z")
    rows = exported("Contoso daily")
    assert [r.detail["period_start"] for r in rows] == [f"2025-01-0{d}T00:00:00Z" for d in (1, 2, 3)]
    assert {r.actor for r in rows} == {f"scheduler:export-{schedule.pk}"}
    assert {r.tenant_id for r in rows} == {contoso.pk}
    first = report.written[0]
    assert (
        rows[0].detail["sha256"] == first.sha256 == hashlib.sha256(Path(first.path).read_bytes()).hexdigest()
    )
    assert rows[0].detail["file"] == Path(first.path).name and rows[0].detail["run_by"] == "scheduler"

    # The export rows were written on 4 January: the next day's export holds them.
    [fourth] = run_due("2025-01-05T00:10Z").written
    assert fourth.rows == 3
    assert verify_export(fourth.manifest_path).ok


def test_it_never_exports_a_period_that_has_not_ended(contoso):
    new_schedule("Contoso weekly", contoso, at="2025-01-15T10:00Z", frequency="weekly")
    # `now` can only move the clock back: a later `now` than the real one changes nothing.
    assert run_due("2025-01-19T23:00Z", now=utc("2025-02-01T00:00Z")).written == []
    assert [e.period_end for e in run_due("2025-01-20T00:00Z").written] == [utc("2025-01-20T00:00Z")]


def test_a_disabled_schedule_exports_nothing(contoso):
    schedule = new_schedule("Paused", contoso, at="2025-01-01T10:00Z")
    scheduled_exports.disable_schedule(schedule, actor="test")
    assert run_due("2025-01-05T00:00Z").written == []


def test_a_quiet_period_gets_a_file_and_a_manifest_saying_nothing_happened(contoso):
    staff_row(contoso, "2025-01-01T09:00Z")
    last = staff_row(contoso, "2025-01-01T10:00Z")
    new_schedule("Quiet csv", contoso, at="2025-01-02T10:00Z")
    new_schedule("Quiet fleet", None, at="2025-01-02T10:00Z", fmt="jsonl")

    tenant_export, fleet_export = run_due("2025-01-03T00:00Z").written

    assert Path(tenant_export.path).read_bytes() == ",".join(COLUMNS).encode() + b"\r\n"  # the header only
    manifest = manifest_of(tenant_export)
    assert manifest["rows"] == 0 and tenant_export.rows == 0
    assert manifest["chains"] == [
        {
            "chain": str(contoso.tenant_id),
            "rows": 0,
            "first_seq": None,
            "last_seq": None,
            "first_prev_hash": None,
            "head_seq": 2,  # where the chain stood while nothing happened
            "head": last.row_hash,
            "current_head": {"seq": 2, "row_hash": last.row_hash},
        }
    ]
    assert Path(fleet_export.path).read_bytes() == b""
    assert manifest_of(fleet_export)["chains"] == [] and manifest_of(fleet_export)["file"]["size"] == 0
    assert verify_export(tenant_export.manifest_path).ok
    assert verify_export(fleet_export.manifest_path).ok


# --- the manifest ----------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_a_fleet_exports_manifest_verifies_against_the_chain(contoso, fabrikam, fmt, settings):
    settings.TIME_ZONE = "Europe/London"
    before = staff_row(contoso, "2025-03-20T10:00Z")  # the week before: not in the export
    schedule = new_schedule("Fleet weekly", None, at="2025-03-24T08:00Z", frequency="weekly", fmt=fmt)
    ours = [staff_row(contoso, "2025-03-25T10:00Z", n=1), staff_row(contoso, "2025-03-30T22:59Z", n=2)]
    theirs = staff_row(fabrikam, "2025-03-26T10:00Z")
    fleet = staff_row(None, "2025-03-27T10:00Z", note="fleet-wide")
    staff_row(contoso, "2025-03-30T23:00Z")  # Monday 00:00 in London: next week

    [export] = run_due("2025-03-31T06:00Z").written

    manifest = manifest_of(export)
    data = Path(export.path).read_bytes()
    assert manifest["schema_version"] == 1 and manifest["format"] == fmt
    assert manifest["schedule"] == {"id": schedule.pk, "name": "Fleet weekly", "frequency": "weekly"}
    assert manifest["scope"] == {"kind": "fleet"} and manifest["time_zone"] == "Europe/London"
    assert manifest["period"] == {
        "start": "2025-03-24T00:00:00Z",
        "end": "2025-03-30T23:00:00Z",
        "local_start": "2025-03-24T00:00:00+00:00",
        "local_end": "2025-03-31T00:00:00+01:00",
    }
    assert manifest["rows"] == export.rows == 4
    assert manifest["file"] == {
        "name": f"20250324T0000+0000_20250331T0000+0100.{fmt}",
        "sha256": hashlib.sha256(data).hexdigest(),
        "size": len(data),
    }
    by_chain = {c["chain"]: c for c in manifest["chains"]}
    assert set(by_chain) == {str(contoso.tenant_id), str(fabrikam.tenant_id), "fleet"}
    contoso_chain = by_chain[str(contoso.tenant_id)]
    assert contoso_chain["rows"] == 2
    assert (contoso_chain["first_seq"], contoso_chain["last_seq"]) == (ours[0].seq, ours[1].seq)
    assert contoso_chain["first_prev_hash"] == ours[0].prev_hash == before.row_hash
    assert contoso_chain["head"] == ours[1].row_hash and contoso_chain["head_seq"] == ours[1].seq
    assert contoso_chain["current_head"]["seq"] == ours[1].seq + 1  # the next week's row came already
    assert by_chain[str(fabrikam.tenant_id)]["head"] == theirs.row_hash
    assert (
        by_chain["fleet"]["first_prev_hash"] == GENESIS_HASH and by_chain["fleet"]["head"] == fleet.row_hash
    )

    assert verify_export(export.manifest_path).ok
    assert verify_export(export.manifest_path, offline=True).ok
    out = io.StringIO()
    call_command("verify_export", export.manifest_path, stdout=out)
    assert out.getvalue().startswith("OK: 20250324T0000+0000_20250331T0000+0100.manifest.json: 4 rows in 3")


# --- round trips -----------------------------------------------------------------------------------

TRICKY_TEXT = 'Zoë, "the" admin\n2nd line\r\n3rd; tab\t, 漢字 🙂 \u2028 sep \x85 next \\ backslash'


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
@pytest.mark.parametrize("micro", [0, 123456])
def test_every_tricky_value_reads_back_to_the_same_hash(fmt, micro):
    evidence = {
        "chain": "fleet",
        "seq": 12,
        "created_at": datetime.datetime(2025, 1, 2, 3, 4, 5, micro, tzinfo=datetime.UTC),
        "tenant_id": None,
        "kind": "staff_action",
        "actor": TRICKY_TEXT,
        "run_id": 0,
        "item_id": None,
        "step": "",
        "action": "a,b",
        "method": "",
        "path": '/v1.0/users/"quoted",comma',
        "target": "",
        "request_body": {"a": [1, 2.5, None, {"b": TRICKY_TEXT}], "é": True, "n": None, "big": 2**62},
        "before": None,
        "after": "",  # a JSON string that is empty: not the same as no value
        "outcome": "recorded",
        "intent_id": None,
        "http_status": None,
        "request_id": "",
        "client_request_id": "",
        "error": TRICKY_TEXT,
        "detail": {"nested": {"list": [[], {}], "quote": '"', "comma": ",", "zero": 0, "false": False}},
    }
    row_hash = compute_row_hash(evidence, GENESIS_HASH)
    stored = (7, *(evidence[f] for f in EVIDENCE_FIELDS), GENESIS_HASH, row_hash)
    row = (*stored, "7f0c1f0e-4f7b-4c59-9b58-5a0d2c1e0a11", "contoso.onmicrosoft.com")
    text = "".join(iter_chunks(fmt, [row, row]))

    [back, again] = list(read_rows(io.StringIO(text, newline="" if fmt == "csv" else "\n"), fmt))

    assert back == again == dict(zip(COLUMNS, row, strict=True))
    assert compute_row_hash(back, back["prev_hash"]) == row_hash

    # A file written before the tenant's Entra id and domain were exported reads back the same, without them.
    if fmt == "csv":
        text = "".join(iter_chunks(fmt, [row])).split("\r\n", 1)[1]
        header = ",".join(STORED_COLUMNS) + "\r\n"
        old = header + text.rsplit(",", 2)[0] + "\r\n"
    else:
        record = json.loads("".join(iter_chunks(fmt, [row])))
        old = json.dumps({c: record[c] for c in STORED_COLUMNS}, ensure_ascii=False) + "\n"
    [earlier] = list(read_rows(io.StringIO(old, newline="" if fmt == "csv" else "\n"), fmt))
    assert earlier == dict(zip(STORED_COLUMNS, stored, strict=True))
    assert compute_row_hash(earlier, earlier["prev_hash"]) == row_hash


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_an_export_of_awkward_rows_verifies(contoso, fmt):
    new_schedule("Awkward", contoso, at="2025-01-01T00:00Z", fmt=fmt)
    with travel("2025-01-01T10:00Z"):
        ctx = ctx_for(contoso, run_id=1, step='disable, then "check"')
        [intent] = audit.record_intents(
            ctx,
            [
                write(
                    1,
                    path="/beta/users/a,b\"c'/x\ny",
                    target="zoë@contoso.onmicrosoft.com \u2028 漢字",
                    body={"list": [1, None, {"deep": TRICKY_TEXT}], "empty": {}, "none": None},
                    before={"state": "enforced"},
                )
            ],
        )
        audit.record_outcome(ctx, WriteOutcome(intent, "failed", http_status=409, error=TRICKY_TEXT))
        audit.record_staff_action(actor=TRICKY_TEXT, action="note", tenant_id=contoso.pk, detail={"x": None})

    [export] = run_due("2025-01-02T00:00Z").written

    assert export.rows == 3
    verdict = verify_export(export.manifest_path)
    assert verdict.ok, verdict.problem


# --- verification fails when anything changed ------------------------------------------------------


@pytest.fixture
def daily_export(contoso):
    """Contoso's export of 2 January: seq 3 to 7 (seq 1 and 2 came the day before)."""
    staff_row(contoso, "2025-01-01T10:00Z", n=1)
    staff_row(contoso, "2025-01-01T11:00Z", n=2)
    new_schedule("Evidence", contoso, at="2025-01-02T08:00Z")
    for n in range(3, 8):
        staff_row(contoso, f"2025-01-02T1{n}:00Z", n=n)
    [export] = run_due("2025-01-03T00:05Z").written
    assert export.rows == 5 and manifest_of(export)["chains"][0]["first_seq"] == 3
    return export


def _lines(export: ExportFile) -> list[bytes]:
    return Path(export.path).read_bytes().split(b"\r\n")  # header, seq 3..7, ""


def _rewrite(export: ExportFile, lines: list[bytes], **manifest_changes) -> None:
    """Change the data file and forge its manifest's sha256, size and anything given, as a forger would."""
    data = b"\r\n".join(lines)
    Path(export.path).write_bytes(data)
    manifest = manifest_of(export)
    manifest["file"].update(sha256=hashlib.sha256(data).hexdigest(), size=len(data))
    for key, value in manifest_changes.items():
        if key == "chain":
            manifest["chains"][0].update(value)
        else:
            manifest[key] = value
    Path(export.manifest_path).write_text(json.dumps(manifest))


def _flip_one_byte(export: ExportFile) -> None:
    data = bytearray(Path(export.path).read_bytes())
    at = data.index(b"test.thing")
    data[at] = ord("T")
    Path(export.path).write_bytes(bytes(data))


def _remove_a_row(export: ExportFile) -> None:
    lines = _lines(export)
    _rewrite(export, lines[:3] + lines[4:], rows=4, chain={"rows": 4})


def _reorder_rows(export: ExportFile) -> None:
    lines = _lines(export)
    lines[2], lines[3] = lines[3], lines[2]
    _rewrite(export, lines)


def _change_a_row(export: ExportFile) -> None:
    lines = _lines(export)
    lines[3] = lines[3].replace(b"test.thing", b"test.other")
    _rewrite(export, lines)


def _cut_the_tail(export: ExportFile) -> None:
    # A consistent forgery: without the database nothing in the files can tell.
    lines = _lines(export)
    head = next(read_rows(io.StringIO((lines[0] + b"\r\n" + lines[4]).decode(), newline=""), "csv"))
    _rewrite(
        export,
        lines[:5] + [b""],
        rows=4,
        chain={"rows": 4, "last_seq": 6, "head_seq": 6, "head": head["row_hash"]},
    )


def _change_the_database_row_at_the_head(export: ExportFile) -> None:
    row = AuditEvent.objects.get(tenant=export.schedule.tenant, seq=7)
    tamper(f"UPDATE {TABLE} SET actor = %s WHERE id = %s", ["someone-else", row.pk])


def _replace_the_database_heads_hash(export: ExportFile) -> None:
    row = AuditEvent.objects.get(tenant=export.schedule.tenant, seq=7)
    tamper(f"UPDATE {TABLE} SET row_hash = %s WHERE id = %s", ["f" * 64, row.pk])


def _change_an_earlier_database_row(export: ExportFile) -> None:
    row = AuditEvent.objects.get(tenant=export.schedule.tenant, seq=1)
    tamper(f"UPDATE {TABLE} SET actor = %s WHERE id = %s", ["someone-else", row.pk])


@pytest.mark.parametrize(
    ("change", "offline_problem", "problem"),
    [
        (_flip_one_byte, "the data file's sha256 is", None),
        (_remove_a_row, "row 3 (chain {chain}, seq 6): expected seq 5", None),
        (_reorder_rows, "row 2 (chain {chain}, seq 5): expected seq 4", None),
        (_change_a_row, "row 3 (chain {chain}, seq 5): hash mismatch", None),
        (
            _cut_the_tail,
            None,
            "chain {chain}: the audit log has 5 rows in the period (seq 3..7), the manifest 4",
        ),
        (
            _change_the_database_row_at_the_head,
            None,
            "broken up to the head: row {head} (chain {chain}, seq 7)",
        ),
        (_replace_the_database_heads_hash, None, "row at seq 7 has row_hash ffff"),
        (_change_an_earlier_database_row, None, "broken up to the head: row {first} (chain {chain}, seq 1)"),
    ],
    ids=lambda v: getattr(v, "__name__", "")[1:] or None,
)
def test_verification_names_the_first_problem(daily_export, change, offline_problem, problem):
    chain = str(daily_export.schedule.tenant.tenant_id)
    ids = dict(AuditEvent.objects.filter(chain=chain).values_list("seq", "id"))
    assert verify_export(daily_export.manifest_path).ok

    change(daily_export)

    expected = (offline_problem or problem).format(chain=chain, head=ids[7], first=ids[1])
    offline = verify_export(daily_export.manifest_path, offline=True)
    online = verify_export(daily_export.manifest_path)
    assert not online.ok and expected in online.problem, online.problem
    if offline_problem:
        assert not offline.ok and expected in offline.problem, offline.problem
    else:
        assert offline.ok, offline.problem  # the files alone agree with each other
    with pytest.raises(CommandError, match="FAILED: .*manifest.json: ") as failed:
        call_command("verify_export", daily_export.manifest_path, stdout=io.StringIO())
    assert failed.value.returncode == 1


def test_a_broken_or_foreign_manifest_is_named(daily_export, tmp_path):
    manifest = manifest_of(daily_export)
    cases = {
        "not json": ("{", "the manifest is not JSON"),
        "other": (json.dumps({"schema": "something else"}), "not an audit export manifest"),
        "escape": (json.dumps({**manifest, "file": {**manifest["file"], "name": "../x.csv"}}), "plain file"),
        "missing": (
            json.dumps({**manifest, "file": {**manifest["file"], "name": "gone.csv"}}),
            "cannot read",
        ),
    }
    for name, (text, problem) in cases.items():
        path = Path(daily_export.manifest_path).with_name(f"{name}.manifest.json")
        path.write_text(text)
        verdict = verify_export(path)
        assert not verdict.ok and problem in verdict.problem, (name, verdict.problem)
    assert "cannot read the manifest" in verify_export(tmp_path / "nowhere.json").problem


# --- exactly once ----------------------------------------------------------------------------------


def test_a_failed_writer_leaves_no_claim_and_the_next_run_writes_the_period(contoso, export_dir, monkeypatch):
    new_schedule("Retry", contoso, at="2025-01-01T08:00Z")
    staff_row(contoso, "2025-01-01T10:00Z")

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(scheduled_exports, "write_rows", disk_full)
    report = run_due("2025-01-02T00:00Z")
    assert report.written == [] and "No space left on device" in report.errors[0]
    assert not ExportFile.objects.exists()
    assert [p.name for p in (export_dir / "retry").iterdir()] == []  # no file, no temporary file
    monkeypatch.undo()

    [export] = run_due("2025-01-02T01:00Z").written
    assert export.rows == 1 and verify_export(export.manifest_path).ok


def test_another_schedules_files_are_never_replaced(contoso, export_dir):
    new_schedule("Shared", contoso, at="2025-01-01T08:00Z")
    folder = export_dir / "shared"
    folder.mkdir(parents=True)
    foreign = folder / "20250101T0000+0000_20250102T0000+0000.manifest.json"
    foreign.write_text(json.dumps({"schedule": {"id": 999}}))

    report = run_due("2025-01-02T00:00Z")

    assert report.written == [] and "refusing to replace it" in report.errors[0]
    assert json.loads(foreign.read_text()) == {"schedule": {"id": 999}}


def _assert_each_period_once(schedule: ExportSchedule, periods: list) -> None:
    files = list(schedule.files.order_by("period_start"))
    assert [f.period_start for f in files] == [p.start for p in periods]
    assert len(exported(schedule.name)) == len(periods)
    for export in files:
        verdict = verify_export(export.manifest_path)
        assert verdict.ok, verdict.problem
    folder = Path(files[0].path).parent
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        name for f in files for name in (Path(f.path).name, Path(f.manifest_path).name)
    )


@pytest.mark.django_db(transaction=True)
def test_two_schedulers_at_once_write_each_period_once():
    tenant = make_tenant("racing")
    schedule = new_schedule("Race", tenant, at="2025-01-01T08:00Z")
    fleet = new_schedule("Race fleet", None, at="2025-01-01T08:00Z", fmt="jsonl")
    for day in range(1, 9):
        staff_row(tenant, f"2025-01-0{day}T10:00Z", day=day)
        staff_row(None, f"2025-01-0{day}T11:00Z", day=day)
    reports, errors = [], []
    barrier = threading.Barrier(2)

    def scheduler() -> None:
        try:
            barrier.wait()
            reports.append(export_due(actor="thread"))
        except BaseException as exc:  # reported to the main thread
            errors.append(exc)
        finally:
            connections.close_all()

    periods = list(due_periods(schedule, utc("2025-01-09T00:30Z")))
    with travel("2025-01-09T00:30Z"):
        threads = [threading.Thread(target=scheduler) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    assert errors == [] and all(not r.errors for r in reports), reports
    assert len(periods) == 8
    assert sum(len(r.written) for r in reports) == 16
    _assert_each_period_once(schedule, periods)
    _assert_each_period_once(fleet, periods)


def _run_due_process(export_dir: Path, crash_point: str = "") -> subprocess.Popen:
    env = {
        **os.environ,
        "DATABASE_URL": _database_url(),
        "AUDIT_EXPORT_DIR": str(export_dir),
        "TIME_ZONE": "UTC",
        "MSP_CRASH_POINTS": crash_point,
    }
    return subprocess.Popen(
        [sys.executable, "manage.py", "audit_export_schedule", "run-due"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _days_ago(days: int, hour: int) -> datetime.datetime:
    today = timezone.now().replace(hour=0, minute=0, second=0, microsecond=0)
    return today - datetime.timedelta(days=days) + datetime.timedelta(hours=hour)


@pytest.mark.django_db(transaction=True)
def test_two_scheduler_processes_write_each_period_once(export_dir):
    tenant = make_tenant("processes")
    schedule = new_schedule("Processes", tenant, at=_days_ago(6, 1))
    for days in range(6, 0, -1):
        staff_row(tenant, _days_ago(days, 2), day=days)
    periods = list(due_periods(schedule, timezone.now()))

    procs = [_run_due_process(export_dir) for _ in range(2)]
    outputs = [proc.communicate(timeout=120)[0] for proc in procs]

    assert [proc.returncode for proc in procs] == [0, 0], outputs
    assert len(periods) == 6
    _assert_each_period_once(schedule, periods)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("point", "left_behind"),
    [
        ("export:claimed", []),  # killed right after claiming the period
        ("export:renamed", [".csv", ".tmp"]),  # after renaming its data file, before the manifest and commit
    ],
)
def test_a_writer_killed_mid_export_blocks_nothing(export_dir, point, left_behind):
    tenant = make_tenant("crashing")
    schedule = new_schedule("Crash", tenant, at=_days_ago(3, 1))
    for days in (3, 2, 1):
        staff_row(tenant, _days_ago(days, 2), day=days)
    periods = list(due_periods(schedule, timezone.now()))

    proc = _run_due_process(export_dir, point)
    output = proc.communicate(timeout=120)[0]
    assert proc.returncode == 137, output
    assert not ExportFile.objects.exists()  # the claim died with its transaction
    assert sorted(p.suffix for p in (export_dir / "crash").iterdir()) == left_behind

    report = export_due()
    assert len(report.written) == len(periods) == 3
    _assert_each_period_once(schedule, periods)  # and the leftover temporary file was removed


@pytest.mark.django_db(transaction=True)
def test_an_export_whose_writer_died_before_its_audit_row_gets_it_late(export_dir):
    tenant = make_tenant("late")
    schedule = new_schedule("Late", tenant, at=_days_ago(1, 1))
    staff_row(tenant, _days_ago(1, 2))

    proc = _run_due_process(export_dir, "export:committed")
    output = proc.communicate(timeout=120)[0]
    assert proc.returncode == 137, output
    [export] = ExportFile.objects.all()
    assert exported("Late") == []

    assert export_due().written == []  # a live writer appends its row at once: nobody else does
    assert exported("Late") == []
    with time_machine.travel(timezone.now() + datetime.timedelta(minutes=6)):
        export_due()
        export_due()
    [row] = exported("Late")
    assert row.detail["recorded_late"] is True and row.detail["sha256"] == export.sha256
    assert row.actor == f"scheduler:export-{schedule.pk}"


# --- the CLI ---------------------------------------------------------------------------------------


def schedule_command(*args: str) -> str:
    out = io.StringIO()
    call_command("audit_export_schedule", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def test_the_cli_adds_lists_disables_and_runs_schedules(contoso, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True), travel("2025-01-01T09:00Z"):
        added = schedule_command(
            "add", "--name", "Contoso weekly", "--tenant", "contoso.onmicrosoft.com", "--frequency", "weekly"
        )
        schedule_command(
            "add", "--name", "Fleet monthly", "--fleet", "--frequency", "monthly", "--format", "jsonl"
        )
    assert "the first covers 2024-12-30 00:00 to 2025-01-06 00:00" in added
    weekly = ExportSchedule.objects.get(name="Contoso weekly")
    assert (weekly.tenant, weekly.frequency, weekly.format) == (contoso, "weekly", "csv")
    created = AuditEvent.objects.filter(action="export_schedule.created").order_by("id")
    assert [(r.tenant_id, r.actor, r.detail["name"]) for r in created] == [
        (contoso.pk, "cli", "Contoso weekly"),
        (None, "cli", "Fleet monthly"),
    ]

    with travel("2025-01-03T00:00Z"):
        listing = schedule_command("list")
    assert "Contoso weekly\tcontoso.onmicrosoft.com\tweekly\tcsv\tenabled\t0 files" in listing
    assert (
        "Fleet monthly\tfleet\tmonthly\tjsonl\tenabled\t0 files\tnext period ends 2025-02-01 00:00" in listing
    )

    with travel("2025-01-06T00:10Z"):
        ran = schedule_command("run-due")
    assert "1 export written" in ran and "contoso-weekly/20241230T0000+0000_20250106T0000+0000.csv" in ran

    with django_capture_on_commit_callbacks(execute=True):
        assert "disabled" in schedule_command("disable", "Fleet monthly")
    assert not ExportSchedule.objects.get(name="Fleet monthly").enabled
    assert AuditEvent.objects.filter(action="export_schedule.disabled", tenant=None).count() == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["add", "--name", "X", "--tenant", "nobody.example", "--frequency", "daily"], "No customer tenant"),
        (["add", "--name", "X", "--frequency", "daily"], "one of the arguments --tenant --fleet is required"),
        (
            ["add", "--name", "X", "--fleet", "--tenant", "contoso.onmicrosoft.com", "--frequency", "daily"],
            "not allowed with argument",
        ),
        (["add", "--name", "X", "--fleet", "--frequency", "hourly"], "invalid choice: 'hourly'"),
        (
            ["add", "--name", "X", "--fleet", "--frequency", "daily", "--format", "xml"],
            "invalid choice: 'xml'",
        ),
        (["add", "--name", "X", "--tenant", "fleet", "--frequency", "daily"], "use --fleet"),
        (["add", "--name", "!!!", "--fleet", "--frequency", "daily"], "needs letters or digits"),
        (["add", "--name", "Existing", "--fleet", "--frequency", "daily"], "with this Name already exists"),
        (["add", "--name", "existing!", "--fleet", "--frequency", "daily"], "already writes to the folder"),
        (["add", "--fleet", "--frequency", "daily"], "the following arguments are required: --name"),
        (["disable", "nobody"], "No export schedule named 'nobody'"),
        (["disable", "Existing"], "already disabled"),
        (["explode"], "invalid choice: 'explode'"),
    ],
)
def test_the_cli_refuses_bad_input_and_changes_nothing(
    contoso, args, message, django_capture_on_commit_callbacks
):
    ExportSchedule.objects.create(name="Existing", tenant=contoso, enabled=False)
    before, rows = list(ExportSchedule.objects.values()), AuditEvent.objects.count()
    with django_capture_on_commit_callbacks(execute=True), pytest.raises(CommandError, match=message):
        schedule_command(*args)
    assert list(ExportSchedule.objects.values()) == before
    assert AuditEvent.objects.count() == rows


# --- the console -----------------------------------------------------------------------------------

SCHEDULES = "/migrations_engine/exportschedule/"
FILES = "/migrations_engine/exportfile/"


def exporter(username: str, *tenants):
    user = staff_user(username, *tenants, role="Administrator")
    user.user_permissions.add(*Permission.objects.filter(codename__in=EXPORT_PERMISSIONS))
    return user


def schedule_form(name: str, tenant=None, **fields) -> dict:
    return {"name": name, "tenant": tenant.pk if tenant else "", "frequency": "daily", "format": "csv",
            "enabled": "on", **fields}  # fmt: skip


def test_the_console_adds_schedules_within_the_users_tenants(
    contoso, fabrikam, django_capture_on_commit_callbacks
):
    ops = client_for(exporter("ops", contoso))
    form = ops.get(f"{SCHEDULES}add/").content.decode()
    assert "contoso.onmicrosoft.com" in form or "Contoso" in form
    assert "Fabrikam" not in form and "fleet (every chain)" not in form

    refused_fleet = ops.post(f"{SCHEDULES}add/", schedule_form("Everything"))
    assert "Only a superuser may export the whole fleet" in refused_fleet.content.decode()
    refused_other = ops.post(f"{SCHEDULES}add/", schedule_form("Theirs", fabrikam))
    assert "Select a valid choice" in refused_other.content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        assert ops.post(f"{SCHEDULES}add/", schedule_form("Ours", contoso)).status_code == 302
    ours = ExportSchedule.objects.get()
    assert (ours.name, ours.tenant, ours.created_by.username) == ("Ours", contoso, "ops")
    [row] = AuditEvent.objects.filter(action="export_schedule.created")
    assert (row.tenant_id, row.actor, row.detail["scope"]["domain"]) == (
        contoso.pk,
        "ops",
        "contoso.onmicrosoft.com",
    )

    root = client_for(staff_user("root", superuser=True))
    index = root.get("/").content.decode()
    assert f'href="{SCHEDULES}"' in index and f'href="{FILES}"' in index
    with django_capture_on_commit_callbacks(execute=True):
        assert (
            root.post(f"{SCHEDULES}add/", schedule_form("Everything", frequency="monthly")).status_code == 302
        )
        theirs = root.post(f"{SCHEDULES}add/", schedule_form("Theirs", fabrikam))
        assert theirs.status_code == 302
        changed = root.post(f"{SCHEDULES}{ours.pk}/change/", schedule_form("Ours", contoso, format="jsonl"))
        assert changed.status_code == 302
    fleet = ExportSchedule.objects.get(name="Everything")
    assert fleet.tenant is None
    [change] = AuditEvent.objects.filter(action="export_schedule.changed")
    assert change.detail["changed"] == ["format"] and change.actor == "root"

    listing = ops.get(SCHEDULES).content.decode()
    assert "Ours" in listing and "Everything" not in listing and "Theirs" not in listing
    assert ops.get(f"{SCHEDULES}{fleet.pk}/change/").status_code == 404
    theirs_pk = ExportSchedule.objects.get(name="Theirs").pk
    assert ops.get(f"{SCHEDULES}{theirs_pk}/change/").status_code == 404
    assert ops.post(f"{SCHEDULES}{theirs_pk}/change/", schedule_form("Theirs", contoso)).status_code == 404
    assert ExportSchedule.objects.get(pk=theirs_pk).tenant == fabrikam


def _download(client, url: str) -> bytes:
    response = client.get(url)
    assert response.status_code == 200, response.status_code
    assert isinstance(response, StreamingHttpResponse)
    return b"".join(response.streaming_content)


def test_the_console_lists_and_serves_only_the_users_exports(contoso, fabrikam, export_dir):
    new_schedule("Ours", contoso, at="2025-01-01T08:00Z")
    new_schedule("Theirs", fabrikam, at="2025-01-01T08:00Z")
    new_schedule("Everyone", None, at="2025-01-01T08:00Z")
    staff_row(contoso, "2025-01-01T10:00Z")
    staff_row(fabrikam, "2025-01-01T10:00Z", note="fabrikam-only")
    ours, theirs, fleet = run_due("2025-01-02T00:00Z").written
    ops = client_for(exporter("ops", contoso))

    listing = ops.get(FILES).content.decode()
    assert "Ours" in listing and "Theirs" not in listing and "Everyone" not in listing
    assert f"{FILES}{ours.pk}/download/" in listing and f"{FILES}{ours.pk}/manifest/" in listing
    assert _download(ops, f"{FILES}{ours.pk}/download/") == Path(ours.path).read_bytes()
    assert json.loads(_download(ops, f"{FILES}{ours.pk}/manifest/"))["file"]["sha256"] == ours.sha256
    for other in (theirs, fleet):
        for what in ("download", "manifest", "change"):
            assert ops.get(f"{FILES}{other.pk}/{what}/").status_code == 404
    assert ops.get(f"{FILES}../../etc/passwd/download/").status_code == 404
    assert ops.post(f"{FILES}{ours.pk}/download/").status_code == 405

    root = client_for(staff_user("root", superuser=True))
    assert b"fabrikam-only" in _download(root, f"{FILES}{theirs.pk}/download/")
    # Only files recorded in a row and lying under AUDIT_EXPORT_DIR are served, whatever the row says.
    outside = export_dir.parent / "outside.csv"
    outside.write_text("not evidence")
    for path in (str(outside), str(export_dir / "ours" / ".." / ".." / "outside.csv"), "/etc/passwd"):
        ExportFile.objects.filter(pk=ours.pk).update(path=path)
        assert root.get(f"{FILES}{ours.pk}/download/").status_code == 404
    (export_dir / "link.csv").symlink_to(outside)
    ExportFile.objects.filter(pk=ours.pk).update(path=str(export_dir / "link.csv"))
    assert root.get(f"{FILES}{ours.pk}/download/").status_code == 404


# --- rq-scheduler ----------------------------------------------------------------------------------


def test_the_export_job_is_registered_once_hourly_and_runs(queue, contoso):
    import django_rq

    ensure(EXPORT_SCHEDULE_ID)
    ensure(EXPORT_SCHEDULE_ID)

    jobs = [job for job in django_rq.get_scheduler("default").get_jobs() if job.id == EXPORT_SCHEDULE_ID]
    assert len(jobs) == 1 and jobs[0].meta["interval"] == 3600
    assert jobs[0].func_name == "migrations_engine.exports.tasks.export_due_job"
    new_schedule("Job", contoso, at="2025-01-01T08:00Z")
    with travel("2025-01-02T00:00Z"):
        assert export_due_job() == "1 export written"


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_an_export_is_written_in_pieces_of_about_64_kb(fmt):
    """A response or file gets one write per ~64 KB, not one per row; the pieces join to the same rows."""
    rows = []
    for n in range(1, 3001):
        evidence = {field: None for field in EVIDENCE_FIELDS}
        evidence.update(
            chain="fleet", seq=n, kind="staff_action", actor="=cmd|' /C calc'!A0", action="x" * 40
        )
        evidence.update(created_at=datetime.datetime(2025, 1, 2, tzinfo=datetime.UTC), detail={"n": n})
        evidence.update(step="", method="", path="", target="", outcome="", request_id="", error="")
        evidence.update(client_request_id="")
        rows.append((n, *(evidence[f] for f in EVIDENCE_FIELDS), GENESIS_HASH, "f" * 64, None, None))
    pieces = list(iter_chunks(fmt, rows))
    assert len(pieces) > 5
    assert all(len(piece) >= CHUNK_CHARS for piece in pieces[:-1])
    assert all(len(piece) < CHUNK_CHARS + 2000 for piece in pieces)  # about one row past the mark
    text = "".join(pieces)
    back = list(read_rows(io.StringIO(text, newline="" if fmt == "csv" else "\n"), fmt))
    assert [r["seq"] for r in back] == list(range(1, 3001))
    assert {r["actor"] for r in back} == {"=cmd|' /C calc'!A0"}  # escaped in the file, read back whole
    if fmt == "csv":
        assert "\"'=cmd|' /C calc'!A0\"" in text
    out = io.StringIO()
    assert write_rows(out, fmt, iter(rows)) == 3000 and out.getvalue() == text
