"""yoyo-migrations inside the caller's transaction.

yoyo normally opens connections of its own and commits each migration (and
its bookkeeping) separately, so a failure half way leaves a half-installed
database. Here yoyo runs on the caller's connection, inside the caller's
transaction: every yoyo transaction becomes a savepoint, nothing commits
until the caller does, and a failure anywhere (a migration, the sql/ files,
adoption) rolls back migrations and bookkeeping alike. Concurrent installers
are serialised by the caller's lock (fifo_db.install.lock_install) instead of yoyo's lock table.

The bookkeeping tables are yoyo's own (fifo._yoyo_migration, _yoyo_log,
_yoyo_version, yoyo_lock), so `yoyo list` still reads them.
"""

from __future__ import annotations

from contextlib import contextmanager

import psycopg
from yoyo import read_migrations
from yoyo.backends.core.postgresql import PostgresqlPsycopgBackend
from yoyo.connections import DatabaseURI
from yoyo import internalmigrations

SCHEMA = "fifo"
MIGRATION_TABLE = "_yoyo_migration"


class _SharedConnectionBackend(PostgresqlPsycopgBackend):
    """A yoyo backend that uses one given connection, always inside its open transaction."""

    def __init__(self, conn: psycopg.Connection):
        self._shared = conn
        uri = DatabaseURI(scheme="postgresql+psycopg", username=None, password=None, hostname=None,
                          port=None, database=conn.info.dbname, args={})
        super().__init__(uri, MIGRATION_TABLE)
        self._in_transaction = True   # every yoyo transaction is a savepoint of the caller's
        self.schema = SCHEMA

    def connect(self, dburi):
        return self._shared

    def init_connection(self, connection):
        pass   # the caller has set search_path for the transaction

    def copy(self):
        return self   # migrations run on the same connection, in the same transaction

    def __exit__(self, exc_type, exc_value, traceback):
        pass   # the caller owns the connection

    @contextmanager
    def disable_transactions(self):
        raise RuntimeError("fifo-db migrations must be transactional (no __transactional__ = False)")
        yield  # pragma: no cover

    def ensure_internal_schema_updated(self):
        if not self._internal_schema_updated:
            if internalmigrations.needs_upgrading(self):
                internalmigrations.upgrade(self)
            self._internal_schema_updated = True


def pending(conn: psycopg.Connection, directory: str) -> list:
    """The migrations in `directory` not yet applied, in order (inside the caller's transaction)."""
    backend = _SharedConnectionBackend(conn)
    backend.create_lock_table()
    return list(backend.to_apply(read_migrations(directory)))


def apply(conn: psycopg.Connection, directory: str) -> list[str]:
    """Apply the pending migrations of `directory` inside the caller's open transaction.

    The caller holds a transaction and has set search_path to the fifo schema
    first (yoyo creates its tables unqualified). Returns the ids applied.
    """
    backend = _SharedConnectionBackend(conn)
    backend.create_lock_table()
    todo = backend.to_apply(read_migrations(directory))
    for migration in todo:                      # yoyo's apply_migrations, one at a time to name it
        try:
            backend.apply_migrations_only(todo.__class__([migration]))
        except psycopg.errors.DependentObjectsStillExist as exc:
            raise _blocked_drop(migration.id, exc) from None
    backend.run_post_apply(todo)
    return [m.id for m in todo]


def _blocked_drop(migration_id: str, exc: psycopg.errors.DependentObjectsStillExist) -> Exception:
    """A migration's DROP stopped by an object fifo-db did not make (a user's view on a report
    view): one line naming the migration, what it drops and what depends on it, and the way
    to keep the user's object. Never PostgreSQL's hint, which says to drop it with CASCADE.
    A migration that names the dependents itself (0014) raises the same SQLSTATE with its own
    hint: that error passes through as it is."""
    from fifo_db.errors import FifoError, from_db_error

    diag = exc.diag
    if "CASCADE" not in (diag.message_hint or ""):
        return from_db_error(exc)
    detail = "; ".join(line.strip() for line in (diag.message_detail or "").splitlines() if line.strip())
    err = FifoError(
        f"fifo-db migration {migration_id} re-creates fifo-db objects, and objects not made by fifo-db "
        f"depend on them: {detail or diag.message_primary} (hint: save their definitions "
        f"(pg_get_viewdef / pg_get_functiondef), drop them, install again (nothing was changed), "
        f"then re-create them) [SQLSTATE {exc.sqlstate}]")
    err.sqlstate = exc.sqlstate  # type: ignore[attr-defined]
    return err
