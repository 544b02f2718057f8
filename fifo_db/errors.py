"""Errors: one exception type for users, and the one place database errors become it.

Python matches on SQLSTATE, never on message text; what reaches the user is
one line (plus the server's HINT when it gave one).
"""

from __future__ import annotations

import re

import psycopg


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
# these two cases (the ones a newcomer meets first) are recognised by that text, in English.
_CONNECT_FAILURES = (
    (re.compile(r'database "(?P<name>[^"]*)" does not exist'),
     "database \"{name}\" does not exist on this server: create it with `fifo-db db create {name}` "
     "(or createdb), or fix the database name in --dsn / FIFO_DB_DSN"),
    (re.compile(r'role "(?P<name>[^"]*)" does not exist'),
     "role \"{name}\" does not exist on this server: fix the user in --dsn / FIFO_DB_DSN, or create the role "
     "(CREATE ROLE {name} LOGIN); the embedded server's superuser is postgres"),
    (re.compile(r'password authentication failed for user "(?P<name>[^"]*)"'),
     "PostgreSQL refused the password of user \"{name}\": check the password in --dsn / FIFO_DB_DSN (or ~/.pgpass)"),
)


def _connect_failure(exc: psycopg.Error) -> str | None:
    """A failed connection's message, said as what it is (database or role does not exist, ...)."""
    text = " ".join(str(exc).split())
    for pattern, advice in _CONNECT_FAILURES:
        found = pattern.search(text)
        if found:
            return advice.format(**found.groupdict())
    return None


def from_db_error(exc: psycopg.Error) -> FifoError:
    """Turn a psycopg error into a FifoError with one readable line."""
    diag = getattr(exc, "diag", None)
    sqlstate = getattr(exc, "sqlstate", None) or ""
    primary = (diag.message_primary if diag else None) or " ".join(str(exc).split()) or type(exc).__name__
    hint = diag.message_hint if diag else None
    advice = _ADVICE.get(sqlstate) or _ADVICE.get(sqlstate[:2])
    if isinstance(exc, psycopg.OperationalError) and not sqlstate:
        failure = _connect_failure(exc)
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
