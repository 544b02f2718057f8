"""A forced full recompute writes the version into a fresh table and swaps it in
for the version's partition (sql/035_full_recompute.sql), or, when another
session keeps fifo.allocations in use, replaces the rows in place; either way
the result is the reference FIFO's. Migration 0008 turns an existing
allocations table into the partitioned one, keeping rows, ids and the views
that read it (on PostgreSQL 17 and later with 0008.0 and 0008.z around it).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import psycopg
import pytest

from fifo_db import migrate
from fifo_db.install import MIGRATIONS_DIR
from tests.helpers import add_trades, expected, findings, stored


def partition(db, version: int = 1) -> int | None:
    """OID of the partition holding `version`."""
    row = db.execute(
        "SELECT i.inhrelid::oid FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = 'fifo.allocations'::regclass "
        "AND pg_get_expr(c.relpartbound, c.oid) = format('FOR VALUES IN (%%s)', %s::int)",
        (version,)).fetchone()
    return row[0] if row else None


def trades() -> list[dict]:
    out = []
    for n, symbol in enumerate(["AAA-USD", "BBB-USD", "CCC-USD"]):
        out += [{"order_id": f"{symbol}-b1", "symbol": symbol, "side": "buy", "size": 3, "price": 10 + n,
                 "total_fees": "0.3", "order_time": "2025-01-01"},
                {"order_id": f"{symbol}-b2", "symbol": symbol, "side": "buy", "size": 2, "price": 11 + n,
                 "order_time": "2025-01-02"},
                {"order_id": f"{symbol}-s1", "symbol": symbol, "side": "sell", "size": 4, "price": 12 + n,
                 "total_fees": "0.1", "order_time": "2025-01-03"},
                {"order_id": f"{symbol}-s2", "symbol": symbol, "side": "sell", "size": 2, "price": 13 + n,
                 "order_time": "2025-01-04"}]
    return out


def test_forced_recompute_swaps_in_a_fresh_partition(db):
    add_trades(db, trades())
    db.execute("SELECT compute_fifo_all(true)")
    first = partition(db)
    assert stored(db) == expected(db)
    ids = db.execute("SELECT max(id) FROM fifo.allocations").fetchone()[0]
    db.execute("SELECT compute_fifo_all(true)")
    assert partition(db) != first                     # a new table, the old one dropped
    assert db.execute("SELECT count(*) FROM pg_class WHERE oid = %s", (first,)).fetchone()[0] == 0
    assert stored(db) == expected(db)
    assert findings(db) == []
    assert db.execute("SELECT min(id) FROM fifo.allocations").fetchone()[0] > ids   # ids keep counting
    # the swapped-in table is a full partition: indexes adopted, no leftover tables
    assert db.execute("SELECT count(*) FROM pg_indexes WHERE schemaname = 'fifo' "
                      "AND tablename = 'allocations_v1'").fetchone()[0] == 4
    assert db.execute("SELECT array_agg(relname ORDER BY relname) FROM pg_class "
                      "WHERE relnamespace = 'fifo'::regnamespace AND relkind IN ('r', 'p') "
                      "AND relname LIKE 'allocations%'").fetchone()[0] == ["allocations", "allocations_v1"]


def test_forced_recompute_of_a_new_version_adds_its_partition(db):
    add_trades(db, trades())
    db.execute("SELECT compute_fifo_all(true, 3)")
    assert partition(db, 3) is not None
    assert stored(db, 3) == expected(db)
    db.execute("SELECT compute_fifo('AAA-USD', 4)")    # not forced: the insert path adds it too
    assert partition(db, 4) is not None
    assert [a for a in stored(db, 4)] == [a for a in expected(db) if a.symbol == "AAA-USD"]


def test_a_reader_holding_the_table_gets_the_rows_replaced_in_place(db, connect):
    add_trades(db, trades())
    db.execute("SELECT compute_fifo_all(true)")
    before = partition(db)
    reader = connect(autocommit=False)
    assert reader.execute("SELECT count(*) FROM fifo_allocations").fetchone()[0] > 0   # holds the table
    db.execute("UPDATE trade_records SET price = price + 1 WHERE side = 'sell'")
    notices = []
    db.add_notice_handler(lambda d: notices.append(d.message_primary))
    db.execute("SELECT compute_fifo_all(true)")        # does not wait for the reader
    assert any("replaced in place" in n for n in notices)
    assert partition(db) == before
    assert stored(db) == expected(db)
    assert findings(db) == []
    # the reader's next statement sees the new rows
    assert reader.execute("SELECT sum(sale_proceeds) FROM fifo_allocations").fetchone()[0] == \
        db.execute("SELECT sum(sale_proceeds) FROM fifo_allocations").fetchone()[0]
    reader.rollback()


def test_a_failed_forced_recompute_keeps_every_allocation(db):
    add_trades(db, trades())
    db.execute("SELECT compute_fifo_all(true)")
    rows = stored(db)
    part = partition(db)
    with pytest.raises(psycopg.errors.QueryCanceled):
        with db.transaction():
            db.execute("SET LOCAL statement_timeout = 1")   # cancelled somewhere inside the run
            db.execute("SELECT compute_fifo_all(true), pg_sleep(0.01)")
    assert partition(db) == part and stored(db) == rows
    assert db.execute("SELECT count(*) FROM pg_class WHERE relnamespace = 'fifo'::regnamespace "
                      "AND relkind = 'r' AND relname LIKE 'allocations\\_v1\\_%'").fetchone()[0] == 0   # no fresh table left


@pytest.fixture
def bare(db):
    """A connection to a new, empty database on the test server (dropped afterwards)."""
    name = f"{db.info.dbname}_bare"
    db.execute(f'DROP DATABASE IF EXISTS "{name}"')
    db.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
    conn = psycopg.connect(db.info.dsn.replace(f"dbname={db.info.dbname}", f"dbname={name}"))
    yield conn
    conn.close()
    db.execute(f'DROP DATABASE "{name}"')


def migrate_to(conn, directory: Path) -> list[str]:
    with conn.transaction():
        conn.execute("CREATE SCHEMA IF NOT EXISTS fifo")
        conn.execute("SET LOCAL search_path = fifo, pg_catalog")
        return migrate.apply(conn, str(directory))


def test_migration_0008_keeps_rows_ids_and_the_views_reading_them(bare, tmp_path):
    before = tmp_path / "migrations"
    before.mkdir()
    for path in sorted(Path(MIGRATIONS_DIR).glob("*.sql")):
        if path.name < "0008":
            shutil.copy(path, before / path.name)
    migrate_to(bare, before)
    with bare.transaction():
        bare.execute("""
            INSERT INTO fifo.allocations (version, batch_id, account, symbol, sell_trade_id, buy_trade_id,
                allocated_size, buy_price, sell_price, buy_fees, sell_fees, cost_basis, sale_proceeds,
                pnl_amount, buy_time, sell_time)
            SELECT v, gen_random_uuid(), 'default', 'X', 's' || i, CASE WHEN i % 3 > 0 THEN 'b' || i END,
                   i, CASE WHEN i % 3 > 0 THEN 10 END, 12, CASE WHEN i % 3 > 0 THEN 0 END, 0,
                   CASE WHEN i % 3 > 0 THEN 10 * i END, 12 * i, CASE WHEN i % 3 > 0 THEN 2 * i END,
                   CASE WHEN i % 3 > 0 THEN timestamptz '2025-01-01' END, timestamptz '2025-01-02'
            FROM generate_series(1, 10) i, generate_series(1, 2) v""")
        bare.execute("CREATE VIEW public.mine AS SELECT version, count(*) AS n, sum(pnl_amount) AS pnl "
                     "FROM fifo.allocations GROUP BY version")
    rows = bare.execute("SELECT * FROM fifo.allocations ORDER BY id").fetchall()
    mine = bare.execute("SELECT * FROM public.mine ORDER BY 1").fetchall()

    assert migrate_to(bare, Path(MIGRATIONS_DIR)) == [p.stem for p in sorted(Path(MIGRATIONS_DIR).glob("*.sql"))
                                                       if p.name >= "0008"]
    assert bare.execute("SELECT relkind FROM pg_class WHERE oid = 'fifo.allocations'::regclass").fetchone()[0] == "p"
    assert bare.execute("SELECT * FROM fifo.allocations ORDER BY id").fetchall() == rows
    assert bare.execute("SELECT * FROM public.mine ORDER BY 1").fetchall() == mine   # re-pointed, not dropped
    assert bare.execute("SELECT count(*) FROM pg_inherits "
                        "WHERE inhparent = 'fifo.allocations'::regclass").fetchone()[0] == 2
    with bare.transaction():   # new rows continue the ids
        new_id = bare.execute("""
            INSERT INTO fifo.allocations (version, batch_id, account, symbol, sell_trade_id, allocated_size,
                sell_price, sell_fees, sale_proceeds, sell_time, unmatched)
            VALUES (1, gen_random_uuid(), 'default', 'X', 's99', 1, 12, 0, 12, now(), true) RETURNING id""").fetchone()[0]
    assert new_id == max(r[0] for r in rows) + 1
    # the partitions belong to the table's owner; 0008.0's holding table (17 and later) is gone
    assert bare.execute("SELECT DISTINCT c.relowner = p.relowner FROM pg_inherits i "
                        "JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent "
                        "WHERE i.inhparent = 'fifo.allocations'::regclass").fetchall() == [(True,)]
    assert bare.execute("SELECT to_regclass('fifo.allocations_held_for_0008')").fetchone()[0] is None


def test_the_migrations_around_0008_leave_a_partitioned_table_alone(bare, tmp_path):
    """0008.0 and 0008.z, applied to a database that 0008 (and 0009) already partitioned, change nothing."""
    around = ("0008.0-", "0008.z-")
    without = tmp_path / "migrations"
    without.mkdir()
    for path in sorted(Path(MIGRATIONS_DIR).glob("*.sql")):
        if not path.name.startswith(around):
            shutil.copy(path, without / path.name)
    assert "0009.run-pnl-by-currency" in migrate_to(bare, without)
    with bare.transaction():
        bare.execute("CREATE TABLE fifo.allocations_v1 PARTITION OF fifo.allocations FOR VALUES IN (1)")
        bare.execute("""
            INSERT INTO fifo.allocations (version, batch_id, account, symbol, sell_trade_id, allocated_size,
                sell_price, sell_fees, sale_proceeds, sell_time, unmatched)
            SELECT 1, gen_random_uuid(), 'default', 'X', 's' || i, i, 12, 0, 12 * i, now(), true
            FROM generate_series(1, 5) i""")
    rows = bare.execute("SELECT * FROM fifo.allocations ORDER BY id").fetchall()
    sequence = "SELECT last_value, is_called FROM fifo.allocations_id_seq"
    before = bare.execute(sequence).fetchone()

    assert migrate_to(bare, Path(MIGRATIONS_DIR)) == sorted(p.stem for p in Path(MIGRATIONS_DIR).glob("*.sql")
                                                            if p.name.startswith(around))
    assert bare.execute("SELECT * FROM fifo.allocations ORDER BY id").fetchall() == rows
    assert bare.execute(sequence).fetchone() == before
    assert bare.execute("SELECT count(*) FROM pg_inherits "
                        "WHERE inhparent = 'fifo.allocations'::regclass").fetchone()[0] == 1
    assert bare.execute("SELECT to_regclass('fifo.allocations_held_for_0008')").fetchone()[0] is None


# -- the second core: a forced run of many pools in two sessions (dblink) ------------

def many_pools(n: int = 240) -> list[dict]:
    """n pools of 4 trades: a partial sale, an oversell, ties; over 200 pools, so two sessions apply."""
    out = []
    for i in range(n):
        symbol = f"P{i:03d}-USD"
        out += [{"order_id": f"{symbol}-b", "symbol": symbol, "side": "buy", "size": "1.5", "price": 10,
                 "total_fees": "0.03", "order_time": "2025-01-01"},
                {"order_id": f"{symbol}-s", "symbol": symbol, "side": "sell", "size": 1, "price": 12,
                 "total_fees": "0.01", "order_time": "2025-01-02"},
                {"order_id": f"{symbol}-s2", "symbol": symbol, "side": "sell", "size": i % 3 + 1, "price": 13,
                 "order_time": "2025-01-02"},
                {"order_id": f"{symbol}-b2", "symbol": symbol, "side": "buy", "size": 2, "price": 9,
                 "order_time": "2025-01-03"}]
    return out


def rows_but_ids(db, version: int = 1) -> list[tuple]:
    return db.execute("SELECT account, symbol, sell_trade_id, buy_trade_id, allocated_size, buy_price, sell_price, "
                      "buy_fees, sell_fees, cost_basis, sale_proceeds, pnl_amount, buy_time, sell_time, unmatched "
                      "FROM fifo.allocations WHERE version = %s ORDER BY 1, 2, 3, 4", (version,)).fetchall()


def forced(db, sessions: int) -> tuple[dict, list[str]]:
    notices: list[str] = []
    db.add_notice_handler(lambda d: notices.append(d.message_primary))
    db.execute("SELECT set_config('fifo.full_recompute_sessions', %s, false)", (str(sessions),))
    run = db.execute("SELECT pools, buys, sells, allocations, unmatched, total_pnl, status "
                     "FROM compute_fifo_all(true)").fetchone()
    return run, notices


@pytest.mark.extension("dblink")
def test_two_sessions_write_what_one_session_writes(db):
    db.execute("CREATE EXTENSION IF NOT EXISTS dblink")
    add_trades(db, many_pools())
    one, _ = forced(db, 1)
    by_one = rows_but_ids(db)
    commits = "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"
    before = db.execute(commits).fetchone()[0]
    two, notices = forced(db, 2)
    # each chunk (20) and each index build (4) committed by a session of its own
    assert db.execute(commits).fetchone()[0] - before >= 24
    assert two == one and rows_but_ids(db) == by_one
    assert stored(db) == expected(db)
    assert findings(db) == []
    assert "fifo-db progress: 240 of 240 pools" in notices
    assert not any("one session instead" in n for n in notices)
    assert db.execute("SELECT dblink_get_connections()").fetchone()[0] is None   # all closed
    assert db.execute("SELECT count(DISTINCT batch_id) FROM fifo.allocations").fetchone()[0] == 1
    assert db.execute("SELECT count(*) FROM fifo.pool_state ps JOIN fifo_runs r USING (batch_id) "
                      "WHERE r.run_id = (SELECT max(run_id) FROM fifo_runs)").fetchone()[0] == 240
    assert db.execute("SELECT count(*) FROM pg_class WHERE relnamespace = 'fifo'::regnamespace "
                      "AND relkind = 'r' AND relname ~ '^allocations_v1_'").fetchone()[0] == 0


@pytest.mark.extension("dblink")
def test_a_session_failing_falls_back_to_one_session_and_isolates_the_pool(db):
    db.execute("CREATE EXTENSION IF NOT EXISTS dblink")
    add_trades(db, many_pools())
    forced(db, 1)
    before = db.execute("SELECT * FROM fifo.allocations WHERE symbol = 'P007-USD' ORDER BY id").fetchall()
    db.execute("ALTER TABLE fifo.allocations ADD CONSTRAINT test_rejects CHECK (symbol <> 'P007-USD') NOT VALID")
    db.execute("UPDATE trade_records SET price = price + 1")
    run, notices = forced(db, 2)
    assert any("one session instead" in n for n in notices)
    assert run[-1] == "partial"
    assert db.execute("SELECT * FROM fifo.allocations WHERE symbol = 'P007-USD' ORDER BY id").fetchall() == before
    assert [a for a in stored(db) if a.symbol != "P007-USD"] == [a for a in expected(db) if a.symbol != "P007-USD"]


@pytest.mark.extension("dblink")
def test_a_transaction_that_wrote_first_computes_in_one_session(db):
    """Sessions of their own could not see the caller's uncommitted trades."""
    db.execute("CREATE EXTENSION IF NOT EXISTS dblink")
    add_trades(db, many_pools())
    with db.transaction():
        add_trades(db, [{"order_id": "late", "symbol": "P001-USD", "side": "sell", "size": 1, "price": 20,
                         "order_time": "2025-01-04"}])
        forced(db, 2)
        assert stored(db) == expected(db)   # the uncommitted trade is matched
