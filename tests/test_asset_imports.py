"""`fifo-db assets prices|transfers FILE.csv` (issue 18): COPY into a staging table, one
statement that finds every bad row, one INSERT ... SELECT; the first bad line is the error, one
line naming line, field and value, and nothing is imported."""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal as D

import pytest

from fifo_db import assets
from fifo_db.errors import FifoError

PRICES = "asset,currency,price,time,source\n"


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


def refused(db, path, importer, message):
    before = db.execute("SELECT (SELECT count(*) FROM fifo.prices), (SELECT count(*) FROM fifo.transfers)").fetchone()
    with pytest.raises(FifoError) as err:
        importer(db, path)
    assert str(err.value) == f"{path}: {message}"
    assert db.execute("SELECT (SELECT count(*) FROM fifo.prices), "
                      "(SELECT count(*) FROM fifo.transfers)").fetchone() == before


def test_prices_load_set_based_and_again_add_nothing(db, tmp_path):
    path = write(tmp_path, "p.csv", PRICES
                 + "BTC,USD,95000.5,2025-06-30T00:00:00Z,\n"
                 + " ETH , USD ,2500,2025-06-30 02:00:00+02:00,cg\n"      # trimmed; the zone kept
                 + "BNB,USD,600,2025-06-30 00:00,\n"                       # no zone: UTC
                 + "SOL,USD,150,2025-06-30,\n"                              # a date: midnight UTC
                 + "BTC,USD,95000.50,2025-06-30T00:00:00Z,\n")             # the same row again: one row
    assert assets.import_prices(db, path) == (5, 4)
    utc = datetime(2025, 6, 30, tzinfo=timezone.utc)
    assert db.execute("SELECT asset, currency, price, at, source FROM fifo.prices ORDER BY asset").fetchall() == [
        ("BNB", "USD", D(600), utc, "import"), ("BTC", "USD", D("95000.5"), utc, "import"),
        ("ETH", "USD", D(2500), utc, "cg"), ("SOL", "USD", D(150), utc, "import")]
    assert assets.import_prices(db, path) == (5, 0)


@pytest.mark.parametrize("row, message", [
    ("BTC,USD,lots,2025-01-01,", "line 3: price 'lots' is not a number"),
    ("BTC,USD,-1,2025-01-01,", "line 3: price '-1' must not be negative"),
    ("BTC USD,USD,1,2025-01-01,", "line 3: asset 'BTC USD' is not an asset or currency code (1 to 16 letters "
                                  "and digits)"),
    (",USD,1,2025-01-01,", "line 3: asset is missing"),
    ("BTC,USD,1,03/01/2025,", "line 3: time '03/01/2025' is not an ISO 8601 date or time: use 2025-03-01, "
                              "2025-03-01 10:00:00+00:00 or 2025-03-01T10:00:00Z (without a zone: UTC)"),
    ("BTC,USD,1,2025-02-30,", "line 3: time '2025-02-30' is not an ISO 8601 date or time: use 2025-03-01, "
                              "2025-03-01 10:00:00+00:00 or 2025-03-01T10:00:00Z (without a zone: UTC)"),
    ("BTC,USD,1,1969-12-31,", "line 3: time '1969-12-31' is outside 1970-01-01..2200-01-01 (UTC)"),
    ("BTC,USD,1e40,2025-01-01,", "line 3: price '1e40' has more than 30 digits before or after the decimal point"),
    # two problems of one line, both named
    ("BTC,,x,2025-01-01,", "line 3: currency is missing; price 'x' is not a number"),
    ("BTC,USD,1,2025-01-01,,extra", "line 3: extra data after last expected column"),
    # a key twice in the file with other prices, or stored with another price
    ("ETH,USD,2500,2025-01-01 00:00:00Z,", "line 3: the price of ETH in USD at 2025-01-01 00:00:00+00 (source "
                                           "import) is 2500 here but 2000 on line 2"),
    ("SOL,USD,160,2025-01-01,", "line 3: the price of SOL in USD at 2025-01-01 00:00:00+00 (source import) is "
                                "stored as 150, not 160: an import never changes a stored price"),
])
def test_a_bad_price_line_is_named_and_nothing_is_imported(db, tmp_path, row, message):
    db.execute("INSERT INTO fifo.prices (asset, currency, price, at) VALUES ('SOL', 'USD', 150, '2025-01-01Z')")
    path = write(tmp_path, "p.csv", PRICES + "ETH,USD,2000,2025-01-01,\n" + row + "\n")
    refused(db, path, assets.import_prices, message + "; nothing was imported")


def test_the_first_bad_line_is_named_with_how_many_follow(db, tmp_path):
    path = write(tmp_path, "p.csv", PRICES + "BTC,USD,1,2025-01-01,\n" * 3 + "BTC,USD,x,2025-01-01,\n"
                 + "BTC,USD,1,2025-01-02,\n" + "BTC,USD,-2,2025-01-03,\n" + ",USD,1,2025-01-04,\n")
    refused(db, path, assets.import_prices,
            "line 5: price 'x' is not a number; nothing was imported (2 more bad line(s) after it)")


def test_headers(db, tmp_path):
    refused(db, write(tmp_path, "p.csv", "asset,currency,time\nBTC,USD,2025-01-01\n"), assets.import_prices,
            "line 1: missing column(s) price; the header must name asset,currency,price,time (optional: source)")
    refused(db, write(tmp_path, "p.csv", "asset,currency,price,price,time\n"), assets.import_prices,
            "line 1: column(s) price appear more than once")


TRANSFERS = "transfer_id,asset,from_account,to_account,quantity,fee,time\n"


def test_transfers_load_set_based(db, tmp_path):
    path = write(tmp_path, "t.csv", TRANSFERS + "t1,BTC,exchange,cold,1.2,0.0001,2024-05-01T10:00:00Z\n"
                 + "t2,BTC,cold,exchange,0.5,,2025-02-01 10:00\n")
    assert assets.import_transfers(db, path) == (2, 2)
    assert assets.import_transfers(db, path) == (2, 0)
    assert db.execute("SELECT transfer_id, quantity, fee, at FROM fifo.transfers ORDER BY 1").fetchall() == [
        ("t1", D("1.2"), D("0.0001"), datetime(2024, 5, 1, 10, tzinfo=timezone.utc)),
        ("t2", D("0.5"), D(0), datetime(2025, 2, 1, 10, tzinfo=timezone.utc))]
    # no fee column: no fees
    path = write(tmp_path, "t2.csv", "transfer_id,asset,from_account,to_account,quantity,time\n"
                                     "t3,ETH,a,b,2,2025-01-01\n")
    assert assets.import_transfers(db, path) == (1, 1)


@pytest.mark.parametrize("row, message", [
    ("t2,BTC,cold,cold,1,,2025-01-01", "line 3: from_account and to_account are both 'cold': a transfer is "
                                       "between two wallets"),
    ("t2,BTC,a,b,0,,2025-01-01", "line 3: quantity '0' must be positive"),
    ("t2,BTC,a,b,1,-0.1,2025-01-01", "line 3: fee '-0.1' must not be negative"),
    ("a/b,BTC,a,b,1,,2025-01-01", "line 3: transfer_id 'a/b' must not contain '/'"),
    ("t2,BTC,,b,1,,2025-01-01", "line 3: from_account is missing"),
    ("t1,BTC,a,b,2,,2025-01-01", "line 3: transfer_id t1 is on line 2 too, with other values"),
    ("t0,BTC,a,b,2,,2025-01-01", "line 3: transfer_id t0 is stored with other values (1 BTC x -> y, fee 0, at "
                                 "2024-01-01 00:00:00+00): an import never changes a stored transfer"),
])
def test_a_bad_transfer_line_is_named_and_nothing_is_imported(db, tmp_path, row, message):
    db.execute("INSERT INTO fifo.transfers (transfer_id, asset, from_account, to_account, quantity, at) "
               "VALUES ('t0', 'BTC', 'x', 'y', 1, '2024-01-01Z')")
    path = write(tmp_path, "t.csv", TRANSFERS + "t1,BTC,a,b,1,,2025-01-01\n" + row + "\n")
    refused(db, path, assets.import_transfers, message + "; nothing was imported")
