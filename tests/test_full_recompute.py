"""A forced full recompute writes the version into a fresh table and swaps it in
for the version's partition (sql/035_full_recompute.sql), or, when another
session keeps fifo.allocations in use, replaces the rows in place; either way
the result is the reference FIFO's. Migration 0008 turns an existing
allocations table into the partitioned one, keeping rows, ids and the views
that read it (on PostgreSQL 17 and later with 0008.0 and 0008.z around it).
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import psycopg
import pytest

from fifo_db import migrate
from fifo_db.install import MIGRATIONS_DIR
from tests.helpers import add_trades, expected, findings, stored


@pytest.fixture(autouse=True)
def fresh_table_path(db):
    """These tests are about the fresh table and its swap: every forced run takes that path, whatever
    its size (below the setting forced_in_place_below it writes in place instead, tested at the end)."""
    db.execute("SELECT fifo_set_setting('forced_in_place_below', '0')")


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


# -- many pools in one session; a SHARE UPDATE EXCLUSIVE holder; failed runs leave nothing --

def many_pools(n: int = 240) -> list[dict]:
    """n pools of 4 trades: a partial sale, an oversell, ties; over 200 pools, so the run goes in chunks."""
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


def forced(db) -> tuple[tuple, list[str]]:
    notices: list[str] = []
    db.add_notice_handler(lambda d: notices.append(d.message_primary))
    run = db.execute("SELECT pools, buys, sells, allocations, unmatched, total_pnl, status, duration_ms "
                     "FROM compute_fifo_all(true)").fetchone()
    return run, notices


def fresh_tables(db) -> list[str]:
    """Tables in schema fifo that are neither fifo-db's own nor a partition: a run's leftovers."""
    return [r[0] for r in db.execute(
        "SELECT c.relname FROM pg_class c WHERE c.relnamespace = 'fifo'::regnamespace AND c.relkind = 'r' "
        "AND NOT c.relispartition AND c.relname ~ '^allocations_v[0-9]+_' ORDER BY 1")]


def test_many_pools_in_one_session_equal_the_reference(db):
    add_trades(db, many_pools())
    run, notices = forced(db)
    assert run[0] == 240 and run[6] == "ok"
    assert "fifo-db progress: 240 of 240 pools" in notices
    assert stored(db) == expected(db) and findings(db) == []
    assert db.execute("SELECT count(DISTINCT batch_id) FROM fifo.allocations").fetchone()[0] == 1
    assert fresh_tables(db) == []


def test_a_forced_run_reserves_its_ids_past_every_id_handed_out(db, connect):
    """A forced run takes each chunk's ids in one step (as many as the chunk's trades, a bound on
    its rows), past the ids another session holds in its cache; later ids come after them."""
    add_trades(db, many_pools())
    seq = "pg_get_serial_sequence('fifo.allocations', 'id')"
    other = connect()
    held = other.execute(f"SELECT nextval({seq})").fetchone()[0]        # the identity caches 100
    last = db.execute(f"SELECT pg_sequence_last_value({seq}::regclass)").fetchone()[0]
    assert last == held + 99
    run, _ = forced(db)
    assert run[6] == "ok" and stored(db) == expected(db)
    first, top, rows, distinct = db.execute(
        "SELECT min(id), max(id), count(*), count(DISTINCT id) FROM fifo.allocations").fetchone()
    assert rows == distinct == run[3] and first == last + 1
    # 20 chunks of 12 pools of 4 trades: 960 ids reserved, fewer rows written
    assert db.execute(f"SELECT pg_sequence_last_value({seq}::regclass)").fetchone()[0] == last + 960 > top
    assert other.execute(f"SELECT nextval({seq})").fetchone()[0] == held + 1   # its cache, below the run's
    other.close()
    db.execute("UPDATE trade_records SET price = price + 1 WHERE symbol = 'P001-USD'")
    db.execute("SELECT compute_fifo('P001-USD')")
    assert db.execute("SELECT min(id) FROM fifo.allocations WHERE symbol = 'P001-USD'").fetchone()[0] > last + 960


def test_rows_beyond_the_reserved_ids_take_nextval(db):
    """Fewer ids reserved than rows written (a bound that failed), or a sequence that does not count
    by 1: the rows still get unique ids from the sequence, and the same allocations."""
    add_trades(db, many_pools(8))
    seq = "pg_get_serial_sequence('fifo.allocations', 'id')"
    db.execute("SELECT fifo._fresh_allocations(1, 'allocations_v1_test')")
    symbols = [f"P{i:03d}-USD" for i in range(8)]
    n = db.execute("SELECT fifo._fill_fresh(1, gen_random_uuid(), %s, %s, %s, 'fifo.allocations_v1_test', 2)",
                   (symbols, ["default"] * 8, ["-infinity"] * 8)).fetchone()[0]
    last = db.execute(f"SELECT pg_sequence_last_value({seq}::regclass)").fetchone()[0]
    ids = [r[0] for r in db.execute("SELECT id FROM fifo.allocations_v1_test ORDER BY id")]
    assert len(ids) == n > 2 and len(set(ids)) == n and max(ids) <= last
    db.execute("DROP TABLE fifo.allocations_v1_test")
    db.execute(f"ALTER SEQUENCE {db.execute(f'SELECT {seq}').fetchone()[0]} INCREMENT BY 7")
    run, _ = forced(db)
    assert run[6] == "ok" and stored(db) == expected(db) and findings(db) == []
    ids = [r[0] for r in db.execute("SELECT id FROM fifo.allocations ORDER BY id")]
    assert len(set(ids)) == len(ids) == run[3] and {b - a for a, b in zip(ids, ids[1:])} == {7}


def test_a_failing_pool_keeps_its_rows_the_others_are_swapped_in(db):
    add_trades(db, many_pools())
    forced(db)
    before = db.execute("SELECT * FROM fifo.allocations WHERE symbol = 'P007-USD' ORDER BY id").fetchall()
    db.execute("ALTER TABLE fifo.allocations ADD CONSTRAINT test_rejects CHECK (symbol <> 'P007-USD') NOT VALID")
    db.execute("UPDATE trade_records SET price = price + 1")
    run, _ = forced(db)
    assert run[6] == "partial"
    assert db.execute("SELECT * FROM fifo.allocations WHERE symbol = 'P007-USD' ORDER BY id").fetchall() == before
    assert [a for a in stored(db) if a.symbol != "P007-USD"] == [a for a in expected(db) if a.symbol != "P007-USD"]
    assert fresh_tables(db) == []


def test_a_transaction_that_wrote_first_sees_its_own_trades(db):
    add_trades(db, many_pools())
    with db.transaction():
        add_trades(db, [{"order_id": "late", "symbol": "P001-USD", "side": "sell", "size": 1, "price": 20,
                         "order_time": "2025-01-04"}])
        forced(db)
        assert stored(db) == expected(db)   # the uncommitted trade is matched


def test_a_share_update_exclusive_holder_bounds_the_swap_then_rows_are_copied_in_place(db, connect):
    """A manual VACUUM (or any SHARE UPDATE EXCLUSIVE holder nobody cancels) on the partition:
    the swap gives up after 3 x deadlock_timeout in all (it used to wait that long per try,
    19 tries: 59 s), then copies the rows in place: correct allocations, nothing left behind."""
    add_trades(db, many_pools(30))
    forced(db)
    part = partition(db)
    holder = connect(autocommit=False)
    holder.execute("LOCK TABLE fifo.allocations_v1 IN SHARE UPDATE EXCLUSIVE MODE")
    db.execute("UPDATE trade_records SET price = price + 1 WHERE side = 'sell'")
    db.execute("SET deadlock_timeout = '300ms'")   # the bound: 0.9 s
    run, notices = forced(db)
    holder.rollback()
    assert run[6] == "ok"
    assert any("replaced in place" in n for n in notices)
    assert partition(db) == part                       # copied in place, not swapped
    assert run[7] < 30_000                             # bounded: not 19 waits of 3 x deadlock_timeout
    assert stored(db) == expected(db) and findings(db) == []
    assert fresh_tables(db) == []


def test_failed_forced_runs_in_a_row_leave_nothing_and_do_not_grow(db):
    add_trades(db, many_pools(60))
    forced(db)
    rows = stored(db)
    allocations_size = ("SELECT sum(pg_total_relation_size(t.relid)) "
                        "FROM pg_partition_tree('fifo.allocations') t")
    size = db.execute(allocations_size).fetchone()[0]
    tables = db.execute("SELECT count(*) FROM pg_class WHERE relnamespace = 'fifo'::regnamespace").fetchone()[0]
    for timeout in (30, 60, 90, 120, 150):   # cancelled at different points of the run
        with pytest.raises(psycopg.errors.QueryCanceled):
            with db.transaction():
                db.execute(f"SET LOCAL statement_timeout = {timeout}")
                db.execute("SELECT compute_fifo_all(true), pg_sleep(1)")
    assert fresh_tables(db) == []
    assert db.execute("SELECT count(*) FROM pg_class WHERE relnamespace = 'fifo'::regnamespace").fetchone()[0] \
        == tables
    assert db.execute(allocations_size).fetchone()[0] == size   # (pool_state keeps dead rows for VACUUM)
    assert stored(db) == rows


def test_a_leftover_of_an_older_version_is_dropped_by_install_and_by_the_next_run(db):
    """Before issue 14 a failed forced run could leave its committed fresh table behind."""
    from fifo_db.install import install

    for name in ("allocations_v1_0123456789ab", "allocations_v1_ba9876543210"):
        db.execute(f"CREATE TABLE fifo.{name} (LIKE fifo.allocations)")
    install(db)
    assert fresh_tables(db) == []
    db.execute("CREATE TABLE fifo.allocations_v1_0123456789ab (LIKE fifo.allocations)")
    add_trades(db, many_pools(3))
    forced(db)
    assert fresh_tables(db) == []


def large_pools(db, pools: int = 8, per_pool: int = 2_600) -> None:
    """pools x per_pool trades (8 x 2,600: one chunk of 20,800, enough for the parallel split),
    deterministic: 55% buys, 4-decimal sizes and prices, fees to 8 places, oversells."""
    db.execute(
        "INSERT INTO trade_records (order_id, account, symbol, side, size, price, total_fees, order_time) "
        "SELECT 'L' || p || '-' || i, 'default', 'L' || p || '-USD', "
        "       CASE WHEN (i * 13 + p) %% 20 < 11 THEN 'buy' ELSE 'sell' END, "
        "       ((i * 7919 + p * 104729) %% 99991 + 1) / 10000.0, ((i * 6007 + p) %% 50021 + 100) / 10000.0, "
        "       ((i * 31 + p) %% 1000) / 1e8::numeric * (i %% 7), "
        "       timestamptz '2025-01-01' + i * interval '1 minute' "
        "FROM generate_series(1, %s) p, generate_series(1, %s) i", (pools, per_pool))


def test_large_pools_are_matched_in_parallel_workers_with_the_same_rows(db):
    large_pools(db)
    with db.transaction():
        db.execute("SET LOCAL track_functions = 'pl'")
        run, _ = forced(db)
        # the run wrote every pool in one statement (CREATE TABLE AS over a Parallel Append of
        # calls), not in chunks (the calls, counted in this transaction)
        assert dict(db.execute("SELECT funcname, calls FROM pg_stat_xact_user_functions WHERE schemaname = 'fifo' "
                               "AND funcname IN ('_fresh_allocations_matched', '_fill_fresh', "
                               "'_allocation_rows_split')").fetchall()) == {"_fresh_allocations_matched": 1}
    assert run[0] == 8 and run[1] + run[2] == 20_800 and run[6] == "ok"
    want = expected(db)
    assert stored(db) == want and findings(db) == []
    # the split path gives exactly the rows of one serial call, with workers or without
    args = ("SELECT array_agg(DISTINCT symbol ORDER BY symbol) FROM trade_records",)
    syms = db.execute(*args).fetchone()[0]
    accs, cuts = ["default"] * len(syms), ["-infinity"] * len(syms)
    serial = db.execute("SELECT * FROM fifo._allocation_rows(1, %s, %s, %s::timestamptz[]) "
                        "ORDER BY symbol, sell_time, sell_trade_id, buy_time, buy_trade_id",
                        (syms, accs, cuts)).fetchall()
    assert len(serial) == len(want)
    for workers in ("2", "0"):
        db.execute("SELECT set_config('max_parallel_workers_per_gather', %s, false)", (workers,))
        split = db.execute("SELECT * FROM fifo._allocation_rows_split(1, %s, %s) "
                           "ORDER BY symbol, sell_time, sell_trade_id, buy_time, buy_trade_id",
                           (syms, accs)).fetchall()
        assert split == serial
    db.execute("RESET max_parallel_workers_per_gather")
    # and the planner gives its four calls to parallel workers (a Parallel Append)
    one = "SELECT * FROM fifo._allocation_rows(1, %s, %s, %s::timestamptz[])"
    plan = "\n".join(r[0] for r in db.execute(
        "EXPLAIN (COSTS OFF) " + " UNION ALL ".join([one] * 4),
        (syms[:2], accs[:2], cuts[:2]) * 4).fetchall())
    assert "Gather" in plan and "Parallel Append" in plan


def test_a_forced_run_that_cannot_write_in_one_statement_writes_in_chunks(db):
    """Large enough for one statement, but it fails (a row breaks a constraint added to
    fifo.allocations NOT VALID, which LIKE copies and every INSERT checks): the run says so, writes
    in chunks, and only the pool concerned keeps its previous rows; with ids that cannot be reserved
    at once (a sequence counting by 5) it writes in chunks without a word."""
    large_pools(db)
    forced(db)
    before = db.execute("SELECT * FROM fifo.allocations WHERE symbol = 'L3-USD' ORDER BY id").fetchall()
    db.execute("ALTER TABLE fifo.allocations ADD CONSTRAINT test_rejects CHECK (symbol <> 'L3-USD') NOT VALID")
    db.execute("UPDATE trade_records SET price = price + 1")
    with db.transaction():
        db.execute("SET LOCAL track_functions = 'pl'")
        run, notices = forced(db)
        calls = dict(db.execute("SELECT funcname, calls FROM pg_stat_xact_user_functions WHERE schemaname = 'fifo' "
                                "AND funcname IN ('_fresh_allocations_matched', '_fill_fresh')").fetchall())
    # (a call that ends in an error is not counted; the notice below says it was made)
    assert run[0] == 8 and run[6] == "partial" and calls["_fill_fresh"] >= 1
    said = [n for n in notices if "one statement" in n]
    assert len(said) == 1 and re.fullmatch(
        r'fifo-db: writing every pool in one statement failed \(check constraint "test_rejects" of relation '
        r'"allocations_v1_[0-9a-f]{12}" is violated by some row\); writing in chunks', said[0]), said
    assert db.execute("SELECT * FROM fifo.allocations WHERE symbol = 'L3-USD' ORDER BY id").fetchall() == before
    assert [a for a in stored(db) if a.symbol != "L3-USD"] == [a for a in expected(db) if a.symbol != "L3-USD"]
    assert fresh_tables(db) == []
    db.execute("ALTER TABLE fifo.allocations DROP CONSTRAINT test_rejects")
    seq = db.execute("SELECT pg_get_serial_sequence('fifo.allocations', 'id')").fetchone()[0]
    db.execute(f"ALTER SEQUENCE {seq} INCREMENT BY 5")
    with db.transaction():
        db.execute("SET LOCAL track_functions = 'pl'")
        run, notices = forced(db)
        calls = dict(db.execute("SELECT funcname, calls FROM pg_stat_xact_user_functions WHERE schemaname = 'fifo' "
                                "AND funcname IN ('_fresh_allocations_matched', '_fill_fresh')").fetchall())
    assert run[6] == "ok" and calls == {"_fresh_allocations_matched": 1, "_fill_fresh": 1}
    assert not [n for n in notices if "one statement" in n]
    assert stored(db) == expected(db) and findings(db) == [] and fresh_tables(db) == []


def test_verify_over_many_pools_runs_in_parallel_workers_with_the_same_findings(db):
    """verify_fifo() over 4 pools or more and 20,000 trades or more checks them as four calls of
    fifo._verify_pools over quarters of the pool list (a Parallel Append, two workers): the
    findings are the ones of one process, and of each pool verified alone."""
    large_pools(db)
    forced(db)
    assert findings(db) == []
    # damage two pools: a fee share changed in L2, a row gone in L6
    db.execute("UPDATE fifo.allocations SET buy_fees = buy_fees + 0.00000001, cost_basis = cost_basis + 0.00000001, "
               "pnl_amount = pnl_amount - 0.00000001 WHERE id = (SELECT min(id) FROM fifo.allocations "
               "WHERE symbol = 'L2-USD' AND buy_trade_id IS NOT NULL)")
    db.execute("DELETE FROM fifo.allocations WHERE id = (SELECT max(id) FROM fifo.allocations WHERE symbol = 'L6-USD')")
    alone = sorted(findings(db, "L2-USD") + findings(db, "L6-USD"))
    assert {(f[0], f[1]) for f in alone} >= {("not_fifo", "L2-USD"), ("buy_fees", "L2-USD"),
                                             ("not_fifo", "L6-USD"), ("sell_size", "L6-USD")}
    for workers in ("2", "0"):
        db.execute("SELECT set_config('max_parallel_workers_per_gather', %s, false)", (workers,))
        with db.transaction():
            db.execute("SET LOCAL track_functions = 'pl'")
            assert sorted(findings(db)) == alone
            calls = db.execute("SELECT calls FROM pg_stat_xact_user_functions "
                               "WHERE schemaname = 'fifo' AND funcname = '_verify_pools'").fetchone()
        if workers == "0":   # in one process the session makes the four calls itself
            assert calls == (4,)
    db.execute("RESET max_parallel_workers_per_gather")
    # and the planner gives its four calls to parallel workers (a Parallel Append)
    one = "SELECT * FROM fifo._verify_pools(1, %s, %s)"
    plan = "\n".join(r[0] for r in db.execute(
        "EXPLAIN (COSTS OFF) " + " UNION ALL ".join([one] * 4), (["L1-USD"], ["default"]) * 4).fetchall())
    assert "Gather" in plan and "Parallel Append" in plan


def test_a_forced_run_reports_the_totals_of_the_rows_it_swapped_in(db):
    """Mode 'all' counts every pool once (fifo._count_pools) and totals the fresh table after
    its last chunk (fifo._fresh_totals): the run record says what a run writing chunk by
    chunk says, digit for digit, over several chunks and quote currencies."""
    rows = many_pools()
    for i in range(30):   # pools quoted in BTC, with fees to 8 places: P&L per currency
        symbol = f"Q{i:02d}-BTC"
        rows += [{"order_id": f"{symbol}-b", "symbol": symbol, "side": "buy", "size": "0.12345678",
                  "price": "0.0301", "total_fees": "0.00000123", "order_time": "2025-01-01"},
                 {"order_id": f"{symbol}-s", "symbol": symbol, "side": "sell", "size": "0.2", "price": "0.0307",
                  "total_fees": "0.00000071", "order_time": "2025-01-02"}]
    add_trades(db, rows)
    cols = "pools, buys, sells, allocations, unmatched, total_pnl::text, pnl_by_currency::text, status"
    first = db.execute(f"SELECT {cols}, mode FROM compute_fifo_all(false)").fetchone()
    assert first[-1] == "incremental" and first[0] == 270   # written chunk by chunk (sql/032)
    run = db.execute(f"SELECT {cols}, mode FROM compute_fifo_all(true)").fetchone()
    assert run[-1] == "all"
    assert run[:-1] == first[:-1]
    assert run[1:3] == (510, 510) and run[3] == db.execute("SELECT count(*) FROM fifo.allocations").fetchone()[0]
    assert set(db.execute("SELECT pnl_by_currency FROM fifo_runs ORDER BY run_id DESC LIMIT 1").fetchone()[0]) \
        == {"USD", "BTC"}
    assert stored(db) == expected(db) and findings(db) == []
    # every pool was counted in one statement before the chunks, not again by fifo._match
    with db.transaction():
        db.execute("SET LOCAL track_functions = 'pl'")
        db.execute("SELECT compute_fifo_all(true)")
        calls = dict(db.execute("SELECT funcname, calls FROM pg_stat_xact_user_functions "
                                "WHERE schemaname = 'fifo' AND funcname IN ('_count_pools', '_fresh_totals', "
                                "'_refuse_problem', '_match')").fetchall())
    assert calls == {"_count_pools": 1, "_fresh_totals": 1, "_match": 20}


def test_a_small_forced_run_writes_in_place_only_what_differs(db):
    """Below forced_in_place_below (default 10,000 trades and stored rows) a forced run writes in
    place like a per-pool run: an unchanged pool keeps its rows, ids and partition; a changed one
    gets the reference's rows; rows of a pool with neither trades nor state go, as a swap drops them."""
    db.execute("SELECT fifo_set_setting('forced_in_place_below', '10000')")
    add_trades(db, trades())
    db.execute("SELECT compute_fifo_all(true)")
    part = partition(db)
    ids = "SELECT symbol, array_agg(id ORDER BY id) FROM fifo.allocations GROUP BY symbol ORDER BY symbol"
    before = db.execute(ids).fetchall()
    db.execute("INSERT INTO fifo.allocations (version, batch_id, account, symbol, sell_trade_id, allocated_size, "
               "sell_price, sell_fees, sale_proceeds, sell_time, unmatched) VALUES (1, gen_random_uuid(), "
               "'default', 'GONE-USD', 'g1', 1, 1, 0, 1, '2025-01-01', true)")   # no trades, no state
    db.execute("UPDATE trade_records SET price = price + 1 WHERE order_id = 'BBB-USD-b2'")
    assert db.execute("SELECT allocations, status FROM compute_fifo_all(true)").fetchone() == (len(stored(db)), "ok")
    assert partition(db) == part                                              # no swap
    assert stored(db) == expected(db) and findings(db) == []
    after = db.execute(ids).fetchall()
    assert [a for a in after if a[0] != "BBB-USD"] == [b for b in before if b[0] != "BBB-USD"]   # untouched
    assert dict(after)["BBB-USD"] != dict(before)["BBB-USD"]                  # b2's rows rewritten
    assert "GONE-USD" not in dict(after)
    assert fresh_tables(db) == []
