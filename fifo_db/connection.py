"""Where fifo-db connects: --dsn, then FIFO_DB_DSN, then the embedded server."""

from __future__ import annotations

import os

import psycopg

from fifo_db.errors import FifoError, from_db_error


def resolve_dsn(dsn: str | None = None) -> str:
    """The DSN to use; starts the embedded server when none is configured."""
    dsn = dsn or os.environ.get("FIFO_DB_DSN")
    if dsn:
        return dsn
    from fifo_db.embedded import EmbeddedServer

    return EmbeddedServer().ensure_started().url()


def connect(dsn: str | None = None, *, autocommit: bool = True) -> psycopg.Connection:
    """A connection to the fifo-db database, with errors turned into FifoError."""
    target = resolve_dsn(dsn)
    try:
        return psycopg.connect(target, autocommit=autocommit)
    except psycopg.Error as exc:
        raise from_db_error(exc) from None
    except Exception as exc:  # malformed DSN strings raise ProgrammingError subclasses too
        raise FifoError(f"cannot use DSN {target!r}: {exc}") from None
