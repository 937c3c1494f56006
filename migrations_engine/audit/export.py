"""Writing audit rows as CSV or JSON lines, one row at a time: shared by `export_audit`, the console and
scheduled exports; and reading them back (`read_rows`) to verify an export's row hashes.

Callers pass an iterator of `values_list(*COLUMNS)` tuples (read in chunks with `.iterator()`), so memory
stays flat however many rows match. `request_body` was redacted when the row was written.

A CSV cell is text: None is an empty cell, JSON columns hold their canonical JSON, datetimes their ISO
form, and a text cell a spreadsheet would run as a formula gets a leading quote (`msp_console.csv_safe`:
actors, targets and errors come from customer tenants and staff). `read_rows` undoes exactly that, column
by column, so `compute_row_hash` over a row read back gives the hash it was written with (string columns
are never None, so an empty cell there is "").
"""

from __future__ import annotations

import csv
import datetime
import json
import uuid
from collections.abc import Iterable, Iterator
from typing import Any

from migrations_engine.audit.models import EVIDENCE_FIELDS, canonical_json
from msp_console.csv_safe import ESCAPING, SafeWriter, is_escaped, unescape_cell

FORMATS = ("csv", "jsonl")
# The row as stored (hashed), then who the tenant is for people reading the file: `tenant_id` is the
# console's row number, `tenant_entra_id` and `tenant_domain` the customer's Entra tenant id and domain.
# They are not in the hash (a tenant's domain may change; its rows must still verify).
STORED_COLUMNS = ("id", *EVIDENCE_FIELDS, "prev_hash", "row_hash")
COLUMNS = (*STORED_COLUMNS, "tenant_entra_id", "tenant_domain")
# What callers pass to `values_list`, column for column.
VALUES = (*STORED_COLUMNS, "tenant__tenant_id", "tenant__primary_domain")
JSON_COLUMNS = {"request_body", "before", "after", "detail"}
# Integer columns; all but `id` and `seq` may be NULL (an empty CSV cell).
INT_COLUMNS = {"id", "seq", "tenant_id", "run_id", "item_id", "intent_id", "http_status"}
DATETIME_COLUMNS = {"created_at"}
CONTENT_TYPES = {"csv": "text/csv; charset=utf-8", "jsonl": "application/x-ndjson; charset=utf-8"}


def _csv_cell(column: str, value: Any) -> Any:
    if value is None:
        return ""
    if column in JSON_COLUMNS:
        return canonical_json(value)
    if isinstance(value, datetime.datetime):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


def _json_value(value: Any) -> Any:
    if isinstance(value, uuid.UUID):
        return str(value)
    return value.isoformat() if isinstance(value, datetime.datetime) else value


def iter_lines(fmt: str, rows: Iterable[tuple]) -> Iterator[str]:
    """The export as text lines: a CSV header and one line per row, or one JSON object per row."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    if fmt == "csv":
        writer = SafeWriter()
        yield writer.writeheader(COLUMNS)
        for row in rows:
            yield writer.writerow([_csv_cell(c, v) for c, v in zip(COLUMNS, row, strict=True)])
    else:
        for row in rows:
            record = {c: _json_value(v) for c, v in zip(COLUMNS, row, strict=True)}
            yield json.dumps(record, ensure_ascii=False, default=str) + "\n"


def write_rows(out, fmt: str, rows: Iterable[tuple]) -> int:
    """Write the export to `out` (anything with `write`); returns how many audit rows were written."""
    lines = 0
    for line in iter_lines(fmt, rows):
        out.write(line)
        lines += 1
    return lines - 1 if fmt == "csv" else lines


class ExportFormatError(ValueError):
    """An export file that cannot be read back as audit rows (wrong header, bad cell, broken line)."""


def _from_csv_cell(column: str, cell: str, escaping: str | None) -> Any:
    # Integer cells were written as numbers, never escaped; every other cell was text.
    if escaping is not None and column not in INT_COLUMNS:
        if not is_escaped(cell):
            raise ValueError(f"{column} starts like a formula but is not escaped as {escaping}")
        cell = unescape_cell(cell)
    if column in JSON_COLUMNS or column in INT_COLUMNS or column in DATETIME_COLUMNS:
        if cell == "":
            return None
        if column in JSON_COLUMNS:
            return json.loads(cell)
        if column in INT_COLUMNS:
            return int(cell)
        return datetime.datetime.fromisoformat(cell)
    return cell


def _from_json_value(column: str, value: Any) -> Any:
    if column in DATETIME_COLUMNS and value is not None:
        return datetime.datetime.fromisoformat(value)
    return value


def read_rows(fh, fmt: str, *, csv_escaping: str | None = ESCAPING) -> Iterator[dict[str, Any]]:
    """The rows of an export file, one dict per row with the values as `values_list(*VALUES)` gave them
    (keyed by COLUMNS). Files written before the tenant's Entra id and domain were added (STORED_COLUMNS
    only) read the same, without those two keys.

    Open CSV with `newline=""` and JSON lines with `newline="\n"` (a JSON string may hold U+2028 or
    U+0085, which other line splitting would break on). `csv_escaping` is how the CSV's cells were
    escaped: `iter_lines`' way by default, None for files written before cells were escaped (a cell not
    in the stated form is an error: someone took the quote off). Raises `ExportFormatError` naming the row.
    """
    if csv_escaping not in (None, ESCAPING):
        raise ValueError(f"unknown CSV cell escaping {csv_escaping!r}")
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    if fmt == "csv":
        reader = csv.reader(fh)
        header = next(reader, None)
        columns = tuple(header or ())
        if columns not in (COLUMNS, STORED_COLUMNS):
            raise ExportFormatError("the CSV header is not the audit export's columns")
        for number, cells in enumerate(reader, start=1):
            if len(cells) != len(columns):
                raise ExportFormatError(f"row {number}: {len(cells)} cells, expected {len(columns)}")
            try:
                yield {c: _from_csv_cell(c, v, csv_escaping) for c, v in zip(columns, cells, strict=True)}
            except ValueError as exc:
                raise ExportFormatError(f"row {number}: unreadable cell ({exc})") from exc
        return
    for number, line in enumerate(fh, start=1):
        try:
            record = json.loads(line)
        except ValueError as exc:
            raise ExportFormatError(f"row {number}: not a JSON object ({exc})") from exc
        if not isinstance(record, dict) or tuple(record) not in (COLUMNS, STORED_COLUMNS):
            raise ExportFormatError(f"row {number}: the keys are not the audit export's columns")
        try:
            yield {c: _from_json_value(c, record[c]) for c in record}
        except (TypeError, ValueError) as exc:
            raise ExportFormatError(f"row {number}: unreadable value ({exc})") from exc
