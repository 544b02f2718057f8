"""trade_records refuses values that would poison P&L (issue 8, item 2): NaN and Infinity in
size, price and fees; order times outside 1970..2200; surrounding whitespace in order_id, symbol
and account. The migration that adds these rules names existing rows that break them and
changes nothing."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import psycopg
import pytest

from fifo_db import migrate
from fifo_db.errors import FifoError
from fifo_db.install import MIGRATIONS_DIR, install

GOOD = {"order_id": "o1", "account": "default", "symbol": "X", "side": "buy", "size": "1", "price": "10",
        "total_fees": "0", "order_time": "2025-01-01 00:00+00"}


def insert(db, **changes):
    row = {**GOOD, **changes}
    db.execute("INSERT INTO trade_records (order_id, account, symbol, side, size, price, total_fees, order_time) "
               "VALUES (%(order_id)s, %(account)s, %(symbol)s, %(side)s, %(size)s::numeric, %(price)s::numeric, "
               "%(total_fees)s::numeric, %(order_time)s::timestamptz)", row)


@pytest.mark.parametrize("field, value, constraint", [
    ("size", "NaN", "size_is_finite"),
    ("size", "Infinity", "size_is_finite"),
    ("price", "NaN", "price_is_finite"),
    ("price", "Infinity", "price_is_finite"),
    ("total_fees", "NaN", "fees_are_finite"),
    ("total_fees", "Infinity", "fees_are_finite"),
    ("order_time", "1969-12-31 23:59:59+00", "order_time_is_from_1970_to_2200"),
    ("order_time", "2200-01-01 00:00+00", "order_time_is_from_1970_to_2200"),
    ("order_time", "4713-01-01 BC", "order_time_is_from_1970_to_2200"),
    ("order_id", "dup-a ", "order_id_has_no_surrounding_space"),
    ("order_id", "\tdup-a", "order_id_has_no_surrounding_space"),
    ("symbol", " X", "symbol_has_no_surrounding_space"),
    ("account", "acct\n", "account_has_no_surrounding_space"),
])
def test_poisoned_values_are_refused(db, field, value, constraint):
    with pytest.raises(psycopg.errors.CheckViolation, match=constraint):
        insert(db, **{field: value})
    assert db.execute("SELECT count(*) FROM trade_records").fetchone()[0] == 0


def test_the_edges_of_the_rules_are_accepted(db):
    insert(db, order_id="a", order_time="1970-01-01 00:00+00")
    insert(db, order_id="b", order_time="2199-12-31 23:59:59.999999+00")
    insert(db, order_id="c d", symbol="A B-USD", account="my account")   # inner spaces are fine
    assert db.execute("SELECT count(*) FROM trade_records").fetchone()[0] == 3


def test_the_migration_names_existing_bad_rows_and_changes_nothing(db, tmp_path):
    """A database at migration 0002 that already holds poisoned rows: install stops, names them,
    and leaves the database exactly as it was (one transaction)."""
    name = f"fifo_poison_{uuid.uuid4().hex[:10]}"
    early = tmp_path / "migrations"
    early.mkdir()
    for path in sorted(MIGRATIONS_DIR.glob("*.sql"))[:2]:
        shutil.copy(path, early / path.name)
    db.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
    try:
        with psycopg.connect(db.info.dsn, dbname=name, autocommit=True) as old:
            with old.transaction():
                old.execute("CREATE SCHEMA fifo")
                old.execute("SET LOCAL search_path = fifo, pg_catalog")
                assert migrate.apply(old, str(early)) == ["0001.initial-schema", "0002.allocations-in-fifo-schema"]
            for oid, size in (("good", "1"), ("nan-size", "NaN"), ("spaced ", "2")):
                old.execute("INSERT INTO trade_records (order_id, symbol, side, size, price, order_time) "
                            "VALUES (%s, 'X', 'buy', %s::numeric, 1, '2025-01-01+00')", (oid, size))
            before = old.execute("SELECT migration_id FROM fifo._yoyo_migration ORDER BY 1").fetchall()
            with pytest.raises(FifoError) as err:
                install(old)
            message = str(err.value)
            assert "trade_records holds 2 row(s) fifo-db can no longer accept" in message
            assert "order_id 'nan-size': size NaN" in message
            assert "order_id 'spaced ': order_id has surrounding whitespace" in message
            assert "UPDATE trade_records SET order_id = btrim(order_id)" in message
            assert "SQLSTATE 23514" in message
            assert old.execute("SELECT migration_id FROM fifo._yoyo_migration ORDER BY 1").fetchall() == before
            assert old.execute("SELECT to_regproc('public.compute_fifo') IS NULL").fetchone()[0]
            # fixed as the hint says, the same install goes through
            old.execute("DELETE FROM trade_records WHERE order_id = 'nan-size'")
            old.execute("UPDATE trade_records SET order_id = btrim(order_id)")
            assert install(old).migrations_applied[:2] == ["0003.report-currency-and-long-term-rule",
                                                           "0004.trade-records-refuse-poison"]
    finally:
        db.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
