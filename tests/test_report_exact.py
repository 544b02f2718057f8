"""Issue 17, numbers, dates and staleness: one rounding rule in every report and format (never a zeroed
BTC amount), sizes with a stable scale, unambiguous --from/--to only, the range each report covers,
and a warning on every report when what it shows is partial or stale."""

from __future__ import annotations

import csv
import io
import json

import psycopg
import pytest

from fifo_db.cli import main
from tests.helpers import add_trades


def run(dsn, capsys, *args):
    rc = main(["--dsn", dsn, "report", *args])
    out = capsys.readouterr()
    return rc, out.out, out.err


def csv_rows(text):
    return list(csv.DictReader(io.StringIO(text)))


# ETH-BTC: buy 0.5 @ 0.05 BTC fee 0.0000125; sell 0.1 @ 0.0846 fee 0.0000215.
#   proceeds 0.1 * 0.0846 - 0.0000215 = 0.0084385; cost 0.1 * 0.05 + 0.0000125 * 0.1 / 0.5 = 0.0050025
#   P&L 0.003436 BTC; fee shares in P&L 0.0000025 + 0.0000215 = 0.000024; fees paid 0.000034
ETH_BTC = [{"order_id": "eb1", "symbol": "ETH-BTC", "side": "buy", "size": "0.5", "price": "0.05",
            "total_fees": "0.0000125", "order_time": "2025-02-10 10:00"},
           {"order_id": "es1", "symbol": "ETH-BTC", "side": "sell", "size": "0.1", "price": "0.0846",
            "total_fees": "0.0000215", "order_time": "2025-11-20 10:00"}]


def test_round_2_never_zeroes_a_btc_amount(db, dsn, capsys):
    add_trades(db, ETH_BTC)
    db.execute("SELECT compute_fifo_all(true)")
    rc, out, err = run(dsn, capsys, "pnl", "--format", "csv", "--round", "2")
    [row] = csv_rows(out)
    # BTC keeps its 8 decimals whatever N below 8 asks for; the scale is fixed, so exports compare as text
    assert (row["currency"], row["realized_fees"], row["fees_paid"], row["pnl_amount"], row["sell_volume"]) == (
        "BTC", "0.00002400", "0.00003400", "0.00343600", "0.00846000")
    rc, out, _ = run(dsn, capsys, "trades", "--format", "json", "--round", "0")
    [sell] = json.loads(out)
    assert (sell["cost_basis"], sell["sale_proceeds"], sell["pnl_amount"], sell["size"], sell["price"]) == (
        "0.00500250", "0.00843850", "0.00343600", "0.1", "0.0846")
    # --round 10: more than BTC's 8 places is honoured
    rc, out, _ = run(dsn, capsys, "pnl", "--format", "csv", "--round", "10")
    assert csv_rows(out)[0]["pnl_amount"] == "0.0034360000"
    # tables: 8 decimals for BTC (trailing zeros after the second dropped for reading)
    rc, out, _ = run(dsn, capsys, "pnl")
    assert out.splitlines()[3].split()[-2:] == ["0", "0.003436"]


# One pool, three lots of 1 @ 10.004, sold 2 @ 20.001 on Jan 5 and 1 @ 20.001 on Jan 6 (no fees):
#   each lot: proceeds 20.001 -> 20.00, cost 10.004 -> 10.00, gain 10.00 (exact 9.997)
#   sell s1 (two lots): 20.00 (the exact 19.994 alone would round to 19.99); s2: 10.00
#   so Jan 5 20.00, Jan 6 10.00, running total 30.00 (the exact 29.991 would round to 29.99)
ROUNDING = ([{"order_id": f"b{i}", "symbol": "R-USD", "side": "buy", "size": 1, "price": "10.004",
              "order_time": f"2025-01-0{i} 10:00"} for i in (1, 2, 3)]
            + [{"order_id": "s1", "symbol": "R-USD", "side": "sell", "size": 2, "price": "20.001",
                "order_time": "2025-01-05 10:00"},
               {"order_id": "s2", "symbol": "R-USD", "side": "sell", "size": 1, "price": "20.001",
                "order_time": "2025-01-06 10:00"}])


def test_one_rounding_rule_in_every_report_and_format(db, dsn, capsys, tmp_path):
    add_trades(db, ROUNDING)
    db.execute("SELECT compute_fifo_all(true)")
    # exact, without --round
    rc, out, _ = run(dsn, capsys, "trades", "--format", "csv")
    assert [r["pnl_amount"] for r in csv_rows(out)] == ["19.994", "9.997"]
    # rounded: each lot once, the sell's P&L from its rounded lots, in every format
    rc, out, _ = run(dsn, capsys, "trades", "--format", "csv", "--round", "0")
    assert [(r["sale_proceeds"], r["cost_basis"], r["pnl_amount"]) for r in csv_rows(out)] == [
        ("40.00", "20.00", "20.00"), ("20.00", "10.00", "10.00")]
    rc, out, _ = run(dsn, capsys, "trades", "--format", "json", "--round", "2")
    assert [(r["pnl_amount"], r["size"]) for r in json.loads(out)] == [("20.00", "2"), ("10.00", "1")]
    rc, out, _ = run(dsn, capsys, "trades")
    assert [line.split()[-6:-3] for line in out.splitlines()[3:]] == [["20.00", "40.00", "20.00"],
                                                                       ["10.00", "20.00", "10.00"]]
    # Form 8949: the same cents per lot, in CSV and JSON (scale kept: "10.00", not "10")
    rc, out, _ = run(dsn, capsys, "tax")
    assert [r["Gain or (loss)"] for r in csv_rows(out)] == ["10.00", "10.00", "10.00"]
    rc, out, _ = run(dsn, capsys, "tax", "--format", "json")
    assert [(r["proceeds"], r["cost_basis"], r["gain_or_loss"]) for r in json.loads(out)] == [
        ("20.00", "10.00", "10.00")] * 3
    # daily: each day the sum of its sells, the running total the sum of the days, TOTAL the sum of the rows
    rc, out, _ = run(dsn, capsys, "daily")
    days = {line.split()[0]: line.split() for line in out.splitlines()[3:]}
    assert (days["2025-01-05"][-2:], days["2025-01-06"][-2:]) == (["20.00", "20.00"], ["10.00", "30.00"])
    assert days["TOTAL"][-1] == "30.00" and days["TOTAL"][7] == "60.00"     # P&L, sell volume 40.00 + 20.00
    rc, out, _ = run(dsn, capsys, "daily", "--format", "json", "--round", "0")
    assert [(d["day"], d["pnl_amount"], d["cumulative_pnl"]) for d in json.loads(out) if d["sells"]] == [
        ("2025-01-05", "20.00", "20.00"), ("2025-01-06", "10.00", "30.00")]
    rc, out, _ = run(dsn, capsys, "pnl")
    assert out.splitlines()[3].split()[-1] == out.splitlines()[-1].split()[-1] == "30.00"
    # the HTML page shows the table's figures
    page = tmp_path / "r.html"
    assert run(dsn, capsys, "--html", str(page))[0] == 0
    html = page.read_text()
    assert '<div class="v pos">30.00</div>' in html and ">29.99<" not in html     # headline: P&L 30.00


def test_two_exports_of_the_same_trades_are_byte_identical(db, dsn, capsys):
    # the same trades written as 4.00000000 and as 4: the exports must not tell them apart
    add_trades(db, [{"order_id": "b", "symbol": "S-USD", "side": "buy", "size": "4.00000000", "price": "2.50000000",
                     "total_fees": "0.10000000", "order_time": "2025-01-01 10:00"},
                    {"order_id": "s", "symbol": "S-USD", "side": "sell", "size": "1.00000000", "price": "3.00",
                     "total_fees": "0.0100", "order_time": "2025-01-02 10:00"}])
    db.execute("SELECT compute_fifo_all(true)")
    kinds = ("trades", "lots", "positions", "pnl", "unmatched", "daily")
    options = (("--format", "csv"), ("--format", "csv", "--round", "2"), ("--format", "json", "--round", "4"))
    before = {(k, o): run(dsn, capsys, k, *o)[1] for k in kinds for o in options}
    db.execute("UPDATE trade_records SET size = trim_scale(size), price = trim_scale(price), "
               "total_fees = trim_scale(total_fees)")
    db.execute("SELECT compute_fifo_all(true)")
    after = {(k, o): run(dsn, capsys, k, *o)[1] for k in kinds for o in options}
    assert before == after
    rc, out, _ = run(dsn, capsys, "lots", "--format", "csv", "--round", "2")
    [lot] = csv_rows(out)
    assert (lot["size"], lot["price"], lot["remaining_size"], lot["total_fees"], lot["remaining_fees"],
            lot["remaining_cost"]) == ("4", "2.5", "3", "0.10", "0.08", "7.58")   # 3 * 2.5 = 7.50 + 0.075 -> 0.08


# --- dates ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    ("2025-03-01", "2025-03-01 00:00:00+00"),
    ("2025/03/01", "2025-03-01 00:00:00+00"),
    ("2025-03-01 14:30", "2025-03-01 14:30:00+00"),
    ("2025-03-01T14:30:05.5", "2025-03-01 14:30:05.5+00"),
    ("2025-03-01T14:30:00Z", "2025-03-01 14:30:00+00"),
    ("2025-03-01 14:30+01:00", "2025-03-01 13:30:00+00"),
    ("2025-03-01t14:30-0500", "2025-03-01 19:30:00+00"),
    (" 2025-03-01 ", "2025-03-01 00:00:00+00"),
])
def test_report_time_reads_iso_forms(db, text, expected):
    db.execute("SET TimeZone = 'UTC'")
    assert db.execute("SELECT fifo_report_time(%s)::text", (text,)).fetchone()[0] == expected


def test_report_time_reads_dates_in_the_report_time_zone_and_relative_forms(db):
    db.execute("SET TimeZone = 'UTC'")
    db.execute("SELECT fifo_set_setting('report_timezone', 'America/New_York')")
    assert db.execute("SELECT fifo_report_time('2025-03-01')::text").fetchone()[0] == "2025-03-01 05:00:00+00"
    assert db.execute("SELECT fifo_report_time('today') = date_trunc('day', now() AT TIME ZONE "
                      "'America/New_York') AT TIME ZONE 'America/New_York'").fetchone()[0] is True
    assert db.execute("SELECT now() - fifo_report_time('7 days ago')").fetchone()[0].days == 7
    assert db.execute("SELECT fifo_report_time('now') = now()").fetchone()[0] is True


@pytest.mark.parametrize("text", ["03/01/2025", "13/01/2025", "01/13/2025", "3/1/25", "March 1 2025",
                                  "1 Mar 2025", "2025-02-30", "2025-13-01", "20250301", "2025-03-01 25:00",
                                  "1 fortnight ago", "soon", ""])
def test_report_time_refuses_ambiguous_and_unreadable_forms(db, text):
    with pytest.raises(psycopg.errors.InvalidDatetimeFormat) as info:
        db.execute("SELECT fifo_report_time(%s)", (text,))
    assert info.value.diag.message_primary.endswith(
        'as a time: use 2025-03-01 (midnight in the report time zone), 2025-03-01 14:30, 2025-03-01T14:30:00Z '
        'or +01:00, today, yesterday, now or 7 days ago')


def test_slash_dates_are_refused_by_report_with_the_accepted_forms(db, dsn, capsys):
    add_trades(db, ETH_BTC)
    db.execute("SELECT compute_fifo_all(true)")
    for flag in ("--from", "--to"):
        rc, out, err = run(dsn, capsys, "pnl", flag, "03/01/2025")
        assert (rc, out) == (1, "")
        assert err == ('fifo-db: error: cannot read "03/01/2025" as a time: use 2025-03-01 (midnight in the report '
                       'time zone), 2025-03-01 14:30, 2025-03-01T14:30:00Z or +01:00, today, yesterday, now or 7 '
                       'days ago (hint: Year first: a date like 03/01/2025 is refused because it can be March 1 or '
                       'January 3.) [SQLSTATE 22007]\n')


def test_every_report_says_the_range_it_covers(db, dsn, capsys, tmp_path):
    add_trades(db, ETH_BTC)
    db.execute("SELECT compute_fifo_all(true)")
    rc, out, err = run(dsn, capsys, "pnl", "--from", "2025-03-01", "--to", "2025-12-01 12:30")
    assert (rc, err) == (0, "")
    assert out.splitlines()[0] == "Realized P&L by symbol: all symbols, traded from 2025-03-01 to before 2025-12-01 12:30 (UTC)"
    rc, out, err = run(dsn, capsys, "trades", "--year", "2025", "--format", "csv")
    assert err == "Realized P&L per sell: all symbols, sold from 2025-01-01 to before 2026-01-01 (UTC)\n"
    assert out.startswith("account,symbol,")     # the data stays plain CSV
    rc, out, err = run(dsn, capsys, "daily", "--symbol", "ETH-BTC", "--format", "json", "--from", "2025-06-01")
    assert err == "Realized P&L by day: ETH-BTC, traded from 2025-06-01 on (UTC)\n" and json.loads(out)
    rc, out, err = run(dsn, capsys, "positions", "--to", "2025-06-01")
    assert out.splitlines()[0] == "Open positions: all symbols, as of 2025-06-01 (UTC)"
    rc, out, err = run(dsn, capsys, "lots", "--from", "2025-01-01")
    assert out.splitlines()[0] == "Open lots: all symbols, bought from 2025-01-01 on, as of now (UTC)"
    rc, out, err = run(dsn, capsys, "unmatched", "-o", str(tmp_path / "u.txt"))
    assert (tmp_path / "u.txt").read_text().splitlines()[0] == "Unmatched (oversold) sells: all symbols, all trades (UTC)"
    rc, out, err = run(dsn, capsys, "--html", str(tmp_path / "r.html"), "--from", "2025-01-01")
    assert "Cumulative realized P&amp;L, all symbols, 2025-01-01 to now (UTC)" in (tmp_path / "r.html").read_text()


# --- staleness -----------------------------------------------------------------------------------------

def test_every_report_warns_about_trades_not_yet_computed(db, dsn, capsys, tmp_path):
    add_trades(db, ETH_BTC + [{"order_id": "x-b", "symbol": "X-USD", "side": "buy", "size": 1, "price": 1,
                               "order_time": "2025-01-01"}])
    db.execute("SELECT compute_fifo_all(true)")
    # a sell appended after the computation: its pool has a change not computed yet
    add_trades(db, [{"order_id": "es2", "symbol": "ETH-BTC", "side": "sell", "size": "0.1", "price": "0.09",
                     "order_time": "2025-12-01"}])
    warning = ("warning: stale: 1 of 2 pool(s) have trades changed since they were computed (e.g. ETH-BTC); "
               "their figures may lag their trades: run `fifo-db compute --all-symbols`")
    # verify names the same pool from the same definition (fifo._pending_pools)
    assert db.execute("SELECT check_name, symbol FROM verify_fifo()").fetchall() == [("stale", "ETH-BTC")]
    for kind in ("pnl", "trades", "daily", "monthly", "yearly", "lots", "positions", "unmatched", "tax"):
        for fmt in ("table", "csv", "json"):
            rc, out, err = run(dsn, capsys, kind, "--format", fmt)
            assert rc == 0 and err.splitlines()[0] == warning, (kind, fmt, err)
            assert warning not in out
            if fmt == "json":
                json.loads(out)                              # still machine-readable
    rc, out, err = run(dsn, capsys, "--html", str(tmp_path / "r.html"))
    assert err.splitlines()[0] == warning
    assert ('<p class="warning" style="color:#a00;font-weight:bold">stale: 1 of 2 pool(s) have trades changed '
            'since they were computed (e.g. ETH-BTC); their figures may lag their trades: run `fifo-db compute '
            '--all-symbols`</p>') in (tmp_path / "r.html").read_text()
    # the command the warning names clears it
    assert main(["--dsn", dsn, "compute", "--all-symbols"]) == 0
    capsys.readouterr()
    rc, out, err = run(dsn, capsys, "pnl")
    assert (rc, err) == (0, "")


def test_partial_and_stale_versions_each_get_their_line(db, dsn, capsys):
    add_trades(db, ETH_BTC + [{"order_id": "x-b", "symbol": "X-USD", "side": "buy", "size": 1, "price": 1,
                               "order_time": "2025-01-01"}])
    db.execute("SELECT compute_fifo('ETH-BTC')")
    rc, out, err = run(dsn, capsys, "positions", "--format", "csv")
    assert err.splitlines()[0] == (
        "warning: partial: 1 of 2 pool(s) are not computed in version 1 (e.g. X-USD); their sells show as "
        "'not computed' and add nothing: run `fifo-db compute --all-symbols`")
    db.execute("SELECT fifo_set_setting('current_version', '2')")
    rc, out, err = run(dsn, capsys, "pnl")
    assert (rc, out) == (1, "")
    assert err == ("fifo-db: error: not computed: none of the 2 pool(s) with trades is computed in version 2, so "
                   "there is no P&L to report yet: run `fifo-db compute --all-symbols`\n")
