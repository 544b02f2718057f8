"""The asset (tax) view (issue 18, docs/engine.md "The asset (tax) view", docs/rules.md "The
asset view"): the filer's scenario worked by hand (BTC against USD and USDT, ETH sold for BTC,
BTC moved to a cold wallet and back, fees in BNB, a leg with no price), randomized comparison
with the plain-Python reference (fifo_db/asset_reference.py) under both poolings, and
BotTrader's asset view equal to its pair view."""

from __future__ import annotations

import random
from datetime import timedelta
from decimal import Decimal as D

import psycopg
import pytest

from fifo_db import asset_reference as ar
from fifo_db import assets
from fifo_db.adopt import adopt
from tests.bottrader import bot, bot_template  # noqa: F401
from tests.helpers import add_trades, ts

ROW_SQL = ("SELECT wallet, asset, disposal_id, kind, lot_id, quantity, acquired_at, disposed_at, cost_basis, "
           "proceeds, unmatched FROM fifo.asset_allocations")


def computed(db) -> list[ar.Row]:
    return sorted((ar.Row(*r) for r in db.execute(ROW_SQL).fetchall()), key=ar.Row.key)


UNORDERED = """SELECT DISTINCT wallet, asset FROM (
    SELECT wallet, asset,
           row_number() OVER (PARTITION BY wallet, asset ORDER BY acquired_at, origin_order COLLATE "C", origin_leg,
                                                                 path COLLATE "C") AS k,
           row_number() OVER (PARTITION BY wallet, asset ORDER BY arrived_at, arrival_phase,
                                                                 arrival_seq COLLATE "C", lot_id COLLATE "C") AS r
    FROM fifo.asset_lots) x WHERE k <> r ORDER BY 1, 2"""


def unordered_pools(db) -> list[tuple]:
    """Pools where a lot arrived after a later-acquired one: the nested-queue branch (docs/engine.md)."""
    return db.execute(UNORDERED).fetchall()


def add_fee_trades(db, trades):
    """add_trades plus fee_currency."""
    add_trades(db, [{k: v for k, v in t.items() if k != "fee_currency"} for t in trades])
    for t in trades:
        if t.get("fee_currency"):
            db.execute("UPDATE trade_records SET fee_currency = %s WHERE order_id = %s",
                       (t["fee_currency"], t["order_id"]))


def add_transfers(db, transfers):
    for x in transfers:
        db.execute("INSERT INTO fifo.transfers (transfer_id, asset, from_account, to_account, quantity, fee, at) "
                   "VALUES (%s, %s, %s, %s, %s, %s, %s)",
                   (x["transfer_id"], x["asset"], x["from"], x["to"], D(str(x["quantity"])),
                    D(str(x.get("fee", 0))), ts(x["at"])))


def add_prices(db, prices):
    for asset, price, at in prices:
        db.execute("INSERT INTO fifo.prices (asset, currency, price, at) VALUES (%s, 'USD', %s, %s)",
                   (asset, D(str(price)), ts(at)))


E, C = "exchange", "cold"
FILER_TRADES = [
    {"order_id": "bnb1", "account": E, "symbol": "BNB-USD", "side": "buy", "size": 1, "price": 250,
     "order_time": "2024-01-05 10:00"},
    {"order_id": "btc1", "account": E, "symbol": "BTC-USD", "side": "buy", "size": 1, "price": 40000,
     "total_fees": 10, "order_time": "2024-01-10 10:00"},
    # against USDT (an alias of USD here), the fee paid in BNB
    {"order_id": "btc2", "account": E, "symbol": "BTC-USDT", "side": "buy", "size": "0.5", "price": 42000,
     "total_fees": "0.01", "fee_currency": "BNB", "order_time": "2024-02-01 10:00"},
    {"order_id": "eth1", "account": E, "symbol": "ETH-USD", "side": "buy", "size": 10, "price": 3000,
     "order_time": "2024-03-01 10:00"},
    # ETH sold for BTC, fee in BNB
    {"order_id": "ethbtc1", "account": E, "symbol": "ETH-BTC", "side": "sell", "size": 5, "price": "0.05",
     "total_fees": "0.005", "fee_currency": "BNB", "order_time": "2024-04-01 10:00"},
    {"order_id": "btc4", "account": E, "symbol": "BTC-USD", "side": "buy", "size": "0.1", "price": 65000,
     "order_time": "2024-06-01 10:00"},
    {"order_id": "sell1", "account": E, "symbol": "BTC-USD", "side": "sell", "size": "0.6", "price": 90000,
     "total_fees": 9, "order_time": "2025-03-01 10:00"},
    # no BTC or ETH price within a day: unpriced, flagged
    {"order_id": "ethbtc2", "account": E, "symbol": "ETH-BTC", "side": "sell", "size": 1, "price": "0.04",
     "order_time": "2025-03-05 10:00"},
]
FILER_TRANSFERS = [
    {"transfer_id": "t1", "asset": "BTC", "from": E, "to": C, "quantity": "1.2", "fee": "0.0001",
     "at": "2024-05-01 10:00"},
    {"transfer_id": "t2", "asset": "BTC", "from": C, "to": E, "quantity": "0.5", "at": "2025-02-01 10:00"},
]
FILER_PRICES = [("BNB", 300, "2024-02-01 09:00"), ("BNB", 500, "2024-04-01 09:00"),
                ("BTC", 70000, "2024-04-01 09:30"), ("BTC", 60000, "2024-05-01 09:00")]


@pytest.fixture
def filer(db):
    db.execute("SELECT fifo_set_setting('report_currency_aliases', 'USDT')")
    add_fee_trades(db, FILER_TRADES)
    add_transfers(db, FILER_TRANSFERS)
    add_prices(db, FILER_PRICES)
    return db


def test_the_filers_year_worked_by_hand(filer):
    run = filer.execute("SELECT rounds, legs, unpriced, unmatched, unsplit FROM compute_fifo_assets()").fetchone()
    # rounds: t1 (no transfer in before it), t2 (fed by t1), and the round that confirms: 3
    assert run == (3, 12, 2, 0, 0)
    t = ts
    assert computed(filer) == sorted([
        # the BNB fee of btc2: 0.01 BNB at 300 = 3 of proceeds, basis 250 * 0.01
        ar.Row(E, "BNB", "btc2:fee", "fee", "bnb1:base", D("0.01"), t("2024-01-05 10:00"), t("2024-02-01 10:00"),
               D("2.5"), D("3"), False),
        # ETH for BTC: 5 ETH for 0.25 BTC at 70000 = 17500, less the BNB fee (0.005 at 500 = 2.5)
        ar.Row(E, "ETH", "ethbtc1:base", "trade", "eth1:base", D(5), t("2024-03-01 10:00"), t("2024-04-01 10:00"),
               D("15000"), D("17497.5"), False),
        ar.Row(E, "BNB", "ethbtc1:fee", "fee", "bnb1:base", D("0.005"), t("2024-01-05 10:00"),
               t("2024-04-01 10:00"), D("1.25"), D("2.5"), False),
        # t1 moves 1.2 BTC, FIFO: all of btc1 (basis 40010) and 0.2 of btc2 (21003 * 0.2 / 0.5)
        ar.Row(E, "BTC", "t1:out", "transfer", "btc1:base", D(1), t("2024-01-10 10:00"), t("2024-05-01 10:00"),
               D("40010"), None, False),
        ar.Row(E, "BTC", "t1:out", "transfer", "btc2:base", D("0.2"), t("2024-02-01 10:00"),
               t("2024-05-01 10:00"), D("8401.2"), None, False),
        # its fee, 0.0001 BTC at 60000 = 6, the next units of btc2: 21003 * 0.0001 / 0.5 = 4.2006
        ar.Row(E, "BTC", "t1:fee", "transfer_fee", "btc2:base", D("0.0001"), t("2024-02-01 10:00"),
               t("2024-05-01 10:00"), D("4.2006"), D("6"), False),
        # t2 brings 0.5 of btc1 back from the cold wallet
        ar.Row(C, "BTC", "t2:out", "transfer", "btc1:base/t1", D("0.5"), t("2024-01-10 10:00"),
               t("2025-02-01 10:00"), D("20005"), None, False),
        # sell1: the earliest-acquired units held: btc1's returned piece (2024-01-10) before btc2's rest
        # (2024-02-01), although it arrived last. Proceeds 0.6 * 90000 - 9 = 53991, split 5:1.
        ar.Row(E, "BTC", "sell1:base", "trade", "btc1:base/t1/t2", D("0.5"), t("2024-01-10 10:00"),
               t("2025-03-01 10:00"), D("20005"), D("44992.5"), False),
        ar.Row(E, "BTC", "sell1:base", "trade", "btc2:base", D("0.1"), t("2024-02-01 10:00"),
               t("2025-03-01 10:00"), D("4200.6"), D("8998.5"), False),
        # no price: proceeds NULL (flagged), never zero; the basis is known
        ar.Row(E, "ETH", "ethbtc2:base", "trade", "eth1:base", D(1), t("2024-03-01 10:00"),
               t("2025-03-05 10:00"), D("3000"), None, False),
    ], key=ar.Row.key)
    # the Form 8949 rows: terms, and the unpriced row flagged
    rows = filer.execute("SELECT description, term, gain, unpriced FROM fifo_asset_disposals "
                         "WHERE disposal_id IN ('sell1:base', 'ethbtc2:base', 't1:fee') "
                         "ORDER BY disposal_id, lot_id").fetchall()
    assert rows == [("1 ETH", "long", None, True),
                    ("0.5 BTC", "long", D("24987.5"), False), ("0.1 BTC", "long", D("4797.9"), False),
                    ("0.0001 BTC", "short", D("1.7994"), False)]
    # what is still held, with the basis left on each lot
    assert filer.execute("SELECT wallet, asset, lot_id, quantity, cost_basis FROM fifo_asset_open_lots "
                         "ORDER BY wallet, asset, lot_id").fetchall() == [
        (C, "BTC", "btc1:base/t1", D("0.5"), D("20005")),
        (C, "BTC", "btc2:base/t1", D("0.2"), D("8401.2")),
        (E, "BNB", "bnb1:base", D("0.985"), D("246.25")),
        (E, "BTC", "btc2:base", D("0.1999"), D("8396.9994")),
        (E, "BTC", "btc4:base", D("0.1"), D("6500")),
        (E, "BTC", "ethbtc1:quote", D("0.25"), D("17500")),
        (E, "BTC", "ethbtc2:quote", D("0.04"), None),
        (E, "ETH", "eth1:base", D("4"), D("12000"))]
    # the legs say why a value is missing
    assert filer.execute("SELECT unpriced FROM fifo.asset_legs WHERE leg_id = 'ethbtc2:base'").fetchone()[0] == \
        "no BTC or ETH price in USD within 1 day before 2025-03-05 10:00:00+00"
    # and the plain-Python reference agrees, row for row; the exchange's BTC took the nested-queue
    # branch (btc1's piece came back after btc2 arrived), every other pool the interval overlap
    assert computed(filer) == reference(filer)
    assert unordered_pools(filer) == [(E, "BTC")]


def test_universal_pooling_ignores_transfers_but_not_their_fees(filer):
    filer.execute("SELECT fifo_set_setting('tax_pooling', 'universal')")
    run = filer.execute("SELECT rounds, unmatched FROM compute_fifo_assets()").fetchone()
    assert run == (1, 0)
    # one BTC pool: sell1 takes btc1 (the earliest) directly
    assert filer.execute("SELECT lot_id, quantity, cost_basis FROM fifo.asset_allocations "
                         "WHERE disposal_id = 'sell1:base'").fetchall() == [("btc1:base", D("0.6"), D("24006"))]
    assert filer.execute("SELECT wallet, lot_id, quantity FROM fifo.asset_allocations "
                         "WHERE disposal_id = 't1:fee'").fetchall() == [("*", "btc1:base", D("0.0001"))]
    assert computed(filer) == reference(filer)


def test_a_transfer_of_more_than_the_source_holds_is_flagged(db):
    add_trades(db, [{"order_id": "b", "account": "A", "symbol": "BTC-USD", "side": "buy", "size": 1, "price": 100,
                     "order_time": "2024-01-01 00:00"},
                    {"order_id": "s", "account": "B", "symbol": "BTC-USD", "side": "sell", "size": 2, "price": 150,
                     "order_time": "2024-03-01 00:00"}])
    add_transfers(db, [{"transfer_id": "x", "asset": "BTC", "from": "A", "to": "B", "quantity": "1.5",
                        "at": "2024-02-01 00:00"}])
    assert db.execute("SELECT unmatched FROM compute_fifo_assets()").fetchone()[0] == 2
    assert db.execute("SELECT disposal_id, lot_id, quantity, cost_basis, proceeds, unmatched "
                      "FROM fifo.asset_allocations ORDER BY disposal_id, lot_id NULLS LAST").fetchall() == [
        ("s:base", "b:base/x", D(1), D(100), D(150), False),
        ("s:base", None, D(1), None, D(150), True),           # B never had the other unit
        ("x:out", "b:base", D(1), D(100), None, False),
        ("x:out", None, D("0.5"), None, None, True)]          # A held 1, not 1.5
    assert computed(db) == reference(db)


def test_symbol_map_and_fee_in_the_base_asset(db):
    db.execute("SELECT fifo_set_setting('symbol_map', 'BNBUSDT=BNB/USDT')")
    db.execute("SELECT fifo_set_setting('report_currency_aliases', 'USDT')")
    add_fee_trades(db, [
        # Binance withholds the fee in the coin bought: 10 - 0.01 BNB arrive, for 3000 USDT
        {"order_id": "b", "symbol": "BNBUSDT", "side": "buy", "size": 10, "price": 300, "total_fees": "0.01",
         "fee_currency": "BNB", "order_time": "2024-01-01 00:00"},
        {"order_id": "s", "symbol": "BNBUSDT", "side": "sell", "size": "9.99", "price": 310,
         "order_time": "2024-02-01 00:00"}])
    assert db.execute("SELECT legs, unsplit FROM compute_fifo_assets()").fetchone() == (2, 0)
    assert db.execute("SELECT quantity, cost_basis, proceeds, gain FROM fifo.asset_allocations").fetchall() == \
        [(D("9.99"), D("3000"), D("3096.9"), D("96.9"))]
    db.execute("SELECT fifo_set_setting('symbol_map', '')")
    assert db.execute("SELECT legs, unsplit FROM compute_fifo_assets()").fetchone() == (0, 2)


def test_settings_refuse_bad_values(db):
    for name, value in (("tax_pooling", "fifo"), ("price_window", "forever"), ("price_window", "0 s"),
                        ("symbol_map", "BTCUSD=BTC"), ("symbol_map", "BTC USD=BTC/USD")):
        with pytest.raises(psycopg.Error) as info:
            db.execute("SELECT fifo_set_setting(%s, %s)", (name, value))
        assert info.value.sqlstate == "22023", (name, value)


def reference(db) -> list[ar.Row]:
    """What fifo_db.asset_reference makes of the database's trades, transfers, prices and settings
    (the same reading `fifo-db assets verify` does)."""
    return assets.reference_rows(db)


SYMBOLS = ["BTC-USD", "ETH-USD", "ETH-BTC", "BTC-USDT", "BNB-USD", "SOL-ETH"]


def random_world(db, rng: random.Random, n: int, start: str = "2024-01-01 00:00") -> None:
    base = ts(start)
    accounts = ["A", "B", "C"]

    def when():   # coarse times, so ties between trades, transfers and prices happen
        return (base + timedelta(hours=rng.randint(0, 60) * 6)).isoformat()

    trades = []
    for i in range(n):
        symbol = rng.choice(SYMBOLS)
        t = {"order_id": f"o{i:03d}", "account": rng.choice(accounts), "symbol": symbol,
             "side": rng.choice(["buy", "buy", "sell"]), "size": D(rng.randint(1, 40)) / 4,
             "price": D(rng.randint(1, 400)) / 8 if "-USD" not in symbol else D(rng.randint(100, 9000)),
             "total_fees": D(rng.randint(0, 3)) / 100, "order_time": when()}
        if rng.random() < 0.3:
            t["fee_currency"] = rng.choice(["BNB", "BTC", "ETH", "USD", "SOL"])
        trades.append(t)
    add_fee_trades(db, trades)
    add_transfers(db, [{"transfer_id": f"x{i:02d}", "asset": rng.choice(["BTC", "ETH", "BNB"]),
                        "from": (pair := rng.sample(accounts, 2))[0], "to": pair[1],
                        "quantity": D(rng.randint(1, 20)) / 4, "fee": D(rng.choice([0, 0, 1, 2])) / 100,
                        "at": when()} for i in range(n // 4)])
    seen = set()
    for _ in range(n):
        p = (rng.choice(["BTC", "ETH", "BNB", "SOL"]), D(rng.randint(1, 5000)), when())
        if (p[0], p[2]) not in seen:
            seen.add((p[0], p[2]))
            add_prices(db, [p])


@pytest.mark.parametrize("seed", range(6))
def test_random_worlds_agree_with_the_reference(db, seed):
    rng = random.Random(seed)
    if seed % 2:
        db.execute("SELECT fifo_set_setting('report_currency_aliases', 'USDT')")
    if seed % 3 == 2:
        db.execute("SELECT fifo_set_setting('tax_pooling', 'universal')")
    db.execute("SELECT fifo_set_setting('price_window', %s)", (rng.choice(["6 hours", "1 day", "3 days"]),))
    random_world(db, rng, 60)
    db.execute("SELECT compute_fifo_assets()")
    got = computed(db)
    assert got == reference(db)
    # both branches of the engine ran: pools with a lot arriving out of key order, and the others
    assert bool(unordered_pools(db)) == (seed % 3 != 2)
    assert any(r.kind == "transfer" for r in got) == (seed % 3 != 2)


def test_bottrader_asset_view_equals_its_pair_view(bot):  # noqa: F811
    adopt(bot.conn)
    c = bot.conn
    assert c.execute("SELECT (compute_fifo_all(true)).status").fetchone()[0] == "ok"
    c.execute("SELECT compute_fifo_assets()")
    pair = c.execute(
        "SELECT sell_trade_id, buy_trade_id, allocated_size, cost_basis, sale_proceeds, pnl_amount, buy_time, "
        "sell_time, fifo._base_asset(symbol) FROM fifo_allocations WHERE version = fifo._current_version() "
        "ORDER BY 1, 2").fetchall()
    asset = c.execute(
        "SELECT ref_id, split_part(lot_id, ':', 1), quantity, cost_basis, proceeds, gain, acquired_at, disposed_at, "
        "asset FROM fifo.asset_allocations ORDER BY 1, 2").fetchall()
    assert len(pair) > 10 and asset == pair
    assert c.execute("SELECT DISTINCT wallet FROM fifo.asset_allocations").fetchall() == [("default",)]


def cli(dsn, capsys, *args):
    from fifo_db.cli import main
    rc = main(["--dsn", dsn, *args])
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_csv_imports_and_the_asset_reports(db, dsn, capsys, tmp_path):
    db.execute("SELECT fifo_set_setting('report_currency_aliases', 'USDT')")
    add_fee_trades(db, FILER_TRADES)
    prices = tmp_path / "prices.csv"
    prices.write_text("asset,currency,price,time\n" + "".join(f"{a},USD,{p},{t}:00Z\n" for a, p, t in FILER_PRICES)
                      + "BTC,USD,95000,2025-06-30 00:00:00+00:00\nETH,USD,2500,2025-06-30 00:00:00+00:00\n"
                        "BNB,USD,600,2025-06-30 00:00:00+00:00\n")
    transfers = tmp_path / "transfers.csv"
    transfers.write_text("transfer_id,asset,from_account,to_account,quantity,fee,time\n"
                         "t1,BTC,exchange,cold,1.2,0.0001,2024-05-01T10:00:00Z\n"
                         "t2,BTC,cold,exchange,0.5,,2025-02-01T10:00:00Z\n")
    assert cli(dsn, capsys, "assets", "prices", str(prices))[:2] == \
        (0, f"imported 7 of 7 prices from {prices} (0 already present)\n")
    assert cli(dsn, capsys, "assets", "transfers", str(transfers))[:2] == \
        (0, f"imported 2 of 2 transfers from {transfers} (0 already present)\n")
    # again: nothing new
    assert cli(dsn, capsys, "assets", "transfers", str(transfers))[1].startswith("imported 0 of 2")
    bad = tmp_path / "bad.csv"
    bad.write_text("asset,currency,price,time\nBTC,USD,lots,2025-01-01\n")
    rc, _, err = cli(dsn, capsys, "assets", "prices", str(bad))
    assert (rc, err) == (1, f"fifo-db: error: {bad}: line 2: price 'lots' is not a number; nothing was imported\n")

    rc, out, err = cli(dsn, capsys, "report", "tax", "--view", "asset", "--year", "2025")
    assert rc == 0
    lines = out.splitlines()
    assert lines[0].startswith("Description of property,") and lines[0].endswith(",Wallet,No price (left out)")
    assert lines[1:] == [
        "0.5 BTC,01/10/2024,03/01/2025,44992.50,20005.00,,,24987.50,Long-term,II,L,,USD,exchange,",
        "0.1 BTC,02/01/2024,03/01/2025,8998.50,4200.60,,,4797.90,Long-term,II,L,,USD,exchange,",
        "1 ETH,03/01/2024,03/05/2025,,3000.00,,,,Long-term,II,L,,USD,exchange,yes"]
    legs = ("warning: 2 leg(s) have no price and are left out of every total (never valued at zero): ethbtc2:base: "
            "no BTC or ETH price in USD within 1 day before 2025-03-05 10:00:00+00; ethbtc2:quote: no BTC or ETH "
            "price in USD within 1 day before 2025-03-05 10:00:00+00; import prices with `fifo-db assets prices "
            "FILE.csv` or widen the price_window setting\n")
    summary = ("tax, asset view (2025; USD; long-term rule anniversary; broker reported none; 1 wallet(s))\n"
               "wallet exchange: Part I (short-term, box -): 0 row(s), proceeds 0.00, cost 0.00, gain 0.00; "
               "Part II (long-term, box L): 2 row(s), proceeds 53,991.00, cost 24,205.60, gain 29,785.40\n"
               "warning: 1 row(s) have no price (column 'No price'): left out of the totals above, never valued "
               "at zero: ethbtc2:base; import prices with `fifo-db assets prices FILE.csv` or widen the "
               "price_window setting\n")
    scope = "Form 8949 rows (asset view): all wallets, sold from 2025-01-01 to before 2026-01-01 (UTC)\n"
    assert err == legs + scope + summary
    # the table: the scope line first, money as the pair view's tables show it
    rc, out, err = cli(dsn, capsys, "report", "tax", "--view", "asset", "--year", "2025", "--format", "table")
    assert (rc, err) == (0, legs + summary)
    assert out == scope + (
        "wallet    part  box  description  date_acquired  date_sold    proceeds  cost_basis  gain_or_loss  "
        "no_basis  unpriced  currency\n"
        "--------  ----  ---  -----------  -------------  ----------  ---------  ----------  ------------  "
        "--------  --------  --------\n"
        "exchange  II    L    0.5 BTC      2024-01-10     2025-03-01  44,992.50   20,005.00     24,987.50  "
        "no        no        USD\n"
        "exchange  II    L    0.1 BTC      2024-02-01     2025-03-01   8,998.50    4,200.60      4,797.90  "
        "no        no        USD\n"
        "exchange  II    L    1 ETH        2024-03-01     2025-03-05               3,000.00                "
        "no        yes       USD\n")

    rc, out, err = cli(dsn, capsys, "report", "positions", "--mark", "2025-07-01")
    mark = "Open lots marked to market (asset view): all wallets, as of 2025-07-01 (UTC)\n"
    left = ("warning: 1 open lot(s) have no mark price or no basis (column left_out): left out of cost, market "
            "value and unrealized P&L, never valued at zero\n")
    assert (rc, err) == (0, legs + left)
    # cold: 0.7 BTC at 95000 = 66500, basis 28406.20. exchange BTC: four lots (0.5899 BTC); ethbtc2's
    # unpriced 0.04 BTC has no basis and is left out of the money: 0.5499 * 95000 = 52240.50 against a
    # basis of 32396.9994 (each lot rounded to cents once, then added up: 32,397.00)
    assert out == mark + (
        "wallet    asset    lots  quantity  price  price_at          cost_basis  market_value  unrealized  "
        "left_out  currency\n"
        "--------  -------  ----  --------  -----  ----------------  ----------  ------------  ----------  "
        "--------  --------\n"
        "cold      BTC         2       0.7  95000  2025-06-30 00:00   28,406.20     66,500.00   38,093.80         "
        "0  USD\n"
        "exchange  BNB         1     0.985    600  2025-06-30 00:00      246.25        591.00      344.75         "
        "0  USD\n"
        "exchange  BTC         4    0.5899  95000  2025-06-30 00:00   32,397.00     52,240.50   19,843.50         "
        "1  USD\n"
        "exchange  ETH         1         4   2500  2025-06-30 00:00   12,000.00     10,000.00   -2,000.00         "
        "0  USD\n"
        "(all)     BNB         1     0.985    600  2025-06-30 00:00      246.25        591.00      344.75         "
        "0  USD\n"
        "(all)     BTC         6    1.2899  95000  2025-06-30 00:00   60,803.20    118,740.50   57,937.30         "
        "1  USD\n"
        "(all)     ETH         1         4   2500  2025-06-30 00:00   12,000.00     10,000.00   -2,000.00         "
        "0  USD\n"
        "(all)     (total)     8                                      73,049.45    129,331.50   56,282.05         "
        "1  USD\n")
    # csv: exact by default, --round N as the pair view's reports (never below the currency's places)
    rc, out, err = cli(dsn, capsys, "report", "positions", "--mark", "2025-07-01", "--format", "csv")
    assert (rc, err) == (0, legs + mark + left)
    assert out.splitlines()[3] == "exchange,BTC,4,0.5899,95000,2025-06-30T00:00:00+00:00,32396.9994,52240.5," \
                                  "19843.5006,1,USD"
    rc, out, err = cli(dsn, capsys, "report", "positions", "--mark", "2025-07-01", "--format", "csv", "--round", "0")
    assert out.splitlines()[3] == "exchange,BTC,4,0.5899,95000,2025-06-30T00:00:00+00:00,32397.00,52240.50," \
                                  "19843.50,1,USD"
    rc, out, err = cli(dsn, capsys, "report", "positions", "--mark", "2025-07-01", "--format", "csv", "--round", "3")
    assert out.splitlines()[-1] == "(all),(total),8,,,,73049.449,129331.500,56282.051,1,USD"
    # a sale added since: the next report brings the view up to date by an incremental run of the
    # one pool it reaches (exchange ETH), and shows it
    runs = db.execute("SELECT count(*) FROM fifo.asset_runs").fetchone()[0]
    add_fee_trades(db, [{"order_id": "late", "account": "exchange", "symbol": "ETH-USD", "side": "sell",
                         "size": 1, "price": 2600, "total_fees": 0, "order_time": "2025-07-02 10:00"}])
    rc, out, err = cli(dsn, capsys, "report", "tax", "--view", "asset", "--year", "2025")
    assert out.splitlines()[-1] == "1 ETH,03/01/2024,07/02/2025,2600.00,3000.00,,,-400.00,Long-term,II,L,,USD,exchange,"
    assert db.execute("SELECT kind, pools, rounds FROM fifo.asset_runs ORDER BY run_id DESC LIMIT 1").fetchone() \
        == ("incremental", 1, 1)
    assert db.execute("SELECT count(*) FROM fifo.asset_runs").fetchone()[0] == runs + 1
    # what does not apply is refused in one line
    rc, _, err = cli(dsn, capsys, "report", "tax", "--view", "asset", "--symbol", "BTC-USD")
    assert (rc, err) == (1, "fifo-db: error: report: --symbol, --chart and --html are the pair view's; the asset "
                            "view pools every pair of an asset (filter its rows by wallet and asset in the output)\n")
    rc, _, err = cli(dsn, capsys, "report", "lots", "--view", "asset")
    assert (rc, err) == (1, "fifo-db: error: report: --view asset goes with `report tax`, --mark with "
                            "`report positions`\n")


def test_the_generic_import_reads_fee_currency(db, dsn, capsys, tmp_path):
    f = tmp_path / "t.csv"
    f.write_text("order_id,symbol,side,size,price,total_fees,fee_currency,order_time\n"
                 "a,BTC-USDT,buy,1,100,0.5,BNB,2025-01-01T00:00:00Z\n"
                 "b,BTC-USDT,sell,1,110,0.1,,2025-01-02T00:00:00Z\n")
    assert cli(dsn, capsys, "import", str(f))[0] == 0
    assert db.execute("SELECT order_id, fee_currency FROM trade_records ORDER BY 1").fetchall() == \
        [("a", "BNB"), ("b", None)]
    # the same file again: nothing new; a changed fee currency is named
    assert "imported 0 of 2 rows" in cli(dsn, capsys, "import", str(f))[1]
    f.write_text("order_id,symbol,side,size,price,total_fees,fee_currency,order_time\n"
                 "a,BTC-USDT,buy,1,100,0.5,ETH,2025-01-01T00:00:00Z\n"
                 "c,BTC-USDT,buy,1,100,0.5,B N B,2025-01-01T00:00:00Z\n")
    rc, _, err = cli(dsn, capsys, "import", str(f))
    assert rc == 1
    assert "fee_currency BNB (this file: ETH)" in err
    assert "fee_currency 'B N B' is not a currency code (1 to 16 letters and digits)" in err


def test_explain_a_disposal_and_a_transfer_and_verify(filer, dsn, capsys):
    rc, out, err = cli(dsn, capsys, "assets", "verify")
    assert (rc, err) == (1, "fifo-db: error: assets verify: the asset view has not been computed; "
                            "run `fifo-db assets compute` first\n")
    filer.execute("SELECT compute_fifo_assets()")
    assert cli(dsn, capsys, "assets", "verify")[:2] == (0, "asset view: all 10 rows equal the plain-Python reference\n")
    rows = filer.execute("SELECT step, kind, lot_id, quantity, note FROM explain_fifo_asset('sell1')").fetchall()
    assert rows == [
        (0, "base dispose", None, D("0.6"), "proceeds in the filer's currency"),
        (1, "lot", "btc1:base/t1/t2", D("0.5"),
         "acquired 2024-01-10 10:00 by btc1 (base) in exchange; moved by t1 exchange -> cold 2024-05-01 10:00, "
         "t2 cold -> exchange 2025-02-01 10:00; long-term"),
        (2, "lot", "btc2:base", D("0.1"),
         "acquired 2024-02-01 10:00 by btc2 (base) in exchange; 0.2001 of its 0.5 taken before; long-term")]
    rows = filer.execute("SELECT kind, wallet, lot_id, quantity, cost_basis, proceeds, note "
                         "FROM explain_fifo_asset('t1')").fetchall()
    assert rows == [
        ("transfer dispose", E, None, D("1.2"), None, None, "moves lots to another wallet: realizes nothing"),
        ("transfer_fee dispose", E, None, D("0.0001"), None, D("6"), "proceeds in the filer's currency"),
        ("lot", E, "btc1:base", D(1), D("40010"), None,
         "acquired 2024-01-10 10:00 by btc1 (base) in exchange; arrives in cold keeping date and basis; short-term"),
        ("lot", E, "btc2:base", D("0.2"), D("8401.2"), None,
         "acquired 2024-02-01 10:00 by btc2 (base) in exchange; arrives in cold keeping date and basis; short-term"),
        ("lot", E, "btc2:base", D("0.0001"), D("4.2006"), D("6"),
         "acquired 2024-02-01 10:00 by btc2 (base) in exchange; 0.2 of its 0.5 taken before; short-term")]
    rc, out, _ = cli(dsn, capsys, "assets", "explain", "ethbtc2")
    assert rc == 0 and "no value: no BTC or ETH price in USD within 1 day before 2025-03-05 10:00:00+00 " \
                       "(flagged, left out of totals)" in out
    rc, _, err = cli(dsn, capsys, "assets", "explain", "nope")
    assert rc == 1 and 'no trade leg or transfer "nope" in the asset view' in err
    # a stored row changed by hand is found
    filer.execute("UPDATE fifo.asset_allocations SET cost_basis = 1 WHERE disposal_id = 'sell1:base' "
                  "AND lot_id = 'btc2:base'")
    rc, out, _ = cli(dsn, capsys, "assets", "verify")
    assert rc == 1 and out == ("exchange/BTC disposal sell1:base lot btc2:base: cost_basis 1 "
                               "(reference: 4200.6)\n")


def test_runs_are_kept_to_the_last_100(db):
    for _ in range(103):
        last = db.execute("SELECT run_id FROM compute_fifo_assets()").fetchone()[0]
    assert db.execute("SELECT count(*), min(run_id), max(run_id) FROM fifo.asset_runs").fetchone() == \
        (100, last - 99, last)


def test_asset_form_8949_flags_unpriced_and_oversold_rows(db, dsn, capsys):
    """fifo_asset_form_8949: cents once (fifo._money), gain from the rounded figures; a row whose
    proceeds or whose lot's basis has no price is unpriced (no gain, left out of the totals, named);
    an oversold part has no basis and counts its proceeds as gain in Part I."""
    add_trades(db, [
        {"order_id": "b1", "account": "w", "symbol": "BTC-USD", "side": "buy", "size": 1, "price": "30000.004",
         "order_time": "2024-01-01 10:00"},
        # no BTC or ETH price within a day: the ETH lot has no basis, the BTC disposal no proceeds
        {"order_id": "x1", "account": "w", "symbol": "ETH-BTC", "side": "buy", "size": 10, "price": "0.05",
         "order_time": "2024-06-01 10:00"},
        {"order_id": "e1", "account": "w", "symbol": "ETH-USD", "side": "sell", "size": 10, "price": 3000,
         "order_time": "2024-07-01 10:00"},
        # 1 BTC sold, 0.5 held: half of it has no basis
        {"order_id": "s1", "account": "w", "symbol": "BTC-USD", "side": "sell", "size": 1, "price": "60000.01",
         "order_time": "2024-08-01 10:00"},
    ])
    db.execute("SELECT compute_fifo_assets()")
    rows = db.execute(
        "SELECT part, box, description, date_acquired::text, proceeds::text, cost_basis::text, gain_or_loss::text, "
        "no_basis, unpriced, disposal_id FROM fifo_asset_form_8949() "
        "ORDER BY wallet, disposed_at, disposal_id, acquired_at NULLS LAST").fetchall()
    assert rows == [
        # 0.5 BTC for ETH, no price: proceeds NULL, basis known (15000.002 -> 15000.00), no gain
        ("I", "C", "0.5 BTC", "2024-01-01", None, "15000.00", None, False, True, "x1:quote"),
        # the ETH sold for USD has a lot with no basis: unpriced too
        ("I", "C", "10 ETH", "2024-06-01", "30000.00", None, None, False, True, "e1:base"),
        # 0.5 BTC held: 30000.005 -> 30000.01 (half away from zero), basis 15000.002 -> 15000.00
        ("I", "C", "0.5 BTC", "2024-01-01", "30000.01", "15000.00", "15000.01", False, False, "s1:base"),
        # the oversold half: no basis, proceeds (30000.005 too: each row rounded once, as the pair view's)
        # counted as gain, Part I
        ("I", "C", "0.5 BTC", None, "30000.01", None, "30000.01", True, False, "s1:base"),
    ]
    rc, out, err = cli(dsn, capsys, "report", "tax", "--view", "asset")
    assert rc == 0
    assert out.splitlines()[1:] == [
        "0.5 BTC,01/01/2024,06/01/2024,,15000.00,,,,Short-term,I,C,,USD,w,yes",
        "10 ETH,06/01/2024,07/01/2024,30000.00,,,,,Short-term,I,C,,USD,w,yes",
        "0.5 BTC,01/01/2024,08/01/2024,30000.01,15000.00,,,15000.01,Short-term,I,C,,USD,w,",
        "0.5 BTC,,08/01/2024,30000.01,,,,30000.01,Short-term,I,C,yes,USD,w,"]
    assert err.splitlines()[-5:] == [
        "Form 8949 rows (asset view): all wallets, all disposals (UTC)",
        "tax, asset view (2024; USD; long-term rule anniversary; broker reported none; 1 wallet(s))",
        "wallet w: Part I (short-term, box C): 2 row(s), proceeds 60,000.02, cost 15,000.00, gain 45,000.02; "
        "Part II (long-term, box -): 0 row(s), proceeds 0.00, cost 0.00, gain 0.00",
        "1 oversold row(s) with no cost basis are in Part I (column 'No cost basis'), proceeds 30,000.01, counted "
        "as gain: a missing buy or transfer in",
        "warning: 2 row(s) have no price (column 'No price'): left out of the totals above, never valued at zero: "
        "e1:base, x1:quote; import prices with `fifo-db assets prices FILE.csv` or widen the price_window setting"]


T25 = "2025-01-01 00:00"


@pytest.mark.parametrize("seed", range(4))
def test_random_worlds_across_the_2025_transition_agree_with_the_reference(db, seed):
    """tax_pooling = 'universal-until-2025' (rule 10a) on worlds from 2024-12-24 to 2025-01-08."""
    rng = random.Random(100 + seed)
    db.execute("SELECT fifo_set_setting('tax_pooling', 'universal-until-2025')")
    db.execute("SELECT fifo_set_setting('price_window', '3 days')")
    random_world(db, rng, 60, start="2024-12-24 00:00")
    db.execute("SELECT compute_fifo_assets()")
    got = computed(db)
    assert got == reference(db)
    # the allocation ran: pieces marked with it, in wallets, and transfers after it moved lots
    assert any(r.lot_id and "/!rp2024-28" in r.lot_id and r.wallet != "*" for r in got)
    assert all(r.wallet == "*" for r in got if r.disposed_at < ts(T25))
    assert all(r.wallet != "*" for r in got if r.disposed_at >= ts(T25))


def test_the_2025_transition_worked_by_hand(db):
    """Universal pools through 2024, then the unused basis allocated to wallets as held on
    2025-01-01 (earliest lots to wallets in name order: cold, exchange, kraken), then wallets."""
    db.execute("SELECT fifo_set_setting('tax_pooling', 'universal-until-2025')")
    X, K = "exchange", "kraken"
    add_trades(db, [
        {"order_id": "a", "account": X, "symbol": "BTC-USD", "side": "buy", "size": 1, "price": 20000,
         "order_time": "2023-01-10 10:00"},
        {"order_id": "b", "account": K, "symbol": "BTC-USD", "side": "buy", "size": 1, "price": 25000,
         "order_time": "2023-03-01 10:00"},
        {"order_id": "c", "account": X, "symbol": "BTC-USD", "side": "buy", "size": 1, "price": 40000,
         "order_time": "2024-02-01 10:00"},
        # 2024, universal: kraken's sale takes the earliest lot of all, a (in the exchange)
        {"order_id": "s1", "account": K, "symbol": "BTC-USD", "side": "sell", "size": "0.5", "price": 60000,
         "order_time": "2024-06-01 10:00"},
        {"order_id": "s2", "account": K, "symbol": "BTC-USD", "side": "sell", "size": "0.5", "price": 90000,
         "order_time": "2025-03-01 10:00"},
        {"order_id": "s3", "account": X, "symbol": "BTC-USD", "side": "sell", "size": "1.2", "price": 100000,
         "order_time": "2025-05-01 10:00"},
    ])
    add_transfers(db, [
        # 2024: moves nothing (one pool), but the cold wallet holds 1.5 BTC on 2025-01-01
        {"transfer_id": "t1", "asset": "BTC", "from": X, "to": C, "quantity": "1.5", "at": "2024-03-01 10:00"},
        {"transfer_id": "t2", "asset": "BTC", "from": C, "to": X, "quantity": "1", "at": "2025-04-01 10:00"},
    ])
    run = db.execute("SELECT rounds, unmatched FROM compute_fifo_assets()").fetchone()
    assert run == (3, 0)
    t = ts
    # On 2025-01-01 the pool's open lots are a 0.5 (basis 10000), b 1 (25000), c 1 (40000); the wallets
    # hold cold 1.5, exchange 0.5 (1 + 1 - 1.5), kraken 0.5 (1 - 0.5). In name order: cold gets a's 0.5
    # and b, exchange c's first 0.5, kraken c's other 0.5.
    m = "/!rp2024-28"
    assert computed(db) == sorted([
        ar.Row("*", "BTC", "s1:base", "trade", "a:base", D("0.5"), t("2023-01-10 10:00"), t("2024-06-01 10:00"),
               D(10000), D(30000), False),
        # kraken sells the half of c the allocation gave it (acquired 2024-02-01: long-term by 2025-03-01)
        ar.Row(K, "BTC", "s2:base", "trade", "c:base" + m, D("0.5"), t("2024-02-01 10:00"), t("2025-03-01 10:00"),
               D(20000), D(45000), False),
        # t2 takes the cold wallet's earliest: a's 0.5, then 0.5 of b
        ar.Row(C, "BTC", "t2:out", "transfer", "a:base" + m, D("0.5"), t("2023-01-10 10:00"), t("2025-04-01 10:00"),
               D(10000), None, False),
        ar.Row(C, "BTC", "t2:out", "transfer", "b:base" + m, D("0.5"), t("2023-03-01 10:00"), t("2025-04-01 10:00"),
               D(12500), None, False),
        # the exchange sells 1.2: a's and b's pieces (older) before its own half of c
        ar.Row(X, "BTC", "s3:base", "trade", "a:base" + m + "/t2", D("0.5"), t("2023-01-10 10:00"),
               t("2025-05-01 10:00"), D(10000), D(50000), False),
        ar.Row(X, "BTC", "s3:base", "trade", "b:base" + m + "/t2", D("0.5"), t("2023-03-01 10:00"),
               t("2025-05-01 10:00"), D(12500), D(50000), False),
        ar.Row(X, "BTC", "s3:base", "trade", "c:base" + m, D("0.2"), t("2024-02-01 10:00"),
               t("2025-05-01 10:00"), D(8000), D(20000), False),
    ], key=ar.Row.key)
    assert computed(db) == reference(db)
    # what is left: cold 0.5 of b (12500), exchange 0.3 of c (12000)
    assert db.execute("SELECT wallet, lot_id, quantity, cost_basis FROM fifo_asset_open_lots "
                      "ORDER BY wallet").fetchall() == [(C, "b:base" + m, D("0.5"), D(12500)),
                                                        (X, "c:base" + m, D("0.3"), D(12000))]
    notes = [n for (n,) in db.execute("SELECT note FROM explain_fifo_asset('s3') WHERE kind = 'lot'")]
    assert notes[0] == ("acquired 2023-01-10 10:00 by a (base) in exchange; moved by the 2025 allocation of unused "
                        "basis to the wallet (Rev. Proc. 2024-28, sql/415), t2 cold -> exchange 2025-04-01 10:00; "
                        "long-term")


def test_assets_compute_incremental_is_what_the_schedule_runs(filer, dsn, capsys):
    """`assets compute --incremental` (the crontab line of `schedule install --crontab`): nothing while
    the view was never computed, then only what changed, and nothing recorded when nothing did."""
    assert cli(dsn, capsys, "assets", "compute", "--incremental")[:3] == (
        0, "asset view never computed: nothing to do (`fifo-db assets compute` computes it in full)\n", "")
    assert filer.execute("SELECT count(*) FROM fifo.asset_runs").fetchone()[0] == 0
    rc, out, _ = cli(dsn, capsys, "assets", "compute")
    assert rc == 0 and out.startswith("asset view computed (wallet pools): ")
    assert cli(dsn, capsys, "assets", "compute", "--incremental")[:3] == (0, "", "")   # nothing changed: quiet
    add_trades(filer, [{"order_id": "late", "symbol": "BTC-USD", "side": "sell", "size": "0.1", "price": 50000,
                        "order_time": "2024-12-30 10:00"}])
    rc, out, err = cli(dsn, capsys, "assets", "compute", "--incremental")
    assert (rc, err) == (0, "") and out.startswith("asset view computed (wallet pools): ")
    assert filer.execute("SELECT kind, changes FROM fifo.asset_runs ORDER BY run_id").fetchall() == [
        ("full", 0), ("incremental", 1)]
    assert filer.execute("SELECT count(*) FROM fifo.asset_allocations WHERE ref_id = 'late'").fetchone()[0] == 1
    assert cli(dsn, capsys, "assets", "verify")[0] == 0
