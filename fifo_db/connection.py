"""Where fifo-db connects: --dsn, then FIFO_DB_DSN, then the embedded server."""

from __future__ import annotations

import os

import psycopg

from fifo_db.errors import FifoError, from_db_error
from fifo_db.masking import mask_dsn, scrub


DSN_SHAPES = ("a DSN looks like postgresql://USER@HOST:5432/DBNAME or 'host=HOST port=5432 dbname=DBNAME "
              "user=USER' (omit --dsn and FIFO_DB_DSN for the embedded server)")


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
    except psycopg.OperationalError as exc:  # the server said no, or is not there
        raise from_db_error(exc, target) from None
    except Exception as exc:  # a malformed DSN string (ProgrammingError) and the like
        raise FifoError(bad_dsn(target, exc)) from None


def bad_dsn(dsn: str, exc: Exception) -> str:
    """The one line for a DSN libpq cannot parse, its password masked (masking.py)."""
    return scrub(f"cannot use DSN {mask_dsn(dsn)!r}: {' '.join(str(exc).split())}; {DSN_SHAPES}", dsn)
