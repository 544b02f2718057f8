"""Schedule: keep allocations current with pg_cron (`fifo-db schedule install | list | remove`).

pg_cron runs in one database per server (cron.database_name) and starts jobs
in others with cron.schedule_in_database. The jobs, their names and the
checks live in SQL (sql/110_schedule.sql); when the fifo-db database is not
the cron database, this module opens a second connection to the cron
database (same server, user and password) and applies them there.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import psycopg
from psycopg.conninfo import make_conninfo
from psycopg.rows import dict_row

from fifo_db.errors import FifoError, from_db_error

DEFAULT_EVERY = "* * * * *"
DEFAULT_FULL = "50 1 * * *"


def _status(conn: psycopg.Connection) -> dict:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute("SELECT * FROM fifo._cron_status()").fetchone()


@contextmanager
def cron_connection(conn: psycopg.Connection, *, create_extension: bool = False
                    ) -> Iterator[psycopg.Connection]:
    """A connection to the cron database: `conn` itself, or a second one to the same server.

    Raises a one-line FifoError saying what to fix when pg_cron is not
    installed, not preloaded, or (unless create_extension) not created there.
    """
    try:
        status = _status(conn)
        # installed and preloaded, wherever the jobs will be written
        conn.execute("SELECT fifo._cron_require(true, false)")
        here = status["cron_database"] == conn.info.dbname
        if here:
            cron = conn
        else:
            target = make_conninfo(conn.info.dsn, dbname=status["cron_database"],
                                   password=conn.info.password or None)
            try:
                cron = psycopg.connect(target, autocommit=True)
            except psycopg.Error as exc:
                raise FifoError(
                    f"cannot connect to database {status['cron_database']!r}, where pg_cron runs "
                    f"(cron.database_name): {from_db_error(exc, target)}") from None
        try:
            created = cron.execute(
                "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_cron')").fetchone()[0]
            if create_extension and not created:
                cron.execute("CREATE EXTENSION pg_cron")
                created = True
            conn.execute("SELECT fifo._cron_require(%s, false)", (created,))
            yield cron
        finally:
            if cron is not conn:
                cron.close()
    except psycopg.Error as exc:
        raise from_db_error(exc) from None


def _job_names(conn: psycopg.Connection) -> list[str]:
    return [r[0] for r in conn.execute("SELECT job_name FROM fifo._cron_jobs()")]


SCHEDULE_IN_DATABASE = "cron.schedule_in_database(text, text, text, text, text, boolean)"


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _cron_settings(conn: psycopg.Connection) -> tuple[str | None, str | None]:
    """cron.use_background_workers and cron.host, each None when this role may not read it."""
    return conn.execute("SELECT fifo._setting_if_readable('cron.use_background_workers'), "
                        "fifo._setting_if_readable('cron.host')").fetchone()


def _failed_connections(cron: psycopg.Connection, database: str, names: list[str]) -> str | None:
    """The last run of this database's jobs that failed because pg_cron could not connect, if any
    is readable (cron.job_run_details shows a role its own runs)."""
    try:
        # by database and user, not job id: a reinstalled schedule has new job ids
        # the latest run since the server started (a fix of the setting takes a restart)
        row = cron.execute(
            "SELECT d.return_message FROM cron.job_run_details d "
            "WHERE d.database = %s AND d.username = current_user "
            "AND coalesce(d.start_time, d.end_time, pg_catalog.now()) >= pg_catalog.pg_postmaster_start_time() "
            "ORDER BY d.runid DESC LIMIT 1", (database,)).fetchone()
        if row is None or not (row[0] or "").lower().startswith("connection failed"):
            return None
    except psycopg.Error:
        return None
    return row[0].strip() if row else None


def dba_checklist(conn: psycopg.Connection, runs: bool = True) -> tuple[list[str], list[str]]:
    """What a superuser must do once before this role can schedule this database's jobs: (steps,
    notes). Changes nothing. Steps are complete SQL statements and postgresql.conf settings, in
    order, with the real names; notes say what fifo-db could not tell."""
    role, database = conn.info.user, conn.info.dbname
    status = _status(conn)
    superuser = conn.execute("SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user").fetchone()[0]
    cron_db = status["cron_database"]
    major = conn.execute("SELECT current_setting('server_version_num')::int / 10000").fetchone()[0]
    steps: list[str] = []
    notes: list[str] = []
    restart = False
    if not status["available"]:
        steps.append(f"install pg_cron on the server (Debian/Ubuntu: apt-get install postgresql-{major}-cron; "
                     f"managed services: enable the pg_cron extension in the parameter group / flags)")
    if not status["preloaded"]:
        steps.append("postgresql.conf: shared_preload_libraries = 'pg_cron'   (add to the list if it has others)")
        steps.append(f"postgresql.conf: cron.database_name = '{database}'")
        cron_db = database
        restart = True
    workers, host = _cron_settings(conn)
    if not status["preloaded"] or workers == "off" and not (host or "").startswith("/"):
        steps.append("postgresql.conf: cron.use_background_workers = on   (pg_cron otherwise connects to "
                     f"{host or 'localhost'} over TCP without a password, and every job fails with "
                     f"'connection failed'; or give the server account a ~/.pgpass line for role {role})")
        steps.append("postgresql.conf: max_worker_processes = 16   (or more: room for pg_cron's workers)")
        restart = True
    if restart:
        steps.append("restart PostgreSQL (these settings take effect only at server start)")
    cron = None
    extension = None
    if status["preloaded"] and not superuser:
        try:
            cron = conn if cron_db == database else psycopg.connect(
                make_conninfo(conn.info.dsn, dbname=cron_db, password=conn.info.password or None), autocommit=True)
        except psycopg.Error as exc:
            steps.append(f"GRANT CONNECT ON DATABASE {_ident(cron_db)} TO {_ident(role)};   "
                         f"(fifo-db could not connect to it: {from_db_error(exc)})")
    try:
        if cron is not None:
            extension = cron.execute("SELECT extversion FROM pg_catalog.pg_extension WHERE extname = 'pg_cron'"
                                     ).fetchone()
        if not superuser:
            where = f"in database {cron_db}: "
            if extension is None:
                steps.append(f"{where}CREATE EXTENSION pg_cron;")
                steps.append(f"{where}GRANT USAGE ON SCHEMA cron TO {_ident(role)};")
                steps.append(f"{where}GRANT EXECUTE ON FUNCTION {SCHEDULE_IN_DATABASE} TO {_ident(role)};")
            else:
                if not cron.execute("SELECT has_schema_privilege('cron', 'USAGE')").fetchone()[0]:
                    steps.append(f"{where}GRANT USAGE ON SCHEMA cron TO {_ident(role)};")
                for name in ("schedule_in_database", "unschedule"):
                    for (sig,) in cron.execute(
                            "SELECT p.oid::regprocedure::text FROM pg_catalog.pg_proc p "
                            "WHERE p.pronamespace = 'cron'::regnamespace AND p.proname = %s "
                            "AND NOT has_function_privilege(p.oid, 'EXECUTE') ORDER BY 1", (name,)).fetchall():
                        if name == "unschedule" and "bigint" not in sig:
                            continue
                        steps.append(f"{where}GRANT EXECUTE ON FUNCTION {sig.replace(',', ', ')} TO {_ident(role)};")
        if runs and status["preloaded"] and workers is None and (cron is not None or superuser):
            failed = _failed_connections(cron or conn, database, _job_names(conn)) if cron is not None else None
            if failed:
                steps.append(f"postgresql.conf: cron.use_background_workers = on, then restart PostgreSQL   "
                             f"(this database's jobs fail: {failed!r}: pg_cron connects over the network "
                             f"without a password; or give the server account a ~/.pgpass line for role {role})")
            else:
                notes.append(f"fifo-db cannot read cron.use_background_workers as role {role}: if it is off and "
                             f"cron.host is not a socket directory, pg_cron connects over TCP without a password "
                             f"and every run fails; `fifo-db schedule list` shows the runs")
    finally:
        if cron is not None and cron is not conn:
            cron.close()
    if steps and notes and runs:   # the DBA is at it anyway: what fifo-db cannot tell goes on the list
        steps.append(f"check that postgresql.conf has cron.use_background_workers = on (fifo-db cannot read it as "
                     f"role {role}; off, pg_cron connects to cron.host over TCP without a password and every "
                     f"job fails with 'connection failed'); if you change it, restart PostgreSQL")
        notes = []
    return steps, notes


def _require_rights(conn: psycopg.Connection) -> None:
    """For a role that is not a superuser: the DBA checklist (FifoError) when pg_cron is not usable yet."""
    try:
        if conn.execute("SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user").fetchone()[0]:
            return
        steps, _ = dba_checklist(conn, runs=False)
    except psycopg.Error as exc:
        raise from_db_error(exc) from None
    if steps:
        raise FifoError(format_checklist(steps, conn.info.user, conn.info.dbname))


def format_checklist(steps: list[str], role: str, database: str) -> str:
    lines = [f"pg_cron cannot run fifo-db's jobs for database {database!r} as role {role!r} yet; nothing was "
             f"changed. Ask your DBA (a superuser) to do this once, in order, then run `fifo-db schedule install` "
             f"again:"]
    lines += [f"  {i}. {step}" for i, step in enumerate(steps, 1)]
    return "\n".join(lines)


def install_schedule(conn: psycopg.Connection, every: str = DEFAULT_EVERY,
                     full: str | None = DEFAULT_FULL, notes: list[str] | None = None) -> list[dict]:
    """Schedule this database's jobs (idempotent); returns them with their pg_cron job ids.

    A role that is not a superuser first gets the complete DBA checklist (FifoError, nothing
    changed) when anything is missing; `notes` receives what fifo-db could not tell."""
    try:
        superuser = conn.execute("SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user"
                                 ).fetchone()[0]
        if not superuser:
            steps, found = dba_checklist(conn)
            if steps:
                raise FifoError(format_checklist(steps, conn.info.user, conn.info.dbname))
            if notes is not None:
                notes.extend(found)
        with conn.cursor(row_factory=dict_row) as cur:
            jobs = cur.execute("SELECT * FROM fifo._cron_jobs(%s, %s)", (every, full)).fetchall()
    except psycopg.Error as exc:
        raise from_db_error(exc) from None
    with cron_connection(conn, create_extension=True) as cron:
        try:
            if cron is conn:   # this is the cron database: the SQL function does it all
                with cron.cursor(row_factory=dict_row) as cur:
                    return cur.execute("SELECT * FROM fifo_schedule(%s, %s)", (every, full)).fetchall()
            with cron.transaction():
                _unschedule(cron, conn.info.dbname, [j["job_name"] for j in jobs])
                for job in jobs:
                    if job["schedule"] is None:
                        continue
                    job["jobid"] = cron.execute(
                        "SELECT cron.schedule_in_database(%s, %s, %s, %s)",
                        (job["job_name"], job["schedule"], job["command"], job["database"])).fetchone()[0]
        except psycopg.Error as exc:
            raise from_db_error(exc) from None
    return [j for j in jobs if j["schedule"] is not None]


def _unschedule(cron: psycopg.Connection, database: str, names: list[str]) -> int:
    rows = cron.execute(
        "SELECT cron.unschedule(jobid) FROM cron.job "
        "WHERE jobname = ANY(%s) AND database = %s AND username = current_user",
        (names, database)).fetchall()
    return len(rows)


def remove_schedule(conn: psycopg.Connection) -> int:
    """Remove this database's jobs; returns how many were removed."""
    _require_rights(conn)
    names = _job_names(conn)
    with cron_connection(conn) as cron:
        try:
            if cron is conn:
                return cron.execute("SELECT fifo_unschedule()").fetchone()[0]
            return _unschedule(cron, conn.info.dbname, names)
        except psycopg.Error as exc:
            raise from_db_error(exc) from None


def list_schedule(conn: psycopg.Connection, runs: int = 5) -> list[dict]:
    """This database's jobs, each with its last `runs` runs (newest first) under "runs"."""
    _require_rights(conn)
    names = _job_names(conn)
    with cron_connection(conn) as cron:
        try:
            with cron.cursor(row_factory=dict_row) as cur:
                jobs = cur.execute(
                    "SELECT jobid, jobname AS job_name, schedule, command, database, active "
                    "FROM cron.job WHERE jobname = ANY(%s) AND database = %s "
                    "ORDER BY array_position(%s, jobname::text)",
                    (names, conn.info.dbname, names)).fetchall()
                for job in jobs:
                    job["runs"] = cur.execute(
                        "SELECT runid, status, start_time, end_time, return_message "
                        "FROM cron.job_run_details WHERE jobid = %s "
                        "ORDER BY runid DESC LIMIT %s", (job["jobid"], runs)).fetchall()
                about = cur.execute("SELECT extversion FROM pg_extension WHERE extname = 'pg_cron'").fetchone()
            # cron.timezone: superuser-only to read; asked in this database, where fifo-db is
            about["tz"] = conn.execute(
                "SELECT coalesce(fifo._setting_if_readable('cron.timezone'), 'GMT')").fetchone()[0]
        except psycopg.Error as exc:
            raise from_db_error(exc) from None
    for job in jobs:
        job["pg_cron_version"] = about["extversion"]
        job["time_zone"] = about["tz"]
        job["cron_database"] = cron_db_name(conn)
    return jobs


def cron_db_name(conn: psycopg.Connection) -> str:
    return _status(conn)["cron_database"]


def format_jobs(jobs: list[dict], database: str) -> str:
    if not jobs:
        return (f"no fifo-db jobs are scheduled for database {database!r}; "
                f"run `fifo-db schedule install`")
    head = (f"pg_cron {jobs[0]['pg_cron_version']} in database {jobs[0]['cron_database']!r}, "
            f"jobs for database {database!r} (schedules in {jobs[0]['time_zone']}):")
    lines = [head]
    for job in jobs:
        state = "active" if job["active"] else "inactive"
        lines.append(f"  {job['job_name']}: '{job['schedule']}' {job['command']} "
                     f"[job {job['jobid']}, {state}]")
        if not job["runs"]:
            lines.append("    no runs yet")
        for run in job["runs"]:
            start = run["start_time"].strftime("%Y-%m-%d %H:%M:%S%z") if run["start_time"] else "-"
            took = ""
            if run["start_time"] and run["end_time"]:
                took = f" {(run['end_time'] - run['start_time']).total_seconds() * 1000:.0f} ms"
            message = (run["return_message"] or "").strip().replace("\n", " ")
            lines.append(f"    {start} {run['status']}{took}: {message}")
    return "\n".join(lines)


def register(sub) -> None:
    p = sub.add_parser("schedule", help="keep allocations current with pg_cron",
                       description="Schedule compute_fifo_incremental() and a nightly forced full "
                                   "recompute with pg_cron, list the jobs and their last runs, "
                                   "or remove them. Schedules are cron expressions in GMT.")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    inst = actions.add_parser("install", help="schedule the jobs (idempotent)")
    inst.add_argument("--every", default=DEFAULT_EVERY, metavar="CRON",
                      help=f"incremental run schedule (default '{DEFAULT_EVERY}': every minute)")
    inst.add_argument("--full", default=DEFAULT_FULL, metavar="CRON",
                      help=f"forced full recompute schedule (default '{DEFAULT_FULL}'; 'none': no full job)")
    inst.add_argument("--crontab", action="store_true",
                      help="print crontab lines that do the same with `fifo-db compute` (no pg_cron "
                           "needed; changes nothing)")
    inst.set_defaults(func=_cli_install)
    lst = actions.add_parser("list", help="show the jobs and their last runs")
    lst.add_argument("--runs", type=int, default=5, metavar="N", help="runs shown per job (default 5)")
    lst.set_defaults(func=_cli_list)
    rm = actions.add_parser("remove", help="remove the jobs")
    rm.set_defaults(func=_cli_remove)


def _cli_install(args, conn) -> int:
    full = None if args.full.strip().lower() == "none" else args.full
    if getattr(args, "crontab", False):
        print(crontab_lines(conn, args.every, full))
        return 0
    notes: list[str] = []
    jobs = install_schedule(conn, args.every, full, notes)
    cron_db = cron_db_name(conn)
    for job in jobs:
        print(f"scheduled {job['job_name']}: '{job['schedule']}' {job['command']} "
              f"[job {job['jobid']} in cron database {cron_db!r}]")
    for note in notes:
        print(f"note: {note}")
    return 0


def _cli_list(args, conn) -> int:
    print(format_jobs(list_schedule(conn, args.runs), conn.info.dbname))
    return 0


def _cli_remove(args, conn) -> int:
    removed = remove_schedule(conn)
    print(f"removed {removed} fifo-db job(s) for database {conn.info.dbname!r}")
    return 0


def crontab_lines(conn: psycopg.Connection, every: str = DEFAULT_EVERY, full: str | None = DEFAULT_FULL) -> str:
    """`schedule install --crontab`: the jobs as crontab lines running `fifo-db compute`, for a server
    without pg_cron. The DSN is this connection's without its password (libpq reads that from
    ~/.pgpass or PGPASSWORD); the command is this fifo-db, by absolute path (cron's PATH is short)."""
    import os
    import shlex
    import shutil
    import sys

    from psycopg.conninfo import conninfo_to_dict

    params = conninfo_to_dict(conn.info.dsn)      # psycopg already leaves the password out of it
    params.pop("password", None)
    if params.get("sslcertmode") == "allow":      # libpq's default, spelled out by info.dsn
        params.pop("sslcertmode")
    dsn = make_conninfo(**params)
    exe = os.path.abspath(sys.argv[0]) if os.path.basename(sys.argv[0]) == "fifo-db" else shutil.which("fifo-db")
    command = shlex.quote(exe) if exe else f"{shlex.quote(sys.executable)} -m fifo_db"
    lines = [
        f"# fifo-db for database {conn.info.dbname!r}: paste into `crontab -e` of the user that runs it.",
        "# The password is not here: libpq reads it from ~/.pgpass (host:port:database:user:password, chmod 600).",
        "# Schedules are in the cron daemon's time zone (the host's local time).",
        f"FIFO_DB_DSN={dsn}",
        f"{every} {command} compute --incremental > /dev/null",
    ]
    if full:
        lines.append(f"{full} {command} compute --all-symbols --force > /dev/null")
    lines.append(f"{every} {command} assets compute --incremental > /dev/null")
    lines.append("# Only stderr reaches cron's mail: one line when a run fails. Or run `fifo-db worker` instead "
                 "(changes current within a second).")
    return "\n".join(lines)
