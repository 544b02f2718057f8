"""Locks any role could hold, and connections an operator could take over (issue 14, items 2
and 3). Exclusion rests on rows of schema fifo (fifo.run_locks, fifo.pool_locks) that only
fifo-db's owner can lock; every wait of a run is bounded by the setting lock_timeout and,
when it runs out, the run is recorded as failed naming the holder; no fifo-db code opens a
connection (the dblink two-session path is gone). Each test logs in as real roles."""

from __future__ import annotations

import re
import uuid

import psycopg
import pytest

from fifo_db.cli import main
from fifo_db.install import install
from tests.helpers import add_trades, expected, findings, stored


def pools(symbols, when="2025-01-01", side="buy", prefix="b"):
    return [{"order_id": f"{prefix}-{s}", "symbol": s, "side": side, "size": 2, "price": 10, "order_time": when}
            for s in symbols]


def run_of(conn, call: str) -> dict | None:
    with conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
        row = cur.execute(f"SELECT * FROM {call}").fetchone()
    return row if row and row["batch_id"] is not None else None


# -- item 2: no connection opened as the owner --------------------------------------------

@pytest.mark.extension("dblink")
def test_no_fifo_db_function_references_dblink(db):
    db.execute("CREATE EXTENSION IF NOT EXISTS dblink")
    install(db)   # with dblink present: nothing of fifo-db's picks it up
    found = db.execute("""
        SELECT p.oid::regprocedure::text FROM pg_proc p
        WHERE p.pronamespace IN ('fifo'::regnamespace, 'public'::regnamespace)
          AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid
                          AND d.deptype = 'e')     -- dblink's own functions
          AND p.prosrc ILIKE '%dblink%'""").fetchall()
    assert found == []
    assert db.execute("SELECT count(*) FROM pg_proc WHERE pronamespace = 'fifo'::regnamespace AND proname IN "
                      "('_sessions_for', '_self_conninfo', '_dblink_call', '_in_sessions', '_build_in_sessions', "
                      "'_dblink_disconnect', '_fresh_allocations_committed')").fetchone()[0] == 0


@pytest.mark.extension("dblink")
@pytest.mark.parametrize("timeout_ms", [20, 80, 200, 400])
def test_an_operator_cancelled_in_a_forced_run_keeps_no_connection_and_no_backend(db, roles, timeout_ms):
    """The issue's exploit: dblink installed, a superuser owner, an operator whose forced run is
    cancelled. Nothing of the owner's is left in the operator's session, and no backend."""
    db.execute("CREATE EXTENSION IF NOT EXISTS dblink")
    add_trades(db, pools([f"P{i:03d}-USD" for i in range(240)]))
    name, op = roles("operator")
    backends = ("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND backend_type = 'client backend'")   # (autovacuum workers come and go)
    before = db.execute(backends).fetchone()[0]
    op.execute(f"SET statement_timeout = {timeout_ms}")
    with pytest.raises(psycopg.errors.QueryCanceled):
        op.execute("SELECT compute_fifo_all(true), pg_sleep(5)")   # cancelled in the run or right after
    op.execute("SET statement_timeout = 0")
    assert op.execute("SELECT dblink_get_connections()").fetchone()[0] is None
    assert db.execute(backends).fetchone()[0] == before
    assert op.execute("SELECT current_setting('lock_timeout')").fetchone()[0] == "0"   # nothing left set
    assert db.execute("SELECT rolsuper FROM pg_roles WHERE rolname = %s", (name,)).fetchone()[0] is False


# -- item 3: locks only fifo-db's roles can take -----------------------------------------------

def test_nobody_but_the_owner_may_lock_the_lock_rows(db, roles):
    for kind in (None, "bot", "reader", "operator"):
        _, conn = roles(kind)
        for sql in ("SELECT * FROM fifo.run_locks FOR UPDATE",
                    "SELECT * FROM fifo.run_locks FOR KEY SHARE",
                    "SELECT * FROM fifo.pool_locks FOR SHARE",
                    "LOCK TABLE fifo.run_locks IN ACCESS SHARE MODE",
                    "LOCK TABLE fifo.pool_locks IN ROW SHARE MODE",
                    "LOCK TABLE fifo._yoyo_migration IN ACCESS SHARE MODE",
                    "LOCK TABLE fifo.allocations IN SHARE UPDATE EXCLUSIVE MODE"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                with conn.transaction():
                    conn.execute(sql)
    # a role that may read every table (pg_read_all_data) still may not lock a row
    name, reader_of_all = roles(None)
    db.execute(f'GRANT pg_read_all_data TO "{name}"')
    for sql in ("SELECT * FROM fifo.run_locks FOR KEY SHARE", "SELECT * FROM fifo.pool_locks FOR SHARE"):
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            reader_of_all.execute(sql)
    # nobody but the owner and superusers may: except pg_write_all_data, which a superuser grants
    # to roles it trusts to write every table
    owner = db.execute("SELECT nspowner FROM pg_namespace WHERE nspname = 'fifo'").fetchone()[0]
    assert db.execute("""
        SELECT r.rolname, t FROM pg_roles r, unnest(ARRAY['fifo.run_locks', 'fifo.pool_locks']) t
        WHERE NOT r.rolsuper AND NOT pg_has_role(r.oid, %s, 'USAGE')
          AND NOT pg_has_role(r.oid, 'pg_write_all_data', 'USAGE')
          AND has_table_privilege(r.oid, t, 'UPDATE')""", (owner,)).fetchall() == []
    assert db.execute("SELECT relacl FROM pg_class WHERE oid IN ('fifo.run_locks'::regclass, "
                      "'fifo.pool_locks'::regclass)").fetchall() == [(None,), (None,)]


def test_the_old_advisory_keys_block_nothing(db, roles, dsn):
    """A role with no grant takes every key fifo-db used: nothing waits for them any more."""
    _, hostile = roles(None, autocommit=False)
    keys = [(1718185569 + k, 0) for k in range(5)] + [(1718185569, 0), (1718185573, 1)]
    keys += [(1718185569, h) for (h,) in hostile.execute(
        "SELECT hashtext(s || E'\\x1f' || 'default') FROM unnest(ARRAY['X', 'Y']) s")]
    for a, b in keys:
        hostile.execute("SELECT pg_advisory_lock(%s, %s)", (a, b))
        hostile.execute("SELECT pg_advisory_lock_shared(%s, %s)", (a, b))
    add_trades(db, pools(["X", "Y"]))
    db.execute("SET statement_timeout = '60s'")   # a guard against a hang, not a timing
    assert run_of(db, "compute_fifo('X')")["status"] == "ok"
    assert run_of(db, "compute_fifo_incremental()")["status"] == "ok"
    assert run_of(db, "compute_fifo_all(true)")["status"] == "ok"
    assert run_of(db, "compute_fifo_all(true, 2)")["status"] == "ok"   # adds version 2's partition
    add_trades(db, pools(["X"], "2025-01-02", "sell", "s"))
    assert run_of(db, "compute_fifo_since(now() - interval '1 minute')")["status"] == "ok"
    install(db)
    assert main(["--dsn", dsn, "install"]) == 0
    assert stored(db) == expected(db) and findings(db) == []
    hostile.rollback()


def test_a_reader_holding_compute_fifo_open_fails_other_runs_within_the_bound_naming_it(db, roles, dsn, capsys):
    """A reader runs BEGIN; SELECT compute_fifo('X'); and leaves the transaction open."""
    add_trades(db, pools(["X", "Y"]))
    db.execute("SELECT compute_fifo_all(true)")
    db.execute("SELECT fifo_set_setting('lock_timeout', '1 s')")
    name, reader = roles("reader", autocommit=False)
    reader.execute("SELECT compute_fifo('X')")
    pid = reader.info.backend_pid
    holder = (rf"pid {pid} \(role {name}, idle in transaction, "
              rf"transaction open since \d{{4}}-\d\d-\d\d \d\d:\d\d:\d\d\+00\)")
    hint = (r"A session holds a fifo-db lock until its transaction ends: COMMIT or ROLLBACK there, or end it "
            r"\(SELECT pg_terminate_backend\(pid\), as a superuser or a member of its role\), then run again\. "
            r"Runs wait at most the fifo-db setting lock_timeout \(now 1 s\)\.")
    add_trades(db, pools(["X", "Y"], "2025-01-02", "sell", "s"))

    # compute_fifo of the held pool: gives up after lock_timeout, recorded as failed, names the holder
    warnings: list[str] = []
    db.add_notice_handler(lambda d: warnings.append(d.message_primary))
    run = run_of(db, "compute_fifo('X')")
    assert (run["status"], run["mode"], run["pools"], run["skipped_pools"], run["failed_pools"]) == \
        ("failed", "symbol", 0, 1, 0)
    assert re.fullmatch(rf"pool X/default is held by {holder}; gave up after lock_timeout 1 s\. {hint}",
                        run["error"]), run["error"]
    assert 1000 <= run["duration_ms"] < 20_000
    assert any(w.startswith(f"fifo-db run {run['run_id']} (symbol) computed nothing: pool X/default") for w in warnings)
    assert db.execute("SELECT status, error FROM fifo_runs WHERE run_id = %s", (run["run_id"],)).fetchone() == \
        ("failed", run["error"])

    # the forced full recompute: the same, naming the reader's session
    run = run_of(db, "compute_fifo_all(true)")
    assert (run["status"], run["mode"], run["pools"]) == ("failed", "all", 0)
    assert re.fullmatch(rf"a forced full recompute waits for every run in progress to end, and these did not: "
                        rf"{holder}; gave up after lock_timeout 1 s\. {hint}", run["error"]), run["error"]
    assert 1000 <= run["duration_ms"] < 20_000

    # the incremental tick computes Y, skips X and says who holds it; it does not wait (with an
    # hour to wait, a tick that waited would hit the statement timeout)
    db.execute("SELECT fifo_set_setting('lock_timeout', '1 hour')")
    db.execute("SET statement_timeout = '30s'")
    run = run_of(db, "compute_fifo_incremental()")
    db.execute("RESET statement_timeout")
    db.execute("SELECT fifo_set_setting('lock_timeout', '1 s')")
    assert (run["status"], run["pools"], run["skipped_pools"], run["symbols"]) == ("ok", 1, 1, ["Y"])
    assert re.fullmatch(rf"skipped 1 held pool, still pending: pool X/default held by {holder}", run["error"])

    # the command line: one line, exit 1
    assert main(["--dsn", dsn, "compute", "--symbol", "X"]) == 1
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1
    assert re.fullmatch(rf"fifo-db: error: run \d+ \(symbol\) computed nothing: pool X/default is held by "
                        rf"{holder}; gave up after lock_timeout 1 s\. {hint}\n", err), err
    assert main(["--dsn", dsn, "compute", "--all-symbols", "--force"]) == 1
    assert capsys.readouterr().err.startswith("fifo-db: error: run ")

    reader.rollback()
    assert run_of(db, "compute_fifo_incremental()")["symbols"] == ["X"]
    assert stored(db) == expected(db) and findings(db) == []
    assert run_of(db, "compute_fifo_all(true)")["status"] == "ok"


def test_a_forced_run_held_open_makes_others_give_up_naming_it(db, roles):
    add_trades(db, pools(["X", "Y"]))
    db.execute("SELECT fifo_set_setting('lock_timeout', '1 s')")
    name, op = roles("operator", autocommit=False)
    op.execute("SELECT compute_fifo_all(true)")
    holder = rf"pid {op.info.backend_pid} \(role {name}, idle in transaction, transaction open since [^)]+\)"
    run = run_of(db, "compute_fifo('X')")
    assert run["status"] == "failed"
    assert re.match(rf"a forced full recompute \(compute_fifo_all\(true\)\) holds every pool: {holder}; "
                    rf"gave up after lock_timeout 1 s\. ", run["error"]), run["error"]
    add_trades(db, pools(["X"], "2025-01-02", "sell", "s"))
    run = run_of(db, "compute_fifo_incremental()")   # never waits (Y's first change: the open run took it)
    assert (run["status"], run["pools"], run["skipped_pools"]) == ("skipped", 0, 2)
    assert re.fullmatch(rf"skipped 2 held pools, still pending: every pool is held by a forced full recompute: "
                        rf"{holder}", run["error"]), run["error"]
    op.commit()
    assert run_of(db, "compute_fifo_incremental()")["pools"] == 1
    assert stored(db) == expected(db)


def test_the_lock_timeout_setting_never_stays_in_the_callers_session(db, roles):
    add_trades(db, pools(["X"]))
    _, reader = roles("reader", autocommit=False)
    reader.execute("SET lock_timeout = '7s'")
    reader.execute("SELECT compute_fifo('X')")
    reader.execute("SELECT compute_fifo_incremental()")
    assert reader.execute("SELECT current_setting('lock_timeout')").fetchone()[0] == "7s"
    reader.rollback()


# -- an owner that is no superuser: what it may see, and the swap's bound -------------------

@pytest.fixture
def owned(db, dsn):
    """A database owned by a login role that is no superuser (nor pg_read_all_stats), with
    fifo-db installed by it; yields (owner name, its connection, superuser connection)."""
    owner = f"fdb_owner_{uuid.uuid4().hex[:8]}"
    dbname = f"{db.info.dbname}_owned"
    db.execute(f'CREATE ROLE "{owner}" LOGIN')
    db.execute(f'CREATE DATABASE "{dbname}" OWNER "{owner}" TEMPLATE template0')
    db.execute(f"ALTER DATABASE \"{dbname}\" SET deadlock_timeout = '300ms'")   # the swap's bound: 0.9 s
    as_owner = psycopg.connect(dsn.replace(f"dbname={db.info.dbname}", f"dbname={dbname}"), user=owner,
                               autocommit=True)
    as_super = psycopg.connect(dsn.replace(f"dbname={db.info.dbname}", f"dbname={dbname}"), autocommit=True)
    install(as_owner)
    yield owner, as_owner, as_super
    as_owner.close()
    as_super.close()
    db.execute(f'DROP DATABASE "{dbname}" WITH (FORCE)')
    db.execute(f'DROP ROLE "{owner}"')


def test_an_owner_without_pg_read_all_stats_names_the_holder_and_says_what_it_cannot_see(owned):
    owner, conn, su = owned
    add_trades(conn, pools(["X"]))
    conn.execute("SELECT compute_fifo_all(true)")
    conn.execute("SELECT fifo_set_setting('lock_timeout', '1 s')")
    holder = psycopg.connect(su.info.dsn, autocommit=False)   # a superuser's session: the owner sees little of it
    try:
        holder.execute("SELECT compute_fifo('X')")
        run = run_of(conn, "compute_fifo('X')")
        assert run["status"] == "failed"
        assert run["error"].startswith(
            f"pool X/default is held by pid {holder.info.backend_pid} (role postgres, what it does and since when "
            f"is not visible to role {owner}, which is not a member of pg_read_all_stats); gave up after "
            f"lock_timeout 1 s. "), run["error"]
    finally:
        holder.close()


def test_a_share_update_exclusive_holder_the_owner_cannot_tell_from_autovacuum_is_waited_for_once(owned):
    """The issue's 59 s: an owner without pg_read_all_stats cannot see that the holder of SHARE
    UPDATE EXCLUSIVE is no autovacuum, so the swap waits for it; now 3 x deadlock_timeout in
    all, then the rows are copied in place."""
    owner, conn, su = owned
    conn.execute("SELECT fifo_set_setting('forced_in_place_below', '0')")   # the fresh table and its swap
    add_trades(conn, [t for i in range(20) for t in pools([f"P{i:02d}"])])
    conn.execute("SELECT compute_fifo_all(true)")
    holder = psycopg.connect(su.info.dsn, autocommit=False)
    try:
        holder.execute("LOCK TABLE fifo.allocations_v1 IN SHARE UPDATE EXCLUSIVE MODE")   # a manual VACUUM's lock
        conn.execute("UPDATE trade_records SET price = price + 1")
        notices: list[str] = []
        conn.add_notice_handler(lambda d: notices.append(d.message_primary))
        run = run_of(conn, "compute_fifo_all(true)")
    finally:
        holder.close()
    assert run["status"] == "ok" and any("replaced in place" in n for n in notices)
    assert 900 <= run["duration_ms"] < 8_000   # waited the bound once; 19 waits of it were 17 s
    assert stored(conn) == expected(conn) and findings(conn) == []


# -- install: one at a time, bounded, on nothing a stranger can lock ----------------------------

def test_an_install_waits_for_another_at_most_its_bound_and_names_it(db, monkeypatch):
    from fifo_db import install as install_module
    from fifo_db.errors import FifoError

    monkeypatch.setattr(install_module, "INSTALL_LOCK_TIMEOUT", "1s")
    other = psycopg.connect(db.info.dsn, autocommit=False)   # another installer, in its transaction
    try:
        install_module.lock_install(other)
        with pytest.raises(FifoError) as err:
            install(db)
        assert re.fullmatch(
            rf"another fifo-db install, adopt or uninstall holds database '{db.info.dbname}': pid "
            rf"{other.info.backend_pid} \(role postgres, idle in transaction, transaction open since [^)]+\); "
            rf"gave up after 1s; let it finish \(or end it\), then run this again", str(err.value)), str(err.value)
    finally:
        other.close()
    install(db)   # free again


def test_two_first_installs_at_once_one_wins_the_other_changes_nothing(db, dsn):
    import threading

    from fifo_db.errors import FifoError

    name = f"{db.info.dbname}_first"
    db.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
    first = psycopg.connect(dsn.replace(f"dbname={db.info.dbname}", f"dbname={name}"), autocommit=False)
    second = psycopg.connect(dsn.replace(f"dbname={db.info.dbname}", f"dbname={name}"), autocommit=True)
    try:
        first.execute("CREATE SCHEMA fifo")   # the first install, not committed yet
        outcome: dict = {}

        def run():
            try:
                install(second)
            except FifoError as exc:
                outcome["error"] = str(exc)

        thread = threading.Thread(target=run)
        thread.start()
        while not db.execute("SELECT EXISTS (SELECT 1 FROM pg_locks WHERE pid = %s AND NOT granted)",
                             (second.info.backend_pid,)).fetchone()[0]:
            assert thread.is_alive(), outcome
        first.commit()
        thread.join(60)
        assert outcome["error"] == (f"another fifo-db install created schema fifo in database '{name}' at the "
                                    f"same time; nothing was changed by this one: run it again")
        assert second.execute("SELECT to_regclass('fifo._yoyo_migration')").fetchone()[0] is None
    finally:
        first.close()
        second.close()
        db.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


def test_a_bot_locking_the_trades_table_is_named_too(db, roles):
    add_trades(db, pools(["X"]))
    db.execute("SELECT fifo_set_setting('lock_timeout', '1 s')")
    bot = psycopg.connect(db.info.dsn, autocommit=False)
    try:
        bot.execute("LOCK TABLE trade_records IN ACCESS EXCLUSIVE MODE")   # an ALTER TABLE, say
        run = run_of(db, "compute_fifo('X')")
        assert run["status"] == "failed"
        assert run["error"].startswith(f"a table fifo-db reads or writes is locked by another session: pid "
                                       f"{bot.info.backend_pid} (role postgres, idle in transaction, "), run["error"]
    finally:
        bot.close()
    assert run_of(db, "compute_fifo('X')")["status"] == "ok"


def test_only_the_pools_really_held_are_named(db, roles):
    """A pool last locked by a run that has committed keeps that run's xid in its row: it is
    not named as held."""
    add_trades(db, pools(["X", "Y", "Z"]))
    db.execute("SELECT compute_fifo_all(true)")
    db.execute("SELECT fifo_set_setting('lock_timeout', '1 s')")
    name, reader = roles("reader", autocommit=False)
    reader.execute("SELECT compute_fifo('X')")                  # the older transaction
    db.execute("SELECT compute_fifo('Y')")                      # newer, committed
    add_trades(db, pools(["X", "Y", "Z"], "2025-01-02", "sell", "s"))
    run = run_of(db, "compute_fifo_all()")
    assert re.fullmatch(rf"pool X/default is held by pid {reader.info.backend_pid} \(role {name}, idle in "
                        rf"transaction, transaction open since [^)]+\); gave up after lock_timeout 1 s\. .*",
                        run["error"]), run["error"]
    reader.rollback()


def test_an_upgrade_drops_the_two_session_functions(db):
    """The functions of the dblink path as the previous release had them (signatures of
    5514922's sql/035): an install over it leaves none behind."""
    for signature, returns in [
            ("_sessions_for(integer)", "integer"), ("_self_conninfo()", "text"),
            ("_dblink_call(text, text, text)", "text"), ("_in_sessions(text[], text[], integer[])", "text[]"),
            ("_build_in_sessions(integer, integer, uuid, text[], text[], timestamptz[], regclass, integer)", "void"),
            ("_dblink_disconnect(text[])", "void"), ("_fresh_allocations_committed(integer, text)", "regclass"),
            ("_swap_partition(integer, regclass, text[], text[], boolean)", "boolean"),
            ("_pool_key(text, text)", "integer")]:
        db.execute(f"CREATE FUNCTION fifo.{signature} RETURNS {returns} LANGUAGE sql AS 'SELECT NULL::{returns}'")
    install(db)
    assert db.execute("SELECT array_agg(p.oid::regprocedure::text ORDER BY 1) FROM pg_proc p "
                      "WHERE p.pronamespace = 'fifo'::regnamespace AND p.proname IN ('_sessions_for', "
                      "'_self_conninfo', '_dblink_call', '_in_sessions', '_build_in_sessions', '_dblink_disconnect', "
                      "'_fresh_allocations_committed', '_swap_partition', '_pool_key')").fetchone()[0] == [
        "fifo._swap_partition(integer,regclass,text[],text[])"]


def test_a_run_of_another_version_holding_the_pools_state_is_waited_for_within_the_bound(db, connect):
    """A run of version 1 marks version 2's pool row stale and holds it until it ends; a tick of
    version 2 then waits for that row at most lock_timeout, instead of without bound."""
    add_trades(db, pools(["X-USD", "Y-USD"]))
    db.execute("SELECT compute_fifo_all(true)")
    db.execute("SELECT compute_fifo_all(true, 2)")
    add_trades(db, pools(["X-USD"], when="2025-01-02", side="sell", prefix="s"))
    db.execute("SELECT fifo_set_setting('lock_timeout', '1 s')")
    holder = connect(autocommit=False)
    holder.execute("SELECT compute_fifo('X-USD')")          # version 1, left open
    pid = holder.info.backend_pid
    run = run_of(db, "compute_fifo_incremental(2)")
    holder.rollback()
    assert run is not None and run["status"] != "ok"
    assert f"pid {pid}" in run["error"]
    assert run_of(db, "compute_fifo_incremental()")["status"] == "ok"    # released: version 1, then
    assert run_of(db, "compute_fifo_incremental(2)")["status"] == "ok"   # version 2 (marked stale by it)
    assert stored(db, 2) == expected(db) and stored(db) == expected(db)
    assert findings(db, version=2) == [] and findings(db) == []
