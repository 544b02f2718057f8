"""The fifo-db command: argparse wiring only; each command lives in its own module.

A command module exposes register(subparsers), which adds its parser and sets
func (and needs_db=False when it must not open a connection first). Errors
become one line on stderr and a non-zero exit, never a traceback, and never a password.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

import psycopg

from fifo_db import __version__
from fifo_db.connection import connect
from fifo_db.errors import FifoError, from_db_error
from fifo_db.masking import scrub

COMMAND_MODULES = [
    "fifo_db.install",
    "fifo_db.uninstall",
    "fifo_db.compute",
    "fifo_db.verify",
    "fifo_db.importer",
    "fifo_db.report",
    "fifo_db.assets",
    "fifo_db.explain",
    "fifo_db.schedule",
    "fifo_db.worker",
    "fifo_db.privileges",
    "fifo_db.bench",
    "fifo_db.demo",
    "fifo_db.embedded",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fifo-db",
        description="Exact FIFO lot matching and realized P&L inside PostgreSQL.")
    parser.add_argument("--version-info", action="version", version=f"fifo-db {__version__}")
    parser.add_argument("--dsn", help="PostgreSQL connection string (default: $FIFO_DB_DSN, "
                                      "else the embedded server)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    importlib.import_module("fifo_db.databases").extend_db_command(sub)   # `db create NAME`
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        return _main(argv)
    except BrokenPipeError:
        # the reader went away (`fifo-db report ... | head -1`): no traceback, and no
        # second one when Python flushes stdout at exit; 141 is what a shell reports
        # for a command killed by SIGPIPE
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141


def _main(argv: list[str] | None) -> int:
    args = build_parser().parse_args(argv)
    dsn = args.dsn or os.environ.get("FIFO_DB_DSN")      # masked in every error line (masking.py)
    try:
        if getattr(args, "needs_db", True) is False:
            return args.func(args)
        with connect(args.dsn) as conn:
            return args.func(args, conn)
    except FifoError as exc:
        print(f"fifo-db: error: {scrub(str(exc), dsn)}", file=sys.stderr)
        return 1
    except psycopg.Error as exc:
        print(f"fifo-db: error: {from_db_error(exc, dsn)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("fifo-db: interrupted", file=sys.stderr)
        return 130
