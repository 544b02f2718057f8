"""Install: yoyo migrations (tables, forward-only) then every sql/ file (functions, views).

Migrations are applied once each; sql/ is CREATE OR REPLACE and re-applied on
every install, so installing twice changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import psycopg

from fifo_db.errors import from_db_error

_PACKAGE_DIR = Path(__file__).resolve().parent


def _resource_dir(name: str) -> Path:
    """sql/ and migrations/ ship inside the wheel; in a checkout they sit beside the package."""
    inside = _PACKAGE_DIR / name
    return inside if inside.is_dir() else _PACKAGE_DIR.parent / name


SQL_DIR = _resource_dir("sql")
MIGRATIONS_DIR = _resource_dir("migrations")


def sql_files() -> list[Path]:
    """sql/ files in application order (their numeric prefixes)."""
    return sorted(p for p in SQL_DIR.rglob("*.sql"))


@dataclass
class InstallResult:
    migrations_applied: list[str]
    sql_files: int
    pools_queued: int


def _yoyo_backend(conn: psycopg.Connection):
    """A yoyo backend on the same server/database as `conn`, keeping its tables in schema fifo."""
    from yoyo.backends import get_backend_class
    from yoyo.connections import DatabaseURI

    params = conn.info.get_parameters()
    args = {"schema": "fifo"}
    for key in ("host", "port", "sslmode"):
        if params.get(key):
            args[key] = params[key]
    uri = DatabaseURI(scheme="postgresql+psycopg", username=params.get("user"),
                      password=conn.info.password or None, hostname=None, port=None,
                      database=params.get("dbname"), args=args)
    backend = get_backend_class("postgresql+psycopg")(uri, "_yoyo_migration")
    backend.init_database()
    return backend


def install(conn: psycopg.Connection) -> InstallResult:
    """Install or upgrade fifo-db in the database of `conn` (autocommit connection)."""
    from yoyo import read_migrations

    try:
        conn.execute("CREATE SCHEMA IF NOT EXISTS fifo")
        backend = _yoyo_backend(conn)
        try:
            migrations = read_migrations(str(MIGRATIONS_DIR))
            with backend.lock():
                pending = backend.to_apply(migrations)
                backend.apply_migrations(pending)
        finally:
            backend.connection.close()
        files = sql_files()
        with conn.transaction():
            # one installer at a time: concurrent CREATE OR REPLACE of one function fails
            conn.execute("SELECT pg_advisory_xact_lock(1718185569 + 3, 0)")
            for path in files:
                conn.execute(path.read_text())
            queued = conn.execute("SELECT fifo._queue_uncomputed_pools()").fetchone()[0]
    except psycopg.Error as exc:
        raise from_db_error(exc) from None
    return InstallResult([m.id for m in pending], len(files), queued)


def register(sub) -> None:
    p = sub.add_parser("install", help="install or upgrade fifo-db in the database",
                       description="Apply migrations/ with yoyo, then (re)create every function "
                                   "and view in sql/. Installing twice changes nothing.")
    p.set_defaults(func=_cli_install)


def _cli_install(args, conn) -> int:
    result = install(conn)
    params = conn.info.get_parameters()
    applied = ", ".join(result.migrations_applied) or "none pending"
    print(f"installed fifo-db into database {params.get('dbname')!r}: "
          f"migrations applied: {applied}; {result.sql_files} SQL files applied")
    if result.pools_queued:
        print(f"{result.pools_queued} pools with trades but no allocations are queued "
              f"for compute_fifo_incremental()")
    return 0
