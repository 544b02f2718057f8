"""`fifo-db grant|revoke bot|reader|operator ROLE`: the privilege model, per role.

The model itself lives in SQL (sql/900_privileges.sql, fifo_grant/fifo_revoke):
  bot       writes trades (SELECT, INSERT, UPDATE, DELETE on trade_records);
            change capture works; nothing else
  reader    reads every report view and result table; calls compute_fifo,
            compute_fifo_incremental, compute_fifo_since, explain_fifo,
            verify_fifo and the report functions, which run with the owner's
            rights: no right to write allocations, runs, settings or the
            change queue
  operator  a reader who also changes settings and schedules and runs full
            recomputes and other versions
"""

from __future__ import annotations

import psycopg

from fifo_db.errors import from_db_error

KINDS = ("bot", "reader", "operator")


def grant(conn: psycopg.Connection, kind: str, role: str) -> int:
    """Grant `role` the privileges of `kind`; returns how many objects that covers."""
    try:
        return conn.execute("SELECT fifo_grant(%s, %s)", (kind, role)).fetchone()[0]
    except psycopg.Error as exc:
        raise from_db_error(exc) from None


def revoke(conn: psycopg.Connection, kind: str, role: str) -> int:
    try:
        return conn.execute("SELECT fifo_revoke(%s, %s)", (kind, role)).fetchone()[0]
    except psycopg.Error as exc:
        raise from_db_error(exc) from None


def register(sub) -> None:
    for name, verb in (("grant", "grant"), ("revoke", "revoke")):
        p = sub.add_parser(name, help=f"{verb} a role the privileges of a fifo-db bot, reader or operator",
                           description=__doc__.split("\n\n", 1)[1])
        p.add_argument("kind", choices=KINDS)
        p.add_argument("role", metavar="ROLE")
        p.set_defaults(func=_cli_grant if name == "grant" else _cli_revoke)


def _cli_grant(args, conn) -> int:
    n = grant(conn, args.kind, args.role)
    print(f"granted {args.role!r} the privileges of a fifo-db {args.kind} in database "
          f"{conn.info.dbname!r} ({n} object{'s' if n != 1 else ''})")
    return 0


def _cli_revoke(args, conn) -> int:
    n = revoke(conn, args.kind, args.role)
    print(f"revoked the privileges of a fifo-db {args.kind} from {args.role!r} in database "
          f"{conn.info.dbname!r} ({n} object{'s' if n != 1 else ''})")
    return 0
