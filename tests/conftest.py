"""Test harness: a real PostgreSQL (the embedded server, in a test-only home),
one template database with fifo-db installed per session (pytest-postgresql),
and a fresh clone of it for every test.

FIFO_DB_TEST_HOME moves the test server (default: <tmp>/fifo-db-tests-<uid>). Two runs
on one home would drop each other's databases, so a run holds <home>.lock and a second
run waits for it.
"""

from __future__ import annotations

import fcntl
import os
import sys
import tempfile
from pathlib import Path

import psycopg
import pytest
from pytest_postgresql import factories

from fifo_db.embedded import PORT, SUPERUSER, EmbeddedServer
from fifo_db.importer import import_csv
from fifo_db.install import install

TEST_HOME = Path(os.environ.get("FIFO_DB_TEST_HOME")
                 or Path(tempfile.gettempdir()) / f"fifo-db-tests-{os.geteuid()}")
SERVER = EmbeddedServer(TEST_HOME)
_started_here = False
_home_lock = None


def pytest_configure(config):
    global _started_here, _home_lock
    # O_NOFOLLOW: a link planted in a shared tmp is refused, never followed
    _home_lock = os.fdopen(os.open(f"{TEST_HOME}.lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600), "r+")
    try:
        fcntl.flock(_home_lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        print(f"another test run uses {TEST_HOME}; waiting for it to end "
              f"(FIFO_DB_TEST_HOME=<another path> runs beside it)", file=sys.stderr, flush=True)
        fcntl.flock(_home_lock, fcntl.LOCK_EX)
    _started_here = SERVER.start()


def pytest_unconfigure(config):
    if _started_here:
        SERVER.stop()
    if _home_lock is not None:
        _home_lock.close()


def load_schema(host, port, user, dbname, password=None, **_):
    """Template loader: install fifo-db the way users do."""
    with psycopg.connect(host=host, port=port, user=user, dbname=dbname, autocommit=True) as conn:
        install(conn)


postgresql_noproc = factories.postgresql_noproc(
    host=str(SERVER.sockdir), port=PORT, user=SUPERUSER, dbname="fifo_test", load=[load_schema])
postgresql = factories.postgresql("postgresql_noproc")


@pytest.fixture
def db(postgresql) -> psycopg.Connection:
    """An autocommit connection to this test's own database (a clone of the template)."""
    postgresql.autocommit = True
    return postgresql


@pytest.fixture
def dsn(postgresql) -> str:
    """A libpq DSN for this test's database, for extra connections and the CLI."""
    info = postgresql.info
    return f"host={info.host} port={info.port} user={info.user} dbname={info.dbname}"


@pytest.fixture
def connect(dsn):
    """Open extra autocommit connections to this test's database; all closed at the end."""
    opened: list[psycopg.Connection] = []

    def _connect(**kwargs) -> psycopg.Connection:
        kwargs.setdefault("autocommit", True)
        conn = psycopg.connect(dsn, **kwargs)
        opened.append(conn)
        return conn

    yield _connect
    for conn in opened:
        conn.close()


@pytest.fixture
def worked(db) -> psycopg.Connection:
    """`db` holding tests/data/views_trades.csv, computed: the hand-worked data of the view tests."""
    import_csv(db, Path(__file__).parent / "data" / "views_trades.csv")
    db.execute("SELECT compute_fifo_all(true)")
    return db
