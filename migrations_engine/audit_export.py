"""Writing audit rows as CSV or JSON lines, one row at a time: shared by `export_audit` and the console.

Callers pass an iterator of `values_list(*COLUMNS)` tuples (read in chunks with `.iterator()`), so memory
stays flat however many rows match. `request_body` was redacted when the row was written.
"""

from __future__ import annotations

import csv
import datetime
import json
from collections.abc import Iterable, Iterator
from typing import Any

from migrations_engine.models.audit import EVIDENCE_FIELDS, canonical_json

FORMATS = ("csv", "jsonl")
COLUMNS = ("id", *EVIDENCE_FIELDS, "prev_hash", "row_hash")
JSON_COLUMNS = {"request_body", "before", "after", "detail"}
CONTENT_TYPES = {"csv": "text/csv; charset=utf-8", "jsonl": "application/x-ndjson; charset=utf-8"}


def _csv_cell(column: str, value: Any) -> Any:
    if value is None:
        return ""
    if column in JSON_COLUMNS:
        return canonical_json(value)
    if isinstance(value, datetime.datetime):
        return value.isoformat()
    return value


def _json_value(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime.datetime) else value


class _Line:
    """A file-like object whose `write` hands the text back, so `csv.writer` yields lines."""

    def write(self, value: str) -> str:
        return value


def iter_lines(fmt: str, rows: Iterable[tuple]) -> Iterator[str]:
    """The export as text lines: a CSV header and one line per row, or one JSON object per row."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    if fmt == "csv":
        writer = csv.writer(_Line())
        yield writer.writerow(COLUMNS)
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
