"""Adopt: take over a trading bot's own database in place (`fifo-db install --adopt [--dry-run]`).

The bot keeps its trade_records table, its writes and its reads; fifo-db reads
that table through a mapping (sql/015_trades_source.sql) and serves the bot's
output tables from its own computation. In one transaction:

1. inspect the bot's trade_records: the columns the mapping reads must exist
   with a usable type (else one line naming each, nothing changed); count its
   rows, symbols and statuses;
2. move the bot's own output tables (fifo_allocations, fifo_computation_log,
   fifo_inventory_snapshot, manual_review_queue, whichever exist) to schema
   fifo_legacy, same names, rows, indexes, sequences and foreign keys, after
   saving the definitions of the views that read them;
3. install fifo-db around the bot's table: it steps aside to a staging schema
   while the migrations run (migration 0001 creates fifo-db's own, empty,
   public.trade_records, which is then dropped) and comes back; the settings
   point the engine at it (trades_source, fill_statuses, current_version = the
   bot's highest allocation_version), then sql/ creates the mapping view,
   the capture triggers and the replacement views, typed like the bot's tables;
4. re-point the saved views at the replacement views (CREATE OR REPLACE VIEW
   with their own definitions: same OID, owner, grants, comments), and grant
   SELECT on each replacement view to whoever could read the table it replaces;
5. record what was done in fifo.adoption / fifo.adoption_views (migration
   0006), which `fifo-db uninstall --restore` reads to undo it;
6. queue every pool for computation.

`--dry-run` runs all of it and rolls it back, so the plan it prints is proven.
A second mapping (another bot) is one more entry in SOURCES plus its branch in
fifo._trades_mapping().
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Callable

import psycopg
from psycopg import sql

from fifo_db import install
from fifo_db.errors import FifoError, from_db_error

LEGACY_SCHEMA = "fifo_legacy"
STAGING_SCHEMA = "fifo_adopting"
LOCK_TIMEOUT = "5s"

_TEXT = ("text", "character varying", "character")
_NUMBER = ("double precision", "real", "numeric", "smallint", "integer", "bigint")
_TEXT_WANT = "text or varchar"
_NUMBER_WANT = "double precision, real, numeric or an integer type"


@dataclass(frozen=True)
class Source:
    """An adoptable bot's database: the columns its trades mapping reads and its own output tables."""
    name: str                                   # the trades_source mapping in sql/015
    columns: dict[str, tuple[tuple[str, ...], str]]   # column -> (accepted types, what to say)
    legacy_tables: tuple[str, ...]              # the bot's output tables, moved to fifo_legacy
    fill_statuses: tuple[str, ...]              # the statuses that are fills for sure
    version_column: str                         # on legacy fifo_allocations: the bot's version


BOTTRADER = Source(
    name="bottrader",
    columns={
        "order_id": (_TEXT, _TEXT_WANT),
        "symbol": (_TEXT, _TEXT_WANT),
        "side": (_TEXT, _TEXT_WANT),
        "size": (_NUMBER, _NUMBER_WANT),
        "price": (_NUMBER, _NUMBER_WANT),
        "total_fees_usd": (_NUMBER, _NUMBER_WANT),
        "order_time": (("timestamp with time zone",), "timestamptz"),
        "status": (_TEXT, _TEXT_WANT),
    },
    legacy_tables=("fifo_allocations", "fifo_computation_log", "fifo_inventory_snapshot",
                   "manual_review_queue"),
    fill_statuses=("filled", "done"),
    version_column="allocation_version",
)
# fifo-db's own trade_records, left behind by `fifo-db uninstall` (it keeps the trades): a later
# `fifo-db install --adopt` takes it back in place.
FIFO_DB = Source(
    name="fifo-db",
    columns={
        "order_id": (_TEXT, _TEXT_WANT),
        "account": (_TEXT, _TEXT_WANT),
        "symbol": (_TEXT, _TEXT_WANT),
        "side": (_TEXT, _TEXT_WANT),
        "size": (("numeric",), "numeric"),
        "price": (("numeric",), "numeric"),
        "total_fees": (("numeric",), "numeric"),
        "order_time": (("timestamp with time zone",), "timestamptz"),
        "recorded_at": (("timestamp with time zone",), "timestamptz"),
    },
    legacy_tables=(),
    fill_statuses=(),
    version_column="version",
)
# tried in this order; the first whose columns all fit is adopted (errors name the first's)
SOURCES = {BOTTRADER.name: BOTTRADER, FIFO_DB.name: FIFO_DB}

# What the replacement view of each legacy table reads (for the plan).
REPLACEMENTS = {
    "fifo_allocations": "fifo-db's allocations, in fifo-db's and the bot's column names",
    "fifo_computation_log": "fifo_runs, one row per computation",
    "fifo_inventory_snapshot": "the open lots of every computed pool",
    "manual_review_queue": "the unmatched (oversold) part of every sell",
}

# The bot's crontab lines that fifo-db's pg_cron jobs replace (seed document).
BOT_CRON_LINES = (
    "50 1 * * * docker exec sighook python3 -m scripts.compute_allocations --version 2 --all-symbols --force ...",
    "*/5 * * * * docker exec sighook python3 -m scripts.compute_allocations --version 2 --all-symbols "
    "--since '10 minutes ago' ...",
)


@dataclass
class LegacyTable:
    name: str
    rows: int
    versions: list[tuple[int, int]] = field(default_factory=list)   # (allocation_version, rows)
    null_columns: list[str] = field(default_factory=list)           # always NULL in the replacement


@dataclass
class SavedView:
    name: str            # schema-qualified, quoted as needed
    definition: str      # pg_get_viewdef with every name qualified
    reloptions: list[str] | None
    columns: list[str]   # 'name type'


@dataclass
class Adoption:
    """The plan (inspection) and, once run, what the adoption did."""
    database: str
    source: str
    dry_run: bool
    rows: int = 0
    pools: int = 0
    first_time: datetime | None = None
    last_time: datetime | None = None
    statuses: list[tuple[str | None, int]] = field(default_factory=list)
    other_status_rows: int = 0
    legacy: list[LegacyTable] = field(default_factory=list)
    views: list[SavedView] = field(default_factory=list)
    left_alone: list[str] = field(default_factory=list)   # other objects still reading fifo_legacy
    version: int = 1
    pg_cron_existed: bool = False
    public_objects: list[str] = field(default_factory=list)
    fifo_schema_existed: bool = False
    # filled in by the run
    migrations: list[str] = field(default_factory=list)
    sql_files: int = 0
    triggers: list[str] = field(default_factory=list)
    problems: list[tuple[str, str]] = field(default_factory=list)   # (order_id, problem), first 20
    problem_count: int = 0
    queued: int = 0
    scheduled: bool = False    # pg_cron jobs exist for this database (the bot's crontab lines may go)
    already_adopted_at: datetime | None = None


# --- inspection -------------------------------------------------------------------------------

def _one(conn: psycopg.Connection, query, params=None):
    return conn.execute(query, params).fetchone()[0]


def detect(conn: psycopg.Connection) -> Source:
    """The first source whose columns public.trade_records has; else the error of the first."""
    for source in SOURCES.values():
        try:
            check_columns(conn, source)
            return source
        except FifoError:
            continue
    check_columns(conn, next(iter(SOURCES.values())))
    raise AssertionError("unreachable")  # pragma: no cover


def check_columns(conn: psycopg.Connection, source: Source = BOTTRADER) -> None:
    """Raise one line naming every column the mapping needs that is missing or of an unusable type."""
    found = dict(conn.execute(
        "SELECT a.attname::text, pg_catalog.format_type(a.atttypid, NULL) "
        "FROM pg_catalog.pg_attribute a "
        "WHERE a.attrelid = 'public.trade_records'::regclass AND a.attnum > 0 AND NOT a.attisdropped"))
    wrong = []
    for column, (types, want) in source.columns.items():
        have = found.get(column)
        if have is None:
            wrong.append(f"column {column} is missing (expected {want})")
        elif have not in types:
            wrong.append(f"column {column} is {have} (expected {want})")
    unique = _one(conn, """
        SELECT EXISTS (
            SELECT 1 FROM pg_catalog.pg_index i
            JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
            WHERE i.indrelid = 'public.trade_records'::regclass AND i.indisunique AND i.indnkeyatts = 1
              AND i.indpred IS NULL AND a.attname = 'order_id')""")
    if "order_id" in found and not unique:
        wrong.append("column order_id is not unique (expected a PRIMARY KEY or UNIQUE constraint on it)")
    if wrong:
        raise FifoError(f"public.trade_records cannot be adopted as {source.name}'s table: "
                        f"{'; '.join(wrong)}; nothing was changed")


def _dependent_views(conn: psycopg.Connection, oids: list[int]) -> list[SavedView]:
    """Views reading the tables `oids`, directly or through other views, in dependency order."""
    rows = conn.execute("""
        WITH RECURSIVE dep(view, depth) AS (
            SELECT r.ev_class, 1
            FROM pg_catalog.pg_depend d
            JOIN pg_catalog.pg_rewrite r ON r.oid = d.objid
            JOIN pg_catalog.pg_class v ON v.oid = r.ev_class AND v.relkind = 'v'
            WHERE d.classid = 'pg_catalog.pg_rewrite'::regclass AND d.refclassid = 'pg_catalog.pg_class'::regclass
              AND d.refobjid = ANY (%(oids)s) AND r.ev_class <> d.refobjid
            UNION
            SELECT r.ev_class, dep.depth + 1
            FROM dep
            JOIN pg_catalog.pg_depend d ON d.refobjid = dep.view
            JOIN pg_catalog.pg_rewrite r ON r.oid = d.objid
            JOIN pg_catalog.pg_class v ON v.oid = r.ev_class AND v.relkind = 'v'
            WHERE d.classid = 'pg_catalog.pg_rewrite'::regclass AND d.refclassid = 'pg_catalog.pg_class'::regclass
              AND r.ev_class <> dep.view
        )
        SELECT v.oid::regclass::text, pg_catalog.pg_get_viewdef(v.oid), v.reloptions::text[],
               ARRAY(SELECT pg_catalog.quote_ident(a.attname) || ' ' || pg_catalog.format_type(a.atttypid, a.atttypmod)
                     FROM pg_catalog.pg_attribute a
                     WHERE a.attrelid = v.oid AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum)
        FROM (SELECT dep.view, max(dep.depth) AS depth FROM dep GROUP BY dep.view) o
        JOIN pg_catalog.pg_class v ON v.oid = o.view
        ORDER BY o.depth, v.oid::regclass::text""", {"oids": oids}).fetchall()
    return [SavedView(name, definition.strip().rstrip(";"), reloptions, columns)
            for name, definition, reloptions, columns in rows]


def _other_dependents(conn: psycopg.Connection, oids: list[int]) -> list[str]:
    """Objects other than views that depend on the tables `oids` and keep reading fifo_legacy."""
    return [r[0] for r in conn.execute("""
        SELECT DISTINCT coalesce(
                   (SELECT 'materialized view ' || r.ev_class::regclass::text FROM pg_catalog.pg_rewrite r
                    WHERE d.classid = 'pg_catalog.pg_rewrite'::regclass AND r.oid = d.objid),
                   pg_catalog.pg_describe_object(d.classid, d.objid, 0))
        FROM pg_catalog.pg_depend d
        WHERE d.refclassid = 'pg_catalog.pg_class'::regclass AND d.refobjid = ANY (%(oids)s) AND d.deptype = 'n'
          AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_rewrite r JOIN pg_catalog.pg_class v ON v.oid = r.ev_class
                          WHERE d.classid = 'pg_catalog.pg_rewrite'::regclass AND r.oid = d.objid
                            AND (v.relkind = 'v' OR v.oid = ANY (%(oids)s)))
          AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_constraint c
                          WHERE d.classid = 'pg_catalog.pg_constraint'::regclass AND c.oid = d.objid
                            AND c.conrelid = ANY (%(oids)s))
        ORDER BY 1""", {"oids": oids})]


def _public_objects(conn: psycopg.Connection) -> list[str]:
    """Every relation and function in public, by identity (never dropped by uninstall)."""
    return [r[0] for r in conn.execute("""
        SELECT c.oid::regclass::text FROM pg_catalog.pg_class c
        WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'v', 'm', 'p', 'f', 'S')
        UNION ALL
        SELECT p.oid::regprocedure::text FROM pg_catalog.pg_proc p WHERE p.pronamespace = 'public'::regnamespace
        ORDER BY 1""")]


def inspect(conn: psycopg.Connection, source: Source | None = None, dry_run: bool = False) -> Adoption:
    """What adopting this database means, without changing anything. Raises FifoError when it cannot.
    source None: the first of SOURCES whose columns the table has."""
    dbname = conn.info.dbname
    if _one(conn, "SELECT to_regclass('public.trade_records') IS NULL"):
        raise FifoError(f"database {dbname!r} has no public.trade_records: there is nothing to adopt "
                        f"(`fifo-db install` installs fifo-db with a trade_records of its own)")
    if _one(conn, "SELECT relkind FROM pg_catalog.pg_class WHERE oid = 'public.trade_records'::regclass") \
            not in ("r", "p"):
        raise FifoError("public.trade_records is not a table (a view?): only a table can be adopted; "
                        "nothing was changed")
    if source is None:
        source = detect(conn)
    else:
        check_columns(conn, source)
    for schema in (LEGACY_SCHEMA, STAGING_SCHEMA):
        if _one(conn, "SELECT to_regnamespace(%s) IS NOT NULL", (schema,)):
            raise FifoError(f"schema {schema} already exists; adoption needs that name (it keeps the bot's "
                            f"tables there): rename or drop it, then try again; nothing was changed")
    fifo_schema = _one(conn, "SELECT to_regnamespace('fifo')")
    if fifo_schema is not None and _one(conn, """
            SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_class WHERE relnamespace = %(n)s)
                OR EXISTS (SELECT 1 FROM pg_catalog.pg_proc WHERE pronamespace = %(n)s)
                OR EXISTS (SELECT 1 FROM pg_catalog.pg_type WHERE typnamespace = %(n)s)""", {"n": fifo_schema}):
        raise FifoError("schema fifo already exists and is not empty, but fifo-db is not installed in it: "
                        "rename it (fifo-db keeps its internals there), then try again; nothing was changed")

    plan = Adoption(database=dbname, source=source.name, dry_run=dry_run, fifo_schema_existed=fifo_schema is not None)
    (plan.rows, plan.pools, plan.first_time, plan.last_time) = conn.execute(
        "SELECT count(*), count(DISTINCT symbol), min(order_time), max(order_time) FROM public.trade_records"
    ).fetchone()
    if "status" in source.columns:
        plan.statuses = conn.execute(
            "SELECT status::text, count(*) FROM public.trade_records GROUP BY 1 ORDER BY 2 DESC, 1").fetchall()
        plan.other_status_rows = sum(n for status, n in plan.statuses if status not in source.fill_statuses)

    present = [r for r in conn.execute(
        "SELECT c.relname::text, c.oid FROM pg_catalog.pg_class c "
        "WHERE c.relnamespace = 'public'::regnamespace AND c.relname = ANY (%s) AND c.relkind IN ('r', 'p') "
        "ORDER BY array_position(%s, c.relname::text)",
        (list(source.legacy_tables), list(source.legacy_tables)))]
    clash = [name for (name,) in conn.execute(
        "SELECT c.relname::text FROM pg_catalog.pg_class c WHERE c.relnamespace = 'public'::regnamespace "
        "AND c.relname = ANY (%s) AND c.relkind NOT IN ('r', 'p')", (list(source.legacy_tables),))]
    if clash:
        raise FifoError(f"public.{clash[0]} is not a table: adoption replaces the bot's tables of these names "
                        f"by views and cannot move it; rename it, then try again; nothing was changed")
    for name, _oid in present:
        table = LegacyTable(name, _one(conn, sql.SQL("SELECT count(*) FROM public.{}").format(sql.Identifier(name))))
        if name == "fifo_allocations" and _has_column(conn, "public.fifo_allocations", source.version_column):
            table.versions = conn.execute(sql.SQL(
                "SELECT {c}, count(*) FROM public.fifo_allocations GROUP BY 1 ORDER BY 1").format(
                    c=sql.Identifier(source.version_column))).fetchall()
        plan.legacy.append(table)
    oids = [oid for _name, oid in present]
    conn.execute("SELECT pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true)")  # qualify every name
    plan.views = _dependent_views(conn, oids)
    plan.left_alone = _other_dependents(conn, oids)
    versions = [v for t in plan.legacy for v, _n in t.versions if v is not None]
    plan.version = max([max(versions), 1]) if versions else 1
    plan.pg_cron_existed = _one(conn, "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_extension WHERE extname = 'pg_cron')")
    plan.public_objects = _public_objects(conn)
    return plan


def _has_column(conn: psycopg.Connection, table: str, column: str) -> bool:
    return _one(conn, "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_attribute WHERE attrelid = %s::regclass "
                      "AND attname = %s AND attnum > 0 AND NOT attisdropped)", (table, column))


# --- the adoption ---------------------------------------------------------------------------

def _move(conn: psycopg.Connection, schema: str, table: str, to: str) -> None:
    conn.execute(sql.SQL("ALTER TABLE {}.{} SET SCHEMA {}").format(
        sql.Identifier(schema), sql.Identifier(table), sql.Identifier(to)))


def _replace_view(conn: psycopg.Connection, view: SavedView) -> None:
    """CREATE OR REPLACE VIEW with a saved definition (catalog text, every name qualified)."""
    options = sql.SQL("")
    if view.reloptions:
        options = sql.SQL(" WITH ({})").format(sql.SQL(", ").join(sql.SQL(o) for o in view.reloptions))
    conn.execute(sql.Composed([sql.SQL("CREATE OR REPLACE VIEW "), sql.SQL(view.name), options,
                               sql.SQL(" AS "), sql.SQL(view.definition)]))


def _grant_readers(conn: psycopg.Connection, legacy: str, views: list[SavedView]) -> None:
    """SELECT on the replacement view of `legacy` for whoever could read the bot's table: the
    roles it granted SELECT to, its owner, and the owners of the views re-pointed at it."""
    grantees = [r[0] for r in conn.execute("""
        SELECT DISTINCT g FROM (
            SELECT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE a.grantee::regrole::text END AS g
            FROM pg_catalog.pg_class c, pg_catalog.aclexplode(c.relacl) a
            WHERE c.oid = %(legacy)s::regclass AND a.privilege_type = 'SELECT'
            UNION ALL
            SELECT c.relowner::regrole::text FROM pg_catalog.pg_class c
            WHERE c.oid = %(legacy)s::regclass OR c.oid::regclass::text = ANY (%(views)s)) o
        WHERE g <> current_user::text ORDER BY 1""",
        {"legacy": f"{LEGACY_SCHEMA}.{legacy}", "views": [v.name for v in views]})]
    for grantee in grantees:
        who = sql.SQL("PUBLIC") if grantee == "PUBLIC" else sql.SQL(grantee)   # regrole text is quoted
        conn.execute(sql.SQL("GRANT SELECT ON public.{} TO {}").format(sql.Identifier(legacy), who))


def _run(conn: psycopg.Connection, plan: Adoption, source: Source) -> None:
    """Steps 2-6 inside the caller's transaction."""
    names = [t.name for t in plan.legacy]
    if names:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(LEGACY_SCHEMA)))
        # the tables' owners and readers keep reaching them there: the bot's deletes on
        # trade_records cascade into fifo_allocations as its owner, and history stays readable
        for (role,) in conn.execute("""
                SELECT DISTINCT g FROM (
                    SELECT c.relowner::regrole::text AS g FROM pg_catalog.pg_class c
                    WHERE c.relnamespace = 'public'::regnamespace AND c.relname = ANY (%(t)s)
                    UNION ALL
                    SELECT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE a.grantee::regrole::text END
                    FROM pg_catalog.pg_class c, pg_catalog.aclexplode(c.relacl) a
                    WHERE c.relnamespace = 'public'::regnamespace AND c.relname = ANY (%(t)s)) o
                WHERE g <> current_user::text ORDER BY 1""", {"t": names}).fetchall():
            conn.execute(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(sql.Identifier(LEGACY_SCHEMA),
                                                                          sql.SQL(role)))
        for name in names:
            _move(conn, "public", name, LEGACY_SCHEMA)

    # fifo-db's migrations create a public.trade_records of their own: the bot's steps aside
    conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(STAGING_SCHEMA)))
    _move(conn, "public", "trade_records", STAGING_SCHEMA)
    plan.migrations = install.apply_migrations(conn)
    conn.execute("DROP TABLE public.trade_records")   # fifo-db's, created empty a moment ago
    _move(conn, STAGING_SCHEMA, "trade_records", "public")
    conn.execute(sql.SQL("DROP SCHEMA {}").format(sql.Identifier(STAGING_SCHEMA)))
    conn.execute("""
        INSERT INTO fifo.settings (name, value)
        VALUES ('trades_source', %s), ('fill_statuses', '*'), ('current_version', %s)
        ON CONFLICT (name) DO UPDATE SET value = excluded.value""", (source.name, str(plan.version)))
    plan.sql_files = install.apply_sql(conn)   # fifo.trades, capture triggers, replacement views

    conn.execute("SELECT pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true)")
    for view in plan.views:
        try:
            with conn.transaction():
                _replace_view(conn, view)
        except psycopg.Error as exc:
            raise FifoError(f"view {view.name} cannot be re-pointed at fifo-db's replacement views "
                            f"({from_db_error(exc)}); nothing was changed") from None
    for table in plan.legacy:
        _grant_readers(conn, table.name, plan.views)
        table.null_columns = [r[0] for r in conn.execute(
            "SELECT a.attname::text FROM pg_catalog.pg_attribute a "
            "WHERE a.attrelid = %s::regclass AND a.attnum > 0 "
            "AND pg_catalog.col_description(a.attrelid, a.attnum) LIKE 'no fifo-db equivalent%%' ORDER BY a.attnum",
            (f"public.{table.name}",))]

    plan.triggers = [r[0] for r in conn.execute(
        "SELECT t.tgname::text FROM pg_catalog.pg_trigger t JOIN pg_catalog.pg_proc p ON p.oid = t.tgfoid "
        "WHERE t.tgrelid = 'public.trade_records'::regclass AND NOT t.tgisinternal "
        "AND p.pronamespace = 'fifo'::regnamespace ORDER BY 1")]
    conn.execute("""
        INSERT INTO fifo.adoption (trades_table, trades_source, legacy_tables, triggers, public_objects,
                                   pg_cron_existed, bot_version, fifo_schema_existed)
        VALUES ('public.trade_records', %s, %s, %s, %s, %s, %s, %s)""",
        (source.name, names, plan.triggers, plan.public_objects, plan.pg_cron_existed, plan.version,
         plan.fifo_schema_existed))
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO fifo.adoption_views (position, view_name, definition, reloptions, columns) "
            "VALUES (%s, %s, %s, %s, %s)",
            [(i, v.name, v.definition, v.reloptions, v.columns) for i, v in enumerate(plan.views, 1)])

    plan.queued = _one(conn, "SELECT fifo._queue_uncomputed_pools()")
    plan.problem_count = _one(conn, "SELECT count(*) FROM fifo.trades t WHERE t.problem IS NOT NULL")
    plan.problems = conn.execute(
        "SELECT t.order_id, t.problem FROM fifo.trades t WHERE t.problem IS NOT NULL "
        "ORDER BY t.order_time NULLS FIRST, t.order_id COLLATE \"C\" LIMIT 20").fetchall()


def _adopted_at(conn: psycopg.Connection) -> datetime | None:
    if not install.is_installed(conn):
        return None
    if _one(conn, "SELECT to_regclass('fifo.adoption') IS NULL"):
        return None
    return _one(conn, "SELECT max(adopted_at) FROM fifo.adoption")


def adopt(conn: psycopg.Connection, dry_run: bool = False, source: Source | None = None,
          on_plan: Callable[[Adoption], None] | None = None, lock_timeout: str = LOCK_TIMEOUT) -> Adoption:
    """Adopt the database of `conn` (an autocommit connection) in one transaction.

    on_plan is called with the inspection before anything changes. A dry run
    does everything, then rolls it back. Raises FifoError (one line) when the
    database cannot be adopted; nothing is changed then.
    """
    try:
        with conn.transaction() as tx:
            install.lock_install(conn)
            # a bot transaction holding trade_records must not make us (and the bot, queued
            # behind our lock) wait long: give up and say so
            conn.execute("SELECT pg_catalog.set_config('lock_timeout', %s, true)", (lock_timeout,))
            adopted_at = _adopted_at(conn)
            if adopted_at is not None:
                plan = Adoption(conn.info.dbname, _one(conn, "SELECT fifo._setting('trades_source')"), dry_run,
                                already_adopted_at=adopted_at)
                plan.migrations, plan.sql_files = install.apply_schema(conn)
                plan.queued = _one(conn, "SELECT fifo._queue_uncomputed_pools()")
            elif install.is_installed(conn):
                raise FifoError(f"fifo-db is already installed in database {conn.info.dbname!r} with a "
                                f"trade_records of its own: there is nothing to adopt (`fifo-db install` upgrades it)")
            else:
                plan = inspect(conn, source, dry_run)
                if on_plan:
                    on_plan(plan)
                _run(conn, plan, SOURCES[plan.source])
            if dry_run:
                raise psycopg.Rollback(tx)
    except psycopg.errors.LockNotAvailable:
        raise FifoError(f"another transaction holds a lock on the bot's tables (the bot writing?) for more than "
                        f"{lock_timeout}: nothing was changed; try again") from None
    except psycopg.errors.DuplicateTable as exc:
        raise FifoError(f"fifo-db cannot create its objects: {exc.diag.message_primary} in database "
                        f"{conn.info.dbname!r} and is not one of the bot's tables adoption moves; rename it, "
                        f"then try again; nothing was changed") from None
    except psycopg.Error as exc:
        raise from_db_error(exc) from None
    return plan


# --- output ---------------------------------------------------------------------------------

def _when(t: datetime | None) -> str:
    return t.strftime("%Y-%m-%d %H:%M") if t else "-"


def format_plan(plan: Adoption) -> str:
    """What was found and what the adoption does (before it runs)."""
    mode = " (dry run: checked in a transaction that is rolled back)" if plan.dry_run else ""
    lines = [f"adopting database {plan.database!r} as a {plan.source} database{mode}",
             f"found public.trade_records: {plan.rows:,} rows, {plan.pools:,} symbols, "
             f"order_time {_when(plan.first_time)} .. {_when(plan.last_time)}"]
    if plan.statuses:
        lines.append("  status: " + ", ".join(f"{s if s is not None else 'NULL'} {n:,}" for s, n in plan.statuses))
    if plan.other_status_rows:
        lines.append(f"  {plan.other_status_rows:,} rows have a status other than filled/done. They count as fills "
                     f"(setting fill_statuses '*', as the bot's engine did); to count only fills:")
        lines.append("    SELECT fifo_set_setting('fill_statuses', 'filled,done');")
    if plan.legacy:
        lines.append(f"the bot's tables move to schema {LEGACY_SCHEMA} (same names, rows, indexes, sequences, "
                     f"foreign keys; never dropped):")
        for t in plan.legacy:
            versions = ""
            if t.versions:
                versions = " (" + ", ".join(f"allocation_version {v}: {n:,}" for v, n in t.versions) + ")"
            lines.append(f"  public.{t.name} -> {LEGACY_SCHEMA}.{t.name}: {t.rows:,} rows{versions}")
        lines.append("and are replaced by views of the same names, with every column they had, of the same type:")
        for t in plan.legacy:
            lines.append(f"  public.{t.name}: {REPLACEMENTS.get(t.name, 'fifo-db')}")
    if plan.views:
        lines.append("views re-pointed at the replacements (same names, owners, grants; their original "
                     "definitions are kept for `fifo-db uninstall --restore`):")
        lines.append("  " + ", ".join(v.name for v in plan.views))
    if plan.left_alone:
        lines.append(f"left as they are, still reading the bot's tables in {LEGACY_SCHEMA} (only views are "
                     f"re-pointed): {', '.join(plan.left_alone)}")
    if plan.legacy:
        lines.append(f"current_version = {plan.version} (the bot's highest allocation_version): the bot's reports "
                     f"on allocation_version = {plan.version} read fifo-db's allocations")
    return "\n".join(lines)


def format_result(plan: Adoption) -> str:
    """What the run found and did, and what to do next."""
    if plan.already_adopted_at is not None:
        applied = ", ".join(plan.migrations) or "none pending"
        return (f"database {plan.database!r} was adopted on {_when(plan.already_adopted_at)}; upgraded like "
                f"`fifo-db install` (migrations applied: {applied}; {plan.sql_files} SQL files applied)"
                + (f"; {plan.queued} pools queued" if plan.queued else ""))
    lines = []
    for t in plan.legacy:
        if t.null_columns:
            lines.append(f"public.{t.name}: no fifo-db equivalent, always NULL: {', '.join(t.null_columns)}")
    lines.append(f"added to public.trade_records: triggers {', '.join(plan.triggers)} (change capture); "
                 f"its columns, rows and indexes are unchanged")
    lines.append(f"installed fifo-db: migrations {', '.join(plan.migrations)}; {plan.sql_files} SQL files; "
                 f"{plan.queued:,} pools queued for computation")
    if plan.problem_count:
        lines.append(f"{plan.problem_count:,} rows cannot be matched; their pools will fail to compute, naming "
                     f"the row, until the row is corrected or left out with fill_statuses:")
        lines.extend(f"  {order_id}: {problem}" for order_id, problem in plan.problems)
        if plan.problem_count > len(plan.problems):
            lines.append(f"  ... and {plan.problem_count - len(plan.problems):,} more: "
                         f"SELECT order_id, problem FROM fifo.trades WHERE problem IS NOT NULL")
    else:
        lines.append("every row can be matched")
    if plan.dry_run:
        lines.append("checked: adoption succeeds; nothing was changed. Run `fifo-db install --adopt` to adopt.")
        return "\n".join(lines)
    lines += [
        f"adopted database {plan.database!r}. Next:",
        f"  fifo-db compute --all-symbols        # compute every pool now (version {plan.version})",
        "  fifo-db verify",
        "  fifo-db schedule install             # pg_cron: incremental every minute, full at 01:50 GMT",
        "  or, without pg_cron: fifo-db worker --full-at 01:50 --timezone America/Los_Angeles  (docs/worker.md)",
    ]
    if plan.source == BOTTRADER.name and not plan.scheduled:
        lines += [
            "keep the bot's two FIFO lines in the host crontab until fifo-db keeps this database current: "
            "nothing does yet. Run `fifo-db schedule install` (or, on a server without pg_cron, `fifo-db worker`) "
            "first; once `fifo-db schedule list` shows the jobs (or the worker runs), delete these lines:",
            *(f"  {line}" for line in BOT_CRON_LINES),
        ]
    elif plan.source == BOTTRADER.name:
        lines += [
            "once one of them runs (`fifo-db schedule list` shows a succeeded run, or the worker logs 'active'), "
            "delete the bot's two FIFO lines from the host crontab; not before:",
            *(f"  {line}" for line in BOT_CRON_LINES),
        ]
    if plan.source == BOTTRADER.name:
        lines += [
            "(pg_cron schedules are in GMT: the bot's 01:50 Pacific is `--full '50 9 * * *'` in winter, "
            "or set cron.timezone)",
            "undo: fifo-db uninstall --restore (puts the bot's tables back as they were)",
        ]
    return "\n".join(lines)


def _scheduled(conn) -> bool:
    """Whether pg_cron jobs exist for this database (False when pg_cron is absent or unreadable)."""
    from fifo_db.schedule import list_schedule
    try:
        return bool(list_schedule(conn, 0))
    except FifoError:
        return False


def cli(args, conn) -> int:
    if args.dry_run and not args.adopt:
        raise FifoError("--dry-run goes with --adopt: `fifo-db install --adopt --dry-run`")
    plan = adopt(conn, dry_run=args.dry_run, on_plan=lambda p: print(format_plan(p), flush=True))
    if not plan.dry_run:
        plan.scheduled = _scheduled(conn)
    print(format_result(plan))
    return 0
