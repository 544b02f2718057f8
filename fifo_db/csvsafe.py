"""CSV cells a spreadsheet will not execute (formula injection).

Spreadsheets run a cell that starts with `=`, `+`, `-` or `@` as a formula
(and some treat a leading tab or carriage return the same way), so a symbol
or order_id such as `=HYPERLINK(...)` in a report could run in the reader's
spreadsheet. Such text cells get a leading apostrophe, the OWASP advice,
which spreadsheets show as plain text; numbers (`-10.30`, `+5`, `1e-3`) are
left exactly as they are, so no figure changes.
"""

from __future__ import annotations

import csv
import re

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


def safe_cell(value):
    """`value` as a CSV cell: text that a spreadsheet would execute is prefixed with an apostrophe."""
    if isinstance(value, str) and value.startswith(_FORMULA_START) and not _NUMBER.fullmatch(value):
        return "'" + value
    return value


class SafeWriter:
    """csv.writer whose every cell goes through safe_cell."""

    def __init__(self, f, **kwargs):
        self._w = csv.writer(f, **kwargs)

    def writerow(self, row) -> None:
        self._w.writerow([safe_cell(c) for c in row])

    def writerows(self, rows) -> None:
        for row in rows:
            self.writerow(row)
