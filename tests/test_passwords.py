"""No password is ever printed (fifo_db/masking.py), and a server that wants one says so.

The DSN-shaped texts are checked on their own (every form libpq reads: URL user:password@,
URL ?password=, key=value password=, quoted or not, malformed); then the CLI against a real
server that asks for a password (tests/owner_cluster.py: scram-sha-256 over TCP): no password,
a wrong one, a malformed DSN, `db create`, the demo and the worker, each with the exact line it
prints and never the password.
"""

from __future__ import annotations

import pytest

from fifo_db.cli import main
from fifo_db.masking import mask_dsn, scrub
from tests.conftest import TEST_HOME
from tests.owner_cluster import OWNER_PASSWORD, OwnerCluster

SECRET = "botpass-123"


@pytest.mark.parametrize("dsn, shown", [
    (f"postgresql://bot:{SECRET}@127.0.0.1:54 98/botdb", "postgresql://bot:****@127.0.0.1:54 98/botdb"),
    (f"postgres://bot:{SECRET}@h/db", "postgres://bot:****@h/db"),
    ("postgresql://bot:p@ss@word@h/db", "postgresql://bot:****@h/db"),       # an unescaped @ in it
    (f"postgresql://bot@h/db?password={SECRET}&port=5", "postgresql://bot@h/db?password=****&port=5"),
    (f"postgresql://bot@h/db?sslmode=require&sslpassword={SECRET}", "postgresql://bot@h/db?sslmode=require&sslpassword=****"),
    (f"host=h user=bot password={SECRET} dbname=d", "host=h user=bot password=**** dbname=d"),
    (f"host=h password = '{SECRET} x\\' y' port=5", "host=h password = **** port=5"),
    ("host=h password=a b c", "host=h password=****"),                      # malformed: spaces, unquoted
    (f"host=h PASSWORD={SECRET}", "host=h PASSWORD=****"),
    ("host=h user=bot passfile=/home/bot/.pgpass", "host=h user=bot passfile=/home/bot/.pgpass"),
    ("postgresql://postgres@/fifo?host=%2Ftmp%2Fx&port=5432", "postgresql://postgres@/fifo?host=%2Ftmp%2Fx&port=5432"),
    ("postgresql://h:5432/db", "postgresql://h:5432/db"),
])
def test_mask_dsn_in_every_form(dsn, shown):
    assert mask_dsn(dsn) == shown


def test_scrub_removes_a_password_that_libpq_quotes():
    dsn = "host=h password=bad word here"
    text = 'cannot use DSN \'host=h password=bad word here\': missing "=" after "word" in connection info string'
    assert scrub(text, dsn) == "cannot use DSN 'host=h password=****': missing \"=\" after \"****\" in connection info string"


def cli(capsys, *args) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_a_malformed_dsn_is_refused_without_its_password(capsys):
    code, out, err = cli(capsys, "--dsn", f"postgresql://bot:{SECRET}@127.0.0.1:54 98/botdb", "verify")
    assert (code, out) == (1, "")
    assert err == (
        "fifo-db: error: cannot use DSN 'postgresql://bot:****@127.0.0.1:54 98/botdb': unexpected spaces found in "
        "\"54 98\", use percent-encoded spaces (%20) instead; a DSN looks like postgresql://USER@HOST:5432/DBNAME "
        "or 'host=HOST port=5432 dbname=DBNAME user=USER' (omit --dsn and FIFO_DB_DSN for the embedded server)\n")
    code, out, err = cli(capsys, "--dsn", "host=127.0.0.1 password=bot pass 123 port=1", "db", "create", "x")
    assert err == (
        "fifo-db: error: cannot use DSN 'host=127.0.0.1 password=**** port=1': missing \"=\" after \"****\" in "
        "connection info string; a DSN looks like postgresql://USER@HOST:5432/DBNAME or 'host=HOST port=5432 "
        "dbname=DBNAME user=USER' (omit --dsn and FIFO_DB_DSN for the embedded server)\n")
    code, out, err = cli(capsys, "--dsn", f"postgresql://bot:{SECRET}@127.0.0.1:54 98/botdb", "worker")
    assert code == 1 and SECRET not in out + err and "cannot use DSN 'postgresql://bot:****@127.0.0.1" in err


# --- a real server that asks for a password -----------------------------------------------------------

@pytest.fixture(scope="module")
def cluster():
    cluster = OwnerCluster(TEST_HOME.parent / f"{TEST_HOME.name}-passwords")
    cluster.remove()   # a leftover of an interrupted run
    cluster.start()
    yield cluster
    cluster.remove()


@pytest.fixture
def owner(cluster, monkeypatch, tmp_path):
    """(role, database) owned by a role that logs in with a password; no password from the environment."""
    monkeypatch.delenv("PGPASSWORD", raising=False)
    monkeypatch.delenv("FIFO_DB_DSN", raising=False)
    monkeypatch.setenv("PGPASSFILE", str(tmp_path / "no-pgpass"))
    role, database = cluster.owner_database("pw")
    yield role, database
    cluster.drop(role, database)


def test_no_password_says_a_password_is_needed_and_where_it_goes(cluster, owner, capsys, monkeypatch):
    role, database = owner
    for dsn in (f"host=127.0.0.1 port={cluster.port} user={role} dbname={database}",
                f"postgresql://{role}@127.0.0.1:{cluster.port}/{database}"):
        code, out, err = cli(capsys, "--dsn", dsn, "verify")
        assert (code, out) == (1, "")
        assert err == (
            f"fifo-db: error: the PostgreSQL server at 127.0.0.1:{cluster.port} asks for the password of user "
            f"\"{role}\" and none was given: put it in PGPASSWORD, in ~/.pgpass (host:port:database:user:password, "
            f"chmod 600) or in the DSN (postgresql://USER:PASSWORD@HOST/DB)\n")
    monkeypatch.setenv("PGPASSWORD", OWNER_PASSWORD)        # where the message says it goes: it works
    assert cli(capsys, "--dsn", dsn, "install")[0] == 0


def test_a_wrong_password_says_authentication_failed_and_never_echoes_it(cluster, owner, capsys):
    role, database = owner
    for dsn in (f"host=127.0.0.1 port={cluster.port} user={role} password={SECRET} dbname={database}",
                f"postgresql://{role}:{SECRET}@127.0.0.1:{cluster.port}/{database}",
                f"postgresql://{role}@127.0.0.1:{cluster.port}/{database}?password={SECRET}"):
        code, out, err = cli(capsys, "--dsn", dsn, "report", "pnl")
        assert (code, out) == (1, "")
        assert err == (
            f"fifo-db: error: authentication failed for user \"{role}\" at the PostgreSQL server at "
            f"127.0.0.1:{cluster.port}: the server refused the password; give the right one in PGPASSWORD, in "
            f"~/.pgpass (host:port:database:user:password, chmod 600) or in the DSN "
            f"(postgresql://USER:PASSWORD@HOST/DB)\n")


def test_db_create_and_the_demo_print_the_dsn_masked(cluster, owner, capsys):
    role, database = owner
    with cluster.superuser("postgres") as su:
        su.execute(f'ALTER ROLE "{role}" CREATEDB')
    dsn = f"postgresql://{role}:{OWNER_PASSWORD}@127.0.0.1:{cluster.port}/{database}"
    try:
        code, out, err = cli(capsys, "--dsn", dsn, "db", "create", f"{database}_new")
        assert (code, err) == (0, "")
        assert out == (
            f"created database '{database}_new'\n"
            f"use it: export FIFO_DB_DSN='user={role} password=**** dbname={database}_new host=127.0.0.1 "
            f"port={cluster.port}'   "
            f"(or --dsn); then `fifo-db install`\n"
            f"(**** stands for the password of your DSN, which fifo-db never prints; or leave it out of the DSN "
            f"and put it in PGPASSWORD or ~/.pgpass)\n")
        code, out, err = cli(capsys, "--dsn", dsn, "db", "create", f"{database}_new")
        assert err == (f"fifo-db: error: db create: database '{database}_new' already exists (use it: --dsn "
                       f"'user={role} password=**** dbname={database}_new host=127.0.0.1 port={cluster.port}')\n")
        code, out, err = cli(capsys, "--dsn", dsn, "demo")
        assert (code, err) == (0, "")
        assert OWNER_PASSWORD not in out
        lines = out.splitlines()
        masked = f"postgresql://{role}:****@127.0.0.1:{cluster.port}/{database}"
        assert lines[0] == f"server: {masked}"
        assert lines[-5:] == [
            f"  fifo-db --dsn '{masked}' compute --symbol SAPIEN-USD",
            f"  fifo-db --dsn '{masked}' report pnl --symbol SAPIEN-USD",
            f"  fifo-db --dsn '{masked}' explain {lines[-3].split()[-1]}",
            f"or look around in psql: psql \"{masked}\"",
            "(**** stands for the password of your DSN, which fifo-db never prints)"]
    finally:
        with cluster.superuser("postgres") as su:
            su.execute(f'DROP DATABASE IF EXISTS "{database}_new" WITH (FORCE)')


def test_the_worker_log_never_shows_the_password(cluster, owner):
    from fifo_db.worker import Worker

    role, database = owner
    lines: list[str] = []
    worker = Worker(f"host=127.0.0.1 port={cluster.port} user={role} password={SECRET} dbname={database}",
                    out=lines.append)
    worker.log(f"lost the connection (password={SECRET} {SECRET})")
    assert lines[0].endswith("fifo-db worker: lost the connection (password=**** ****)")
