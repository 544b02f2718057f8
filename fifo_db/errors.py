"""Errors: one exception type for users, and the one place database errors become it.

Python matches on SQLSTATE, never on message text; what reaches the user is
one line (plus the server's HINT when it gave one).
"""

from __future__ import annotations

import re

import psycopg

from fifo_db.masking import scrub


class FifoError(Exception):
    """An error fifo-db reports to the user as one clear line."""


# SQLSTATE (or its class, the first two characters) -> what to tell the user
_ADVICE = {
    "42883": "fifo-db is not installed in this database (a function is missing): run `fifo-db install`",
    "42P01": "fifo-db is not installed in this database (a table is missing): run `fifo-db install`",
    "3F000": "fifo-db is not installed in this database (schema fifo is missing): run `fifo-db install`",
    "3D000": "the database does not exist: create it with `fifo-db db create NAME`, or check --dsn / FIFO_DB_DSN",
    "28": "PostgreSQL refused the login: check the user and password in --dsn / FIFO_DB_DSN",
    "08": "cannot reach PostgreSQL: check --dsn / FIFO_DB_DSN, or omit both to use the embedded server",
    "57014": "the statement was cancelled (statement_timeout or a cancel request)",
    "40P01": "deadlock detected; the transaction was rolled back and can be retried",
    "55P03": "gave up waiting for a lock (lock_timeout): another session holds what this needed",
}


# A failed connection carries no SQLSTATE: libpq reports the server's FATAL message as text, so
# these cases (the ones a newcomer meets first) are recognised by that text, in English.
_CONNECT_FAILURES = (
    (re.compile(r'database "(?P<name>[^"]*)" does not exist'),
     "database \"{name}\" does not exist on this server: create it with `fifo-db db create {name}` "
     "(or createdb), or fix the database name in --dsn / FIFO_DB_DSN"),
    (re.compile(r'role "(?P<name>[^"]*)" does not exist'),
     "role \"{name}\" does not exist on this server: fix the user in --dsn / FIFO_DB_DSN, or create the role "
     "(CREATE ROLE {name} LOGIN); the embedded server's superuser is postgres"),
    (re.compile(r'password authentication failed for user "(?P<name>[^"]*)"'),
     "authentication failed for user \"{name}\" at {server}: the server refused the password; give the right "
     "one in PGPASSWORD, in ~/.pgpass (host:port:database:user:password, chmod 600) or in the DSN "
     "(postgresql://USER:PASSWORD@HOST/DB)"),
    # the server answered and asked for a password, and libpq had none to send
    (re.compile(r"fe_sendauth: no password supplied"),
     "{server} asks for the password of {user} and none was given: put it in PGPASSWORD, in ~/.pgpass "
     "(host:port:database:user:password, chmod 600) or in the DSN (postgresql://USER:PASSWORD@HOST/DB)"),
)
# libpq's 'connection to server at "HOST" (ADDR), port N failed:' or 'on socket "PATH" failed:'
_SERVER = re.compile(r'connection to server (?:at "(?P<host>[^"]*)"(?: \([^)]*\))?, port (?P<port>\d+)'
                     r'|on socket "(?P<socket>[^"]*)")')


def _user_of(dsn: str | None) -> str:
    """'user "NAME"' of the DSN in use (libpq's default: PGUSER, else the login name), or 'the user'."""
    import getpass
    import os

    from psycopg.conninfo import conninfo_to_dict

    try:
        name = (conninfo_to_dict(dsn or "").get("user") or os.environ.get("PGUSER") or getpass.getuser())
    except Exception:
        return "the user"
    return f'user "{name}"'


def _connect_failure(exc: psycopg.Error, dsn: str | None = None) -> str | None:
    """A failed connection's message, said as what it is (database or role does not exist, ...)."""
    text = " ".join(str(exc).split())
    where = _SERVER.search(text)
    if where and where.group("socket"):
        server = f"the PostgreSQL server on socket {where.group('socket')}"
    elif where:
        server = f"the PostgreSQL server at {where.group('host')}:{where.group('port')}"
    else:
        server = "the PostgreSQL server"
    for pattern, advice in _CONNECT_FAILURES:
        found = pattern.search(text)
        if found:
            return advice.format(server=server, user=_user_of(dsn), **found.groupdict())
    return None


def from_db_error(exc: psycopg.Error, dsn: str | None = None) -> FifoError:
    """Turn a psycopg error into a FifoError with one readable line (no password in it: the
    password of `dsn`, the DSN in use, is masked wherever the server's text quotes it)."""
    err = _from_db_error(exc, dsn)
    masked = scrub(str(err), dsn)
    if masked != str(err):
        sqlstate = err.sqlstate  # type: ignore[attr-defined]
        err = FifoError(masked)
        err.sqlstate = sqlstate  # type: ignore[attr-defined]
    return err


def _from_db_error(exc: psycopg.Error, dsn: str | None) -> FifoError:
    diag = getattr(exc, "diag", None)
    sqlstate = getattr(exc, "sqlstate", None) or ""
    primary = (diag.message_primary if diag else None) or " ".join(str(exc).split()) or type(exc).__name__
    hint = diag.message_hint if diag else None
    advice = _ADVICE.get(sqlstate) or _ADVICE.get(sqlstate[:2])
    if isinstance(exc, psycopg.OperationalError) and not sqlstate:
        failure = _connect_failure(exc, dsn)
        if failure:
            err = FifoError(failure)
            err.sqlstate = ""  # type: ignore[attr-defined]
            return err
        advice = _ADVICE["08"]
    text = primary
    if advice:
        text = f"{advice} ({primary})"
    elif hint:
        text = f"{primary} (hint: {hint})"
    if sqlstate:
        text = f"{text} [SQLSTATE {sqlstate}]"
    err = FifoError(text)
    err.sqlstate = sqlstate  # type: ignore[attr-defined]
    return err


def run_gave_up(run: dict) -> FifoError | None:
    """A run that computed nothing because it gave up waiting for a lock (status failed, no
    pool failed: sql/040 fifo._lock_failed_run) as one line naming the holders; else None."""
    if run.get("status") != "failed" or run.get("failed_pools"):
        return None
    err = FifoError(f"run {run['run_id']} ({run['mode']}) computed nothing: {' '.join((run.get('error') or '').split())}")
    err.sqlstate = "55P03"  # type: ignore[attr-defined]
    return err
