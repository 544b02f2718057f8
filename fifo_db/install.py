"""Install: yoyo migrations (tables, forward-only) then every sql/ file (functions, views).

Migrations are applied once each; sql/ is CREATE OR REPLACE and re-applied on
every install, so installing twice changes nothing. An install is one
transaction: migrations, yoyo's bookkeeping and the sql/ files commit
together or not at all (fifo_db.migrate runs yoyo inside it).

A database that already holds a trade_records or fifo_allocations table that
fifo-db did not create (a bot's own) is never touched by a plain install:
`fifo-db install --adopt` takes it over in place (fifo_db.adopt).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import psycopg

from fifo_db import migrate
from fifo_db.errors import FifoError, from_db_error

_PACKAGE_DIR = Path(__file__).resolve().parent
INSTALL_LOCK_TIMEOUT = "60s"   # how long an installer waits for another one (or a run holding a table)


def lock_install(conn: psycopg.Connection) -> None:
    """One installer (install, adopt, uninstall) at a time, inside the caller's transaction.

    No advisory lock (any role may take any key): the lock is on fifo-db's own bookkeeping
    table fifo._yoyo_migration (SHARE ROW EXCLUSIVE conflicts with itself; nobody but the
    owner may lock it, and readers of `yoyo list` still read it). Before fifo-db is
    installed there is nothing of ours to lock: two first installs then conflict on
    CREATE SCHEMA fifo / CREATE TABLE fifo._yoyo_migration (the second waits for the
    first's commit, then fails and changes nothing; run it again). Every wait of the
    install is bounded by lock_timeout INSTALL_LOCK_TIMEOUT (for this transaction only);
    the lock's, when it runs out, names the sessions holding the table.
    """
    conn.execute("SELECT pg_catalog.set_config('lock_timeout', %s, true)", (INSTALL_LOCK_TIMEOUT,))
    table = conn.execute(
        "SELECT c.oid::regclass::text FROM pg_catalog.pg_class c "
        "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = 'fifo' AND c.relname = '_yoyo_migration' "
        "AND pg_catalog.has_schema_privilege(n.oid, 'USAGE') "
        "AND pg_catalog.has_table_privilege(c.oid, 'UPDATE')").fetchone()
    if table is None:
        return
    try:
        with conn.transaction():
            conn.execute("LOCK TABLE fifo._yoyo_migration IN SHARE ROW EXCLUSIVE MODE NOWAIT")
        return
    except psycopg.errors.LockNotAvailable:
        holders = conn.execute(
            "SELECT string_agg(format('pid %s (role %s, %s)', a.pid, a.usename, "
            "coalesce(a.state || ', transaction open since ' || date_trunc('second', a.xact_start), "
            "'not visible to ' || current_user)), '; ' ORDER BY a.pid) "
            "FROM pg_catalog.pg_stat_activity a WHERE a.pid IN (SELECT l.pid FROM pg_catalog.pg_locks l "
            "WHERE l.relation = 'fifo._yoyo_migration'::regclass AND l.granted AND l.pid <> pg_backend_pid())"
        ).fetchone()[0]
    try:
        with conn.transaction():
            conn.execute("LOCK TABLE fifo._yoyo_migration IN SHARE ROW EXCLUSIVE MODE")
    except psycopg.errors.LockNotAvailable:
        raise FifoError(f"another fifo-db install, adopt or uninstall holds database {conn.info.dbname!r}: "
                        f"{holders or 'a session that has ended since'}; gave up after {INSTALL_LOCK_TIMEOUT}; "
                        f"let it finish (or end it), then run this again") from None


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


def is_installed(conn: psycopg.Connection) -> bool:
    """fifo-db's first migration is recorded in this database."""
    return conn.execute(
        "SELECT to_regclass('fifo._yoyo_migration') IS NOT NULL "
        "AND EXISTS (SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = 'fifo')").fetchone()[0] and \
        conn.execute("SELECT EXISTS (SELECT 1 FROM fifo._yoyo_migration "
                     "WHERE migration_id = '0001.initial-schema')").fetchone()[0]


def foreign_tables(conn: psycopg.Connection) -> list[str]:
    """Tables fifo-db would create that already exist without fifo-db having created them."""
    if is_installed(conn):
        return []
    return [r[0] for r in conn.execute(
        "SELECT c.relname FROM pg_catalog.pg_class c "
        "WHERE c.relnamespace = 'public'::regnamespace "
        "AND c.relname IN ('trade_records', 'fifo_allocations', 'fifo_runs', 'fifo_computation_log') "
        "ORDER BY c.relname")]


def check_schema_owner(conn: psycopg.Connection) -> None:
    """A schema fifo that another role owns is refused: whoever owns it could plant objects there."""
    owner = conn.execute("SELECT nspowner::regrole::text, pg_has_role(nspowner, 'USAGE') "
                         "FROM pg_catalog.pg_namespace WHERE nspname = 'fifo'").fetchone()
    if owner and not owner[1]:
        raise FifoError(f"schema fifo already exists and belongs to role {owner[0]}, not to "
                        f"{conn.info.user!r} who installs: fifo-db keeps its internals there, so it refuses "
                        f"to install into a schema another role controls; drop or rename that schema, "
                        f"or install as {owner[0]}")


def apply_migrations(conn: psycopg.Connection) -> list[str]:
    """The pending migrations, inside the caller's transaction. Returns their ids."""
    check_schema_owner(conn)
    try:
        with conn.transaction():
            conn.execute("CREATE SCHEMA IF NOT EXISTS fifo")
    except psycopg.errors.UniqueViolation:
        # a first install beside ours created it and committed while we waited (lock_install)
        raise FifoError(f"another fifo-db install created schema fifo in database {conn.info.dbname!r} "
                        f"at the same time; nothing was changed by this one: run it again") from None
    conn.execute("SET LOCAL search_path = fifo, pg_catalog")   # yoyo's tables live in fifo
    return migrate.apply(conn, str(MIGRATIONS_DIR))


def apply_sql(conn: psycopg.Connection) -> int:
    """Every sql/ file, inside the caller's transaction. Returns how many."""
    # sql/ qualifies every object; nothing a non-owner can write is on the path while
    # views and functions are created (a view binds its operators at creation)
    conn.execute("SET LOCAL search_path = pg_catalog, pg_temp")
    files = sql_files()
    for path in files:
        conn.execute(path.read_text())
    return len(files)


def apply_schema(conn: psycopg.Connection) -> tuple[list[str], int]:
    """Migrations then sql/, inside the caller's transaction. Returns (migrations applied, files)."""
    applied = apply_migrations(conn)
    return applied, apply_sql(conn)


def install(conn: psycopg.Connection) -> InstallResult:
    """Install or upgrade fifo-db in the database of `conn` (autocommit connection), atomically."""
    try:
        with conn.transaction():
            lock_install(conn)
            found = foreign_tables(conn)
            if found:
                raise FifoError(
                    f"database {conn.info.dbname!r} already has {', '.join('public.' + t for t in found)}, "
                    f"which fifo-db did not create (a trading bot's own tables?); nothing was changed. "
                    f"Run `fifo-db install --adopt --dry-run` to see how fifo-db would adopt them in place, "
                    f"then `fifo-db install --adopt`")
            applied, files = apply_schema(conn)
            queued = conn.execute("SELECT fifo._queue_uncomputed_pools()").fetchone()[0]
    except psycopg.Error as exc:
        raise from_db_error(exc) from None
    return InstallResult(applied, files, queued)


def register(sub) -> None:
    p = sub.add_parser("install", help="install or upgrade fifo-db in the database",
                       description="Apply migrations/ with yoyo, then (re)create every function "
                                   "and view in sql/, in one transaction. Installing twice changes "
                                   "nothing. A database holding a bot's own trade_records is only "
                                   "taken over with --adopt.")
    p.add_argument("--adopt", action="store_true",
                   help="take over the bot's own trade_records in place (BotTrader): keep its "
                        "tables under fifo_legacy, serve its reports from fifo-db "
                        "(docs/adopting.md; undo with `fifo-db uninstall --restore`)")
    p.add_argument("--dry-run", action="store_true",
                   help="with --adopt: print the plan, prove it in a transaction that is "
                        "rolled back, change nothing")
    p.set_defaults(func=_cli_install)


def _cli_install(args, conn) -> int:
    if args.adopt or args.dry_run:
        from fifo_db import adopt   # the adoption flow lives there; the plain path stays here
        return adopt.cli(args, conn)
    result = install(conn)
    params = conn.info.get_parameters()
    applied = ", ".join(result.migrations_applied) or "none pending"
    print(f"installed fifo-db into database {params.get('dbname')!r}: "
          f"migrations applied: {applied}; {result.sql_files} SQL files applied")
    if result.pools_queued:
        print(f"{result.pools_queued} pools with trades but no allocations are queued "
              f"for compute_fifo_incremental()")
    return 0
