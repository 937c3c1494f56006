"""Audit CSVs (the console's download, the fleet action, `export_audit`, scheduled exports) never hand a
spreadsheet a formula from a UPN or an actor; a scheduled CSV export says how its cells were escaped and
still verifies, and a cell that lost its quote is caught."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from migrations_engine.audit import writer as audit
from migrations_engine.exports.verify import verify_export
from migrations_engine.models import ExportFile
from msp_console.csv_safe import unescape_cell
from tests.migrations_engine.console_helpers import client_for, staff_user
from tests.migrations_engine.test_audit import ctx_for, make_tenant, write
from tests.migrations_engine.test_scheduled_exports import manifest_of, new_schedule, run_due, travel
from tests.test_csv_safe import FORMULAS

AUDIT_CHANGELIST = "/migrations_engine/auditevent/"
TENANT_CHANGELIST = "/tenants/customertenant/"
HARMLESS = "contoso"


@pytest.fixture(autouse=True)
def export_dir(settings, tmp_path) -> Path:
    settings.AUDIT_EXPORT_DIR = tmp_path / "exports"
    settings.TIME_ZONE = "UTC"
    return settings.AUDIT_EXPORT_DIR


@pytest.fixture
def contoso(db):
    return make_tenant("contoso")


def record_formulas(tenant) -> None:
    """Per formula: a Graph write to a user the tenant named so (target), and a staff action by an actor
    named so; and one harmless write whose outcome has an HTTP status (a number)."""
    ctx = ctx_for(tenant, run_id=1)
    audit.record_intents(ctx, [write(n, target=formula) for n, formula in enumerate(FORMULAS.values())])
    for formula in FORMULAS.values():
        audit.record_staff_action(actor=formula, action="note", tenant_id=tenant.pk, detail={"count": -5})
    [harmless] = audit.record_intents(ctx, [write(99, target=HARMLESS)])
    audit.record_outcome(ctx, audit.WriteOutcome(harmless, "failed", http_status=409, error="-1 retries"))


def assert_escaped(rows: list[dict], where: str) -> None:
    targets = {row["target"] for row in rows}
    actors = {row["actor"] for row in rows}
    for prefix, formula in FORMULAS.items():
        assert "'" + formula in targets, (where, prefix, targets)
        assert "'" + formula in actors, (where, prefix, actors)
        assert formula not in targets | actors, (where, prefix)
    outcome = next(row for row in rows if row["outcome"] == "failed")
    assert (outcome["target"], outcome["http_status"], outcome["error"]) == (HARMLESS, "409", "'-1 retries")
    assert json.loads(next(row for row in rows if row["action"] == "note")["detail"]) == {"count": -5}


def csv_rows(text: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(text, newline="")))


def download(client, url: str, data: dict | None = None) -> str:
    response = client.post(url, data) if data else client.get(url)
    assert response.status_code == 200, response.status_code
    return b"".join(response.streaming_content).decode()


def test_the_console_and_the_cli_audit_csvs_escape_cells_that_start_like_a_formula(contoso, tmp_path):
    record_formulas(contoso)
    client = client_for(staff_user("root", superuser=True))

    assert_escaped(csv_rows(download(client, f"{AUDIT_CHANGELIST}export/csv/")), "changelist export")
    action = {"action": "export_audit", "_selected_action": [contoso.pk]}
    assert_escaped(csv_rows(download(client, TENANT_CHANGELIST, action)), "fleet action")
    target = tmp_path / "audit.csv"
    call_command("export_audit", tenant=str(contoso.tenant_id), output=str(target), stderr=io.StringIO())
    with target.open(encoding="utf-8", newline="") as fh:  # a cell's own "\r" stays in the cell
        assert_escaped(list(csv.DictReader(fh)), "export_audit")


# --- scheduled exports -----------------------------------------------------------------------------


@pytest.fixture
def formula_export(contoso) -> ExportFile:
    new_schedule("Formulas", contoso, at="2025-01-01T08:00Z")
    with travel("2025-01-01T10:00Z"):
        record_formulas(contoso)
    [export] = run_due("2025-01-02T00:05Z").written
    return export


def _forge(export: ExportFile, data: bytes, **manifest_changes) -> None:
    """Replace the data file and forge the manifest's sha256 and size to match, as a forger would."""
    Path(export.path).write_bytes(data)
    manifest = manifest_of(export)
    manifest["file"].update(sha256=hashlib.sha256(data).hexdigest(), size=len(data))
    manifest.update(manifest_changes)
    for key in [k for k, v in manifest_changes.items() if v is None]:
        del manifest[key]
    Path(export.manifest_path).write_text(json.dumps(manifest))


def _unescaped(export: ExportFile) -> bytes:
    """The data file as it was written before cells were escaped: every cell raw."""
    with open(export.path, encoding="utf-8", newline="") as fh:
        rows = [[unescape_cell(cell) for cell in cells] for cells in csv.reader(fh)]
    out = io.StringIO()
    csv.writer(out).writerows(rows)
    return out.getvalue().encode()


def test_a_scheduled_csv_export_escapes_its_cells_names_the_escaping_and_verifies(formula_export):
    manifest = manifest_of(formula_export)
    assert manifest["csv_cell_escaping"] == "owasp-leading-quote"
    with open(formula_export.path, encoding="utf-8", newline="") as fh:
        assert_escaped(list(csv.DictReader(fh)), "scheduled export")

    for offline in (False, True):
        verdict = verify_export(formula_export.manifest_path, offline=offline)
        assert verdict.ok and verdict.rows == manifest["rows"] == 14, verdict.problem
    out = io.StringIO()
    call_command("verify_export", formula_export.manifest_path, stdout=out)
    assert out.getvalue().startswith("OK: ")


def test_a_cell_that_lost_its_quote_or_changed_fails_verification(formula_export):
    escaped = Path(formula_export.path).read_bytes()
    _forge(formula_export, _unescaped(formula_export))
    for offline in (False, True):
        verdict = verify_export(formula_export.manifest_path, offline=offline)
        assert not verdict.ok and "is not escaped as owasp-leading-quote" in verdict.problem, verdict.problem
    with pytest.raises(CommandError, match="FAILED: "):
        call_command("verify_export", formula_export.manifest_path, stdout=io.StringIO())

    formula = FORMULAS["="].replace('"', '""').encode()
    _forge(formula_export, escaped.replace(formula, formula.replace(b"x.example", b"y.example"), 1))
    verdict = verify_export(formula_export.manifest_path)
    assert not verdict.ok and "hash mismatch" in verdict.problem, verdict.problem


def test_a_manifest_from_before_escaping_verifies_its_raw_cells_the_old_way(formula_export):
    escaped = Path(formula_export.path).read_bytes()
    _forge(formula_export, _unescaped(formula_export), csv_cell_escaping=None)
    assert "csv_cell_escaping" not in manifest_of(formula_export)
    verdict = verify_export(formula_export.manifest_path)
    assert verdict.ok and verdict.rows == 14, verdict.problem

    # Read the old way, an escaped cell keeps its quote and no longer hashes to what was written.
    _forge(formula_export, escaped, csv_cell_escaping=None)
    verdict = verify_export(formula_export.manifest_path)
    assert not verdict.ok and "hash mismatch" in verdict.problem, verdict.problem


def test_an_unknown_escaping_or_one_on_json_lines_is_refused(formula_export, contoso):
    _forge(formula_export, Path(formula_export.path).read_bytes(), csv_cell_escaping="backslash")
    verdict = verify_export(formula_export.manifest_path)
    assert not verdict.ok and "unknown csv_cell_escaping 'backslash'" in verdict.problem, verdict.problem

    new_schedule("Formulas jsonl", contoso, at="2025-01-01T08:00Z", fmt="jsonl")
    [jsonl] = run_due("2025-01-02T00:10Z").written
    assert "csv_cell_escaping" not in manifest_of(jsonl)
    assert verify_export(jsonl.manifest_path).ok
    _forge(jsonl, Path(jsonl.path).read_bytes(), csv_cell_escaping="owasp-leading-quote")
    verdict = verify_export(jsonl.manifest_path)
    assert not verdict.ok and "for a jsonl export" in verdict.problem, verdict.problem
