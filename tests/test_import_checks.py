"""trade_records' surrounding-space CHECKs as migration 0021 writes them (issue 16: the import's
INSERT evaluates them on every row): a printable ASCII first and last character skips the regex
of migration 0011, any other value gets that regex, so exactly the same values are refused; and
the import's fast path leans on either form."""

from __future__ import annotations

import psycopg
import pytest

from fifo_db import importer
from tests.test_unicode_space import SPACES

FIELDS = ["order_id", "symbol", "account"]
# 0011's pattern, as pg_get_constraintdef shows it
PATTERN = importer._SPACE_PATTERN
BASES = ["X-USD", "o", "~", "!", "a b", "\u00e9t\u00e9", "\u00e9", "x\u00e9", "\u00e9x", "\u4e2d\u6587",
         "\U0001f600", "a\U0001f600", "\x7f", "a\x7f", "\x01a", "a\x1b"]


def values() -> list[str]:
    out = ["", " ", "  "]
    for base in BASES:
        out.append(base)
        for space in SPACES:
            out += [space + base, base + space, space + base + space, base[:1] + space + base[1:]]
    return out


@pytest.mark.parametrize("field", FIELDS)
def test_the_space_check_refuses_exactly_what_0011s_regex_refuses(db, field):
    """Every value (spaces of every kind before, after and inside; empty; one character; non-ASCII and
    control characters first or last) is refused by the table exactly when 0011's regex matches it."""
    assert db.execute("SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = "
                      "'public.trade_records'::regclass AND conname = %s",
                      (f"{field}_has_no_surrounding_space",)).fetchone()[0] == importer._SPACE_CHECK.format(field)
    refused = passed = 0
    for i, value in enumerate(values()):
        row = {"order_id": f"o{i}", "account": "acct", "symbol": "X-USD", field: value}
        expect_refused = db.execute("SELECT %s ~ %s", (value, PATTERN)).fetchone()[0]
        try:
            with db.transaction():
                db.execute("INSERT INTO trade_records (order_id, account, symbol, side, size, price, order_time) "
                           "VALUES (%(order_id)s, %(account)s, %(symbol)s, 'buy', 1, 1, '2025-01-01 00:00+00')", row)
            refused_now = False
        except psycopg.errors.CheckViolation as exc:
            refused_now = exc.diag.constraint_name in (f"{field}_has_no_surrounding_space", f"{field}_is_not_empty")
            assert refused_now, exc
        assert refused_now == (expect_refused or value == ""), repr(value)
        refused += refused_now
        passed += not refused_now
    # refused: '', ' ', '  ', and a space before, after, or both, of each base; a space "inside" a
    # one-character base is after it. Passed: each base, and a space inside a longer one
    single = sum(len(b) == 1 for b in BASES)
    assert (refused, passed) == (3 + len(SPACES) * (3 * len(BASES) + single), len(BASES) + len(SPACES) * (len(BASES) - single))


def test_the_fast_path_leans_on_0011s_form_too(db):
    """A database not upgraded to 0021 yet has 0011's definitions: they refuse the same rows, so the
    fast path's short WHERE still stands on them."""
    db.execute("ALTER TABLE trade_records " + ", ".join(
        f"DROP CONSTRAINT {f}_has_no_surrounding_space, "
        f"ADD CONSTRAINT {f}_has_no_surrounding_space CHECK ({f} !~ '{PATTERN}')" for f in FIELDS))
    defs = {r[0] for r in db.execute("SELECT pg_get_constraintdef(oid) FROM pg_constraint "
                                     "WHERE conrelid = 'public.trade_records'::regclass AND contype = 'c'")}
    assert {importer._SPACE_CHECK_0011.format(f) for f in FIELDS} <= defs
    assert not {importer._SPACE_CHECK.format(f) for f in FIELDS} & defs
    with db.cursor() as cur:
        assert importer._table_refuses(cur)
