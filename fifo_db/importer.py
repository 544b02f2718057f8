"""Import trades from CSV: `fifo-db import FILE.csv [--format generic|coinbase]`.

The file goes to the server as it is, through COPY, into a temporary
staging table (every column text, one identity number per record, so the
line number is known). Everything after that is set-based SQL in one
transaction. A file whose rows are all good and new is loaded by one
INSERT ... SELECT straight from the staging table (the fast path,
_fast_import); any other goes back to the savepoint before it and through the
precise path: map the format's columns to trade_records' columns, find every
bad row (missing field, unknown side, size <= 0, negative price or fee,
unparseable number or time, time without a zone, duplicate order_id in the
file, order_id already stored with different data), then one
INSERT ... SELECT of the rows not stored yet. Rows already stored
with the same data are skipped, so re-importing a file adds nothing. An import
large relative to trade_records drops fifo-db's own indexes around that INSERT
and builds them again, in the same transaction (the bulk path, _bulk_begin).

Any bad row and nothing is loaded (each bad row is reported on one line);
with --skip-invalid the good rows load and the bad ones go, with their
reasons, to a reject file.
"""

from __future__ import annotations

import csv
import os
import re
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from psycopg import sql

from fifo_db.csvsafe import SafeWriter
from fifo_db.errors import FifoError, from_db_error

# canonical field -> SQL expression over the staging table `s` (columns named as in the file)
_GENERIC = {
    "order_id": 'nullif(s."order_id", \'\')',
    "account": 'nullif(s."account", \'\')',
    "symbol": 'nullif(s."symbol", \'\')',
    "side": 'nullif(s."side", \'\')',
    "size": 'nullif(s."size", \'\')',
    "price": 'nullif(s."price", \'\')',
    "total_fees": 'nullif(s."total_fees", \'\')',
    "order_time": 'nullif(s."order_time", \'\')',
    "source": 'nullif(s."source", \'\')',
    # the fee's currency when it is not the quote currency (e.g. BNB); read by the asset view only
    "fee_currency": 'nullif(s."fee_currency", \'\')',
}

# Coinbase Advanced Trade fills report (the Coinbase Pro/Exchange fills format; see docs/import.md)
_COINBASE = {
    "order_id": 'nullif(s."trade id", \'\')',
    "account": 'nullif(s."portfolio", \'\')',
    "symbol": 'nullif(s."product", \'\')',
    "side": 'nullif(s."side", \'\')',
    "size": 'nullif(s."size", \'\')',
    "price": 'nullif(s."price", \'\')',
    "total_fees": 'nullif(s."fee", \'\')',
    "order_time": 'nullif(s."created at", \'\')',
    "source": "NULL",
    # the fee is in "price/fee/total unit", checked below to be the quote currency: NULL says so
    "fee_currency": "NULL",
    # the size is in the product's base currency, price and fee in its quote currency
    "extra": """CASE
        WHEN nullif(btrim(s."product"), '') IS NULL THEN NULL
        WHEN btrim(s."size unit") IS DISTINCT FROM split_part(btrim(s."product"), '-', 1)
            THEN format('size unit %L is not the base currency of %s', s."size unit", btrim(s."product"))
        WHEN btrim(s."price/fee/total unit") IS DISTINCT FROM split_part(btrim(s."product"), '-', 2)
            THEN format('price/fee/total unit %L is not the quote currency of %s',
                        s."price/fee/total unit", btrim(s."product"))
        END""",
}


@dataclass(frozen=True)
class Format:
    name: str
    required: tuple[str, ...]
    optional: tuple[str, ...]
    mapping: dict
    labels: dict  # canonical field -> the file's column name, for messages

    def columns(self) -> tuple[str, ...]:
        return self.required + self.optional


FORMATS = {
    "generic": Format(
        "generic",
        required=("order_id", "symbol", "side", "size", "price", "order_time"),
        optional=("account", "total_fees", "source", "fee_currency"),
        mapping=_GENERIC,
        labels={k: k for k in _GENERIC},
    ),
    "coinbase": Format(
        "coinbase",
        required=("portfolio", "trade id", "product", "side", "created at", "size", "size unit",
                  "price", "fee", "total", "price/fee/total unit"),
        optional=(),
        mapping=_COINBASE,
        labels={"order_id": "trade id", "account": "portfolio", "symbol": "product", "side": "side",
                "size": "size", "price": "price", "total_fees": "fee", "order_time": "created at",
                "source": "source", "fee_currency": "price/fee/total unit"},
    ),
}

# A number PostgreSQL's numeric accepts, without NaN/Infinity and absurd exponents. Every
# pattern is used with `~` only: without capture requests PostgreSQL matches with its fast
# DFA; regexp_match() with captures was 20x slower on a million rows.
_NUMBER = r"^[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]{1,3})?$"
# ISO 8601 date and time, fields in range (the day of the month is checked separately):
# YYYY-MM-DD[T ]HH:MM[:SS[.frac]] at fixed positions, then an optional zone
_CLOCK = (r"^[0-9]{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01])[Tt ](?:[01][0-9]|2[0-3]):[0-5][0-9]"
          r"(?::[0-5][0-9](?:\.[0-9]+)?)?")
_ZONE = r"\s*(?:[Zz]|[+-](?:0[0-9]|1[0-5])(?::?[0-5][0-9])?|UTC|GMT)$"
_TIME_WITH_ZONE = _CLOCK + _ZONE
# A space of any kind (the class of trade_records' constraints, migration 0011): [[:space:]] is
# ASCII only under the database's C ctype, so the Unicode spaces and invisible format characters
# are named one by one (PostgreSQL regex escapes). Inside a value they are allowed.
SPACE = (r"[[:space:]\u001c-\u001f\u0085\u00a0\u1680\u180e\u2000-\u200d\u2028\u2029\u202f\u205f"
         r"\u2060\u3000\ufeff]")
_LEADING_SPACE = "^" + SPACE
_TRAILING_SPACE = SPACE + "$"
_TIME_WITHOUT_ZONE = _CLOCK + "$"


@dataclass
class ImportResult:
    path: Path
    rows: int = 0
    inserted: int = 0
    present: int = 0
    rejected: list[tuple[int, str]] = field(default_factory=list)
    seconds: float = 0.0
    bulk: bool = False   # the indexes were dropped and rebuilt around the INSERT (_bulk_begin)


# Limits that keep an import's memory bounded whatever the file holds (a 300 MB field once cost
# 2.5 GB of client memory and ended in the server's 'invalid memory alloc'): a field of more
# than FIELD_MAX characters or a line of more than LINE_MAX bytes is refused, by checked_blocks(),
# before the block holding it is sent, with its line and field. Numbers: NUMBER_DIGITS digits at most before and
# after the decimal point (checked in SQL, _field_checks).
FIELD_MAX = 1000
LINE_MAX = 64 * 1024
NUMBER_DIGITS = 30
_CHUNK = 1 << 20
SHOW_MAX = 80   # a value echoed in a message: at most this many characters, then '... (N chars)'


def _shown(expr: str, quote: str = "quote_literal") -> str:
    """SQL that quotes the text `expr` for a message, cut to SHOW_MAX characters (a long value
    would otherwise be echoed whole, once per message); quote='' leaves it unquoted."""
    return ("CASE WHEN length(" + expr + ") > " + str(SHOW_MAX) + " THEN " + quote + "(left(" + expr + ", "
            + str(SHOW_MAX) + ")) || '... (' || length(" + expr + ") || ' chars)' ELSE " + quote + "(" + expr
            + ") END")


def _bounded_lines(f, limit: int = LINE_MAX):
    """(line number, bytes) of a binary file, each line read with at most `limit` + 1 bytes in memory;
    a longer line is yielded cut at limit + 1 bytes, without its newline (the caller refuses it)."""
    number = 0
    while True:
        line = f.readline(limit + 1)
        if not line:
            return
        number += 1
        if len(line) > limit and not line.endswith(b"\n"):
            yield number, line
            while line and not line.endswith(b"\n"):   # skip the rest of the long line, chunk by chunk
                line = f.readline(_CHUNK)
            continue
        yield number, line


def _field_at(header: list[str] | None, prefix: bytes) -> str:
    """The field a byte offset of a line falls in: the one the line's text before it has begun."""
    text = prefix.decode("utf-8", errors="replace")
    n = len(next(csv.reader([text]), [""])) if text else 1
    if header is None:
        return "the header"
    return f"field {header[n - 1]!r}" if n <= len(header) else f"field {n} (the header has {len(header)})"


def _line_problem(header: list[str] | None, line: bytes) -> str | None:
    """What makes one physical line unreadable (NUL byte, invalid UTF-8, too long), naming the field."""
    body = line[:-1] if line.endswith(b"\n") else line
    if len(body) > LINE_MAX:
        return (f"{_field_at(header, body[:LINE_MAX])} makes the line longer than {LINE_MAX:,} bytes "
                f"(a field may have at most {FIELD_MAX:,} characters)")
    nul = body.find(b"\x00")
    if nul >= 0:
        return f"{_field_at(header, body[:nul])} contains a NUL byte (0x00) at byte {nul + 1} of the line"
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as exc:
        bad = body[exc.start:exc.start + 1].hex().upper()
        return (f"{_field_at(header, body[:exc.start])} is not valid UTF-8 (byte 0x{bad} at byte {exc.start + 1} "
                f"of the line): save the file as UTF-8")
    if header is not None and len(body) > FIELD_MAX:
        fields = next(csv.reader([body.decode("utf-8")]), [])
        for name, value in zip(header, fields):
            if len(value) > FIELD_MAX:
                return f"field {name!r} has {len(value):,} characters (at most {FIELD_MAX:,})"
    return None


def scan(path: Path, header: list[str]) -> None:
    """Refuse, before anything is sent, a file with a NUL byte, invalid UTF-8, a field longer than
    FIELD_MAX characters or a line longer than LINE_MAX bytes: one line naming line and field."""
    for _ in checked_blocks(path, header):
        pass


def checked_blocks(path: Path, header: list[str]):
    """The file's bytes, as blocks of whole lines, each yielded only once it is known to hold no NUL
    byte, invalid UTF-8, field longer than FIELD_MAX characters or line longer than LINE_MAX bytes;
    the first that does raises FifoError naming line and field (scan's checks). Reads the file a
    chunk at a time (memory stays under LINE_MAX + 2 chunks); the common case, a chunk of short,
    valid lines, costs a few C-level passes over the chunk. All the blocks together are the file."""
    try:
        with open(path, "rb") as f:
            carry = b""
            first = 1   # the line number of the chunk's first line
            while chunk := f.read(_CHUNK):
                data = carry + chunk
                cut = data.rfind(b"\n") + 1
                block, carry = data[:cut], data[cut:]
                if len(carry) > LINE_MAX:
                    block, carry = data, b""   # a line without end in sight: refused below
                suspect = b"\x00" in block
                if not suspect:
                    try:
                        block.decode("utf-8")
                    except UnicodeDecodeError:
                        suspect = True
                if suspect or max(map(len, block.split(b"\n"))) > FIELD_MAX:
                    _scan_lines(path, header, block, first)
                first += block.count(b"\n")
                yield block
            if carry:
                _scan_lines(path, header, carry, first)
                yield carry
    except OSError as exc:
        raise FifoError(f"{path}: cannot read: {exc.strerror or exc}") from None


def _scan_lines(path: Path, header: list[str], block: bytes, first: int) -> None:
    for offset, line in enumerate(block.split(b"\n")):
        number = first + offset
        if number == 1 and line.startswith(b"\xef\xbb\xbf"):
            line = line[3:]   # a UTF-8 byte order mark before the header
        problem = _line_problem(None if number == 1 else header, line)
        if problem:
            raise FifoError(f"{path}: line {number}: {problem}; nothing was imported")


def read_header(path: Path) -> list[str]:
    """The header's column names, read with bounded memory (a header line longer than LINE_MAX
    bytes, or not UTF-8, is refused naming line 1)."""
    try:
        with open(path, "rb") as f:
            lines = _bounded_lines(f)
            number, line = next(lines, (1, b""))
            problem = _line_problem(None, line[3:] if line.startswith(b"\xef\xbb\xbf") else line)
            if problem:
                raise FifoError(f"{path}: line 1: {problem}")
            text = line.decode("utf-8-sig")
            header = next(csv.reader([text]), None)
    except FileNotFoundError:
        raise FifoError(f"{path}: no such file") from None
    except OSError as exc:
        raise FifoError(f"{path}: cannot read: {exc}") from None
    if not header:
        raise FifoError(f"{path}: empty file (expected a header line)")
    return [h.strip().lower() for h in header]


def check_header(header: list[str], fmt: Format, path: Path) -> None:
    dupes = sorted({h for h in header if header.count(h) > 1})
    if dupes:
        raise FifoError(f"{path}: line 1: column(s) {', '.join(dupes)} appear more than once")
    unknown = [h for h in header if h not in fmt.columns()]
    missing = [c for c in fmt.required if c not in header]
    if unknown or missing:
        parts = []
        if missing:
            parts.append(f"missing column(s) {', '.join(missing)}")
        if unknown:
            parts.append(f"unknown column(s) {', '.join(unknown)}")
        raise FifoError(f"{path}: line 1: {'; '.join(parts)} for --format {fmt.name} "
                        f"(expected {', '.join(fmt.required)}"
                        + (f"; optional {', '.join(fmt.optional)}" if fmt.optional else "") + ")")


_PREAMBLE_LINES = 20   # how far to look for a header below preamble lines (Coinbase's transaction history)


def _first_lines(path: Path, n: int = _PREAMBLE_LINES) -> list[str]:
    """The first n lines, each read with bounded memory (read_header and scan say what is wrong)."""
    try:
        with open(path, "rb") as f:
            lines = [line for _, (_, line) in zip(range(n), _bounded_lines(f))]
        if lines and lines[0].startswith(b"\xef\xbb\xbf"):
            lines[0] = lines[0][3:]
        return [line.decode("utf-8") for line in lines]
    except (OSError, UnicodeDecodeError):
        return []


def describe_foreign(path: Path) -> str | None:
    """A file fifo-db cannot read, said as what it looks like and what to do; None if it is not one of those."""
    lines = _first_lines(path)
    if not lines:
        return None
    for n, line in enumerate(lines, start=1):
        low = line.lower()
        if "transaction type" in low and "quantity transacted" in low:
            preamble = f" below {n - 1} preamble line(s)" if n > 1 else ""
            return (f"{path}: this looks like Coinbase's transaction history (header 'Timestamp, Transaction Type, "
                    f"Asset, Quantity Transacted, ...' on line {n}{preamble}), not a fills report: it has no order "
                    f"ids and mixes sends, receives and conversions with trades. Download the fills report "
                    f"(Coinbase Advanced Trade: Orders, Fills, Download CSV) and import that, or write the trades "
                    f"as the generic columns order_id,symbol,side,size,price,total_fees,order_time")
    first = lines[0]
    if first.count(";") >= 3 and first.count(",") < first.count(";"):
        return (f"{path}: line 1 is separated by semicolons, not commas (a spreadsheet saved with a ';' "
                f"delimiter): fifo-db reads comma-separated CSV with '.' as the decimal point; save it again as "
                f"CSV with ',' as the field delimiter (LibreOffice: Save As, Text CSV, Field delimiter ',')")
    if first.count("\t") >= 3 and "," not in first:
        return (f"{path}: line 1 is separated by tabs, not commas: fifo-db reads comma-separated CSV; "
                f"save it again as CSV with ',' as the field delimiter")
    return None


def choose_format(path: Path, requested: str | None) -> tuple[str, bool]:
    """(format name, detected?): --format when given, else the format whose header the file has.

    A file in a shape fifo-db cannot read (Coinbase's transaction history, semicolon- or
    tab-separated) is refused with a line saying what it looks like and what to do.
    """
    path = Path(path)
    foreign = describe_foreign(path)
    if foreign:
        raise FifoError(foreign)
    header = read_header(path)
    if requested:
        check_header(header, FORMATS[requested], path)
        return requested, False
    for name in ("coinbase", "generic"):
        fmt = FORMATS[name]
        if all(c in header for c in fmt.required) and all(h in fmt.columns() for h in header):
            return name, True
    coinbase = FORMATS["coinbase"]
    if sum(c in header for c in coinbase.required) > len(coinbase.required) // 2:
        check_header(header, coinbase, path)   # close to Coinbase fills: say which columns differ
    try:
        check_header(header, FORMATS["generic"], path)
    except FifoError as exc:
        raise FifoError(f"{exc}; or the Coinbase fills header ({', '.join(coinbase.required)})") from None
    return "generic", True


def _field_checks(fmt: Format, present: list[str]) -> sql.Composable:
    """One expression per row: its problems joined by '; ' (NULL parts drop out of concat_ws)."""
    def lab(name):
        return sql.Literal(fmt.labels[name])

    def missing(name):
        return sql.SQL("WHEN r.{f} IS NULL THEN {lab} || ' is missing'").format(f=sql.Identifier(name), lab=lab(name))

    checks = [sql.SQL("CASE {m} END").format(m=missing(name)) for name in ("order_id", "symbol")]
    checks.append(sql.SQL(
        "CASE {m} WHEN lower(r.side) NOT IN ('buy', 'sell') "
        "THEN format('%s %s is not buy or sell', {lab}, " + _shown("r.side") + ") END").format(m=missing("side"), lab=lab("side")))
    for name, positive in (("size", True), ("price", False), ("total_fees", False)):
        if name == "total_fees" and fmt.name == "generic" and "total_fees" not in present:
            continue  # an absent optional column means no fees
        checks.append(sql.SQL(
            "CASE {m} WHEN r.{f} !~ {num} THEN format('%s %s is not a number', {lab}, " + _shown("r.{f}") + ") "
            "WHEN abs(r.{f}::numeric) >= {big} THEN format('%s %s has more than {digits} digits before the "
            "decimal point', {lab}, " + _shown("r.{f}") + ") "
            "WHEN scale(r.{f}::numeric) > {digits} THEN format('%s %s has more than {digits} digits after the "
            "decimal point', {lab}, " + _shown("r.{f}") + ") "
            "WHEN r.{f}::numeric {cond} THEN format('%s %s {text}', {lab}, " + _shown("r.{f}") + ") END").format(
                big=sql.SQL(f"1e{NUMBER_DIGITS}"), digits=sql.SQL(str(NUMBER_DIGITS)),
                m=missing(name), f=sql.Identifier(name), num=sql.Literal(_NUMBER), lab=lab(name),
                cond=sql.SQL("<= 0" if positive else "< 0"),
                text=sql.SQL("must be positive" if positive else "must not be negative")))
    checks.append(sql.SQL("""CASE {m}
            WHEN r.order_time ~ {without_zone}
            THEN format('%s %s has no time zone (add Z or an offset such as +00:00)', {lab}, """ + _shown("r.order_time") + """)
            WHEN r.order_time !~ {with_zone}
              OR substr(r.order_time, 1, 4) = '0000'
              OR substr(r.order_time, 9, 2)::int > extract(day from
                     make_date(substr(r.order_time, 1, 4)::int, substr(r.order_time, 6, 2)::int, 1)
                     + interval '1 month - 1 day')
            THEN format('%s %s is not a valid ISO 8601 time: use 2025-12-03T23:40:00Z or 2025-12-03 23:40:00+01:00 '
                        '(year first: 03/12/2025 is refused, it can be March 12 or December 3)', {lab}, """ + _shown("r.order_time") + """)
        END""").format(m=missing("order_time"), lab=lab("order_time"),
                       without_zone=sql.Literal(_TIME_WITHOUT_ZONE), with_zone=sql.Literal(_TIME_WITH_ZONE)))
    checks.append(sql.SQL("r.extra"))
    return sql.SQL("nullif(concat_ws('; ', {}), '')").format(sql.SQL(",\n            ").join(checks))


def _mapped_select(fmt: Format, present: list[str], source: str) -> sql.Composable:
    exprs = []
    for name in ("order_id", "account", "symbol", "side", "size", "price", "total_fees", "order_time", "source",
                 "fee_currency"):
        if fmt.name == "generic" and name not in present:
            expr = "NULL"
        else:
            expr = fmt.mapping[name]
        exprs.append(sql.SQL("{} AS {}").format(sql.SQL(expr), sql.Identifier(name)))
    exprs.append(sql.SQL("{} AS extra").format(sql.SQL(fmt.mapping.get("extra", "NULL::text"))))
    return sql.SQL(
        "SELECT s.line, {exprs}, {src}::text AS default_source FROM pg_temp.fifo_import_stage s").format(
            exprs=sql.SQL(", ").join(exprs), src=sql.Literal(source))


def import_csv(conn: psycopg.Connection, path: Path, fmt_name: str = "generic",
               skip_invalid: bool = False) -> ImportResult:
    """Load one CSV file; raises FifoError (nothing loaded) on a bad row unless skip_invalid."""
    fmt = FORMATS[fmt_name]
    path = Path(path)
    header = read_header(path)
    check_header(header, fmt, path)
    result = ImportResult(path)
    started = time.perf_counter()
    try:
        _check_target(conn)
        _session_memory(conn)
        with conn.transaction(), conn.cursor() as cur:
            cur.execute("SET LOCAL work_mem = '256MB'")
            staged = _stage(cur, path, header)
            fast = _fast_import(conn, cur, fmt, header, f"{fmt.name}:{path.name}", staged)
            if fast is not None:
                result.rows = staged
                result.inserted, rebuild = fast
                result.bulk = bool(rebuild)
                result.seconds = time.perf_counter() - started
                return result
            _validate(conn, cur, fmt, header, f"{fmt.name}:{path.name}")
            cur.execute("SELECT line, message FROM pg_temp.fifo_import_errors ORDER BY line")
            result.rejected = cur.fetchall()
            cur.execute("SELECT count(*) FROM pg_temp.fifo_import_stage")
            result.rows = cur.fetchone()[0]
            if result.rejected and not skip_invalid:
                raise _Invalid(result)
            cur.execute("SELECT count(*) FROM pg_temp.fifo_import_present p WHERE p.message IS NULL")
            to_insert = result.rows - len(result.rejected) - cur.fetchone()[0]
            rebuild = _bulk_begin(cur, to_insert)
            cur.execute(_INSERT)
            result.inserted = cur.rowcount
            _bulk_end(cur, rebuild)
            result.bulk = bool(rebuild)
            result.present = result.rows - len(result.rejected) - result.inserted
            if skip_invalid and result.rejected:
                cur.execute("SELECT e.line, e.message, s.* FROM pg_temp.fifo_import_errors e "
                            "JOIN pg_temp.fifo_import_stage s USING (line) ORDER BY e.line")
                result.reject_rows = cur.fetchall()  # type: ignore[attr-defined]
    except _Invalid as bad:
        result.seconds = time.perf_counter() - started
        raise InvalidRows(bad.result) from None
    except psycopg.errors.BadCopyFileFormat as exc:
        # a record with the wrong number of fields: PostgreSQL names its line in the context
        where = re.search(r"line (\d+)", exc.diag.context or "")
        line = f"line {where.group(1)}: " if where else ""
        raise FifoError(f"{path}: {line}{exc.diag.message_primary} (the header has {len(header)} fields); "
                        f"nothing was imported") from None
    except psycopg.Error as exc:
        raise from_db_error(exc) from None
    result.seconds = time.perf_counter() - started
    return result


# The bulk path (issue 16). An import that brings at least BULK_MIN_ROWS rows and at least as
# many rows as trade_records holds drops fifo-db's own indexes on trade_records before its INSERT
# and builds them again after it, in the import's one transaction: 1M rows of interleaved pools
# land in the matching index as random page splits, and every index costs its share of each row's
# insert; a sorted build is several times cheaper. Only these indexes (and the two constraints
# that own two of them), by name, and only while each has exactly the definition migration 0001
# gave it (pg_indexes.indexdef and pg_get_constraintdef of a fresh install:
# tests/test_import_bulk.py compares them), in the default tablespace, not marked for CLUSTER
# or as replica identity, and no foreign key refers to it: an index the user made or changed is
# never touched. The unique constraint is built again before the import commits, so a duplicate
# order_id still fails the import (the importer finds them first and names row and value). A
# failure or cancel rolls the drop back with the rest: the table and its indexes are as before.
BULK_MIN_ROWS = 100_000
OWN_INDEXES = {
    # migration 0001, as pg_indexes.indexdef shows them
    "order_id_is_unique":
        "CREATE UNIQUE INDEX order_id_is_unique ON public.trade_records USING btree (order_id)",
    "trade_records_pkey":
        "CREATE UNIQUE INDEX trade_records_pkey ON public.trade_records USING btree (id)",
    "trade_records_pool_order_idx":
        "CREATE INDEX trade_records_pool_order_idx ON public.trade_records USING btree "
        "(symbol, account, order_time, side, order_id COLLATE \"C\") INCLUDE (size, price, total_fees)",
    "trade_records_recorded_at_idx":
        "CREATE INDEX trade_records_recorded_at_idx ON public.trade_records USING btree (recorded_at)",
}
# the constraints that own two of them (pg_get_constraintdef)
OWN_CONSTRAINTS = {"order_id_is_unique": "UNIQUE (order_id)", "trade_records_pkey": "PRIMARY KEY (id)"}
BULK_MAINTENANCE_WORK_MEM = "256MB"


def _bulk_begin(cur, to_insert: int) -> list[str]:
    """Take the bulk path if the import is large relative to trade_records: lock the table (a wait
    bounded by the setting lock_timeout, naming the holders when it runs out) and drop fifo-db's
    own indexes; returns their names, for _bulk_end. [] (nothing done): the ordinary path."""
    if to_insert < max(BULK_MIN_ROWS, 1):
        return []
    cur.execute("""
        SELECT pg_catalog.pg_has_role(c.relowner, 'USAGE') AND c.relkind = 'r'
               AND pg_catalog.has_function_privilege('fifo._bound_waits()', 'EXECUTE')
               AND pg_catalog.has_function_privilege('fifo._setting(text)', 'EXECUTE')
               AND pg_catalog.has_function_privilege('fifo._describe_sessions(integer[])', 'EXECUTE')
               AND (SELECT count(*) FROM (SELECT FROM public.trade_records LIMIT %(n)s) x) < %(n)s
        FROM pg_catalog.pg_class c WHERE c.oid = 'public.trade_records'::regclass""", {"n": to_insert})
    if not cur.fetchone()[0]:
        return []
    cur.execute("SELECT fifo._bound_waits(), fifo._setting('lock_timeout')")
    timeout = cur.fetchone()[1]
    try:
        with cur.connection.transaction():
            cur.execute("LOCK TABLE public.trade_records IN ACCESS EXCLUSIVE MODE")
    except psycopg.errors.LockNotAvailable:
        cur.execute("""
            SELECT fifo._describe_sessions(array_agg(DISTINCT l.pid))
            FROM pg_catalog.pg_locks l
            WHERE l.locktype = 'relation' AND l.relation = 'public.trade_records'::regclass
              AND l.granted AND l.pid <> pg_catalog.pg_backend_pid()""")
        holders = cur.fetchone()[0] or "a session that has finished since"
        raise FifoError(f"a large import rebuilds trade_records' indexes and needs the table to itself, but "
                        f"{holders} held a lock on it for more than lock_timeout {timeout}: nothing was imported; "
                        f"try again (the wait is the fifo-db setting lock_timeout)") from None
    # with the table locked, nothing of this can change before the import commits
    cur.execute("""
        SELECT c.relname, pg_catalog.pg_get_indexdef(c.oid),
               (SELECT pg_catalog.pg_get_constraintdef(k.oid) FROM pg_catalog.pg_constraint k
                WHERE k.conindid = c.oid AND k.conrelid = i.indrelid AND k.contype IN ('p', 'u'))
        FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class c ON c.oid = i.indexrelid
        WHERE i.indrelid = 'public.trade_records'::regclass AND c.relname = ANY (%s)
          AND c.reltablespace = 0 AND NOT i.indisclustered AND NOT i.indisreplident AND i.indisvalid
          AND NOT EXISTS (SELECT FROM pg_catalog.pg_constraint f WHERE f.conindid = c.oid AND f.contype = 'f')
          AND NOT EXISTS (SELECT FROM pg_catalog.pg_constraint x
                          WHERE x.conindid = c.oid AND x.contype NOT IN ('p', 'u', 'f'))
        ORDER BY c.relname""", (list(OWN_INDEXES),))
    rebuild = [name for name, indexdef, condef in cur.fetchall()
               if indexdef == OWN_INDEXES[name] and condef == OWN_CONSTRAINTS.get(name)]
    for name in rebuild:
        if name in OWN_CONSTRAINTS:
            cur.execute(sql.SQL("ALTER TABLE public.trade_records DROP CONSTRAINT {}").format(sql.Identifier(name)))
        else:
            cur.execute(sql.SQL("DROP INDEX public.{}").format(sql.Identifier(name)))
    return rebuild


def _bulk_end(cur, rebuild: list[str]) -> None:
    """Build again the indexes _bulk_begin dropped, exactly as their migration defines them."""
    if not rebuild:
        return
    cur.execute("SELECT pg_catalog.set_config('maintenance_work_mem', %s, true)", (BULK_MAINTENANCE_WORK_MEM,))
    for name in rebuild:
        if name in OWN_CONSTRAINTS:
            cur.execute(sql.SQL("ALTER TABLE public.trade_records ADD CONSTRAINT {} " + OWN_CONSTRAINTS[name])
                        .format(sql.Identifier(name)))
        else:
            cur.execute(OWN_INDEXES[name])


_TARGET_COLUMNS = ("order_id", "account", "symbol", "side", "size", "price", "total_fees", "order_time", "source",
                   "fee_currency")


def _check_target(conn: psycopg.Connection) -> None:
    """public.trade_records has the columns the import writes; an adopted bot's table has others."""
    missing = conn.execute(
        "SELECT array_agg(c ORDER BY o) FROM unnest(%s::text[]) WITH ORDINALITY AS x(c, o) "
        "WHERE to_regclass('public.trade_records') IS NOT NULL AND NOT EXISTS ("
        " SELECT 1 FROM pg_catalog.pg_attribute a WHERE a.attrelid = 'public.trade_records'::regclass"
        " AND a.attname = x.c AND a.attnum > 0 AND NOT a.attisdropped)", (list(_TARGET_COLUMNS),)).fetchone()[0]
    if missing:
        raise FifoError(f"public.trade_records has no column {', '.join(missing)}: it is not fifo-db's own trades "
                        f"table (a bot's table, adopted?), and `fifo-db import` writes fifo-db's columns; nothing "
                        f"was imported. Let the bot write its trades (fifo-db picks them up), or import into a "
                        f"fifo-db database (`fifo-db db create NAME`, then `fifo-db install`)")


def _session_memory(conn: psycopg.Connection) -> None:
    """Room for the staging tables in memory; only possible before this session's first temp table."""
    try:
        with conn.transaction():
            conn.execute("SET temp_buffers = '512MB'")
    except psycopg.errors.InvalidParameterValue:
        pass


class _Invalid(Exception):
    def __init__(self, result):
        self.result = result


class InvalidRows(FifoError):
    """Bad rows were found and nothing was loaded; .result.rejected lists them."""

    def __init__(self, result: ImportResult):
        self.result = result
        n = len(result.rejected)
        super().__init__(f"{result.path}: {n:,} invalid row{'s' if n != 1 else ''}; nothing was imported "
                         f"(fix them, or use --skip-invalid to load the rest)")


def _stage(cur, path: Path, header: list[str]) -> int:
    """COPY the file, as it is, into the text staging table; returns the number of records. The line
    numbers come from the table's own sequence, used by this session alone: cached, they are still
    consecutive, at half the cost of a nextval (0.1 s of CPU per million records instead of 0.23 s)."""
    cols = sql.SQL(", ").join(sql.SQL("{} text").format(sql.Identifier(h)) for h in header)
    cur.execute(sql.SQL("CREATE TEMP TABLE fifo_import_stage (line bigint GENERATED ALWAYS AS IDENTITY "
                        "(START WITH 2 CACHE 100000), {}) ON COMMIT DROP").format(cols))
    copy_sql = sql.SQL("COPY pg_temp.fifo_import_stage ({}) FROM STDIN WITH (FORMAT csv, HEADER true)").format(
        sql.SQL(", ").join(sql.Identifier(h) for h in header))
    # the file is checked (checked_blocks) while it is sent, a block ahead of the server: a block is
    # sent only once it is known to be readable, and the checks cost no time of their own (the
    # server parses one block while the next is read). A block that is not readable ends the COPY
    # (whatever the server said of the blocks before it) and the import with scan's message.
    blocks = checked_blocks(path, header)
    problem = None
    try:
        with cur.copy(copy_sql) as copy:
            while True:
                try:
                    block = next(blocks, None)
                except FifoError as exc:
                    problem = exc
                    break
                if block is None:
                    break
                copy.write(block)
    except psycopg.Error:
        if problem is None:
            raise
    finally:
        blocks.close()   # the file, at once, also when the COPY fails or is interrupted
    if problem is not None:
        raise problem
    return cur.rowcount


# Typed rows. The optimistic pass casts every row at once (PostgreSQL's own parsers are fast)
# and flags, cheaply, the rows that are not acceptable (missing field, unknown side, size <= 0,
# negative or infinite amount, not an ISO date-time, no zone, a time outside 1970..2200, an id,
# symbol or account with surrounding whitespace: trade_records' constraints, migration 0004).
# Only those rows, or every row when a cast fails, go through the precise checks of
# _field_checks and _stored_rules that name field and value.
_CAST = """r.line, r.order_id, coalesce(r.account, 'default') AS account, r.symbol,
           lower(r.side) AS side, r.size::numeric AS size, r.price::numeric AS price,
           coalesce(r.total_fees, '0')::numeric AS total_fees,
           r.order_time::timestamptz AS order_time,
           coalesce(r.source, r.default_source) AS source, r.fee_currency"""
# at most NUMBER_DIGITS (30) digits before and after the decimal point (negatives: the sign checks refuse them)
_DIGITS = """t.size < 1e30 AND t.price < 1e30 AND t.total_fees < 1e30
           AND scale(t.size) <= 30 AND scale(t.price) <= 30 AND scale(t.total_fees) <= 30"""
# an ISO 8601 date-time (the cast checked the fields) with a zone (LIKE is cheap)
_ISO_WITH_ZONE = """(t.time_text LIKE '____-__-__T__:__%' OR t.time_text LIKE '____-__-__ __:__%'
                OR t.time_text LIKE '____-__-__t__:__%')
           AND (t.time_text LIKE '%Z' OR t.time_text LIKE '%+__:__' OR t.time_text LIKE '%-__:__'
                OR t.time_text LIKE '%z' OR t.time_text LIKE '%+__' OR t.time_text LIKE '%-__'
                OR t.time_text LIKE '%+____' OR t.time_text LIKE '%-____'
                OR upper(right(t.time_text, 3)) IN ('UTC', 'GMT'))"""
# The numbers as _NUMBER writes them: numeric's cast also takes surrounding whitespace and, from
# PostgreSQL 16, underscores and 0x/0o/0b prefixes, which the precise checks refuse ("is not a
# number"). The three fields in one text (num_text: size,price[,total_fees]): digits, points, signs
# and the commas between them only, a cheap test that with a successful cast means _NUMBER;
# anything else (an exponent) gets _NUMBER itself. 0.1-0.2 s per million rows.
_NUMBER_BODY = _NUMBER[1:-1]
_NUMBERS = ("(t.num_text !~ '[^0-9.,+-]' OR t.num_text ~ '^" + _NUMBER_BODY + "(?:," + _NUMBER_BODY
            + "){1,2}$')")
# The fast path's form of _NUMBERS (issue 16, fourth session): a number that reads back as it was written
# (numeric's output of the cast equal to the field: digits, a point, a minus sign, or NaN and Infinity,
# which the finiteness checks refuse) is written as _NUMBER requires; only the others go through the
# concatenation and the regexes of _NUMBERS, so the same rows pass. Over 1M rows of 8-decimal numbers
# the three comparisons cost about 0.2 s of CPU, the concatenation and the regex 0.6 s and more.
_NUMBERS_FAST = ("((t.size::text = t.size_text AND t.price::text = t.price_text"
                 " AND t.total_fees::text = coalesce(t.fees_text, '0'))\n            OR "
                 + _NUMBERS.replace("t.num_text", "concat_ws(',', t.size_text, t.price_text, t.fees_text)") + ")")
_ACCEPTABLE = """coalesce(
           t.order_id IS NOT NULL AND t.symbol IS NOT NULL AND t.side IN ('buy', 'sell') AND t.extra IS NULL
           AND t.size > 0 AND t.size < 'Infinity' AND t.price >= 0 AND t.price < 'Infinity'
           AND t.total_fees >= 0 AND t.total_fees < 'Infinity'
           AND (t.fee_currency IS NULL OR (length(t.fee_currency) <= 16 AND t.fee_currency !~ '[^A-Za-z0-9]'))
           AND """ + _DIGITS + """
           AND """ + _NUMBERS.replace("{", "{{").replace("}", "}}") + """
           AND t.order_time >= '1970-01-01 00:00+00' AND t.order_time < '2200-01-01 00:00+00'
           -- no surrounding whitespace: a printable ASCII first and last character says so
           -- without a regex (0.4 s per column per million rows); others get the regex
           -- (any space: ASCII and Unicode, SPACE)
           AND (ascii(t.order_id) BETWEEN 33 AND 126 OR t.order_id !~ {leading})
           AND (ascii(right(t.order_id, 1)) BETWEEN 33 AND 126 OR t.order_id !~ {trailing})
           AND (ascii(t.symbol) BETWEEN 33 AND 126 OR t.symbol !~ {leading})
           AND (ascii(right(t.symbol, 1)) BETWEEN 33 AND 126 OR t.symbol !~ {trailing})
           AND (ascii(t.account) BETWEEN 33 AND 126 OR t.account !~ {leading})
           AND (ascii(right(t.account, 1)) BETWEEN 33 AND 126 OR t.account !~ {trailing})
           AND """ + _ISO_WITH_ZONE + """,
           false)"""


def _stored_rules(fmt: Format) -> sql.Composable:
    """What trade_records also refuses (migration 0004), per row, naming field and value: an
    order_id, symbol or account with leading or trailing whitespace, a time outside 1970..2200
    (as an instant: an offset can move it across). The time is cast only once it is known to be
    a valid ISO date-time with a zone; _field_checks reports the others."""
    def lab(name):
        return sql.Literal(fmt.labels[name])

    # the space is named by its code point: U+00A0 or U+FEFF look like nothing in a message
    checks = [sql.SQL("CASE WHEN r.{f} ~ {leading} OR r.{f} ~ {trailing} "
                      "THEN format('%s %s has leading or trailing whitespace (U+%s)', {lab}, " + _shown("r.{f}") + ", "
                      "upper(lpad(to_hex(ascii(CASE WHEN r.{f} ~ {leading} THEN left(r.{f}, 1) "
                      "ELSE right(r.{f}, 1) END)), 4, '0'))) END").format(
                          f=sql.Identifier(name), lab=lab(name), leading=sql.Literal(_LEADING_SPACE),
                          trailing=sql.Literal(_TRAILING_SPACE))
              for name in ("order_id", "symbol", "account")]
    checks.append(sql.SQL("CASE WHEN r.fee_currency !~ {code} "
                          "THEN format('%s %s is not a currency code (1 to 16 letters and digits)', {lab}, "
                          + _shown("r.fee_currency") + ") END").format(
                              code=sql.Literal("^[A-Za-z0-9]{1,16}$"), lab=lab("fee_currency")))
    checks.append(sql.SQL("""CASE
            WHEN r.order_time IS NULL OR r.order_time !~ {with_zone} OR substr(r.order_time, 1, 4) = '0000'
              OR substr(r.order_time, 9, 2)::int > extract(day from
                     make_date(substr(r.order_time, 1, 4)::int, substr(r.order_time, 6, 2)::int, 1)
                     + interval '1 month - 1 day')
            THEN NULL
            WHEN r.order_time::timestamptz < '1970-01-01 00:00+00' OR r.order_time::timestamptz >= '2200-01-01 00:00+00'
            THEN format('%s %L is outside 1970-01-01..2200-01-01 (UTC)', {lab}, r.order_time)
        END""").format(with_zone=sql.Literal(_TIME_WITH_ZONE), lab=lab("order_time")))
    return sql.SQL(", ").join(checks)


def _validate(conn, cur, fmt: Format, header: list[str], source: str) -> None:
    labels = fmt.labels
    mapped = _mapped_select(fmt, header, source)
    try:
        with conn.transaction():
            cur.execute(sql.SQL("""
                CREATE TEMP TABLE fifo_import_typed ON COMMIT DROP AS
                SELECT t.line, t.order_id, t.account, t.symbol, t.side, t.size, t.price, t.total_fees,
                       t.order_time, t.source, t.fee_currency, {acceptable} AS ok
                FROM (SELECT {cast}, r.order_time AS time_text, r.extra,
                             concat_ws(',', r.size, r.price, r.total_fees) AS num_text
                      FROM ({mapped}) r OFFSET 0) t""").format(
                    acceptable=sql.SQL(_ACCEPTABLE).format(leading=sql.Literal(_LEADING_SPACE),
                                                           trailing=sql.Literal(_TRAILING_SPACE)),
                    cast=sql.SQL(_CAST), mapped=mapped))
        recheck = sql.SQL("WHERE r.line IN (SELECT t.line FROM pg_temp.fifo_import_typed t WHERE NOT t.ok)")
    except psycopg.errors.DataError:
        recheck = None
    cur.execute(sql.SQL("""
        CREATE TEMP TABLE fifo_import_rows ON COMMIT DROP AS
        SELECT r.*, {problems} AS problems
        FROM ({mapped}) r {where}""").format(
            mapped=mapped, where=recheck or sql.SQL(""),
            problems=sql.SQL("nullif(concat_ws('; ', {}, {}), '')").format(_field_checks(fmt, header),
                                                                          _stored_rules(fmt))))
    if recheck is None:
        # a value did not even cast: the precise checks ran on every row; cast the rest
        cur.execute(sql.SQL("""
            CREATE TEMP TABLE fifo_import_typed ON COMMIT DROP AS
            SELECT {cast}, r.problems IS NULL AS ok
            FROM pg_temp.fifo_import_rows r WHERE r.problems IS NULL
            UNION ALL
            SELECT r.line, r.order_id, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, false
            FROM pg_temp.fifo_import_rows r WHERE r.problems IS NOT NULL""").format(cast=sql.SQL(_CAST)))
    # each rejected row's problems, and a second record with the same order_id in this file
    cur.execute(sql.SQL("""
        CREATE TEMP TABLE fifo_import_errors ON COMMIT DROP AS
        WITH dup AS (
            SELECT t.order_id, min(t.line) AS first_line
            FROM pg_temp.fifo_import_typed t
            WHERE t.order_id IS NOT NULL
            GROUP BY t.order_id
            HAVING count(*) > 1
        ),
        bad AS (
            SELECT t.line, t.order_id, NOT t.ok AS rejected, d.first_line
            FROM pg_temp.fifo_import_typed t
            LEFT JOIN dup d ON d.order_id = t.order_id
            WHERE NOT t.ok OR d.first_line < t.line
        )
        SELECT b.line,
               concat_ws('; ',
                         CASE WHEN b.rejected THEN coalesce(r.problems, 'not accepted') END,
                         CASE WHEN b.first_line < b.line
                              THEN format('%s %s is also on line %s', {id_label}, """ + _shown("b.order_id") + """, b.first_line) END)
                   AS message
        FROM bad b
        LEFT JOIN pg_temp.fifo_import_rows r ON r.line = b.line""").format(id_label=sql.Literal(labels["order_id"])))
    cur.execute("ANALYZE pg_temp.fifo_import_errors")
    # the same order_id already stored with different data: name both values
    diffs = sql.SQL(", ").join(
        sql.SQL("CASE WHEN t.{f} IS DISTINCT FROM x.{f} THEN format('%s %s (this file: %s)', {lab}, "
                + _shown("x.{f}::text", quote="") + ", " + _shown("t.{f}::text", quote="") + ") END")
        .format(f=sql.Identifier(f), lab=sql.Literal(labels[f]))
        for f in ("account", "symbol", "side", "size", "price", "total_fees", "order_time", "fee_currency"))
    # the rows whose order_id is stored already: skipped by _INSERT (found here, in a statement of
    # their own, not by the INSERT probing trade_records while it grows: planned on an empty
    # table, that probe was a sequential scan per row, quadratic)
    cur.execute(sql.SQL("""
        CREATE TEMP TABLE fifo_import_present ON COMMIT DROP AS
        SELECT t.line,
               CASE WHEN (x.account, x.symbol, x.side, x.size, x.price, x.total_fees, x.order_time, x.fee_currency)
                         IS DISTINCT FROM (t.account, t.symbol, t.side, t.size, t.price, t.total_fees, t.order_time,
                                           t.fee_currency)
                    THEN format('%s %s is already stored with different data: %s',
                                {id_label}, """ + _shown("t.order_id") + """, concat_ws(', ', {diffs})) END AS message
        FROM pg_temp.fifo_import_typed t
        JOIN public.trade_records x ON x.order_id = t.order_id
        WHERE t.ok
          AND NOT EXISTS (SELECT 1 FROM pg_temp.fifo_import_errors e WHERE e.line = t.line)
        """).format(id_label=sql.Literal(labels["order_id"]), diffs=diffs))
    cur.execute("INSERT INTO pg_temp.fifo_import_errors (line, message) "
                "SELECT p.line, p.message FROM pg_temp.fifo_import_present p WHERE p.message IS NOT NULL")
    cur.execute("ANALYZE pg_temp.fifo_import_present")


# rows already stored with the same data are skipped (idempotent re-import); a concurrent
# writer inserting one of these order_ids meanwhile makes the import fail whole, never half
# (the unique index refuses the second). In the file's order.
_INSERT = """
    INSERT INTO public.trade_records (order_id, account, symbol, side, size, price, total_fees, order_time, source,
                                      fee_currency)
    SELECT t.order_id, t.account, t.symbol, t.side, t.size, t.price, t.total_fees, t.order_time, t.source,
           t.fee_currency
    FROM pg_temp.fifo_import_typed t
    WHERE t.ok
      AND NOT EXISTS (SELECT 1 FROM pg_temp.fifo_import_errors e WHERE e.line = t.line)
      AND NOT EXISTS (SELECT 1 FROM pg_temp.fifo_import_present p WHERE p.line = t.line)"""


# The fast path (issue 16): a file in which every row is good, none is stored yet and no order_id
# comes twice (the common case: a fresh export) is loaded by ONE set-based statement, straight from
# the text staging table: the casts (each computed once: OFFSET 0 keeps the planner from pulling
# the subquery up and evaluating a cast once per reference), the optimistic checks of _ACCEPTABLE
# as its WHERE, and the INSERT into trade_records, whose own constraints and unique index refuse
# the rest. No typed copy of the file is written and read back, and the duplicate search is the
# unique index's (or, on the bulk path, its rebuild's). Whether every row got in is known from
# the INSERT's row count. Anything else (a row the WHERE leaves out, a value that does not cast,
# a constraint or a duplicate refusing a row, an order_id already stored) rolls back to the
# savepoint taken before it (the indexes the bulk path dropped, its lock and the change rows
# with it) and the import takes the precise path (_validate), which names every bad row with
# its line, field and value, exactly as before: on bad input the fast attempt costs time, never
# a message or a row.
_FAST_INSERT = """
    INSERT INTO public.trade_records ({id_column}order_id, account, symbol, side, size, price, total_fees, order_time,
                                      source, fee_currency) {overriding}
    SELECT {id_value}t.order_id, t.account, t.symbol, t.side, t.size, t.price, t.total_fees, t.order_time, t.source,
           t.fee_currency
    FROM (SELECT {cast}, r.order_time AS time_text, r.extra,
                 r.size AS size_text, r.price AS price_text, r.total_fees AS fees_text
          FROM ({mapped}) r OFFSET 0) t
    WHERE {acceptable}"""
# What of _ACCEPTABLE trade_records' own constraints do not refuse: the fast path's WHERE when the table
# has all of TABLE_REFUSES and NOT NULL on NOT_NULL (fifo-db's own table does); otherwise _ACCEPTABLE
# whole. A row one of them refuses fails the INSERT, which sends the import to the precise path, as a
# row left out by the WHERE does. Over 1M rows this WHERE costs about 0.2 s of CPU, _ACCEPTABLE 1.3 s.
_ACCEPTABLE_BESIDE_CONSTRAINTS = ("t.extra IS NULL AND " + _DIGITS + "\n           AND " + _NUMBERS_FAST
                                  + "\n           AND " + _ISO_WITH_ZONE)
# _ACCEPTABLE with _NUMBERS_FAST: the fast path's WHERE on a table without those constraints
_ACCEPTABLE_FAST = _ACCEPTABLE.replace(_NUMBERS.replace("{", "{{").replace("}", "}}"),
                                       _NUMBERS_FAST.replace("{", "{{").replace("}", "}}"))
assert _ACCEPTABLE_FAST != _ACCEPTABLE
# pg_get_constraintdef of the CHECKs of migrations 0001, 0004, 0017 and 0021 that refuse the rest of
# _ACCEPTABLE (tests/test_import.py: a fresh install has each); the table's NOT NULL refuses a missing field
_SPACE_PATTERN = _LEADING_SPACE + "|" + _TRAILING_SPACE
_SPACE_CHECK = ("CHECK ((((int4range(33, 127) @> ascii({0})) AND (int4range(33, 127) @> ascii(\"right\"({0}, 1)))) "
                "OR ({0} !~ '" + _SPACE_PATTERN + "'::text)))")
TABLE_REFUSES = (
    "CHECK ((side = ANY (ARRAY['buy'::text, 'sell'::text])))",
    "CHECK ((size > (0)::numeric))",
    "CHECK ((size < 'Infinity'::numeric))",
    "CHECK ((price >= (0)::numeric))",
    "CHECK ((price < 'Infinity'::numeric))",
    "CHECK ((total_fees >= (0)::numeric))",
    "CHECK ((total_fees < 'Infinity'::numeric))",
    "CHECK ((fee_currency ~ '^[A-Za-z0-9]{1,16}$'::text))",
    "CHECK (((order_time >= '1970-01-01 00:00:00+00'::timestamp with time zone) "
    "AND (order_time < '2200-01-01 00:00:00+00'::timestamp with time zone)))",
    _SPACE_CHECK.format("order_id"),
    _SPACE_CHECK.format("symbol"),
    _SPACE_CHECK.format("account"),
)
# the same rule as migration 0011 wrote it (a database not upgraded to 0021 yet): refuses the same rows
_SPACE_CHECK_0011 = "CHECK (({} !~ '" + _SPACE_PATTERN + "'::text))"
_EARLIER = {_SPACE_CHECK.format(c): _SPACE_CHECK_0011.format(c) for c in ("order_id", "symbol", "account")}
NOT_NULL = ("order_id", "symbol", "side", "size", "price", "order_time")


def _table_refuses(cur) -> bool:
    """public.trade_records has every constraint of TABLE_REFUSES (or its _EARLIER form) and NOT NULL on
    NOT_NULL's columns."""
    cur.execute("""
        SELECT (SELECT count(*) FROM unnest(%(checks)s::text[], %(earlier)s::text[]) AS r(def, earlier)
                WHERE EXISTS (SELECT FROM pg_catalog.pg_constraint k
                              WHERE k.conrelid = 'public.trade_records'::regclass AND k.contype = 'c'
                                AND pg_catalog.pg_get_constraintdef(k.oid) IN (r.def, r.earlier)))
               = cardinality(%(checks)s::text[])
           AND (SELECT count(*) FROM pg_catalog.pg_attribute a
                WHERE a.attrelid = 'public.trade_records'::regclass AND a.attname = ANY (%(columns)s)
                  AND a.attnotnull AND NOT a.attisdropped) = cardinality(%(columns)s)""",
                {"checks": list(TABLE_REFUSES), "earlier": [_EARLIER.get(c, c) for c in TABLE_REFUSES],
                 "columns": list(NOT_NULL)})
    return cur.fetchone()[0]


# SQLSTATE classes that send the import to the precise path: data exceptions (a cast), integrity
# constraint violations (a CHECK, NOT NULL, the unique order_id) and a trigger's RAISE. A cancel,
# a lock timeout or a lost connection is no reason to try again: it ends the import.
_FALL_BACK_CLASSES = ("22", "23", "P0")


class _FallBack(Exception):
    pass


def _reserve_ids(cur, n: int) -> int | None:
    """On the bulk path (trade_records locked: no INSERT can take an id meanwhile), take the next n
    ids of trade_records' identity in one step instead of one nextval per row (0.2-0.4 s of CPU per
    million rows): returns the first, the sequence left where n nextval calls would leave it. None
    (one nextval per row, as before) unless the sequence hands out consecutive ids (increment 1,
    no cache), has room for n more and this role may set it."""
    cur.execute("""
        SELECT pg_catalog.setval(s.seqrelid, pg_catalog.nextval(s.seqrelid) + (%(n)s - 1)) - (%(n)s - 1)
        FROM pg_catalog.pg_sequence s
        WHERE s.seqrelid = pg_catalog.pg_get_serial_sequence('public.trade_records', 'id')::regclass
          AND s.seqincrement = 1 AND s.seqcache = 1
          AND CASE WHEN pg_catalog.has_sequence_privilege(s.seqrelid, 'USAGE')
                        AND pg_catalog.has_sequence_privilege(s.seqrelid, 'UPDATE')
                   -- in a CASE: pg_sequence_last_value fails without the right
                   THEN s.seqmax - %(n)s >= coalesce(pg_catalog.pg_sequence_last_value(s.seqrelid),
                                                     s.seqstart - 1)
                   ELSE false END""",
                {"n": n})
    row = cur.fetchone()
    return row[0] if row else None


def _fast_import(conn, cur, fmt: Format, header: list[str], source: str, staged: int) -> tuple[int, list[str]] | None:
    """Load the staged rows in one statement if all are good and new: (rows inserted, the indexes the
    bulk path rebuilt); None, with nothing changed, when the precise path must decide."""
    if staged == 0:
        return None
    mapped = _mapped_select(fmt, header, source)
    cur.execute("SELECT EXISTS (SELECT FROM public.trade_records)")
    if cur.fetchone()[0]:
        # an order_id of the file already stored (skipped or an error): the precise path says which
        cur.execute(sql.SQL("SELECT EXISTS (SELECT FROM ({mapped}) r JOIN public.trade_records x "
                            "ON x.order_id = r.order_id)").format(mapped=mapped))
        if cur.fetchone()[0]:
            return None
    acceptable = (sql.SQL(_ACCEPTABLE_BESIDE_CONSTRAINTS) if _table_refuses(cur) else
                  sql.SQL(_ACCEPTABLE_FAST).format(leading=sql.Literal(_LEADING_SPACE),
                                                   trailing=sql.Literal(_TRAILING_SPACE)))
    try:
        with conn.transaction():
            rebuild = _bulk_begin(cur, staged)
            base = _reserve_ids(cur, staged) if rebuild else None
            if base is None:
                statement = sql.SQL(_FAST_INSERT).format(
                    id_column=sql.SQL(""), overriding=sql.SQL(""), id_value=sql.SQL(""),
                    cast=sql.SQL(_CAST), mapped=mapped, acceptable=acceptable)
            else:
                # the ids nextval would give row by row, in the file's order (the staging lines are
                # 2, 3, ... staged + 1: the WHERE makes sure; a row it leaves out sends the import to
                # the precise path)
                statement = sql.SQL(_FAST_INSERT).format(
                    id_column=sql.SQL("id, "), overriding=sql.SQL("OVERRIDING SYSTEM VALUE"),
                    id_value=sql.SQL("{} + (t.line - 2), ").format(sql.Literal(base)),
                    cast=sql.SQL(_CAST), mapped=mapped,
                    acceptable=sql.SQL("t.line BETWEEN 2 AND {} AND ({})").format(sql.Literal(staged + 1), acceptable))
            cur.execute(statement)
            inserted = cur.rowcount
            if inserted != staged:
                raise _FallBack
            _bulk_end(cur, rebuild)
    except _FallBack:
        return None
    except psycopg.Error as exc:
        if (exc.sqlstate or "")[:2] in _FALL_BACK_CLASSES:
            return None
        raise
    return inserted, rebuild


def write_rejects(result: ImportResult, header: list[str], f) -> None:
    """The rejected records as they were in the file, plus their line number and reason, into open file `f`.

    Cells a spreadsheet would run as a formula get a leading apostrophe (fifo_db.csvsafe).
    """
    rows = getattr(result, "reject_rows", [])
    w = SafeWriter(f)
    w.writerow([*header, "line", "reason"])
    for line, message, _stage_line, *values in rows:
        w.writerow([*("" if v is None else v for v in values), line, message])


def open_reject_file(target: Path):
    """Prove, before anything is loaded, that the reject file can be written: open a temporary file
    beside it (renamed over it once the rejects are written), or say why not in one line."""
    target = Path(target)
    if target.is_dir():
        raise FifoError(f"--reject-file {target}: is a directory; give a file name; nothing was imported")
    folder = target.parent
    if not folder.is_dir():
        raise FifoError(f"--reject-file {target}: folder {folder} does not exist (mkdir -p {folder}); "
                        f"nothing was imported")
    try:
        return tempfile.NamedTemporaryFile("w", newline="", encoding="utf-8", dir=folder,
                                           prefix=f".{target.name}.", suffix=".tmp", delete=False)
    except OSError as exc:
        raise FifoError(f"--reject-file {target}: cannot write in {folder} ({exc.strerror or exc}); "
                        f"nothing was imported") from None


def register(sub) -> None:
    p = sub.add_parser("import", help="import trades from a CSV file",
                       description="Load trades from CSV through COPY; all or nothing unless --skip-invalid. "
                                   "Re-importing the same file adds nothing (idempotent by order_id).")
    p.add_argument("file", type=Path, metavar="FILE.csv")
    p.add_argument("--format", choices=sorted(FORMATS),
                   help="generic: trade_records' columns; coinbase: Coinbase Advanced Trade fills report "
                        "(default: detected from the header)")
    p.add_argument("--skip-invalid", action="store_true",
                   help="load the good rows and write the bad ones to the reject file")
    p.add_argument("--reject-file", type=Path, metavar="F",
                   help="where --skip-invalid writes bad rows (default: FILE.rejected.csv)")
    p.set_defaults(func=_cli_import)


_SHOW = 50


def _cli_import(args, conn) -> int:
    if args.reject_file and not args.skip_invalid:
        raise FifoError("--reject-file goes with --skip-invalid")
    fmt_name, detected = choose_format(args.file, args.format)
    label = "Coinbase fills" if fmt_name == "coinbase" else "trade_records' columns"
    print(f"format: {fmt_name} ({label}; " + ("detected from the header; --format overrides)" if detected
                                              else "from --format)"))
    target = args.reject_file or args.file.with_name(args.file.name + ".rejected.csv")
    pending = open_reject_file(target) if args.skip_invalid else None
    try:
        try:
            result = import_csv(conn, args.file, fmt_name, args.skip_invalid)
        except InvalidRows as bad:
            for line, message in bad.result.rejected[:_SHOW]:
                print(f"{args.file}: line {line}: {message}", file=sys.stderr)
            if len(bad.result.rejected) > _SHOW:
                print(f"{args.file}: ... and {len(bad.result.rejected) - _SHOW:,} more", file=sys.stderr)
            raise
        print(f"imported {result.inserted:,} of {result.rows:,} rows from {args.file} in {result.seconds:.2f}s "
              f"({result.present:,} already present, {len(result.rejected):,} rejected)")
        if result.rejected:
            write_rejects(result, read_header(args.file), pending)
            pending.close()
            os.replace(pending.name, target)
            pending = None
            print(f"{len(result.rejected):,} rejected rows with their reasons written to {target}")
    finally:
        if pending is not None:
            pending.close()
            os.unlink(pending.name)
    if result.inserted:
        print("allocations: the change triggers queued the pools; run `fifo-db compute --all-symbols` "
              "(or let the pg_cron schedule do it)")
    return 0
