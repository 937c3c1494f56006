"""Writing audit rows as CSV or JSON lines, in pieces of about 64 KB: shared by `export_audit`, the
console and scheduled exports; and reading them back (`read_rows`) to verify an export's row hashes.

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
import io
import json
import uuid
from collections.abc import Iterable, Iterator
from typing import Any

from migrations_engine.audit.models import EVIDENCE_FIELDS, canonical_json
from msp_console.csv_safe import ESCAPING, SafeWriter, escape_cell, is_escaped, unescape_cell

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
# About 64 KB a piece: big enough that writes cost nothing per row, small enough to stream steadily.
CHUNK_CHARS = 64 * 1024
CONTENT_TYPES = {"csv": "text/csv; charset=utf-8", "jsonl": "application/x-ndjson; charset=utf-8"}


def _json_cell(value: Any) -> str:
    return "" if value is None else canonical_json(value)


def _datetime_cell(value: Any) -> str:
    return "" if value is None else value.isoformat()


def _text_cell(value: Any) -> Any:
    # Text a spreadsheet would run as a formula gets its leading quote (csv_safe); numbers stay numbers.
    if value is None:
        return ""
    return escape_cell(str(value) if isinstance(value, uuid.UUID) else value)


def _int_cell(value: Any) -> Any:
    return "" if value is None else value


def _csv_converters() -> list:
    """One converter per column, chosen once (not a type test per cell)."""
    converters = []
    for column in COLUMNS:
        if column in JSON_COLUMNS:
            converters.append(lambda v: escape_cell(_json_cell(v)))
        elif column in DATETIME_COLUMNS:
            converters.append(_datetime_cell)
        elif column in INT_COLUMNS:
            converters.append(_int_cell)
        else:
            converters.append(_text_cell)
    return converters


def _json_value(value: Any) -> Any:
    if isinstance(value, uuid.UUID):
        return str(value)
    return value.isoformat() if isinstance(value, datetime.datetime) else value


def iter_chunks(fmt: str, rows: Iterable[tuple], *, chunk_chars: int = CHUNK_CHARS) -> Iterator[str]:
    """The export as text in pieces of about `chunk_chars` characters (a CSV header first, then rows;
    or one JSON object a line): each row is converted and encoded once, and a response or file gets
    a few writes per megabyte instead of one per row. Memory: one piece."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    buffer = io.StringIO()
    if fmt == "csv":
        SafeWriter(buffer).writeheader(COLUMNS)
        # The converters escape formula-like cells already, so a plain writer with SafeWriter's quoting.
        writerow = csv.writer(buffer, quoting=csv.QUOTE_NONNUMERIC).writerow
        converters = _csv_converters()

        def write(row: tuple) -> None:
            writerow([convert(value) for convert, value in zip(converters, row, strict=True)])

    else:
        dumps = json.JSONEncoder(ensure_ascii=False, default=str).encode

        def write(row: tuple) -> None:
            buffer.write(dumps({c: _json_value(v) for c, v in zip(COLUMNS, row, strict=True)}))
            buffer.write("\n")

    for row in rows:
        write(row)
        if buffer.tell() >= chunk_chars:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    if buffer.tell():
        yield buffer.getvalue()


def write_rows(out, fmt: str, rows: Iterable[tuple]) -> int:
    """Write the export to `out` (anything with `write`) in pieces; returns how many audit rows were
    written."""
    counted = _Counted(rows)
    for piece in iter_chunks(fmt, counted):
        out.write(piece)
    return counted.n


class _Counted:
    """Rows passed through, counted."""

    def __init__(self, rows: Iterable[tuple]) -> None:
        self.rows, self.n = iter(rows), 0

    def __iter__(self) -> Iterator[tuple]:
        for row in self.rows:
            self.n += 1
            yield row


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
    escaped: `iter_chunks`' way by default, None for files written before cells were escaped (a cell not
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
