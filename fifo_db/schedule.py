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
                    f"(cron.database_name): {from_db_error(exc)}") from None
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


def install_schedule(conn: psycopg.Connection, every: str = DEFAULT_EVERY,
                     full: str | None = DEFAULT_FULL) -> list[dict]:
    """Schedule this database's jobs (idempotent); returns them with their pg_cron job ids."""
    with conn.cursor(row_factory=dict_row) as cur:
        jobs = cur.execute("SELECT * FROM fifo._cron_jobs(%s, %s)", (every, full)).fetchall()
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
                about = cur.execute(
                    "SELECT extversion, coalesce(nullif(current_setting('cron.timezone', true), ''), 'GMT') AS tz "
                    "FROM pg_extension WHERE extname = 'pg_cron'").fetchone()
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
    jobs = install_schedule(conn, args.every, full)
    cron_db = cron_db_name(conn)
    for job in jobs:
        print(f"scheduled {job['job_name']}: '{job['schedule']}' {job['command']} "
              f"[job {job['jobid']} in cron database {cron_db!r}]")
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
    lines.append("# Only stderr reaches cron's mail: one line when a run fails. Or run `fifo-db worker` instead "
                 "(changes current within a second).")
    return "\n".join(lines)
