"""Everything as the database owner, no superuser (issue 15 item 3), on a second real cluster
(tests/owner_cluster.py): the owner logs in with a password (scram-sha-256) over TCP on
127.0.0.1, has no SUPERUSER, CREATEROLE or CREATEDB, and no pg_read_all_settings.

Where a DBA must act, the test plays the DBA by running exactly the SQL statements of the
checklist fifo-db printed: the checklist is complete when that is all it takes.
"""

from __future__ import annotations

import re
import time
from decimal import Decimal
import uuid

import psycopg
import pytest

from fifo_db.cli import main
from tests import bottrader
from tests.conftest import TEST_HOME
from tests.helpers import add_trades
from tests.owner_cluster import OWNER_PASSWORD, OwnerCluster

TRADES = [
    {"order_id": "b1", "symbol": "OWN-USD", "side": "buy", "size": "2.5", "price": 10, "order_time": "2025-01-01"},
    {"order_id": "b2", "symbol": "OWN-USD", "side": "buy", "size": "1", "price": 11, "order_time": "2025-01-02"},
    {"order_id": "s1", "symbol": "OWN-USD", "side": "sell", "size": "3", "price": 12, "order_time": "2025-01-03"},
    {"order_id": "b3", "symbol": "OTHER-USD", "side": "buy", "size": "1", "price": 5, "order_time": "2025-01-01"},
]


def _cluster(name: str, **kwargs) -> OwnerCluster:
    cluster = OwnerCluster(TEST_HOME.parent / f"{TEST_HOME.name}-{name}", **kwargs)
    cluster.remove()   # a leftover of an interrupted run
    cluster.start()
    return cluster


@pytest.fixture(scope="module")
def cluster():
    cluster = _cluster("owner")
    yield cluster
    cluster.remove()


class Owned:
    def __init__(self, cluster: OwnerCluster, role: str, database: str):
        self.cluster, self.role, self.database = cluster, role, database
        self.dsn = cluster.owner_dsn(role, database)

    def conn(self) -> psycopg.Connection:
        return psycopg.connect(self.dsn, autocommit=True)

    def run_as_dba(self, checklist: str) -> list[str]:
        """Run the SQL steps of a printed checklist as a superuser; returns them."""
        done = []
        for database, statement in re.findall(r"^\s+\d+\. in database (\S+): (.+?;)", checklist, re.M):
            with self.cluster.superuser(database) as su:
                su.execute(statement)
            done.append(statement)
        return done


@pytest.fixture
def owned(cluster):
    role, database = cluster.owner_database()
    yield Owned(cluster, role, database)
    cluster.drop(role, database)


def run(capsys, *argv) -> tuple[int, str, str]:
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def test_the_owner_logs_in_with_a_password_over_tcp_and_is_no_superuser(owned):
    with owned.cluster.superuser() as su:
        assert su.execute("SELECT rolsuper, rolcreaterole, rolcreatedb, left(rolpassword, 14), "
                          "pg_has_role(rolname, 'pg_read_all_settings', 'USAGE') FROM pg_authid WHERE rolname = %s",
                          (owned.role,)).fetchone() == (False, False, False, "SCRAM-SHA-256$", False)
    with owned.conn() as conn:
        assert conn.info.host == "127.0.0.1"
        assert conn.execute("SELECT datdba::regrole::text FROM pg_database WHERE datname = current_database()"
                            ).fetchone()[0] == owned.role
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(owned.dsn.replace(OWNER_PASSWORD, "wrong"))


def test_install_compute_verify_and_grant_as_the_owner(owned, capsys):
    assert run(capsys, "--dsn", owned.dsn, "install")[0] == 0
    rc, out, err = run(capsys, "--dsn", owned.dsn, "install")
    assert (rc, err) == (0, "") and "migrations applied: none pending" in out
    with owned.conn() as conn:
        add_trades(conn, TRADES)
    assert run(capsys, "--dsn", owned.dsn, "compute", "--symbol", "OWN-USD")[0] == 0
    assert run(capsys, "--dsn", owned.dsn, "compute", "--all-symbols")[0] == 0
    assert run(capsys, "--dsn", owned.dsn, "compute", "--all-symbols", "--force")[0] == 0
    rc, out, err = run(capsys, "--dsn", owned.dsn, "verify")
    assert (rc, err) == (0, "") and out.endswith("verify: clean (2 computed pool(s): every allocation equal to "
                                                 "FIFO recomputed in SQL and to the Python reference FIFO)\n")
    with owned.conn() as conn:
        assert conn.execute("SELECT sum(pnl_amount) FROM fifo_trade_pnl").fetchone()[0] == Decimal("5.5")

    # roles a DBA made; the owner has no CREATEROLE and is a member of none of them
    tag = uuid.uuid4().hex[:6]
    grantees = {kind: f"owner_test_{kind}_{tag}" for kind in ("reader", "bot", "operator")}
    with owned.cluster.superuser() as su:
        for role in grantees.values():
            su.execute(f'CREATE ROLE "{role}" LOGIN PASSWORD \'{OWNER_PASSWORD}\'')
    try:
        for kind, role in grantees.items():
            rc, out, err = run(capsys, "--dsn", owned.dsn, "grant", kind, role)
            assert (rc, err) == (0, "") and out.startswith(f"granted {role!r} the privileges of a fifo-db {kind}")
        as_role = {kind: owned.dsn.replace(f"user={owned.role}", f"user={role}") for kind, role in grantees.items()}
        with psycopg.connect(as_role["bot"], autocommit=True) as bot:
            add_trades(bot, [{"order_id": "s2", "symbol": "OWN-USD", "side": "sell", "size": "0.5", "price": 13,
                              "order_time": "2025-01-04"}])
        with psycopg.connect(as_role["reader"], autocommit=True) as reader:
            reader.execute("SELECT compute_fifo_incremental()")
            assert reader.execute("SELECT sum(pnl_amount) FROM fifo_trade_pnl").fetchone()[0] == Decimal("6.5")
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                reader.execute("SELECT compute_fifo_all(true)")
        with psycopg.connect(as_role["operator"], autocommit=True) as operator:
            assert operator.execute("SELECT status FROM compute_fifo_all(true)").fetchone() is not None
        assert run(capsys, "--dsn", owned.dsn, "verify")[0] == 0
    finally:
        with owned.cluster.superuser("postgres") as su:
            for role in grantees.values():
                with owned.cluster.superuser(owned.database) as c:
                    c.execute(f'DROP OWNED BY "{role}"')
                su.execute(f'DROP ROLE "{role}"')


def test_adopt_and_restore_a_bottrader_database_as_the_owner(owned, capsys):
    with owned.conn() as conn:
        bottrader.build(conn)
    rc, out, err = run(capsys, "--dsn", owned.dsn, "install", "--adopt")
    assert (rc, err) == (0, "")
    # no schedule runs for this database: the bot's crontab lines stay until one does
    assert "then delete the bot's two FIFO lines" not in out
    assert ("keep the bot's two FIFO lines in the host crontab until fifo-db keeps this database current: "
            "nothing does yet. Run `fifo-db schedule install` (or, on a server without pg_cron, `fifo-db worker`) "
            "first") in out
    assert run(capsys, "--dsn", owned.dsn, "compute", "--version", "2", "--all-symbols", "--force")[0] == 0
    rc, out, _ = run(capsys, "--dsn", owned.dsn, "verify", "--version", "2")
    assert rc == 0 and "verify: clean" in out
    rc, out, err = run(capsys, "--dsn", owned.dsn, "uninstall", "--restore")
    assert (rc, err) == (0, "")
    assert out.rstrip().endswith(f"fifo-db is uninstalled from database {owned.database!r} and the database is "
                                 f"as it was before the adoption")
    with owned.conn() as conn:
        assert conn.execute("SELECT to_regnamespace('fifo') IS NULL AND to_regnamespace('fifo_legacy') IS NULL")\
            .fetchone()[0]
        assert conn.execute("SELECT count(*) FROM public.fifo_allocations").fetchone()[0] > 0


@pytest.mark.pg_cron
def test_schedule_prints_the_whole_dba_checklist_once_and_changes_nothing(owned, capsys):
    assert run(capsys, "--dsn", owned.dsn, "install")[0] == 0
    with owned.cluster.superuser() as su:
        su.execute("DROP EXTENSION IF EXISTS pg_cron")   # as a fresh managed server: not created yet
    rc, out, err = run(capsys, "--dsn", owned.dsn, "schedule", "install")
    role = f'"{owned.role}"'
    assert (rc, out) == (1, "")
    assert err == (
        f"fifo-db: error: pg_cron cannot run fifo-db's jobs for database {owned.database!r} as role "
        f"{owned.role!r} yet; nothing was changed. Ask your DBA (a superuser) to do this once, in order, then run "
        f"`fifo-db schedule install` again:\n"
        f"  1. in database fifo: CREATE EXTENSION pg_cron;\n"
        f"  2. in database fifo: GRANT USAGE ON SCHEMA cron TO {role};\n"
        f"  3. in database fifo: GRANT EXECUTE ON FUNCTION cron.schedule_in_database(text, text, text, text, text, "
        f"boolean) TO {role};\n"
        f"  4. check that postgresql.conf has cron.use_background_workers = on (fifo-db cannot read it as role "
        f"{owned.role}; off, pg_cron connects to cron.host over TCP without a password and every job fails with "
        f"'connection failed'); if you change it, restart PostgreSQL\n")
    with owned.cluster.superuser() as su:
        assert su.execute("SELECT count(*) FROM pg_extension WHERE extname = 'pg_cron'").fetchone()[0] == 0
    # list and remove say the same (rights only), and verify still works
    rc, _, err2 = run(capsys, "--dsn", owned.dsn, "schedule", "list")
    assert rc == 1 and err2 == err.replace(err.splitlines()[-1] + "\n", "")
    assert run(capsys, "--dsn", owned.dsn, "verify")[0] == 0

    assert len(owned.run_as_dba(err)) == 3
    rc, out, err = run(capsys, "--dsn", owned.dsn, "schedule", "install")
    assert (rc, err) == (0, "")
    jobs = [f"fifo-db incremental ({owned.database}): '* * * * *' SELECT public.compute_fifo_incremental()",
            f"fifo-db full ({owned.database}): '50 1 * * *' SELECT public.compute_fifo_all(true)",
            f"fifo-db assets ({owned.database}): '* * * * *' SELECT public.compute_fifo_assets_incremental(true)"]
    ids = re.findall(r"\[job (\d+) in", out)
    assert len(ids) == 3
    assert out.splitlines()[:3] == [f"scheduled {job} [job {n} in cron database 'fifo']" for job, n in zip(jobs, ids)]
    assert out.splitlines()[3].startswith(f"note: fifo-db cannot read cron.use_background_workers as role "
                                          f"{owned.role}")
    with owned.cluster.superuser() as su:
        assert su.execute("SELECT jobname, username FROM cron.job WHERE database = %s ORDER BY jobid",
                          (owned.database,)).fetchall() == [
            (f"fifo-db incremental ({owned.database})", owned.role), (f"fifo-db full ({owned.database})", owned.role),
            (f"fifo-db assets ({owned.database})", owned.role)]
    rc, out, _ = run(capsys, "--dsn", owned.dsn, "schedule", "list")
    assert rc == 0 and out.startswith(f"pg_cron 1.") and out.count("no runs yet") == 3
    rc, out, _ = run(capsys, "--dsn", owned.dsn, "schedule", "remove")
    assert (rc, out) == (0, f"removed 3 fifo-db job(s) for database {owned.database!r}\n")


@pytest.mark.pg_cron
def test_restore_keeps_the_pg_cron_a_dba_created_and_removes_the_owners_jobs(capsys):
    """The managed shape: the owner's database is the cron database; the DBA creates pg_cron there
    after the adoption. uninstall --restore removes the owner's jobs and leaves the extension."""
    cluster = _cluster("owner-crondb")
    try:
        with cluster.superuser("postgres") as su:
            su.execute(f"CREATE ROLE bot_owner LOGIN PASSWORD '{OWNER_PASSWORD}' NOSUPERUSER NOCREATEROLE")
            su.execute("ALTER DATABASE fifo OWNER TO bot_owner")
        with cluster.superuser() as su:
            su.execute("ALTER SCHEMA public OWNER TO bot_owner")
        owned = Owned(cluster, "bot_owner", "fifo")
        with owned.conn() as conn:
            bottrader.build(conn)
            before = bottrader.dump(conn)
        assert run(capsys, "--dsn", owned.dsn, "install", "--adopt")[0] == 0
        rc, _, err = run(capsys, "--dsn", owned.dsn, "schedule", "install")
        assert rc == 1 and "1. in database fifo: CREATE EXTENSION pg_cron;" in err, err
        owned.run_as_dba(err)
        # an operator schedules in SQL (fifo_schedule is SECURITY DEFINER): the jobs are the owner's
        with cluster.superuser("postgres") as su:
            su.execute(f"CREATE ROLE bot_operator LOGIN PASSWORD '{OWNER_PASSWORD}'")
        assert run(capsys, "--dsn", owned.dsn, "grant", "operator", "bot_operator")[0] == 0
        with psycopg.connect(owned.dsn.replace("user=bot_owner", "user=bot_operator"), autocommit=True) as op:
            assert [r[1] for r in op.execute("SELECT * FROM fifo_schedule('*/10 * * * *')")] == [
                "fifo-db incremental (fifo)", "fifo-db full (fifo)", "fifo-db assets (fifo)"]
        with cluster.superuser() as su:
            assert su.execute("SELECT DISTINCT username FROM cron.job").fetchall() == [("bot_owner",)]
        rc, out, err = run(capsys, "--dsn", owned.dsn, "schedule", "install", "--every", "*/5 * * * *")
        assert (rc, err) == (0, "") and "[job " in out
        rc, out, _ = run(capsys, "--dsn", owned.dsn, "install", "--adopt")   # again: a no-op that knows the jobs
        assert run(capsys, "--dsn", owned.dsn, "revoke", "operator", "bot_operator")[0] == 0
        rc, out, err = run(capsys, "--dsn", owned.dsn, "uninstall", "--restore")
        assert (rc, err) == (0, "")
        assert out.startswith("pg_cron job 'fifo-db incremental (fifo)' removed\n"
                              "pg_cron job 'fifo-db full (fifo)' removed\n"
                              "pg_cron job 'fifo-db assets (fifo)' removed\n")
        assert ("the pg_cron extension is kept: another role (your DBA) created it after the adoption, not fifo-db"
                in out)
        with cluster.superuser() as su:
            assert su.execute("SELECT count(*) FROM cron.job").fetchone()[0] == 0
            su.execute("DROP EXTENSION pg_cron")   # what the DBA added; the rest is as before
        with owned.conn() as conn:
            assert bottrader.dump(conn) == before
    finally:
        cluster.remove()


@pytest.mark.pg_cron
@pytest.mark.slow
def test_jobs_that_cannot_connect_are_shown_and_refused(capsys):
    """cron.use_background_workers = off: pg_cron connects to localhost over TCP without a password,
    and the run fails; list and verify show it, and schedule install refuses, saying what to set."""
    cluster = _cluster("owner-noworkers", background_workers=False)
    try:
        role, database = cluster.owner_database()
        owned = Owned(cluster, role, database)
        assert run(capsys, "--dsn", owned.dsn, "install")[0] == 0
        rc, _, err = run(capsys, "--dsn", owned.dsn, "schedule", "install")
        owned.run_as_dba(err)
        assert run(capsys, "--dsn", owned.dsn, "schedule", "install")[0] == 0
        deadline = time.monotonic() + 75
        out = ""
        while time.monotonic() < deadline:
            rc, out, _ = run(capsys, "--dsn", owned.dsn, "schedule", "list")
            if "failed" in out:
                break
            time.sleep(1)
        assert "    - failed: connection failed" in out
        rc, out, _ = run(capsys, "--dsn", owned.dsn, "verify")
        assert rc == 0 and f"note: pg_cron run 1 of 'fifo-db incremental ({database})' at - failed: connection failed" in out
        rc, out, err = run(capsys, "--dsn", owned.dsn, "schedule", "install")
        assert (rc, out) == (1, "")
        assert err.endswith(
            "again:\n  1. postgresql.conf: cron.use_background_workers = on, then restart PostgreSQL   (this "
            "database's jobs fail: 'connection failed': pg_cron connects over the network without a password; or "
            f"give the server account a ~/.pgpass line for role {role})\n")
    finally:
        cluster.remove()


def test_without_pg_cron_the_checklist_starts_with_installing_it(owned, capsys):
    """A server without pg_cron (PostgreSQL 16 and 18 here, the stock postgres image): the
    checklist has everything, from the package to the grants, in order."""
    if owned.cluster.pg_cron_available():
        pytest.skip("this server has pg_cron; the checklist of a server without it is tested on 16 and 18")
    assert run(capsys, "--dsn", owned.dsn, "install")[0] == 0
    with owned.conn() as conn:
        major = conn.execute("SELECT current_setting('server_version_num')::int / 10000").fetchone()[0]
    rc, out, err = run(capsys, "--dsn", owned.dsn, "schedule", "install")
    role, db = owned.role, owned.database
    assert (rc, out) == (1, "")
    assert err == (
        f"fifo-db: error: pg_cron cannot run fifo-db's jobs for database {db!r} as role {role!r} yet; nothing was "
        f"changed. Ask your DBA (a superuser) to do this once, in order, then run `fifo-db schedule install` again:\n"
        f"  1. install pg_cron on the server (Debian/Ubuntu: apt-get install postgresql-{major}-cron; managed "
        f"services: enable the pg_cron extension in the parameter group / flags)\n"
        f"  2. postgresql.conf: shared_preload_libraries = 'pg_cron'   (add to the list if it has others)\n"
        f"  3. postgresql.conf: cron.database_name = '{db}'\n"
        f"  4. postgresql.conf: cron.use_background_workers = on   (pg_cron otherwise connects to localhost over "
        f"TCP without a password, and every job fails with 'connection failed'; or give the server account a "
        f"~/.pgpass line for role {role})\n"
        f"  5. postgresql.conf: max_worker_processes = 16   (or more: room for pg_cron's workers)\n"
        f"  6. restart PostgreSQL (these settings take effect only at server start)\n"
        f"  7. in database {db}: CREATE EXTENSION pg_cron;\n"
        f"  8. in database {db}: GRANT USAGE ON SCHEMA cron TO \"{role}\";\n"
        f"  9. in database {db}: GRANT EXECUTE ON FUNCTION cron.schedule_in_database(text, text, text, text, text, "
        f"boolean) TO \"{role}\";\n")
    with owned.conn() as conn:   # nothing changed
        assert conn.execute("SELECT count(*) FROM pg_extension WHERE extname = 'pg_cron'").fetchone()[0] == 0
