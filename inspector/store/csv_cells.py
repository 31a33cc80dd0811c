"""Spreadsheet-safe CSV for export bundles: RFC 4180 with formula-like cells neutralised (OWASP CSV injection)."""

from __future__ import annotations

import csv
import io
import unicodedata
from typing import Any

# OWASP: a cell starting with one of these is a formula (or hides one) in a spreadsheet. Spreadsheets
# also skip leading blanks and invisible characters and read full-width signs as their ASCII ones.
_FORMULA_START = (
    "=",
    "+",
    "-",
    "@",
    "\t",
    "\r",
    "\n",
    "\0",
    "\uff1d",
    "\uff0b",
    "\uff0d",
    "\uff20",
    "\ufe62",
    "\ufe63",
    "\u2212",
)


def neutralise(value: Any) -> Any:
    """A CSV cell that a spreadsheet shows as text: formula-like strings get a leading '."""
    if isinstance(value, str) and (value.startswith(_FORMULA_START) or _visible(value).startswith(_FORMULA_START)):
        return "'" + value
    return value


def _visible(text: str) -> str:
    """The text without leading whitespace and format characters (zero-width spaces, joiners, BOM)."""
    i = 0
    while i < len(text) and (text[i].isspace() or unicodedata.category(text[i]) in ("Cf", "Zs", "Cc")):
        i += 1
    return text[i:]


def csv_bytes(columns: list[str], rows: list[list[Any]]) -> bytes:
    """A header and rows as UTF-8 CSV bytes, every cell neutralised."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")  # RFC 4180: CRLF, quotes doubled, quoted when needed
    writer.writerow(columns)
    writer.writerows([[neutralise(v) for v in row] for row in rows])
    return buf.getvalue().encode("utf-8")
