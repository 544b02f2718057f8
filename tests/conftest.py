"""Test harness: a real PostgreSQL (the embedded server, in a test-only home),
one template database with fifo-db installed per session (pytest-postgresql),
and a fresh clone of it for every test.

FIFO_DB_TEST_HOME moves the test server (default: <tmp>/fifo-db-tests-<uid>; FIFO_DB_HOME,
the home of your own embedded server, is never used by the tests). Two runs on one home would
drop each other's databases, so a run holds <home>.lock and a second run waits for it. Tests
that need a second cluster put it in <home>-<name>. A run stops its servers at its end, also
when interrupted (Ctrl-C, SIGTERM); a run killed outright leaves them running, and the next run
on the home stops them first (tests/leftovers.py). FIFO_DB_PG_BIN picks the server
(scripts/test runs 15, 16 and 18).

Tests marked `pg_cron` need pg_cron on the server. FIFO_DB_TEST_PG_CRON=require (the
default) makes a server without it an error, never a silent skip; =deselect leaves those
tests out (scripts/test on 16 and 18, whose PyPI builds have no pg_cron).
FIFO_DB_TEST_COUNTS=<file>: the run's outcome counts are written there as JSON (scripts/test
adds them up over the servers).
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import sys
import uuid
import tempfile
from pathlib import Path

import psycopg
import pytest
from pytest_postgresql import factories

from fifo_db.embedded import PORT, SUPERUSER, EmbeddedServer, find_bindir, server_version
from fifo_db.importer import import_csv
from fifo_db.install import install
from tests.leftovers import stop_leftovers

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
    # a run killed before its end (SIGKILL, a lost terminal) left its servers running: this run
    # holds the home's lock now, so they are nobody's; stop them (tests/leftovers.py)
    for home in stop_leftovers(TEST_HOME, locked=True):
        print(f"stopped the server an interrupted test run left running in {home}", file=sys.stderr, flush=True)
    # SIGTERM (scripts/test forwards INT and TERM as TERM) ends the run as Ctrl-C does: fixtures
    # tear down (the module clusters are removed) and pytest_unconfigure stops the server
    signal.signal(signal.SIGTERM, _interrupt)
    _started_here = SERVER.start()


def _interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def pytest_report_header(config):
    bindir = find_bindir()
    cron = "pg_cron installed" if SERVER.pg_cron_available() else "no pg_cron"
    return [f"server: PostgreSQL {server_version(bindir)} ({bindir}, {cron}); test home {TEST_HOME}"]


@pytest.hookimpl(trylast=True)     # after -k/-m: what is really selected
def pytest_collection_modifyitems(config, items):
    """Tests marked pg_cron: run (require: error if the server lacks pg_cron) or deselect."""
    mode = os.environ.get("FIFO_DB_TEST_PG_CRON", "require")
    if mode not in ("require", "deselect"):
        raise pytest.UsageError(f"FIFO_DB_TEST_PG_CRON={mode!r}: use require (the default) or deselect")
    cron = [item for item in items if item.get_closest_marker("pg_cron")]
    if not cron:
        return
    if mode == "deselect":
        config.hook.pytest_deselected(items=cron)
        items[:] = [item for item in items if not item.get_closest_marker("pg_cron")]
    elif not SERVER.pg_cron_available():
        bindir = find_bindir()
        version = server_version(bindir)
        raise pytest.UsageError(
            f"{len(cron)} selected test(s) need pg_cron, and PostgreSQL {version} in {bindir} has none: "
            f"install it (Debian: apt-get install postgresql-{version.split('.')[0]}-cron), "
            f"or set FIFO_DB_TEST_PG_CRON=deselect to leave them out (e.g. {cron[0].nodeid})")


_available_extensions: set[str] | None = None


def pytest_runtest_setup(item):
    """@pytest.mark.extension("dblink"): skipped, saying why, on a server that does not ship it."""
    global _available_extensions
    marks = list(item.iter_markers("extension"))
    if not marks:
        return
    if _available_extensions is None:
        with psycopg.connect(**SERVER.conninfo("postgres"), autocommit=True) as conn:
            _available_extensions = {r[0] for r in conn.execute("SELECT name FROM pg_available_extensions")}
    for mark in marks:
        for name in mark.args:
            if name not in _available_extensions:
                bindir = find_bindir()
                pytest.skip(f"PostgreSQL {server_version(bindir)} in {bindir} does not ship the {name} "
                            f"extension (a contrib module)")


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    path = os.environ.get("FIFO_DB_TEST_COUNTS")
    if not path:
        return
    stats = terminalreporter.stats
    counts = {key: len(stats.get(key, [])) for key in
              ("passed", "failed", "error", "skipped", "xfailed", "xpassed", "deselected")}
    counts["exitstatus"] = int(exitstatus)
    Path(path).write_text(json.dumps(counts) + "\n")


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
def say(request):
    """say(text): a line on the terminal now, past pytest's capture, for a test that waits long
    (what it waits for, and that it still does)."""
    capture = request.config.pluginmanager.getplugin("capturemanager")

    def _say(text: str) -> None:
        with capture.global_and_fixture_disabled():
            sys.stderr.write(f"\n{request.node.name}: {text}")
            sys.stderr.flush()

    return _say


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


@pytest.fixture
def roles(db, dsn):
    """Login roles made on the fly: roles('reader') -> (name, connection as a new login role of that
    kind, autocommit unless asked); roles(None): a role with no fifo-db grant. Dropped at the end."""
    made: list[str] = []
    conns: list[psycopg.Connection] = []

    def _make(kind: str | None, autocommit: bool = True) -> tuple[str, psycopg.Connection]:
        name = f"fdb_{kind or 'nobody'}_{uuid.uuid4().hex[:8]}"
        db.execute(f'CREATE ROLE "{name}" LOGIN')
        made.append(name)
        if kind:
            db.execute("SELECT fifo_grant(%s, %s)", (kind, name))
        conn = psycopg.connect(dsn, user=name, autocommit=autocommit)
        conns.append(conn)
        return name, conn

    yield _make
    for conn in conns:
        conn.close()
    for name in made:
        db.execute(f'DROP OWNED BY "{name}"')
        db.execute(f'DROP ROLE "{name}"')
