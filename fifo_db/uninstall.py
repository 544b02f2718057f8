"""Uninstall: remove fifo-db from a database (`fifo-db uninstall [--restore] [--dry-run]`).

On a database fifo-db adopted (`fifo-db install --adopt`), `--restore` puts it
back as it was before the adoption, from what the adoption recorded
(fifo.adoption, fifo.adoption_views): fifo-db's replacement views step aside,
the bot's tables come back from fifo_legacy to public, the views that read
them get their original definitions again (CREATE OR REPLACE VIEW: same OID,
owner, grants), the capture triggers leave the bot's trade_records, and
everything fifo-db created is dropped. The allocations fifo-db computed are
discarded; the bot's own, kept in fifo_legacy all along, are back.

On a fresh install, `fifo-db uninstall` drops fifo-db's objects and keeps
public.trade_records with its rows (the trades are the user's data).

Everything runs in one transaction, so it happens completely or not at all.
It refuses (one line, nothing changed) when an object fifo-db did not create
depends on one it would drop, naming it. fifo-db's pg_cron jobs for this
database are removed in the same transaction when pg_cron runs in this
database, else afterwards in the cron database (or the output says what to
remove there).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import psycopg
from psycopg import sql

from fifo_db import install
from fifo_db.adopt import LEGACY_SCHEMA, LOCK_TIMEOUT
from fifo_db.errors import FifoError, from_db_error

# fifo-db's objects in public are named fifo_*, *_fifo or *_fifo_* (compute_fifo_all,
# verify_fifo, fifo_runs, ...); of those, only what did not exist before an adoption is dropped.
PUBLIC_NAME = r"(^|_)fifo($|_)"


@dataclass
class Removal:
    database: str
    restore: bool
    dry_run: bool
    adopted: bool = False
    legacy_tables: list[str] = field(default_factory=list)
    views_restored: list[str] = field(default_factory=list)
    triggers: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)        # public objects of fifo-db
    fifo_objects: int = 0
    trade_rows: int | None = None                           # fresh install: rows kept in trade_records
    jobs_removed: list[str] = field(default_factory=list)
    jobs_elsewhere: list[tuple[str, str]] = field(default_factory=list)   # (job name, cron database)
    jobs_left: list[str] = field(default_factory=list)     # SQL to run by hand
    pg_cron_dropped: bool = False
    pg_cron_kept: str | None = None


def _one(conn, query, params=None):
    return conn.execute(query, params).fetchone()[0]


def _fifo_public(conn: psycopg.Connection, keep: list[str]) -> tuple[list[str], list[str]]:
    """fifo-db's relations and functions in public (identity text), leaving out `keep`."""
    rels = [r[0] for r in conn.execute(
        "SELECT c.oid::regclass::text FROM pg_catalog.pg_class c "
        "WHERE c.relnamespace = 'public'::regnamespace AND c.relname ~ %(p)s "
        "AND (c.relkind = 'v' OR (c.relkind = 'r' AND c.relname = 'fifo_runs')) "
        "AND NOT (c.oid::regclass::text = ANY (%(keep)s)) ORDER BY 1", {"p": PUBLIC_NAME, "keep": keep})]
    funcs = [r[0] for r in conn.execute(
        "SELECT p.oid::regprocedure::text FROM pg_catalog.pg_proc p "
        "WHERE p.pronamespace = 'public'::regnamespace AND p.proname ~ %(p)s "
        "AND NOT (p.oid::regprocedure::text = ANY (%(keep)s)) ORDER BY 1", {"p": PUBLIC_NAME, "keep": keep})]
    return rels, funcs


def _foreign_dependents(conn: psycopg.Connection, rels: list[str], funcs: list[str]) -> list[str]:
    """Objects fifo-db did not create that depend on what uninstall drops (schema fifo, `rels`, `funcs`)."""
    return [r[0] for r in conn.execute("""
        WITH rel AS (
            SELECT c.oid FROM pg_catalog.pg_class c
            WHERE c.relnamespace = 'fifo'::regnamespace OR c.oid::regclass::text = ANY (%(rels)s)
        ), fn AS (
            SELECT p.oid FROM pg_catalog.pg_proc p
            WHERE p.pronamespace = 'fifo'::regnamespace OR p.oid::regprocedure::text = ANY (%(funcs)s)
        ), typ AS (
            SELECT t.oid FROM pg_catalog.pg_type t
            WHERE t.typnamespace = 'fifo'::regnamespace OR t.typrelid IN (SELECT oid FROM rel)
        ), target AS (
            SELECT 'pg_catalog.pg_class'::regclass AS classid, oid FROM rel
            UNION ALL SELECT 'pg_catalog.pg_proc'::regclass, oid FROM fn
            UNION ALL SELECT 'pg_catalog.pg_type'::regclass, oid FROM typ
        )
        SELECT DISTINCT
               CASE WHEN d.classid = 'pg_catalog.pg_rewrite'::regclass
                    THEN 'view ' || (SELECT r.ev_class::regclass::text FROM pg_catalog.pg_rewrite r WHERE r.oid = d.objid)
                    ELSE pg_catalog.pg_describe_object(d.classid, d.objid, 0) END
               || ' (uses ' || pg_catalog.pg_describe_object(d.refclassid, d.refobjid, 0) || ')'
        FROM pg_catalog.pg_depend d
        JOIN target t ON t.classid = d.refclassid AND t.oid = d.refobjid
        WHERE d.deptype = 'n'
          AND NOT CASE d.classid
              WHEN 'pg_catalog.pg_rewrite'::regclass THEN EXISTS (
                  SELECT 1 FROM pg_catalog.pg_rewrite r WHERE r.oid = d.objid AND r.ev_class IN (SELECT oid FROM rel))
              WHEN 'pg_catalog.pg_class'::regclass THEN d.objid IN (SELECT oid FROM rel)
              WHEN 'pg_catalog.pg_proc'::regclass THEN d.objid IN (SELECT oid FROM fn)
              WHEN 'pg_catalog.pg_type'::regclass THEN d.objid IN (SELECT oid FROM typ)
              WHEN 'pg_catalog.pg_trigger'::regclass THEN EXISTS (
                  SELECT 1 FROM pg_catalog.pg_trigger g WHERE g.oid = d.objid
                    AND (g.tgrelid IN (SELECT oid FROM rel) OR g.tgfoid IN (SELECT oid FROM fn)))
              WHEN 'pg_catalog.pg_constraint'::regclass THEN EXISTS (
                  SELECT 1 FROM pg_catalog.pg_constraint c WHERE c.oid = d.objid AND c.conrelid IN (SELECT oid FROM rel))
              WHEN 'pg_catalog.pg_attrdef'::regclass THEN EXISTS (
                  SELECT 1 FROM pg_catalog.pg_attrdef a WHERE a.oid = d.objid AND a.adrelid IN (SELECT oid FROM rel))
              ELSE false END
        ORDER BY 1""", {"rels": rels, "funcs": funcs})]


def _cron_jobs(conn: psycopg.Connection, result: Removal) -> tuple[list[str], str | None]:
    """This database's fifo-db job names, and the cron database when it is another one. When
    pg_cron runs here, the jobs are removed now, inside the transaction."""
    names = [r[0] for r in conn.execute("SELECT job_name FROM fifo._cron_jobs()")]
    status = conn.execute("SELECT available, preloaded, cron_database FROM fifo._cron_status()").fetchone()
    here = _one(conn, "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_extension WHERE extname = 'pg_cron') "
                      "AND pg_catalog.has_schema_privilege('cron', 'USAGE')")   # else no job can be this role's
    if here and status[2] == conn.info.dbname:
        for jobid, name, user in conn.execute(
                "SELECT jobid, jobname, username FROM cron.job WHERE jobname = ANY (%s) AND database = %s "
                "ORDER BY jobid", (names, conn.info.dbname)).fetchall():
            if user == conn.info.user or _one(conn, "SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user"):
                conn.execute("SELECT cron.unschedule(%s::bigint)", (jobid,))
                result.jobs_removed.append(name)
            else:
                result.jobs_left.append(f"as {user}: SELECT cron.unschedule({jobid});   -- {name}")
        return names, None
    if status[0] and status[1]:
        return names, status[2]
    return names, None   # pg_cron is not running on this server: no job can exist


def _remove_jobs_elsewhere(conn: psycopg.Connection, names: list[str], cron_db: str, result: Removal,
                           dry_run: bool) -> None:
    """After the commit: remove this database's jobs in the cron database (dry run: only look), or
    say how to."""
    from psycopg.conninfo import make_conninfo
    mine = "jobname = ANY (%s) AND database = %s AND username = current_user"
    try:
        with psycopg.connect(make_conninfo(conn.info.dsn, dbname=cron_db, password=conn.info.password or None),
                             autocommit=True) as cron:
            if not _one(cron, "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_extension WHERE extname = 'pg_cron') "
                              "AND pg_catalog.has_schema_privilege('cron', 'USAGE')"):
                return   # no pg_cron there, or this role has no right in it: it can have no job
            found = [r[0] for r in cron.execute(f"SELECT jobname FROM cron.job WHERE {mine} ORDER BY jobid",
                                                (names, conn.info.dbname))]
            if not dry_run:
                cron.execute(f"SELECT cron.unschedule(jobid) FROM cron.job WHERE {mine}", (names, conn.info.dbname))
            result.jobs_elsewhere = [(name, cron_db) for name in found]
            for jobid, name, user in cron.execute(
                    "SELECT jobid, jobname, username FROM cron.job WHERE jobname = ANY (%s) AND database = %s "
                    "AND username <> current_user", (names, conn.info.dbname)).fetchall():
                result.jobs_left.append(f"in database {cron_db}, as {user}: SELECT cron.unschedule({jobid});   -- {name}")
    except psycopg.Error as exc:
        result.jobs_left.extend(f"in database {cron_db}: SELECT cron.unschedule('{n}');   -- if it exists"
                                for n in names)
        result.jobs_left.append(f"(could not reach database {cron_db}: {from_db_error(exc)})")


def uninstall(conn: psycopg.Connection, restore: bool = False, dry_run: bool = False,
              lock_timeout: str = LOCK_TIMEOUT) -> Removal | None:
    """Remove fifo-db (restore: and undo the adoption) in one transaction. None when fifo-db is
    not installed. Raises FifoError (one line, nothing changed) when it cannot."""
    result = Removal(conn.info.dbname, restore, dry_run)
    cron_db = None
    names: list[str] = []
    try:
        with conn.transaction() as tx:
            install.lock_install(conn)
            conn.execute("SELECT pg_catalog.set_config('lock_timeout', %s, true)", (lock_timeout,))
            if not install.is_installed(conn):
                raise psycopg.Rollback(tx)
            conn.execute("SELECT pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true)")
            adoption = None
            if _one(conn, "SELECT to_regclass('fifo.adoption') IS NOT NULL"):
                adoption = conn.execute(
                    "SELECT legacy_tables, triggers, public_objects, pg_cron_existed, fifo_schema_existed "
                    "FROM fifo.adoption").fetchone()
            result.adopted = adoption is not None
            if adoption is not None and not adoption[0] and not _one(conn, "SELECT count(*) FROM fifo.adoption_views"):
                restore = result.restore = True   # adopted its own table back: nothing but fifo-db to remove
            if restore and adoption is None:
                raise FifoError(f"database {conn.info.dbname!r} was not adopted (fifo-db was installed with its own "
                                f"trade_records): there is nothing to restore; `fifo-db uninstall` removes fifo-db "
                                f"and keeps trade_records")
            if adoption is not None and not restore:
                raise FifoError(f"database {conn.info.dbname!r} was adopted by fifo-db: `fifo-db uninstall "
                                f"--restore` puts the bot's tables back as they were (a plain uninstall would "
                                f"leave the bot's views without their tables)")
            legacy, triggers, keep, cron_existed, fifo_existed = adoption or ([], [], [], True, False)

            names, cron_db = _cron_jobs(conn, result)
            if adoption is not None:
                _restore(conn, legacy, triggers, result)
            rels, funcs = _fifo_public(conn, keep)
            foreign = _foreign_dependents(conn, rels, funcs)
            if foreign:
                raise FifoError(f"{foreign[0]} was not created by fifo-db and would be dropped with it"
                                f"{f' (and {len(foreign) - 1} more)' if len(foreign) > 1 else ''}: drop it or "
                                f"make it independent of fifo-db first; nothing was changed")
            result.fifo_objects = _one(conn, """
                SELECT (SELECT count(*) FROM pg_catalog.pg_class WHERE relnamespace = 'fifo'::regnamespace
                        AND relkind IN ('r', 'v', 'm', 'p'))
                     + (SELECT count(*) FROM pg_catalog.pg_proc WHERE pronamespace = 'fifo'::regnamespace)""")
            conn.execute("DROP SCHEMA fifo CASCADE")
            for rel in rels:
                kind = _one(conn, "SELECT (SELECT relkind FROM pg_catalog.pg_class WHERE oid = to_regclass(%s))", (rel,))
                if kind is not None:   # a view over fifo's objects is gone already
                    conn.execute(sql.SQL("DROP {} {} CASCADE").format(
                        sql.SQL("VIEW" if kind == "v" else "TABLE"), sql.SQL(rel)))
            for func in funcs:
                conn.execute(sql.SQL("DROP FUNCTION IF EXISTS {} CASCADE").format(sql.SQL(func)))
            result.dropped = rels + funcs
            if adoption is not None:
                conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {}").format(sql.Identifier(LEGACY_SCHEMA)))
                if fifo_existed:
                    conn.execute("CREATE SCHEMA fifo")
            if not legacy:
                result.trade_rows = _one(conn, "SELECT count(*) FROM public.trade_records") \
                    if _one(conn, "SELECT to_regclass('public.trade_records') IS NOT NULL") else None
            _pg_cron_extension(conn, cron_existed, result)
            if dry_run:
                raise psycopg.Rollback(tx)
    except psycopg.errors.LockNotAvailable:
        raise FifoError(f"another transaction holds a lock on fifo-db's or the bot's tables for more than "
                        f"{lock_timeout}: nothing was changed; try again") from None
    except psycopg.Error as exc:
        raise from_db_error(exc) from None
    if not result.fifo_objects and not result.dropped:
        return None
    if cron_db and names:
        _remove_jobs_elsewhere(conn, names, cron_db, result, dry_run)
    return result


def _restore(conn: psycopg.Connection, legacy: list[str], triggers: list[str], result: Removal) -> None:
    """Put the adopted database's tables and views back (inside the transaction)."""
    for name in legacy:
        # fifo-db's view of that name steps aside into fifo (dropped with it)
        if _one(conn, "SELECT (SELECT relkind FROM pg_catalog.pg_class WHERE oid = to_regclass(%s))",
                (f"public.{name}",)) == "v":
            conn.execute(sql.SQL("ALTER VIEW public.{} SET SCHEMA fifo").format(sql.Identifier(name)))
        conn.execute(sql.SQL("ALTER TABLE {}.{} SET SCHEMA public").format(
            sql.Identifier(LEGACY_SCHEMA), sql.Identifier(name)))
    result.legacy_tables = list(legacy)
    for name, definition, reloptions in conn.execute(
            "SELECT view_name, definition, reloptions FROM fifo.adoption_views ORDER BY position").fetchall():
        options = sql.SQL("")
        if reloptions:
            options = sql.SQL(" WITH ({})").format(sql.SQL(", ").join(sql.SQL(o) for o in reloptions))
        try:
            with conn.transaction():
                conn.execute(sql.Composed([sql.SQL("CREATE OR REPLACE VIEW "), sql.SQL(name), options,
                                           sql.SQL(" AS "), sql.SQL(definition)]))
        except psycopg.Error as exc:
            raise FifoError(f"view {name} cannot get its original definition back ({from_db_error(exc)}); "
                            f"nothing was changed") from None
        result.views_restored.append(name)
    for trigger in triggers:
        conn.execute(sql.SQL("DROP TRIGGER IF EXISTS {} ON public.trade_records").format(sql.Identifier(trigger)))
    result.triggers = list(triggers)


def _pg_cron_extension(conn: psycopg.Connection, existed: bool, result: Removal) -> None:
    """Drop pg_cron when fifo-db created it here (adopted: it did not exist before) and no job is left."""
    if not _one(conn, "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_extension WHERE extname = 'pg_cron')"):
        return
    if existed:
        if not result.adopted:
            result.pg_cron_kept = ("the pg_cron extension is kept (fifo-db cannot tell whether it created it; "
                                   "DROP EXTENSION pg_cron removes it and every job of this server)")
        return
    if not _one(conn, "SELECT e.extowner = (SELECT oid FROM pg_catalog.pg_roles WHERE rolname = current_user) "
                      "OR (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user) "
                      "FROM pg_catalog.pg_extension e WHERE e.extname = 'pg_cron'"):
        result.pg_cron_kept = ("the pg_cron extension is kept: another role (your DBA) created it after the "
                               "adoption, not fifo-db")
        return
    left = _one(conn, "SELECT count(*) FROM cron.job")
    if left:
        result.pg_cron_kept = f"the pg_cron extension is kept: it was created after the adoption, but {left} other job(s) use it"
        return
    conn.execute("DROP EXTENSION pg_cron")
    result.pg_cron_dropped = True


def format_removal(r: Removal) -> str:
    done = "would be" if r.dry_run else "were"
    lines = []
    for name in r.jobs_removed:
        lines.append(f"pg_cron job {name!r} {'would be ' if r.dry_run else ''}removed")
    for name, db in r.jobs_elsewhere:
        lines.append(f"pg_cron job {name!r} {'would be ' if r.dry_run else ''}removed (in cron database {db!r})")
    if r.legacy_tables:
        lines.append(f"the bot's tables {done} moved back to public: {', '.join(r.legacy_tables)}")
    if r.views_restored:
        lines.append(f"views {done} given their original definitions: {', '.join(r.views_restored)}")
    if r.triggers:
        lines.append(f"triggers {done} dropped from public.trade_records: {', '.join(r.triggers)}")
    lines.append(f"fifo-db's objects {done} dropped: schema fifo ({r.fifo_objects} tables, views and functions), "
                 f"{len(r.dropped)} in public" + (f", schema {LEGACY_SCHEMA}" if r.legacy_tables else "")
                 + (", the pg_cron extension (created after the adoption)" if r.pg_cron_dropped else ""))
    if r.legacy_tables:
        lines.append("the allocations fifo-db computed are discarded; the bot's own are back in public.fifo_allocations. "
                     "Put the bot's two FIFO crontab lines back to run its own engine again.")
    if r.trade_rows is not None:
        lines.append(f"kept: public.trade_records and its {r.trade_rows:,} rows (your trades; "
                     f"DROP TABLE public.trade_records removes them)")
    if r.pg_cron_kept:
        lines.append(r.pg_cron_kept)
    if r.jobs_left:
        lines.append("remove these pg_cron jobs by hand (their functions are gone):")
        lines.extend(f"  {s}" for s in r.jobs_left)
    if r.dry_run:
        lines.append("checked: uninstall succeeds; nothing was changed")
    else:
        lines.append(f"fifo-db is uninstalled from database {r.database!r}"
                     + (" and the database is as it was before the adoption" if r.legacy_tables else ""))
    return "\n".join(lines)


def register(sub) -> None:
    p = sub.add_parser("uninstall", help="remove fifo-db from the database (--restore: undo an adoption)",
                       description="Remove everything fifo-db created, in one transaction. A fresh install "
                                   "keeps public.trade_records and its rows. On a database adopted with "
                                   "`install --adopt`, --restore puts the bot's tables and views back as they "
                                   "were before the adoption (fifo-db's allocations are discarded).")
    p.add_argument("--restore", action="store_true",
                   help="on an adopted database: put the bot's tables back as they were")
    p.add_argument("--dry-run", action="store_true",
                   help="do it in a transaction that is rolled back: print what would happen, change nothing")
    p.set_defaults(func=_cli_uninstall)


def _cli_uninstall(args, conn) -> int:
    result = uninstall(conn, restore=args.restore, dry_run=args.dry_run)
    if result is None:
        print(f"fifo-db is not installed in database {conn.info.dbname!r}: nothing to remove")
        return 0
    print(format_removal(result))
    return 0
