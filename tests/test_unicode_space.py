"""No look-alike pools from Unicode spaces (issue 14, section 5): the database's ctype is C, so
[[:space:]] is ASCII only and 'X-USD' + U+00A0 was a second pool that looks like 'X-USD'.
trade_records' constraints (migration 0011), the import (both its fast and its precise path) and
fifo.trades' problem column for an adopted table refuse a space of any kind before or after
order_id, symbol or account, naming line, field and code point; spaces inside stay allowed."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import psycopg
import pytest

from fifo_db import migrate
from fifo_db.adopt import adopt
from fifo_db.cli import main
from fifo_db.errors import FifoError
from fifo_db.importer import InvalidRows, import_csv
from fifo_db.install import MIGRATIONS_DIR, install
from tests import bottrader
from tests.bottrader import bot, bot_template  # noqa: F401

SPACES = ["\u00a0", "\u3000", "\u2000", "\u2005", "\u200a", "\u2028", "\u2029", "\ufeff", "\u0085",
          "\u200b", "\u202f", "\u205f", "\u1680", "\u2060", "\t", "\n", "\r", "\x0b", "\x0c", "\x1f", " "]
FIELDS = ["order_id", "symbol", "account"]
HEADER = "order_id,account,symbol,side,size,price,total_fees,order_time"


def insert(db, **changes):
    row = {"order_id": "o1", "account": "default", "symbol": "X-USD", **changes}
    db.execute("INSERT INTO trade_records (order_id, account, symbol, side, size, price, total_fees, order_time) "
               "VALUES (%(order_id)s, %(account)s, %(symbol)s, 'buy', 1, 10, 0, '2025-01-01 00:00+00')", row)


@pytest.mark.parametrize("field", FIELDS)
def test_the_table_refuses_every_space_before_or_after_and_keeps_those_inside(db, field):
    base = {"order_id": "o1", "symbol": "X-USD", "account": "acct"}[field]
    refused = 0
    for space in SPACES:
        for value in (space + base, base + space, space + base + space):
            with pytest.raises(psycopg.errors.CheckViolation, match=f"{field}_has_no_surrounding_space"):
                insert(db, **{field: value})
            refused += 1
    assert refused == 3 * len(SPACES)
    for i, space in enumerate(SPACES):   # inside a value: allowed, as ASCII spaces inside always were
        insert(db, **{field: base[:1] + space + base[1:], **({"order_id": f"in{i}"} if field != "order_id" else {})})
    assert db.execute("SELECT count(*) FROM trade_records").fetchone()[0] == len(SPACES)


def write(tmp_path, *lines) -> Path:
    path = tmp_path / f"t{uuid.uuid4().hex[:6]}.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize("precise", [False, True], ids=["fast path", "precise path"])
def test_import_names_line_field_and_code_point(db, tmp_path, precise):
    rows = ["g1,acct,X-USD,buy,2,10,0,2025-01-01T10:00:00Z",
            "w1,acct,X-USD\u00a0,buy,1,10,0,2025-01-01T10:00:00Z",
            "\ufeffw2,acct,X-USD,buy,1,10,0,2025-01-01T10:00:00Z",
            "w3,acct\u3000,X-USD,buy,1,10,0,2025-01-01T10:00:00Z",
            "w4\u2028,acct,X-USD,buy,1,10,0,2025-01-01T10:00:00Z",
            "in1,my\u00a0acct,X\u2005USD,buy,1,10,0,2025-01-01T10:00:00Z"]   # inside: fine
    extra = ["c1,acct,X-USD,buy,1.2.3,10,0,2025-01-01T10:00:00Z"] if precise else []
    with pytest.raises(InvalidRows) as info:
        import_csv(db, write(tmp_path, HEADER, *rows, *extra))
    expected = [(3, "symbol 'X-USD\u00a0' has leading or trailing whitespace (U+00A0)"),
                (4, "order_id '\ufeffw2' has leading or trailing whitespace (U+FEFF)"),
                (5, "account 'acct\u3000' has leading or trailing whitespace (U+3000)"),
                (6, "order_id 'w4\u2028' has leading or trailing whitespace (U+2028)")]
    if precise:
        expected.append((8, "size '1.2.3' is not a number"))
    assert info.value.result.rejected == expected
    assert db.execute("SELECT count(*) FROM trade_records").fetchone()[0] == 0
    # without the bad rows the inner spaces load
    assert import_csv(db, write(tmp_path, HEADER, rows[0], rows[-1])).inserted == 2


def test_import_cli_says_it_in_one_line_per_row(db, dsn, tmp_path, capsys):
    path = write(tmp_path, HEADER, "w1,acct,\u3000X-USD,buy,1,10,0,2025-01-01T10:00:00Z")
    assert main(["--dsn", dsn, "import", str(path)]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[0] == f"{path}: line 2: symbol '\u3000X-USD' has leading or trailing whitespace (U+3000)"
    assert err[1].startswith("fifo-db: error: ") and len(err) == 2


def test_the_migration_names_existing_rows_and_changes_nothing(db, tmp_path):
    """A database at the migration before 0011 holding a symbol with U+00A0: install stops, names
    the row, and changes nothing; trimmed as the hint says, the same install goes through."""
    name = f"fifo_space_{uuid.uuid4().hex[:10]}"
    early = tmp_path / "migrations"
    early.mkdir()
    for path in sorted(MIGRATIONS_DIR.glob("*.sql")):
        if path.name < "0011":
            shutil.copy(path, early / path.name)
    db.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
    try:
        with psycopg.connect(db.info.dsn, dbname=name, autocommit=True) as old:
            with old.transaction():
                old.execute("CREATE SCHEMA fifo")
                old.execute("SET LOCAL search_path = fifo, pg_catalog")
                migrate.apply(old, str(early))
            for oid, symbol in (("good", "X-USD"), ("nbsp", "X-USD\u00a0"), ("bom", "\ufeffX-USD")):
                old.execute("INSERT INTO trade_records (order_id, symbol, side, size, price, order_time) "
                            "VALUES (%s, %s, 'buy', 1, 1, '2025-01-01+00')", (oid, symbol))
            before = old.execute("SELECT migration_id FROM fifo._yoyo_migration ORDER BY 1").fetchall()
            with pytest.raises(FifoError) as err:
                install(old)
            message = str(err.value)
            assert message.startswith(
                "trade_records holds 2 row(s) with a Unicode space around order_id, symbol or account: "
                "order_id 'nbsp': symbol begins or ends with a space character (e.g. U+00A0, U+3000, U+FEFF); "
                "order_id 'bom': symbol begins or ends with a space character"), message
            assert "SQLSTATE 23514" in message and "regexp_replace(symbol" in message
            assert old.execute("SELECT migration_id FROM fifo._yoyo_migration ORDER BY 1").fetchall() == before
            assert old.execute("SELECT count(*) FROM trade_records").fetchone()[0] == 3
            old.execute("UPDATE trade_records SET symbol = 'X-USD' WHERE order_id IN ('nbsp', 'bom')")
            assert "0011.unicode-space-and-bounded-queues" in install(old).migrations_applied
            with pytest.raises(psycopg.errors.CheckViolation):
                old.execute("UPDATE trade_records SET symbol = 'X-USD\u2003' WHERE order_id = 'good'")
    finally:
        db.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_an_adopted_table_names_the_rows_in_the_problem_column(bot):  # noqa: F811
    engine = bottrader.engine_for(bot.conn)
    try:
        bottrader.upsert(engine, [bottrader.trade("nb-1", "BTC-USD\u00a0", "buy", 1.0, 2.0, 0.0, bot.base),
                                  bottrader.trade("\u3000id-2", "ETH-USD", "buy", 1.0, 2.0, 0.0, bot.base)])
    finally:
        engine.dispose()
    adopt(bot.conn)
    assert bot.conn.execute("SELECT order_id, problem FROM fifo.trades WHERE problem IS NOT NULL "
                            "ORDER BY order_id").fetchall() == [
        ("nb-1", "symbol 'BTC-USD\u00a0' begins or ends with a space character"),
        ("\u3000id-2", "order_id '\u3000id-2' begins or ends with a space character")]
