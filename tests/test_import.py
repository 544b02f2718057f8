"""fifo-db import: every bad-row kind, all-or-nothing, --skip-invalid, re-import, Coinbase fills."""

from __future__ import annotations

import csv
from decimal import Decimal as D
from pathlib import Path

import pytest

from fifo_db import importer
from fifo_db.cli import main
from fifo_db.errors import FifoError
from fifo_db.importer import InvalidRows, import_csv
from tests.helpers import allocations, ts

DATA = Path(__file__).parent / "data"
HEADER = "order_id,symbol,side,size,price,total_fees,order_time"
GOOD = "g1,X-USD,buy,2,10,0.02,2025-01-01T10:00:00Z"


def write(tmp_path: Path, *lines: str, name: str = "trades.csv") -> Path:
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return path


def count(db) -> int:
    return db.execute("SELECT count(*) FROM trade_records").fetchone()[0]


@pytest.mark.parametrize("row, message", [
    ("b1,X-USD,hold,1,10,0,2025-01-01T10:00:00Z", "side 'hold' is not buy or sell"),
    ("b1,X-USD,buy,0,10,0,2025-01-01T10:00:00Z", "size '0' must be positive"),
    ("b1,X-USD,buy,-2,10,0,2025-01-01T10:00:00Z", "size '-2' must be positive"),
    ("b1,X-USD,buy,1,-10,0,2025-01-01T10:00:00Z", "price '-10' must not be negative"),
    ("b1,X-USD,buy,1,10,-0.5,2025-01-01T10:00:00Z", "total_fees '-0.5' must not be negative"),
    ("b1,X-USD,buy,1.2.3,10,0,2025-01-01T10:00:00Z", "size '1.2.3' is not a number"),
    ("b1,X-USD,buy,1,NaN,0,2025-01-01T10:00:00Z", "price 'NaN' is not a number"),
    # what numeric's cast takes and _NUMBER does not (the fast path leaves them to the precise checks):
    # surrounding whitespace, PostgreSQL 16's underscores and prefixes, an exponent of four digits
    ("b1,X-USD,buy, 1.5,10,0,2025-01-01T10:00:00Z", "size ' 1.5' is not a number"),
    ("b1,X-USD,buy,1,10 ,0,2025-01-01T10:00:00Z", "price '10 ' is not a number"),
    ("b1,X-USD,buy,1_000,10,0,2025-01-01T10:00:00Z", "size '1_000' is not a number"),
    ("b1,X-USD,buy,1,0x10,0,2025-01-01T10:00:00Z", "price '0x10' is not a number"),
    ("b1,X-USD,buy,1e0001,10,0,2025-01-01T10:00:00Z", "size '1e0001' is not a number"),
    ("b1,X-USD,buy,1,10,0,yesterday", "order_time 'yesterday' is not a valid ISO 8601 time"),
    # slash dates: ambiguous (March 1 or January 3), refused with the accepted forms
    ("b1,X-USD,buy,1,10,0,03/01/2025 10:00:00Z",
     "order_time '03/01/2025 10:00:00Z' is not a valid ISO 8601 time: use 2025-12-03T23:40:00Z or "
     "2025-12-03 23:40:00+01:00 (year first: 03/12/2025 is refused, it can be March 12 or December 3)"),
    ("b1,X-USD,buy,1,10,0,13/01/2025T10:00:00Z", "order_time '13/01/2025T10:00:00Z' is not a valid ISO 8601 time: use"),
    ("b1,X-USD,buy,1,10,0,2025-13-01T10:00:00Z", "order_time '2025-13-01T10:00:00Z' is not a valid ISO 8601 time"),
    ("b1,X-USD,buy,1,10,0,2025-01-01T10:00:00+16:00", "order_time '2025-01-01T10:00:00+16:00' is not a valid"),
    ("b1,X-USD,buy,1,10,0,2025-02-29T10:00:00Z", "order_time '2025-02-29T10:00:00Z' is not a valid ISO 8601 time"),
    ("b1,X-USD,buy,1,10,0,2025-01-01 10:00:00", "order_time '2025-01-01 10:00:00' has no time zone"),
    ("b1,,buy,1,10,0,2025-01-01T10:00:00Z", "symbol is missing"),
    (",X-USD,buy,1,10,0,2025-01-01T10:00:00Z", "order_id is missing"),
    ("b1,X-USD,buy,1,,0,2025-01-01T10:00:00Z", "price is missing"),
    ("g1,X-USD,buy,2,10,0.02,2025-01-01T10:00:00Z", "order_id 'g1' is also on line 2"),
    ("b1,X-USD,buy,1,10,0,1969-12-31T23:59:59.999999Z",
     "order_time '1969-12-31T23:59:59.999999Z' is outside 1970-01-01..2200-01-01 (UTC)"),
    ("b1,X-USD,buy,1,10,0,1970-01-01T00:30:00+01:00",   # 1969-12-31 23:30 UTC
     "order_time '1970-01-01T00:30:00+01:00' is outside 1970-01-01..2200-01-01 (UTC)"),
    ("b1,X-USD,buy,1,10,0,2200-01-01T00:00:00Z", "order_time '2200-01-01T00:00:00Z' is outside 1970-01-01..2200-01-01"),
    ("b1 ,X-USD,buy,1,10,0,2025-01-01T10:00:00Z", "order_id 'b1 ' has leading or trailing whitespace"),
    ("b1,\tX-USD,buy,1,10,0,2025-01-01T10:00:00Z", "symbol '\tX-USD' has leading or trailing whitespace"),
])
def test_each_bad_row_kind_is_named_and_nothing_loads(db, tmp_path, row, message):
    path = write(tmp_path, HEADER, GOOD, row)
    with pytest.raises(InvalidRows) as info:
        import_csv(db, path)
    [(line, text)] = info.value.result.rejected
    assert line == 3
    assert text.startswith(message), text
    assert count(db) == 0


def test_several_problems_on_one_row_share_one_line(db, tmp_path):
    path = write(tmp_path, HEADER, "b1,X-USD,sell,-1,x,-1,2025-01-01 10:00")
    with pytest.raises(InvalidRows) as info:
        import_csv(db, path)
    assert info.value.result.rejected == [(2, "size '-1' must be positive; price 'x' is not a number; "
                                              "total_fees '-1' must not be negative; order_time '2025-01-01 10:00' "
                                              "has no time zone (add Z or an offset such as +00:00)")]


def test_cli_prints_one_line_per_bad_row_and_loads_nothing(db, dsn, tmp_path, capsys):
    path = write(tmp_path, HEADER, GOOD, "b2,X-USD,buy,0,1,0,2025-01-02T00:00:00Z",
                 "b3,X-USD,short,1,1,0,2025-01-02T00:00:00Z")
    assert main(["--dsn", dsn, "import", str(path)]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err == [f"{path}: line 3: size '0' must be positive",
                   f"{path}: line 4: side 'short' is not buy or sell",
                   f"fifo-db: error: {path}: 2 invalid rows; nothing was imported "
                   f"(fix them, or use --skip-invalid to load the rest)"]
    assert count(db) == 0


def test_skip_invalid_loads_good_rows_and_writes_rejects(db, dsn, tmp_path, capsys):
    path = write(tmp_path, HEADER, GOOD, "b2,X-USD,buy,0,1,0,2025-01-02T00:00:00Z",
                 "s1,X-USD,sell,1,12,0.01,2025-01-03T00:00:00+01:00")
    rejects = tmp_path / "bad.csv"
    assert main(["--dsn", dsn, "import", str(path), "--skip-invalid", "--reject-file", str(rejects)]) == 0
    out = capsys.readouterr().out
    assert "imported 2 of 3 rows" in out and "1 rejected" in out
    assert [r[0] for r in db.execute("SELECT order_id FROM trade_records ORDER BY order_id")] == ["g1", "s1"]
    assert db.execute("SELECT order_time FROM trade_records WHERE order_id = 's1'").fetchone()[0] == ts("2025-01-02 23:00")
    with open(rejects, newline="") as f:
        got = list(csv.reader(f))
    assert got == [HEADER.split(",") + ["line", "reason"],
                   ["b2", "X-USD", "buy", "0", "1", "0", "2025-01-02T00:00:00Z", "3", "size '0' must be positive"]]


def test_reimport_adds_nothing_and_conflicts_name_both_values(db, tmp_path):
    path = write(tmp_path, HEADER, GOOD, "s1,X-USD,sell,1,12,0.01,2025-01-03T00:00:00Z")
    first = import_csv(db, path)
    assert (first.rows, first.inserted, first.present) == (2, 2, 0)
    again = import_csv(db, path)
    assert (again.rows, again.inserted, again.present) == (2, 0, 2)
    assert count(db) == 2
    # same ids, different data (1.5 = 1.50 is the same number, not a conflict)
    changed = write(tmp_path, HEADER, "g1,X-USD,buy,2.00,10.5,0.02,2025-01-01T10:00:00Z",
                    "s1,X-USD,sell,1,12,0.01,2025-01-03T01:00:00Z", name="changed.csv")
    with pytest.raises(InvalidRows) as info:
        import_csv(db, changed)
    assert info.value.result.rejected == [
        (2, "order_id 'g1' is already stored with different data: price 10 (this file: 10.5)"),
        (3, "order_id 's1' is already stored with different data: "
            "order_time 2025-01-03 00:00:00+00 (this file: 2025-01-03 01:00:00+00)"),
    ]
    assert db.execute("SELECT price FROM trade_records WHERE order_id = 'g1'").fetchone()[0] == D(10)


def test_optional_columns_default_and_source_names_the_file(db, tmp_path):
    path = write(tmp_path, "order_id,symbol,side,size,price,order_time", "o1,X-USD,buy,1,2,2025-01-01T00:00:00Z")
    import_csv(db, path)
    assert db.execute("SELECT account, total_fees, source FROM trade_records").fetchone() == \
        ("default", D(0), "generic:trades.csv")


def test_header_problems(db, tmp_path):
    with pytest.raises(FifoError, match=r"line 1: missing column\(s\) price; unknown column\(s\) cost"):
        import_csv(db, write(tmp_path, "order_id,symbol,side,size,cost,order_time", "a,X,buy,1,1,2025-01-01Z"))
    with pytest.raises(FifoError, match="empty file"):
        import_csv(db, write(tmp_path, ""))


def test_record_with_wrong_field_count_names_its_line(db, tmp_path):
    with pytest.raises(FifoError, match=r"line 3: extra data after last expected column \(the header has 7 fields\); nothing was imported"):
        import_csv(db, write(tmp_path, HEADER, GOOD, "b2,X-USD,buy,1,1,0,2025-01-01T00:00:00Z,surplus"))
    assert count(db) == 0


def test_coinbase_fills_sample(db, dsn, tmp_path, capsys):
    # Coinbase fills report: portfolio,trade id,product,side,created at,size,size unit,price,fee,total,...
    assert main(["--dsn", dsn, "import", str(DATA / "coinbase_fills.csv"), "--format", "coinbase"]) == 0
    assert "imported 5 of 5 rows" in capsys.readouterr().out
    got = db.execute("SELECT order_id, account, symbol, side, size, price, total_fees, order_time, source "
                     "FROM trade_records WHERE order_id = '1003'").fetchone()
    assert got == ("1003", "default", "BTC-USD", "sell", D("0.025"), D("90000"), D("1.35"),
                   ts("2025-03-05 09:15:42.5"), "coinbase:coinbase_fills.csv")
    db.execute("SELECT compute_fifo_all(true)")
    btc = allocations(db, "BTC-USD")
    # 1003/1001: q 0.01, sell fee 1.35*0.01/0.025 = 0.54, cost 800 + 0.48, proceeds 900 - 0.54 -> 98.98
    # 1003/1002: q 0.015, buy fee 0.984*0.015/0.02 = 0.738, sell fee 0.81,
    #            cost 1230 + 0.738, proceeds 1350 - 0.81 -> 118.452
    assert [(a["buy_trade_id"], a["allocated_size"], a["pnl_amount"]) for a in btc] == [
        ("1001", D("0.01"), D("98.98")), ("1002", D("0.015"), D("118.452"))]
    # ETH: 1050 - 0.63 - (1000 + 0.60)
    assert allocations(db, "ETH-USD")[0]["pnl_amount"] == D("48.77")
    assert import_csv(db, DATA / "coinbase_fills.csv", "coinbase").inserted == 0


def test_coinbase_units_must_match_the_product(db, tmp_path):
    path = write(tmp_path, "portfolio,trade id,product,side,created at,size,size unit,price,fee,total,price/fee/total unit",
                 "default,1,BTC-USD,BUY,2025-03-01T10:00:00Z,10,USD,80000,0.1,-10,USD")
    with pytest.raises(InvalidRows) as info:
        import_csv(db, path, "coinbase")
    assert info.value.result.rejected == [(2, "size unit 'USD' is not the base currency of BTC-USD")]


def test_what_trade_records_refuses_is_named_on_its_line_on_both_paths(db, tmp_path):
    """Whitespace around order_id, symbol or account and times outside 1970..2200 are refused
    by trade_records' constraints (migration 0004); the import names them with line, field and
    value, whether or not another row breaks a cast (which sends every row to the precise checks)."""
    header = "order_id,account,symbol,side,size,price,total_fees,order_time"
    rows = ["g1,acct,X-USD,buy,2,10,0.02,2025-01-01T10:00:00Z",
            "w1, acct,X-USD,buy,2,10,0.02,2025-01-01T10:00:00Z",
            "w2,acct,X-USD,buy,2,10,0.02,2200-01-01T00:00:00.000001Z"]
    expected = [(3, "account ' acct' has leading or trailing whitespace (U+0020)"),
                (4, "order_time '2200-01-01T00:00:00.000001Z' is outside 1970-01-01..2200-01-01 (UTC)")]
    for extra in ([], ["c1,acct,X-USD,buy,1.2.3,10,0,2025-01-01T10:00:00Z"]):
        with pytest.raises(InvalidRows) as info:
            import_csv(db, write(tmp_path, header, *rows, *extra))
        assert info.value.result.rejected[:2] == expected
        assert count(db) == 0


# The fast path (issue 16): a file whose rows are all good and new is loaded by one INSERT straight
# from the staging table; anything else goes to the precise checks, which name every bad row.

def _no_precise_checks(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the precise checks ran on a good file")
    monkeypatch.setattr(importer, "_validate", refuse)


@pytest.mark.parametrize("bulk_min", [1, 10**9])   # the bulk path, then the ordinary one
def test_a_good_new_file_is_loaded_by_the_fast_path_exactly(db, tmp_path, monkeypatch, bulk_min):
    monkeypatch.setattr(importer, "BULK_MIN_ROWS", bulk_min)
    path = write(tmp_path, "order_id,account,symbol,side,size,price,total_fees,order_time,fee_currency",
                 "f1,,X-USD,BUY,1.12345678,10.00000001,,2025-01-01T10:00:00.000001Z,",
                 "f2,acct,Y-USD,sell,2,0,0.5,2025-01-01 12:00:00+02,BNB",
                 "f3,acct,X-USD,Sell,0.00000001,11,0,2025-01-02T00:00:00z,")
    _no_precise_checks(monkeypatch)
    result = import_csv(db, path)
    assert (result.rows, result.inserted, result.present, result.rejected, result.bulk) == (
        3, 3, 0, [], bulk_min == 1)
    assert db.execute(
        "SELECT order_id, account, symbol, side, size::text, price::text, total_fees::text, "
        "(order_time AT TIME ZONE 'UTC')::text, source, fee_currency FROM trade_records ORDER BY id").fetchall() == [
        ("f1", "default", "X-USD", "buy", "1.12345678", "10.00000001", "0", "2025-01-01 10:00:00.000001",
         "generic:trades.csv", None),
        ("f2", "acct", "Y-USD", "sell", "2", "0", "0.5", "2025-01-01 10:00:00", "generic:trades.csv", "BNB"),
        ("f3", "acct", "X-USD", "sell", "0.00000001", "11", "0", "2025-01-02 00:00:00", "generic:trades.csv", None)]
    # the change capture queued each pool from its earliest trade
    assert db.execute("SELECT symbol, account, (from_time AT TIME ZONE 'UTC')::text FROM fifo.pool_changes "
                      "WHERE processed_at IS NULL ORDER BY 1, 2").fetchall() == [
        ("X-USD", "acct", "2025-01-02 00:00:00"), ("X-USD", "default", "2025-01-01 10:00:00.000001"),
        ("Y-USD", "acct", "2025-01-01 10:00:00")]


@pytest.mark.parametrize("drop", [False, True])   # the fast path's WHERE beside the table's CHECKs, or alone
def test_numbers_written_otherwise_than_numeric_reads_them_back_take_the_fast_path_too(db, tmp_path, monkeypatch,
                                                                                      drop):
    if drop:
        db.execute("ALTER TABLE trade_records DROP CONSTRAINT size_is_positive")
    _no_precise_checks(monkeypatch)
    result = import_csv(db, write(tmp_path, HEADER, "n1,X-USD,buy,.5,+2,1.50,2025-01-01T10:00:00Z",
                                  "n2,X-USD,buy,007,1e2,3.,2025-01-01T10:00:00Z",
                                  "n3,X-USD,sell,1,-0,0.0,2025-01-01T10:00:00Z"))
    assert (result.rows, result.inserted, result.rejected) == (3, 3, [])
    assert db.execute("SELECT order_id, size::text, price::text, total_fees::text FROM trade_records "
                      "ORDER BY id").fetchall() == [("n1", "0.5", "2", "1.50"), ("n2", "7", "100", "3"),
                                                   ("n3", "1", "0", "0.0")]


def test_the_fast_path_leans_only_on_constraints_a_fresh_install_has(db):
    defs = {r[0] for r in db.execute("SELECT pg_get_constraintdef(oid) FROM pg_constraint "
                                     "WHERE conrelid = 'public.trade_records'::regclass AND contype = 'c'")}
    assert set(importer.TABLE_REFUSES) <= defs
    with db.cursor() as cur:
        assert importer._table_refuses(cur)


def test_without_the_tables_constraints_the_fast_path_checks_everything_itself(db, tmp_path):
    """A trade_records without the CHECKs the fast path leans on (dropped by a user): its WHERE is
    the full optimistic check again, and bad rows are still named, whatever the table lets in."""
    db.execute("ALTER TABLE trade_records DROP CONSTRAINT size_is_positive, "
               "DROP CONSTRAINT symbol_has_no_surrounding_space")
    with db.cursor() as cur:
        assert not importer._table_refuses(cur)
    with pytest.raises(InvalidRows) as info:
        import_csv(db, write(tmp_path, HEADER, GOOD, "b1,X-USD,buy,0,10,0,2025-01-01T10:00:00Z",
                             "b2,X-USD ,buy,1,10,0,2025-01-01T10:00:00Z"))
    assert info.value.result.rejected == [(3, "size '0' must be positive"),
                                          (4, "symbol 'X-USD ' has leading or trailing whitespace (U+0020)")]
    assert count(db) == 0
    result = import_csv(db, write(tmp_path, HEADER, GOOD))
    assert (result.inserted, count(db)) == (1, 1)


@pytest.mark.parametrize("row, message", [
    # left out by the fast path's WHERE (no zone), refused by a CHECK (size 0), a failed cast,
    # a duplicate the unique index refuses
    ("b1,X-USD,buy,1,10,0,2025-01-01 10:00:00",
     "order_time '2025-01-01 10:00:00' has no time zone (add Z or an offset such as +00:00)"),
    ("b1,X-USD,buy,0,10,0,2025-01-01T10:00:00Z", "size '0' must be positive"),
    ("b1,X-USD,buy,x,10,0,2025-01-01T10:00:00Z", "size 'x' is not a number"),
    ("b1,X-USD,buy,1,10, 0.5,2025-01-01T10:00:00Z", "total_fees ' 0.5' is not a number"),   # the cast takes it
    # NaN reads back as written (the fast path's number test passes it): the finiteness CHECKs refuse it
    ("b1,X-USD,buy,NaN,10,0,2025-01-01T10:00:00Z", "size 'NaN' is not a number"),
    ("b1,X-USD,buy,1,NaN,0,2025-01-01T10:00:00Z", "price 'NaN' is not a number"),
    ("b1,X-USD,buy,1,10,NaN,2025-01-01T10:00:00Z", "total_fees 'NaN' is not a number"),
    ("g1,X-USD,buy,2,10,0.02,2025-01-01T10:00:00Z", "order_id 'g1' is also on line 2"),
])
def test_what_stops_the_fast_path_is_named_by_the_precise_checks_on_a_big_file(db, tmp_path, row, message):
    """One bad row at the end of 2,000 good ones: nothing is loaded, nothing is left queued."""
    good = [f"n{i},X-USD,buy,1,10,0,2025-01-01T10:00:00Z" for i in range(2000)]
    with pytest.raises(InvalidRows) as info:
        import_csv(db, write(tmp_path, HEADER, GOOD, *good, row))
    assert info.value.result.rejected == [(2003, message)]
    assert count(db) == 0
    assert db.execute("SELECT count(*) FROM fifo.pool_changes").fetchone()[0] == 0
