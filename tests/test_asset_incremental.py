"""Change capture and incremental runs of the asset (tax) view (issue 18; docs/engine.md
"Incremental asset runs", sql/420 and sql/450): random histories with transfers, then
appends, updates and deletes of trades, transfers and prices, each followed by
compute_fifo_assets_incremental(), whose result must equal the plain-Python reference
(fifo_db/asset_reference.py) every time, and a full compute_fifo_assets() at the end; the
pools an incremental run recomputes; the queue's size and who may write it."""

from __future__ import annotations

import random
from datetime import timedelta
from decimal import Decimal as D

import pytest

from fifo_db import verify
from tests.helpers import ts
from tests.test_worker import BUY, SELL, workers  # noqa: F401
from tests.test_assets import (E, FILER_PRICES, FILER_TRADES, FILER_TRANSFERS, add_fee_trades, add_prices,  # noqa: F401
                               add_transfers, computed, filer, random_world, reference)

STATE = {
    "legs": "SELECT * FROM fifo.asset_legs ORDER BY leg_id",
    "lots": "SELECT * FROM fifo.asset_lots ORDER BY wallet, asset, lot_id",
    "pieces": "SELECT * FROM fifo.asset_pieces ORDER BY transfer_id, lot_id",
    "allocations": "SELECT * FROM fifo.asset_allocations ORDER BY wallet, asset, disposal_id, lot_id NULLS LAST",
    "prices": "SELECT * FROM fifo.asset_price_points ORDER BY asset, at, rank, source",
}


def state(db) -> dict:
    return {name: db.execute(q).fetchall() for name, q in STATE.items()}


def incremental(db) -> dict:
    return db.execute("SELECT run_id, kind, rounds, pools, changes FROM compute_fifo_assets_incremental()"
                      ).fetchone()


def mutate(db, rng: random.Random, step: int, start: str = "2024-01-01 00:00") -> str:
    """One random change of the inputs, at times from `start` on; returns what it did."""
    base = ts(start)

    def when():
        return base + timedelta(hours=rng.randint(0, 60) * 6)

    what = rng.choice(["append trades", "update trade", "delete trade", "add transfer", "update transfer",
                       "delete transfer", "add price", "update price", "delete price"])
    if what == "append trades":
        trades = []
        for i in range(rng.randint(1, 4)):
            symbol = rng.choice(["BTC-USD", "ETH-USD", "ETH-BTC", "BNB-USD"])
            trades.append({"order_id": f"n{step:02d}{i}", "account": rng.choice("ABC"), "symbol": symbol,
                           "side": rng.choice(["buy", "sell"]), "size": D(rng.randint(1, 40)) / 4,
                           "price": D(rng.randint(1, 400)) / 8 if "-USD" not in symbol else D(rng.randint(100, 9000)),
                           "total_fees": D(rng.randint(0, 3)) / 100, "order_time": when().isoformat()})
        add_fee_trades(db, trades)
    elif what == "update trade":
        db.execute("UPDATE trade_records SET size = size + 1, account = %s, order_time = %s WHERE order_id = "
                   "(SELECT order_id FROM trade_records ORDER BY order_id OFFSET %s LIMIT 1)",
                   (rng.choice("ABC"), when(), rng.randint(0, 20)))
    elif what == "delete trade":
        db.execute("DELETE FROM trade_records WHERE order_id = "
                   "(SELECT order_id FROM trade_records ORDER BY order_id OFFSET %s LIMIT 1)", (rng.randint(0, 20),))
    elif what == "add transfer":
        a, b = rng.sample("ABC", 2)
        add_transfers(db, [{"transfer_id": f"y{step:02d}", "asset": rng.choice(["BTC", "ETH", "BNB"]), "from": a,
                            "to": b, "quantity": D(rng.randint(1, 20)) / 4, "fee": D(rng.choice([0, 1])) / 100,
                            "at": when().isoformat()}])
    elif what == "update transfer":
        db.execute("UPDATE fifo.transfers SET quantity = quantity / 2, at = %s WHERE transfer_id = "
                   "(SELECT transfer_id FROM fifo.transfers ORDER BY transfer_id OFFSET %s LIMIT 1)",
                   (when(), rng.randint(0, 5)))
    elif what == "delete transfer":
        db.execute("DELETE FROM fifo.transfers WHERE transfer_id = "
                   "(SELECT transfer_id FROM fifo.transfers ORDER BY transfer_id OFFSET %s LIMIT 1)",
                   (rng.randint(0, 5),))
    elif what == "add price":
        db.execute("INSERT INTO fifo.prices (asset, currency, price, at) VALUES (%s, 'USD', %s, %s) "
                   "ON CONFLICT DO NOTHING", (rng.choice(["BTC", "ETH", "BNB", "SOL"]), D(rng.randint(1, 5000)),
                                              when() + timedelta(minutes=1)))
    elif what == "update price":
        db.execute("UPDATE fifo.prices SET price = price * 2 WHERE (asset, at) = "
                   "(SELECT asset, at FROM fifo.prices ORDER BY asset, at OFFSET %s LIMIT 1)", (rng.randint(0, 20),))
    else:
        db.execute("DELETE FROM fifo.prices WHERE (asset, at) = "
                   "(SELECT asset, at FROM fifo.prices ORDER BY asset, at OFFSET %s LIMIT 1)", (rng.randint(0, 20),))
    return what


@pytest.mark.parametrize("seed", range(6))
def test_incremental_runs_equal_the_reference_and_a_full_run(db, seed):
    """Seeds 4 and 5: universal-until-2025 (rule 10a), on histories across 2025-01-01, where
    a change before the transition changes the pieces it allocates to the wallets."""
    rng = random.Random(100 + seed)
    start = "2024-01-01 00:00"
    if seed % 2:
        db.execute("SELECT fifo_set_setting('report_currency_aliases', 'USDT')")
    if seed == 3:
        db.execute("SELECT fifo_set_setting('tax_pooling', 'universal')")
    if seed >= 4:
        db.execute("SELECT fifo_set_setting('tax_pooling', 'universal-until-2025')")
        db.execute("SELECT fifo_set_setting('price_window', '3 days')")
        start = "2024-12-24 00:00"
    random_world(db, rng, 40, start=start)
    # no run before: the first incremental run is a full one
    assert incremental(db)[1] == "full"
    assert computed(db) == reference(db)
    kinds = set()
    for step in range(12):
        what = mutate(db, rng, step, start)
        # a captured change makes the view stale, and verify_fifo() says so
        assert bool(asset_findings(db)) == bool(queue(db)), (step, what)
        run = incremental(db)
        kinds.add(run[1])
        assert computed(db) == reference(db), (step, what, run)
        # current and consistent: no finding in SQL, none from the Python reference either
        assert asset_findings(db) == [] and verify.asset_reference_findings(db) == [], (step, what)
    assert kinds == {"incremental"}
    if seed >= 4:   # the 2025 allocation gave the wallets pieces, and the runs kept them current
        assert db.execute("SELECT count(*) FROM fifo.asset_pieces WHERE transfer_id LIKE '!rp2024-28 %'"
                          ).fetchone()[0] > 0
    # and a full run from scratch gives the same tables, row for row
    after_incremental = state(db)
    db.execute("SELECT compute_fifo_assets()")
    assert state(db) == after_incremental


def test_an_incremental_run_recomputes_only_the_pools_a_change_reaches(filer):
    db = filer
    assert incremental(db)[1:] == ("full", 3, 6, 0)   # 4 pools, then cold (t1), then exchange (t2)
    # nothing changed: no run recorded
    assert incremental(db) == (None, "incremental", 0, 0, 0)
    # an ETH sale in the exchange: one pool (ETH), one round; the BTC pools stay as they are
    add_fee_trades(db, [{"order_id": "eth2", "account": E, "symbol": "ETH-USD", "side": "sell", "size": 1,
                         "price": 3500, "order_time": "2025-04-01 10:00"}])
    run = incremental(db)
    assert run[1:] == ("incremental", 1, 1, 1)
    assert db.execute("SELECT lot_id, quantity, cost_basis, proceeds FROM fifo.asset_allocations "
                      "WHERE disposal_id = 'eth2:base'").fetchall() == [("eth1:base", D(1), D(3000), D(3500))]
    # a BTC buy in the exchange before t1: the exchange's BTC, then t1's pieces change the cold wallet's
    # BTC, whose t2 brings changed pieces back to the exchange: three rounds of one pool each
    add_fee_trades(db, [{"order_id": "btc0", "account": E, "symbol": "BTC-USD", "side": "buy", "size": "0.1",
                         "price": 30000, "order_time": "2024-01-02 10:00"}])
    assert incremental(db)[1:] == ("incremental", 3, 3, 1)
    assert computed(db) == reference(db)
    # a transfer deleted: its source, then its destination
    db.execute("DELETE FROM fifo.transfers WHERE transfer_id = 't2'")
    assert incremental(db)[1:] == ("incremental", 2, 2, 1)
    assert computed(db) == reference(db)
    # a price that values only the BNB fee of btc2 and its BTC leg... re-valued legs: their pools
    db.execute("UPDATE fifo.prices SET price = 310 WHERE asset = 'BNB' AND at = '2024-02-01 09:00+00'")
    run = incremental(db)
    assert run[1] == "incremental" and run[3] < 6
    assert db.execute("SELECT proceeds FROM fifo.asset_allocations WHERE disposal_id = 'btc2:fee'").fetchone() == \
        (D("3.1"),)
    assert computed(db) == reference(db)
    # settings changed: a full run
    db.execute("SELECT fifo_set_setting('price_window', '2 days')")
    assert incremental(db)[1] == "full"
    assert computed(db) == reference(db)


def asset_findings(db) -> list[tuple]:
    return db.execute("SELECT check_name, symbol, account, trade_id, detail FROM verify_fifo() "
                      "WHERE check_name LIKE 'asset%' ORDER BY 1, 2, 3, 4").fetchall()


def queue(db) -> list[tuple]:
    return db.execute("SELECT source, sum(statements)::int FROM fifo.asset_changes GROUP BY 1 ORDER BY 1").fetchall()


def test_capture_starts_with_the_first_run_and_the_queue_stays_small(db, connect):
    add_fee_trades(db, FILER_TRADES[:2])
    assert queue(db) == []          # the asset view is not in use: nothing noted
    db.execute("SELECT compute_fifo_assets()")
    # many statements, each its own transaction, from two sessions: about one row per source
    other = connect()
    for i in range(20):
        (db if i % 2 else other).execute(
            "INSERT INTO trade_records (order_id, symbol, side, size, price, order_time) "
            "VALUES (%s, 'BTC-USD', 'buy', 1, 100, '2024-06-01')", (f"q{i}",))
    db.execute("UPDATE trade_records SET price = 101 WHERE order_id = 'nothing such'")   # no row: no change
    add_prices(db, [("BTC", 1, "2024-06-01 00:00")])
    add_transfers(db, [{"transfer_id": "z", "asset": "BTC", "from": "A", "to": "B", "quantity": 1,
                        "at": "2024-07-01 00:00"}])
    db.execute("TRUNCATE fifo.prices")
    assert queue(db) == [("prices", 2), ("trades", 20), ("transfers", 1)]
    assert db.execute("SELECT count(*) FROM fifo.asset_changes").fetchone()[0] <= 4
    # a full run consumes the queue too
    assert db.execute("SELECT changes FROM compute_fifo_assets()").fetchone()[0] >= 3
    assert queue(db) == []


def test_a_bot_with_rights_on_trade_records_only_is_captured(db):
    db.execute("SELECT compute_fifo_assets()")
    role = f"asset_bot_{random.randrange(10**9)}"   # roles are the cluster's: a name of this test's own
    db.execute(f"CREATE ROLE {role}")
    db.execute("SELECT fifo_grant('bot', %s)", (role,))
    db.execute(f"SET ROLE {role}")
    try:
        db.execute("INSERT INTO trade_records (order_id, symbol, side, size, price, order_time) "
                   "VALUES ('b1', 'BTC-USD', 'buy', 1, 100, '2024-06-01')")
        with pytest.raises(Exception) as info:
            db.execute("SELECT * FROM fifo.asset_changes")
        assert info.value.sqlstate == "42501"
    finally:
        db.execute("RESET ROLE")
    assert queue(db) == [("trades", 1)]
    assert incremental(db)[1:] == ("incremental", 1, 1, 1)


def test_the_worker_keeps_the_asset_view_current_once_it_was_computed(db, connect, workers):  # noqa: F811
    import signal
    w = workers("--tick", "0.5")
    w.wait_for(r"fifo-db worker: active")
    bot = connect()
    add_fee_trades(bot, [BUY])
    w.wait_for(r"run \d+ incremental: 1 pool")
    # never computed: the worker leaves the asset view alone
    assert db.execute("SELECT count(*) FROM fifo.asset_runs").fetchone()[0] == 0
    db.execute("SELECT compute_fifo_assets()")
    add_fee_trades(bot, [SELL])
    w.wait_for(r"asset run \d+ incremental: 1 pool recomputed in 1 round$")
    assert db.execute("SELECT disposal_id, lot_id, quantity FROM fifo.asset_allocations").fetchall() == \
        [("s1:base", "b1:base", D("0.4"))]
    assert db.execute("SELECT count(*) FROM fifo.asset_changes").fetchone()[0] == 0
    assert w.stop(signal.SIGTERM) == 0


def test_verify_finds_a_tampered_asset_view(filer, dsn, capsys):
    from fifo_db.cli import main
    db = filer
    db.execute("SELECT compute_fifo_incremental()")   # the pair view current: its findings stay out of the way
    assert asset_findings(db) == []          # never computed: nothing to say
    db.execute("SELECT compute_fifo_assets()")
    assert asset_findings(db) == [] and verify.asset_reference_findings(db) == []
    # a piece of a sale made larger: the sale's rows no longer add up, the lot gave more than it had
    db.execute("UPDATE fifo.asset_allocations SET quantity = 0.3 WHERE disposal_id = 'sell1:base' "
               "AND lot_id = 'btc2:base'")
    assert asset_findings(db) == [
        ("asset_disposal", "BTC", E, "sell1:base", "allocation rows add up to 0.8, the disposal is 0.6"),
        ("asset_lot", "BTC", E, "btc2:base", "0.5001 taken from a lot of 0.5")]
    db.execute("SELECT compute_fifo_assets()")
    # a transfer's piece lost on the way: what left the exchange is not what arrived in the cold wallet
    db.execute("DELETE FROM fifo.asset_pieces WHERE lot_id = 'btc2:base/t1'")
    assert asset_findings(db) == [
        ("asset_transfer", "BTC", E, "t1", "1.2 left exchange, pieces of 1 were carried and 1.2 arrived in cold")]
    db.execute("SELECT compute_fifo_assets()")
    # a basis changed by hand keeps every quantity: the plain-Python reference finds it
    db.execute("UPDATE fifo.asset_allocations SET cost_basis = 1 WHERE disposal_id = 'sell1:base' "
               "AND lot_id = 'btc2:base'")
    assert asset_findings(db) == []
    assert [str(f) for f in verify.verify(db, reference=True)] == [
        "asset_reference: asset view: exchange/BTC disposal sell1:base lot btc2:base: cost_basis 1 "
        "(reference: 4200.6)"]
    assert main(["--dsn", dsn, "verify"]) == 1
    out = capsys.readouterr().out
    assert "asset_reference: asset view: exchange/BTC disposal sell1:base lot btc2:base" in out
    # stale: a new price since the last run
    db.execute("SELECT compute_fifo_assets()")
    add_prices(db, [("BTC", 50000, "2024-06-01 00:00")])
    (name, _, _, _, detail), = asset_findings(db)
    assert name == "asset_stale" and detail.startswith("changed since the last asset run (") and \
        detail.endswith("): prices (1 statement(s) since " + detail.split(" since ")[-1])
    assert "run compute_fifo_assets_incremental()" in detail
    db.execute("SELECT compute_fifo_assets_incremental()")
    assert asset_findings(db) == []
    assert main(["--dsn", dsn, "verify"]) == 0
