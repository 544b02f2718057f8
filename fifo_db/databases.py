"""`fifo-db db create NAME`: a new database on the embedded server (or the server of --dsn), no psql needed.

embedded.py owns `fifo-db db start|stop|status|url`; this module adds the `create`
action to that command (extend_db_command, called by cli.py) and uses only the
embedded server's public methods.
"""

from __future__ import annotations

import os

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from fifo_db.connection import bad_dsn
from fifo_db.errors import FifoError, from_db_error
from fifo_db.masking import has_password, mask_dsn


def _dsn_for(dsn: str | None, name: str) -> str:
    """A DSN for database `name` on the same server as `dsn` (None: the embedded server)."""
    if dsn is None:
        from fifo_db.embedded import EmbeddedServer

        return EmbeddedServer().ensure_started().url(name)
    try:
        return make_conninfo(dsn, dbname=name)
    except psycopg.ProgrammingError as exc:
        raise FifoError(bad_dsn(dsn, exc)) from None


def create_database(dsn: str | None, name: str) -> str:
    """CREATE DATABASE `name` on the server of `dsn` (None: $FIFO_DB_DSN or the embedded server).

    Connects to the server's `postgres` database to do it; returns a DSN for the new database.
    """
    if not name or name != name.strip() or "\x00" in name:
        raise FifoError(f"db create: {name!r} is not a usable database name")
    server = dsn or os.environ.get("FIFO_DB_DSN") or None
    maintenance = _dsn_for(server, "postgres")
    try:
        with psycopg.connect(maintenance, autocommit=True) as conn:
            if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
                raise FifoError(f"db create: database {name!r} already exists (use it: "
                                f"--dsn '{mask_dsn(_dsn_for(server, name))}')")
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    except psycopg.Error as exc:
        raise from_db_error(exc, maintenance) from None
    return _dsn_for(server, name)


def extend_db_command(sub) -> None:
    """Add `create NAME` to the `db` command that embedded.register() defined."""
    parser = sub.choices["db"]
    action = next(a for a in parser._actions if a.dest == "action")  # argparse has no public accessor
    action.choices = [*action.choices, "create"]
    action.help = "start|stop|status|url (the embedded server) or create NAME (a database)"
    parser.add_argument("name", nargs="?", metavar="NAME", help="create: the name of the new database")
    parser.description = (parser.description or "") + (
        " `db create NAME` creates a database on the embedded server, or on the server of --dsn / FIFO_DB_DSN.")
    embedded_func = parser.get_default("func")

    def dispatch(args) -> int:
        if args.action == "create":
            return _cli_create(args)
        if args.name is not None:
            raise FifoError(f"db {args.action} takes no NAME (only `db create NAME` does)")
        return embedded_func(args)

    parser.set_defaults(func=dispatch)


def _cli_create(args) -> int:
    if not args.name:
        raise FifoError("db create: give the name of the database, e.g. `fifo-db db create trading`")
    target = create_database(args.dsn, args.name)
    print(f"created database {args.name!r}")
    print(f"use it: export FIFO_DB_DSN='{mask_dsn(target)}'   (or --dsn); then `fifo-db install`")
    if has_password(target):
        print("(**** stands for the password of your DSN, which fifo-db never prints; or leave it out of "
              "the DSN and put it in PGPASSWORD or ~/.pgpass)")
    return 0
