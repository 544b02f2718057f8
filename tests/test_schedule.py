"""pg_cron scheduling: `fifo-db schedule install | list | remove` and fifo_schedule() in SQL.

The test server preloads pg_cron with cron.database_name = 'fifo', and every
test database is a clone with another name: pg_cron always lives in another
database here, the case cron.schedule_in_database exists for.
"""

from __future__ import annotations

import shutil
import time

import psycopg
import pytest

from fifo_db.assets import verify as asset_verify
from fifo_db.cli import main
from fifo_db.embedded import EmbeddedServer
from fifo_db.install import install
from fifo_db.schedule import install_schedule, list_schedule
from tests.conftest import SERVER, TEST_HOME
from tests.helpers import add_trades, expected, findings, stored

pytestmark = pytest.mark.pg_cron

CRON_DB = "fifo"


def cron_conn() -> psycopg.Connection:
    return psycopg.connect(**SERVER.conninfo(CRON_DB), autocommit=True)


def cron_jobs(database: str) -> list[tuple]:
    """(jobname, schedule, command) of the pg_cron jobs that run in `database`."""
    with cron_conn() as conn:
        if not conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'pg_cron'").fetchone():
            return []
        return conn.execute("SELECT jobname, schedule, command FROM cron.job WHERE database = %s "
                            "ORDER BY jobname", (database,)).fetchall()


@pytest.fixture
def unschedule(db):
    """Whatever a test schedules for its database (or the cron database) is removed at the end."""
    yield
    with cron_conn() as conn:
        if conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'pg_cron'").fetchone():
            conn.execute("SELECT cron.unschedule(jobid) FROM cron.job WHERE database IN (%s, %s)",
                         (db.info.dbname, CRON_DB))


def test_install_is_idempotent_and_targets_this_database(db, dsn, unschedule, capsys):
    dbname = db.info.dbname
    assert main(["--dsn", dsn, "schedule", "install"]) == 0
    out = capsys.readouterr().out
    assert f"scheduled fifo-db incremental ({dbname}): '* * * * *' SELECT public.compute_fifo_incremental()" in out
    assert f"in cron database '{CRON_DB}'" in out

    assert main(["--dsn", dsn, "schedule", "install", "--every", "*/2 * * * *", "--full", "30 2 * * *"]) == 0
    assert cron_jobs(dbname) == [
        (f"fifo-db assets ({dbname})", "*/2 * * * *", "SELECT public.compute_fifo_assets_incremental(true)"),
        (f"fifo-db full ({dbname})", "30 2 * * *", "SELECT public.compute_fifo_all(true)"),
        (f"fifo-db incremental ({dbname})", "*/2 * * * *", "SELECT public.compute_fifo_incremental()"),
    ]
    # --full none: only the incremental jobs remain
    assert main(["--dsn", dsn, "schedule", "install", "--full", "none"]) == 0
    assert cron_jobs(dbname) == [
        (f"fifo-db assets ({dbname})", "* * * * *", "SELECT public.compute_fifo_assets_incremental(true)"),
        (f"fifo-db incremental ({dbname})", "* * * * *", "SELECT public.compute_fifo_incremental()")]


def test_list_shows_jobs_then_remove_removes_them(db, dsn, unschedule, capsys):
    dbname = db.info.dbname
    assert main(["--dsn", dsn, "schedule", "list"]) == 0
    assert f"no fifo-db jobs are scheduled for database '{dbname}'" in capsys.readouterr().out

    assert main(["--dsn", dsn, "schedule", "install"]) == 0
    capsys.readouterr()
    assert main(["--dsn", dsn, "schedule", "list"]) == 0
    out = capsys.readouterr().out
    assert f"in database '{CRON_DB}', jobs for database '{dbname}'" in out
    assert f"fifo-db incremental ({dbname}): '* * * * *' SELECT public.compute_fifo_incremental()" in out
    assert f"fifo-db full ({dbname}): '50 1 * * *' SELECT public.compute_fifo_all(true)" in out
    assert f"fifo-db assets ({dbname}): '* * * * *' SELECT public.compute_fifo_assets_incremental(true)" in out
    assert "no runs yet" in out

    assert main(["--dsn", dsn, "schedule", "remove"]) == 0
    assert f"removed 3 fifo-db job(s) for database '{dbname}'" in capsys.readouterr().out
    assert cron_jobs(dbname) == []
    assert main(["--dsn", dsn, "schedule", "remove"]) == 0
    assert "removed 0 fifo-db job(s)" in capsys.readouterr().out


def test_two_databases_keep_their_own_jobs(db, dsn, unschedule):
    """Job names carry the database, so scheduling one database never replaces another's jobs."""
    with cron_conn() as conn:
        install(conn)
    with cron_conn() as conn:
        conn.execute("SELECT * FROM fifo_schedule()")
    assert main(["--dsn", dsn, "schedule", "install"]) == 0
    assert main(["--dsn", dsn, "schedule", "remove"]) == 0
    assert [name for name, _, _ in cron_jobs(CRON_DB)] == ["fifo-db assets (fifo)", "fifo-db full (fifo)",
                                                           "fifo-db incremental (fifo)"]


def test_sql_functions_in_the_cron_database(unschedule):
    """Where pg_cron lives, fifo_schedule()/fifo_unschedule() do it all in SQL, idempotently."""
    with cron_conn() as conn:
        install(conn)
        rows = conn.execute("SELECT job_name, schedule, command FROM fifo_schedule('*/5 * * * *', NULL)").fetchall()
        assert rows == [("fifo-db incremental (fifo)", "*/5 * * * *", "SELECT public.compute_fifo_incremental()"),
                        ("fifo-db assets (fifo)", "*/5 * * * *", "SELECT public.compute_fifo_assets_incremental(true)")]
        conn.execute("SELECT * FROM fifo_schedule()")
        conn.execute("SELECT * FROM fifo_schedule()")
        assert cron_jobs(CRON_DB) == [
            ("fifo-db assets (fifo)", "* * * * *", "SELECT public.compute_fifo_assets_incremental(true)"),
            ("fifo-db full (fifo)", "50 1 * * *", "SELECT public.compute_fifo_all(true)"),
            ("fifo-db incremental (fifo)", "* * * * *", "SELECT public.compute_fifo_incremental()"),
        ]
        assert conn.execute("SELECT fifo_unschedule()").fetchone()[0] == 3
        assert conn.execute("SELECT fifo_unschedule()").fetchone()[0] == 0
        assert cron_jobs(CRON_DB) == []


def test_sql_function_in_another_database_says_what_to_do(db):
    with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState) as err:
        db.execute("SELECT * FROM fifo_schedule()")
    diag = err.value.diag
    assert diag.message_primary == (f'pg_cron runs in database "{CRON_DB}" (cron.database_name), '
                                    f'not in "{db.info.dbname}"')
    assert "fifo-db schedule install" in diag.message_hint
    assert (f"SELECT cron.schedule_in_database('fifo-db incremental ({db.info.dbname})', '* * * * *', "
            f"'SELECT public.compute_fifo_incremental()', '{db.info.dbname}');") in diag.message_hint


def test_bad_cron_expression_is_one_line(dsn, unschedule, capsys):
    assert main(["--dsn", dsn, "schedule", "install", "--every", "every minute"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("fifo-db: error: ") and "every minute" in err and err.count("\n") == 1


def test_missing_extension_and_missing_preload_say_what_to_do(dsn, capsys):
    """A second real server: pg_cron preloaded but not created, then not preloaded at all."""
    home = TEST_HOME.parent / f"{TEST_HOME.name}-cron-off"
    shutil.rmtree(home, ignore_errors=True)
    server = EmbeddedServer(home)
    server.start()
    try:
        with psycopg.connect(**server.conninfo(), autocommit=True) as conn:
            install(conn)
        url = server.url()
        assert main(["--dsn", url, "schedule", "list"]) == 1
        err = capsys.readouterr().err
        assert ('pg_cron is loaded but the extension is not created in database "fifo" (cron.database_name)'
                in err)
        assert "CREATE EXTENSION pg_cron" in err and err.count("\n") == 1

        with psycopg.connect(**server.conninfo(), autocommit=True) as conn:
            conn.execute("ALTER SYSTEM SET shared_preload_libraries = 'auto_explain'")
        server.stop()
        server.start()
        assert main(["--dsn", url, "schedule", "install"]) == 1
        err = capsys.readouterr().err
        assert "pg_cron is installed but not loaded (shared_preload_libraries is 'auto_explain')" in err
        assert "shared_preload_libraries = 'pg_cron'" in err and "restart PostgreSQL" in err
        assert err.count("\n") == 1
    finally:
        server.stop()
        shutil.rmtree(home, ignore_errors=True)


@pytest.mark.slow
def test_scheduled_job_really_runs_and_brings_allocations_current(db, unschedule, say):
    """Wait for the real pg_cron tick (seconds when pg_cron >= 1.5, else the next minute), saying on the
    terminal what it waits for and, every 15 s, that it still does."""
    with cron_conn() as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_cron")
        major, minor = conn.execute("SELECT extversion FROM pg_extension "
                                    "WHERE extname = 'pg_cron'").fetchone()[0].split("-")[0].split(".")[:2]
    every = "5 seconds" if (int(major), int(minor)) >= (1, 5) else "* * * * *"
    add_trades(db, [
        {"order_id": "b1", "symbol": "CRON-USD", "side": "buy", "size": "2.5", "price": 10, "order_time": "2025-01-01"},
    ])
    db.execute("SELECT compute_fifo_assets()")   # the asset view computed once: the schedule keeps it current
    add_trades(db, [
        {"order_id": "s1", "symbol": "CRON-USD", "side": "sell", "size": "1.5", "price": 12, "order_time": "2025-01-02"},
    ])
    jobs = install_schedule(db, every, None)
    assert [j["job_name"] for j in jobs] == [f"fifo-db incremental ({db.info.dbname})",
                                             f"fifo-db assets ({db.info.dbname})"]
    want = expected(db)
    assert stored(db) != want
    sold = "SELECT count(*) FROM fifo.asset_allocations WHERE ref_id = 's1'"
    assert db.execute(sold).fetchone()[0] == 0

    def current() -> bool:
        return (stored(db) == want and db.execute(sold).fetchone()[0] == 1
                and all(any(r["status"] == "succeeded" for r in job["runs"]) for job in list_schedule(db)))

    started = time.monotonic()
    deadline = started + 150
    if every == "* * * * *":
        now = db.execute("SELECT now()").fetchone()[0]
        tick = f"at the start of the next minute ({60 - now.second} s from now; pg_cron {major}.{minor} has no seconds)"
    else:
        tick = "within 5 s"
    say(f"waiting for pg_cron to run the job {tick}, at most 150 s ...")
    runs: list = []
    spoken = started
    while time.monotonic() < deadline:
        runs = [r for job in list_schedule(db) for r in job["runs"]]
        if current():
            break
        if time.monotonic() - spoken >= 15:
            spoken = time.monotonic()
            say(f"still waiting for pg_cron ({spoken - started:.0f} s; runs so far: "
                f"{', '.join(r['status'] for r in runs) or 'none'})")
        time.sleep(1)
    done = current()
    say(f"{'pg_cron ran them' if done else 'gave up'} after {time.monotonic() - started:.0f} s\n")
    assert stored(db) == want, f"the cron job did not bring allocations current; its runs: {runs}"
    assert done, f"the asset view or a job's run is missing; the runs: {runs}"
    assert findings(db) == []
    assert db.execute("SELECT mode, status, pools FROM fifo_runs").fetchall()[0] == ("incremental", "ok", 1)
    # the asset job ran incrementally (one pool: CRON in the default wallet) and the view is exact
    assert db.execute("SELECT kind, pools FROM fifo.asset_runs ORDER BY run_id").fetchall() == [
        ("full", 1), ("incremental", 1)]
    assert asset_verify(db) == []
