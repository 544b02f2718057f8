"""fifo-db import's bulk path (issue 16): an import large relative to trade_records drops fifo-db's own
plain indexes, inserts, and builds them again, in its one transaction. The rows stored, the indexes
afterwards (pg_indexes.indexdef of a fresh install), the change capture, and all-or-nothing."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import psycopg
import pytest

from fifo_db import importer
from fifo_db.errors import FifoError
from fifo_db.importer import InvalidRows, import_csv
from tests.test_install import catalog

HEADER = "order_id,account,symbol,side,size,price,total_fees,order_time,source"
# three pools interleaved, 8-decimal sizes, microsecond times (the shape of issue 16's file)
ROWS = [
    "a1,default,A-USD,buy,1.12345678,10.00000001,0.00000001,2025-01-01T10:00:00.000001Z,f",
    "b1,default,B-USD,buy,2.00000000,20.5,0,2025-01-01T10:00:00.000002Z,f",
    "c1,acct2,A-USD,buy,0.00000001,1,0,2025-01-02T00:00:00.5+02:00,",
    "a2,default,A-USD,sell,0.5,11.25,0.01,2025-01-01T11:00:00.123456Z,f",
    "b2,default,B-USD,sell,1.99999999,21,0.02,2025-01-03T09:30:00Z,f",
    "c2,acct2,A-USD,sell,0.00000001,2,0,2025-01-02T01:00:00Z,",
]
# (order_id, account, symbol, side, size, price, total_fees, order_time UTC, source) as stored
EXPECTED = [
    ("a1", "default", "A-USD", "buy", "1.12345678", "10.00000001", "0.00000001", "2025-01-01 10:00:00.000001+00", "f"),
    ("a2", "default", "A-USD", "sell", "0.5", "11.25", "0.01", "2025-01-01 11:00:00.123456+00", "f"),
    ("b1", "default", "B-USD", "buy", "2.00000000", "20.5", "0", "2025-01-01 10:00:00.000002+00", "f"),
    ("b2", "default", "B-USD", "sell", "1.99999999", "21", "0.02", "2025-01-03 09:30:00+00", "f"),
    ("c1", "acct2", "A-USD", "buy", "0.00000001", "1", "0", "2025-01-01 22:00:00.5+00", "generic:trades.csv"),
    ("c2", "acct2", "A-USD", "sell", "0.00000001", "2", "0", "2025-01-02 01:00:00+00", "generic:trades.csv"),
]


@pytest.fixture
def bulk(monkeypatch):
    """Every import that brings at least as many rows as trade_records holds takes the bulk path."""
    monkeypatch.setattr(importer, "BULK_MIN_ROWS", 1)


def write(tmp_path: Path, *lines: str, name: str = "trades.csv") -> Path:
    path = tmp_path / name
    path.write_text("\n".join([HEADER, *lines]) + "\n")
    return path


def stored(db) -> list[tuple]:
    return db.execute(
        "SELECT order_id, account, symbol, side, size::text, price::text, total_fees::text, "
        "(order_time AT TIME ZONE 'UTC')::text || '+00', source FROM trade_records ORDER BY order_id").fetchall()


def indexes(db) -> list[tuple]:
    """trade_records' indexes: name, definition, and the index's oid (a rebuilt index has a new one)."""
    return db.execute(
        "SELECT i.indexname, i.indexdef, to_regclass('public.' || quote_ident(i.indexname))::oid "
        "FROM pg_indexes i WHERE i.schemaname = 'public' AND i.tablename = 'trade_records' "
        "ORDER BY i.indexname").fetchall()


def pending_changes(db) -> list[tuple]:
    return db.execute("SELECT symbol, account, from_time::text FROM fifo.pool_changes WHERE processed_at IS NULL "
                      "ORDER BY symbol, account").fetchall()


def constraints(db) -> list[tuple]:
    """trade_records' constraints with their oids (a constraint made again has a new one)."""
    return db.execute("SELECT conname, pg_get_constraintdef(oid), oid FROM pg_constraint "
                      "WHERE conrelid = 'public.trade_records'::regclass ORDER BY conname").fetchall()


def everything(db) -> tuple:
    return stored(db), indexes(db), constraints(db), pending_changes(db), db.execute(
        "SELECT count(*) FROM fifo.pool_changes").fetchone()[0], catalog(db)


def test_own_index_definitions_are_a_fresh_installs(db):
    fresh = {name: definition for name, definition, _ in indexes(db)}
    assert {name: fresh[name] for name in importer.OWN_INDEXES} == importer.OWN_INDEXES
    made = {name: definition for name, definition, _ in constraints(db)}
    assert {name: made[name] for name in importer.OWN_CONSTRAINTS} == importer.OWN_CONSTRAINTS
    assert sorted(fresh) == ["order_id_is_unique", "trade_records_pkey", "trade_records_pool_order_idx",
                             "trade_records_recorded_at_idx"]


def test_bulk_path_stores_the_exact_rows_and_rebuilds_the_indexes_as_a_fresh_install(db, tmp_path, bulk):
    before = indexes(db)   # the test database is a fresh install
    fresh = catalog(db)
    result = import_csv(db, write(tmp_path, *ROWS))
    assert (result.bulk, result.inserted, result.rows, result.present, result.rejected) == (True, 6, 6, 0, [])
    assert stored(db) == EXPECTED
    after = indexes(db)
    assert [(n, d) for n, d, _ in after] == [(n, d) for n, d, _ in before]
    rebuilt = {n for (n, _, old), (_, _, new) in zip(before, after) if old != new}
    assert rebuilt == set(importer.OWN_INDEXES)
    assert catalog(db) == fresh   # indexes, constraints (names, definitions), columns as a fresh install's
    assert db.execute("SELECT array_agg(attname ORDER BY attnum) FROM pg_attribute WHERE attrelid = "
                      "'public.trade_records'::regclass AND attnum > 0 AND attnotnull").fetchone()[0] == [
        "id", "order_id", "account", "symbol", "side", "size", "price", "total_fees", "order_time", "recorded_at"]
    # order_id is unique again, and id the primary key
    with pytest.raises(psycopg.errors.UniqueViolation, match="order_id_is_unique"):
        db.execute("INSERT INTO trade_records (order_id, symbol, side, size, price, order_time) "
                   "VALUES ('a1', 'Q', 'buy', 1, 1, now())")
    with pytest.raises(psycopg.errors.UniqueViolation, match="trade_records_pkey"):
        db.execute("INSERT INTO trade_records (id, order_id, symbol, side, size, price, order_time) "
                   "OVERRIDING SYSTEM VALUE SELECT min(id), 'q1', 'Q', 'buy', 1, 1, now() FROM trade_records")
    # the rebuilt indexes serve: the matching order read through the matching index
    db.execute("SET enable_seqscan = off")
    assert [r[0] for r in db.execute(
        "SELECT order_id FROM trade_records WHERE symbol = 'A-USD' AND account = 'default' "
        "ORDER BY symbol, account, order_time, side, order_id COLLATE \"C\"").fetchall()] == ["a1", "a2"]
    assert db.execute("SELECT count(*) FROM trade_records WHERE recorded_at <= clock_timestamp()").fetchone()[0] == 6


def test_bulk_path_captures_the_changed_pools_as_the_ordinary_path_does(db, tmp_path, bulk):
    import_csv(db, write(tmp_path, *ROWS))
    # one pending change per pool, from its earliest trade (as one INSERT statement records it)
    assert pending_changes(db) == [
        ("A-USD", "acct2", "2025-01-01 22:00:00.5+00"),
        ("A-USD", "default", "2025-01-01 10:00:00.000001+00"),
        ("B-USD", "default", "2025-01-01 10:00:00.000002+00"),
    ]
    db.execute("SELECT compute_fifo_all(true)")
    assert db.execute("SELECT sell_trade_id, buy_trade_id, allocated_size::text FROM fifo_allocations "
                      "ORDER BY sell_trade_id").fetchall() == [
        ("a2", "a1", "0.5"), ("b2", "b1", "1.99999999"), ("c2", "c1", "0.00000001")]


def test_bulk_path_gives_the_ids_one_nextval_per_row_would_in_the_files_order(db, tmp_path, bulk, monkeypatch):
    # the fast bulk path reserves the file's ids at once (issue 16, fourth session): the same ids, the
    # sequence left where one nextval per row leaves it
    seq = "pg_get_serial_sequence('public.trade_records', 'id')"
    start = db.execute(f"SELECT nextval({seq})").fetchone()[0]
    reserved = []
    reserve = importer._reserve_ids
    monkeypatch.setattr(importer, "_reserve_ids", lambda cur, n: reserved.append(reserve(cur, n)) or reserved[-1])
    result = import_csv(db, write(tmp_path, *ROWS))
    assert (result.bulk, result.inserted, reserved) == (True, 6, [start + 1])
    assert db.execute("SELECT order_id, id FROM trade_records ORDER BY id").fetchall() == [
        ("a1", start + 1), ("b1", start + 2), ("c1", start + 3), ("a2", start + 4), ("b2", start + 5),
        ("c2", start + 6)]
    assert db.execute(f"SELECT nextval({seq})").fetchone()[0] == start + 7
    # a sequence changed by its owner (not consecutive): one nextval per row, as before
    db.execute("TRUNCATE trade_records, fifo.pool_changes")
    db.execute("ALTER TABLE trade_records ALTER COLUMN id SET INCREMENT BY 5")
    result = import_csv(db, write(tmp_path, *ROWS))
    assert (result.bulk, result.inserted, reserved) == (True, 6, [start + 1, None])
    assert db.execute("SELECT order_id, id FROM trade_records ORDER BY id").fetchall() == [
        ("a1", start + 12), ("b1", start + 17), ("c1", start + 22), ("a2", start + 27), ("b2", start + 32),
        ("c2", start + 37)]
    assert db.execute(f"SELECT nextval({seq})").fetchone()[0] == start + 42


def test_an_import_smaller_than_the_table_takes_the_ordinary_path(db, tmp_path, bulk):
    import_csv(db, write(tmp_path, *ROWS, name="first.csv"))
    before = indexes(db)
    result = import_csv(db, write(tmp_path, "z1,default,Z-USD,buy,1,1,0,2025-02-01T00:00:00Z,f", name="second.csv"))
    assert (result.bulk, result.inserted) == (False, 1)
    assert indexes(db) == before   # same oids: nothing rebuilt


def test_a_failure_after_the_rebuild_leaves_table_indexes_and_changes_as_before(db, tmp_path, bulk, monkeypatch):
    import_csv(db, write(tmp_path, ROWS[0], name="first.csv"))
    before = everything(db)
    real = importer._bulk_end

    def fail(cur, rebuild):
        real(cur, rebuild)
        assert rebuild   # the bulk path was taken: the indexes were dropped and built again
        raise RuntimeError("cancelled after the rebuild")

    monkeypatch.setattr(importer, "_bulk_end", fail)
    with pytest.raises(RuntimeError):
        import_csv(db, write(tmp_path, *ROWS[1:]))
    assert everything(db) == before   # the very same indexes (same oids), rows and change rows


def test_a_failing_insert_in_the_bulk_path_leaves_everything_unchanged(db, tmp_path, bulk):
    import_csv(db, write(tmp_path, ROWS[0], name="first.csv"))
    # a trigger of the user's that refuses one row, so the INSERT fails after the indexes were dropped
    db.execute("CREATE FUNCTION public.refuse_b2() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
               "IF NEW.order_id = 'b2' THEN RAISE EXCEPTION 'b2 refused' USING ERRCODE = '23514'; END IF; "
               "RETURN NEW; END $$")
    db.execute("CREATE TRIGGER refuse_b2 BEFORE INSERT ON public.trade_records "
               "FOR EACH ROW EXECUTE FUNCTION public.refuse_b2()")
    before = everything(db)
    with pytest.raises(FifoError, match="b2 refused"):
        import_csv(db, write(tmp_path, *ROWS[1:]))
    assert everything(db) == before


def test_a_lock_held_elsewhere_ends_the_wait_naming_the_holder(db, connect, tmp_path, bulk):
    db.execute("SELECT fifo_set_setting('lock_timeout', '200 ms')")
    other = connect(autocommit=False)
    other.execute("SELECT count(*) FROM trade_records")   # ACCESS SHARE, held until the transaction ends
    pid = other.info.backend_pid
    before = everything(db)
    with pytest.raises(FifoError) as info:
        import_csv(db, write(tmp_path, *ROWS))
    message = str(info.value)
    assert f"pid {pid} (role " in message and "lock_timeout 200 ms" in message
    assert "nothing was imported" in message and "\n" not in message
    other.rollback()
    assert everything(db) == before
    assert db.execute("SELECT current_setting('lock_timeout')").fetchone()[0] == "0"   # nothing left set


def test_indexes_the_user_made_or_changed_are_left_alone(db, tmp_path, bulk):
    db.execute("CREATE INDEX my_price_idx ON public.trade_records (price)")
    db.execute("DROP INDEX public.trade_records_recorded_at_idx")
    db.execute("CREATE INDEX trade_records_recorded_at_idx ON public.trade_records (recorded_at DESC)")
    before = {n: (d, oid) for n, d, oid in indexes(db)}
    result = import_csv(db, write(tmp_path, *ROWS))
    assert result.bulk
    after = {n: (d, oid) for n, d, oid in indexes(db)}
    assert sorted(after) == sorted(before)
    for name in ("my_price_idx", "trade_records_recorded_at_idx"):
        assert after[name] == before[name]   # untouched: same definition, same oid
    for name in ("trade_records_pool_order_idx", "order_id_is_unique", "trade_records_pkey"):
        assert after[name][0] == before[name][0] and after[name][1] != before[name][1]   # rebuilt
    assert stored(db) == EXPECTED


def test_a_unique_index_a_foreign_key_refers_to_is_left_alone(db, tmp_path, bulk):
    db.execute("CREATE TABLE public.my_notes (order_id text REFERENCES public.trade_records (order_id))")
    before = {n: (d, oid) for n, d, oid in indexes(db)}
    before_constraints = constraints(db)
    result = import_csv(db, write(tmp_path, *ROWS))
    assert result.bulk
    after = {n: (d, oid) for n, d, oid in indexes(db)}
    assert after["order_id_is_unique"] == before["order_id_is_unique"]
    assert after["trade_records_pkey"][1] != before["trade_records_pkey"][1]
    assert [(n, d) for n, d, _ in constraints(db)] == [(n, d) for n, d, _ in before_constraints]
    assert stored(db) == EXPECTED


def test_bad_rows_are_named_before_the_bulk_path_and_nothing_changes(db, tmp_path, bulk):
    import_csv(db, write(tmp_path, ROWS[0], name="first.csv"))
    before = everything(db)
    changed = ROWS[0].replace("1.12345678", "1.12345679")
    with pytest.raises(InvalidRows) as info:
        import_csv(db, write(tmp_path, *ROWS[1:], changed, ROWS[1]))
    assert info.value.result.rejected == [
        (7, "order_id 'a1' is already stored with different data: size 1.12345678 (this file: 1.12345679)"),
        (8, "order_id 'b1' is also on line 2"),
    ]
    assert everything(db) == before


def test_a_role_that_does_not_own_the_table_takes_the_ordinary_path(db, roles, tmp_path, bulk):
    _, bot = roles("bot")
    try:
        result = import_csv(bot, write(tmp_path, *ROWS))
    except FifoError as exc:   # a bot that may not import at all is not this test's business
        pytest.skip(f"the bot role cannot import: {exc}")
    assert (result.bulk, result.inserted) == (False, 6)
    assert stored(db) == EXPECTED


def test_a_cancel_during_the_bulk_insert_leaves_everything_unchanged(db, connect, tmp_path, bulk):
    import_csv(db, write(tmp_path, ROWS[0], name="first.csv"))
    # a trigger of the user's that sleeps on one row, so the cancel comes after the indexes were dropped
    db.execute("CREATE FUNCTION public.slow_b2() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
               "IF NEW.order_id = 'b2' THEN PERFORM pg_sleep(60); END IF; RETURN NEW; END $$")
    db.execute("CREATE TRIGGER slow_b2 BEFORE INSERT ON public.trade_records "
               "FOR EACH ROW EXECUTE FUNCTION public.slow_b2()")
    before = everything(db)
    pid = db.info.backend_pid
    failure: list[BaseException] = []

    def run():
        try:
            import_csv(db, write(tmp_path, *ROWS[1:]))
        except BaseException as exc:   # noqa: BLE001 - handed to the test's thread
            failure.append(exc)

    worker = threading.Thread(target=run)
    worker.start()
    watcher = connect()
    for _ in range(600):   # until the import sleeps inside its INSERT (at most about a minute)
        sleeping = watcher.execute("SELECT wait_event = 'PgSleep' FROM pg_stat_activity WHERE pid = %s",
                                   (pid,)).fetchone()
        if sleeping and sleeping[0]:
            break
        time.sleep(0.1)
    dropped = watcher.execute("SELECT count(*) FROM pg_locks WHERE pid = %s AND locktype = 'relation' "
                              "AND relation = 'public.trade_records'::regclass AND mode = 'AccessExclusiveLock' "
                              "AND granted", (pid,)).fetchone()[0]
    assert watcher.execute("SELECT pg_cancel_backend(%s)", (pid,)).fetchone()[0]
    worker.join(60)
    assert not worker.is_alive() and dropped == 1
    [exc] = failure
    assert isinstance(exc, FifoError) and "\n" not in str(exc)
    assert everything(db) == before


def test_a_duplicate_found_by_the_rebuilt_unique_index_is_named_and_nothing_changes(db, tmp_path, bulk):
    """The fast path's bulk INSERT lets a duplicate order_id in (the unique index is dropped); its
    rebuild refuses it, and the import goes back to the savepoint and names it like any bad row."""
    before = everything(db)
    with pytest.raises(InvalidRows) as info:
        import_csv(db, write(tmp_path, *ROWS, ROWS[3]))
    assert info.value.result.rejected == [(8, "order_id 'a2' is also on line 5")]
    assert everything(db) == before
