"""CSV files that are not text, or not of a sane size (issue 14, section 5): a NUL byte, invalid
UTF-8, an over-long number and a huge field are each refused in one line naming line and field,
before anything is sent; a 50 MB field is refused with bounded client memory; values echoed in
messages are cut to 80 characters."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from fifo_db.cli import main
from fifo_db.importer import InvalidRows, import_csv

HEADER = b"order_id,account,symbol,side,size,price,total_fees,order_time\n"
GOOD = b"g1,acct,X-USD,buy,2,10,0,2025-01-01T10:00:00Z\n"


def cli_import(dsn, capsys, path):
    rc = main(["--dsn", dsn, "import", str(path)])
    out = capsys.readouterr()
    return rc, out.err.splitlines()


def count(db):
    return db.execute("SELECT count(*) FROM trade_records").fetchone()[0]


@pytest.mark.parametrize("row, message", [
    (b"n1,acct,X-USD,buy,1,1\x00,0,2025-01-01T10:00:00Z",
     "line 3: field 'price' contains a NUL byte (0x00) at byte 22 of the line; nothing was imported"),
    (b"\x00n1,acct,X-USD,buy,1,1,0,2025-01-01T10:00:00Z",
     "line 3: field 'order_id' contains a NUL byte (0x00) at byte 1 of the line; nothing was imported"),
    (b"u1,acct,X-\xff\xfeUSD,buy,1,1,0,2025-01-01T10:00:00Z",
     "line 3: field 'symbol' is not valid UTF-8 (byte 0xFF at byte 11 of the line): save the file as UTF-8; "
     "nothing was imported"),
    (b"u1,caf\xe9,X-USD,buy,1,1,0,2025-01-01T10:00:00Z",     # Latin-1, not UTF-8
     "line 3: field 'account' is not valid UTF-8 (byte 0xE9 at byte 7 of the line): save the file as UTF-8; "
     "nothing was imported"),
    (b"l1,acct,X-USD,buy,1,1,0,2025-01-01T10:00:00Z\n" + b"l2,acct," + b"Y" * 1001
     + b",buy,1,1,0,2025-01-01T10:00:00Z",
     "line 4: field 'symbol' has 1,001 characters (at most 1,000); nothing was imported"),
])
def test_unreadable_rows_name_line_and_field_and_load_nothing(db, dsn, tmp_path, capsys, row, message):
    path = tmp_path / "bad.csv"
    path.write_bytes(HEADER + GOOD + row + b"\n")
    rc, err = cli_import(dsn, capsys, path)
    assert rc == 1
    assert err == [f"fifo-db: error: {path}: {message}"]
    assert count(db) == 0


def test_a_bad_byte_deep_in_a_big_file_is_found_on_its_line(db, dsn, tmp_path, capsys):
    rows = b"".join(b"r%d,acct,X-USD,buy,1,1,0,2025-01-01T10:00:00Z\n" % i for i in range(60000))   # ~2.8 MB
    path = tmp_path / "big.csv"
    path.write_bytes(HEADER + rows + b"bad,acct,X-USD,sell,1,\xc3(,0,2025-01-02T10:00:00Z\n" + rows[:1000])
    rc, err = cli_import(dsn, capsys, path)
    assert (rc, err) == (1, [f"fifo-db: error: {path}: line 60002: field 'price' is not valid UTF-8 (byte 0xC3 at "
                             f"byte 23 of the line): save the file as UTF-8; nothing was imported"])


def test_over_long_numbers_are_named_with_a_cut_value(db, tmp_path):
    path = tmp_path / "long.csv"
    path.write_bytes(HEADER + GOOD
                     + b"d1,acct,X-USD,buy," + b"9" * 100 + b",1,0,2025-01-01T10:00:00Z\n"
                     + b"d2,acct,X-USD,buy,1,1e999,0,2025-01-01T10:00:00Z\n"
                     + b"d3,acct,X-USD,buy,1,1,0." + b"0" * 30 + b"1,2025-01-01T10:00:00Z\n"
                     + b"d4,acct,X-USD,buy,1," + b"9" * 30 + b",0,2025-01-01T10:00:00Z\n"      # 30 digits: fine
                     + b"d5,acct,X-USD,buy,0." + b"1" * 30 + b",1,0,2025-01-01T10:00:00Z\n")   # 30 decimals: fine
    with pytest.raises(InvalidRows) as info:
        import_csv(db, path)
    assert info.value.result.rejected == [
        (3, "size '" + "9" * 80 + "'... (100 chars) has more than 30 digits before the decimal point"),
        (4, "price '1e999' has more than 30 digits before the decimal point"),
        (5, "total_fees '0." + "0" * 30 + "1' has more than 30 digits after the decimal point")]
    assert count(db) == 0


def test_a_long_value_is_echoed_cut_to_80_characters(db, tmp_path):
    path = tmp_path / "side.csv"
    path.write_bytes(HEADER + b"s1,acct,X-USD," + b"B" * 900 + b",1,1,0,2025-01-01T10:00:00Z\n")
    with pytest.raises(InvalidRows) as info:
        import_csv(db, path)
    assert info.value.result.rejected == [(2, "side '" + "B" * 80 + "'... (900 chars) is not buy or sell")]


@pytest.mark.parametrize("where", ["field", "header"])
def test_a_50_mb_field_is_refused_with_bounded_memory(dsn, tmp_path, where):
    """Measured in a fresh interpreter: the peak resident set size of the whole import (the
    import used 2.5 GB of client memory for a 300 MB field before)."""
    path = tmp_path / "huge.csv"
    with open(path, "wb") as f:
        if where == "header":
            f.write(b"order_id,account,symbol,side,size,price,total_fees,order_time")
        else:
            f.write(HEADER + GOOD + b"h1,acct,X-USD,buy,1,")
        for _ in range(50):
            f.write(b"7" * (1 << 20))
        f.write(b"\n" if where == "header" else b",0,2025-01-01T10:00:00Z\n")
    # the peak RSS (VmHWM) is reset first (a forked child starts with its parent's peak)
    script = textwrap.dedent(f"""
        import sys
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        from fifo_db.cli import main
        rc = main(["--dsn", {dsn!r}, "import", {str(path)!r}])
        peak = [line for line in open("/proc/self/status") if line.startswith("VmHWM:")][0].split()[1]
        print(rc, int(peak) // 1024)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    rc, max_rss_mb = map(int, done.stdout.split()[-2:])
    assert rc == 1
    line = 1 if where == "header" else 3
    what = "the header" if where == "header" else "field 'price'"
    assert done.stderr.splitlines() == [
        f"fifo-db: error: {path}: line {line}: {what} makes the line longer than 65,536 bytes (a field may have at "
        f"most 1,000 characters)" + ("" if where == "header" else "; nothing was imported")]
    assert max_rss_mb < 100, max_rss_mb   # measured: 41 MB (python, psycopg, fifo_db imported)


def test_a_bad_byte_is_named_even_after_a_line_copy_refuses(db, dsn, tmp_path, capsys):
    """The file is checked while it is sent: a block with a bad byte ends the COPY, and the import
    names that byte in one line, as when the whole file was checked before anything was sent, even if
    the server has already refused an earlier line (a record with too many fields)."""
    rows = b"".join(b"r%d,acct,X-USD,buy,1,1,0,2025-01-01T10:00:00Z\n" % i for i in range(60000))   # ~2.8 MB
    path = tmp_path / "both.csv"
    path.write_bytes(HEADER + b"f1,acct,X-USD,buy,1,1,0,2025-01-01T10:00:00Z,extra\n" + rows
                     + b"bad,acct,X-USD,sell,1,\x00,0,2025-01-02T10:00:00Z\n" + rows[:1000])
    rc, err = cli_import(dsn, capsys, path)
    assert (rc, err) == (1, [f"fifo-db: error: {path}: line 60003: field 'price' contains a NUL byte (0x00) at byte "
                             f"23 of the line; nothing was imported"])
    assert count(db) == 0
    # without the bad byte, the server's refusal is the message, as before
    path.write_bytes(HEADER + b"f1,acct,X-USD,buy,1,1,0,2025-01-01T10:00:00Z,extra\n" + rows)
    rc, err = cli_import(dsn, capsys, path)
    assert (rc, err) == (1, [f"fifo-db: error: {path}: line 2: extra data after last expected column (the header "
                             f"has 8 fields); nothing was imported"])
    assert count(db) == 0
