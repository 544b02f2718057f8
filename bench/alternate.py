"""Time one SQL statement in two (or more) databases of one server, alternating, to compare two
installs of fifo-db on the same data (e.g. one installed from the commit before a change, one
from after): on a shared, noisy machine only an alternated comparison tells a change from the
load. It changes nothing but what the statement changes: point it at scratch databases.

  --session  one session per database for all rounds (the statement once untimed first, then
             --calls timed calls a round, a CHECKPOINT before each): for long statements, e.g.
             the forced full recompute
  --fresh    a new session per database and round (the statement once untimed, then --calls
             timed calls, then --late more): what `fifo-db compute` and the bench see on a
             session's first calls, where PL/pgSQL still plans each statement anew

Rounds run the databases in turn, every other round in reverse order. Prints each database's
wall times in ms and their median (and the --late calls' apart).

    .venv/bin/python bench/alternate.py --dsn "host=/tmp/h/run user=postgres" --fresh --rounds 8 \\
        --statement "SELECT compute_fifo('S500-USD')" before after
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time

import psycopg
from psycopg.conninfo import make_conninfo


def run(conn: psycopg.Connection, statement: str) -> None:
    """The statement, and its rows fetched if it returns any (an INSERT without RETURNING does not)."""
    cur = conn.execute(statement)
    if cur.description is not None:
        cur.fetchall()


def timed_ms(conn: psycopg.Connection, statement: str) -> float:
    started = time.perf_counter()
    run(conn, statement)
    return (time.perf_counter() - started) * 1000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dsn", required=True, help="the server, without a database name")
    parser.add_argument("--statement", required=True)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--calls", type=int, default=1, help="timed calls per database and round")
    parser.add_argument("--late", type=int, default=0, help="--fresh: more calls per round, reported apart")
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--session", action="store_true")
    mode.add_argument("--fresh", action="store_true")
    parser.add_argument("databases", nargs="+")
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.calls < 1 or args.late < 0:
        parser.error("--rounds and --calls must be at least 1, --late at least 0")

    def connect(db: str) -> psycopg.Connection:
        return psycopg.connect(make_conninfo(args.dsn, dbname=db), autocommit=True)

    times: dict[str, list[float]] = {db: [] for db in args.databases}
    late: dict[str, list[float]] = {db: [] for db in args.databases}
    try:
        kept = {db: connect(db) for db in args.databases} if args.session else {}
        for conn in kept.values():
            run(conn, args.statement)
        for round_ in range(args.rounds):
            order = args.databases if round_ % 2 == 0 else args.databases[::-1]
            for db in order:
                if args.session:
                    conn = kept[db]
                    for _ in range(args.calls):
                        conn.execute("CHECKPOINT")
                        times[db].append(timed_ms(conn, args.statement))
                    continue
                with connect(db) as conn:
                    run(conn, args.statement)
                    times[db] += [timed_ms(conn, args.statement) for _ in range(args.calls)]
                    late[db] += [timed_ms(conn, args.statement) for _ in range(args.late)]
    except psycopg.Error as exc:
        print(f"alternate.py: {str(exc).strip().splitlines()[0]}", file=sys.stderr)
        return 1
    for db in args.databases:
        line = " ".join(f"{t:.1f}" for t in times[db]) if len(times[db]) <= 8 else f"{len(times[db])} calls"
        print(f"{db}: {line}; median {statistics.median(times[db]):.2f} ms, min {min(times[db]):.2f} ms")
        if late[db]:
            print(f"{db}, the {args.late} later calls of each session: median {statistics.median(late[db]):.2f} ms,"
                  f" min {min(late[db]):.2f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
