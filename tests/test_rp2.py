"""fifo-db's asset view against rp2 (PyPI `rp2`, a test extra), issue 18 item 5.

One history (buys and sells in USD with a USD fee, ETH sold for BTC, BTC moved to a cold
wallet and back with a fee in BTC) is written once as events; `fifo_inputs` turns it into
fifo-db's inputs (trade_records, fifo.transfers, fifo.prices) and `rp2_rows` into rp2's
IN / OUT / INTRA transactions, which rp2's own tax engine (rp2.tax_engine.compute_tax, FIFO,
US) matches. Where the rules are the same (tax_pooling = 'universal': rp2 keeps one pool per
asset across exchanges; a transfer is an INTRA transaction whose fee is a disposal at its
fair market value), every Form 8949 row must be equal: asset, quantity, dates, proceeds, cost
basis, gain and term, exactly (Decimal). The differences (docs/rules.md, "fifo-db and rp2")
are tested too, with the real figures each tool gives.
"""

from __future__ import annotations

import decimal
from dataclasses import dataclass
from datetime import date
from decimal import Decimal as D

import pytest

from tests.helpers import add_trades, ts

EX, COLD = "exchange", "cold"


@dataclass(frozen=True)
class Ev:
    """One event of the history. kind: buy / sell (BASE against USD), swap (sell BASE for QUOTE,
    `usd` = the USD price of one QUOTE unit then), transfer (asset `base`, `fee` in it, paid on top)."""
    kind: str
    id: str
    at: str
    base: str
    size: str
    price: str = "0"
    quote: str = "USD"
    fee: str = "0"
    usd: str = "0"
    account: str = EX
    to: str = ""
    fee_in_base: bool = False   # a sell's fee in BASE (trade_records.fee_currency = BASE)


HISTORY = [
    Ev("buy", "b1", "2023-01-10 10:00", "BTC", "1", "20000", fee="10"),
    Ev("buy", "e1", "2023-02-01 10:00", "ETH", "10", "1500"),
    Ev("buy", "b2", "2023-06-01 10:00", "BTC", "0.5", "27000"),
    # 1.2 BTC arrive in the cold wallet; 0.001 BTC more leave the exchange as the network fee
    Ev("transfer", "t1", "2023-09-01 10:00", "BTC", "1.2", fee="0.001", usd="26000", to=COLD),
    # 4 ETH sold for 0.2 BTC when one BTC is worth 60,000 USD
    Ev("swap", "x1", "2024-03-01 10:00", "ETH", "4", "0.05", quote="BTC", usd="60000"),
    Ev("buy", "s1", "2024-05-01 10:00", "SOL", "10", "150"),
    Ev("transfer", "t2", "2024-06-01 10:00", "BTC", "0.7", account=COLD, to=EX),
    # 1.099 BTC sold, 0.001 BTC more paid as the fee
    Ev("sell", "b3", "2024-07-15 10:00", "BTC", "1.099", "66000", fee="0.001", fee_in_base=True),
    Ev("sell", "s2", "2024-08-01 10:00", "SOL", "6", "140"),
    Ev("transfer", "t3", "2025-01-15 10:00", "BTC", "0.5", account=COLD, to=EX),
    Ev("sell", "b4", "2025-02-01 10:00", "BTC", "0.5", "100000"),
]


def fifo_inputs(db, history) -> None:
    """The history as fifo-db's inputs: trades, transfers, and the USD prices a swap or a
    transfer fee needs (imported an hour before, within the default price_window)."""
    trades, prices, fee_base = [], [], []
    for e in history:
        before = ts(e.at).replace(hour=ts(e.at).hour - 1)
        if e.kind in ("buy", "sell", "swap"):
            trades.append({"order_id": e.id, "account": e.account, "symbol": f"{e.base}-{e.quote}",
                           "side": "buy" if e.kind == "buy" else "sell", "size": e.size, "price": e.price,
                           "total_fees": e.fee, "order_time": e.at})
            if e.fee_in_base:
                fee_base.append(e.id)
            if e.kind == "swap":
                prices.append((e.quote, e.usd, before))
        else:
            db.execute("INSERT INTO fifo.transfers (transfer_id, asset, from_account, to_account, quantity, fee, at) "
                       "VALUES (%s, %s, %s, %s, %s, %s, %s)",
                       (e.id, e.base, e.account, e.to, D(e.size), D(e.fee), ts(e.at)))
            if D(e.fee):
                prices.append((e.base, e.usd, before))
    add_trades(db, trades)
    db.execute("UPDATE trade_records SET fee_currency = split_part(symbol, '-', 1) WHERE order_id = ANY (%s)",
               (fee_base,))
    for asset, price, at in prices:
        db.execute("INSERT INTO fifo.prices (asset, currency, price, at) VALUES (%s, 'USD', %s, %s)",
                   (asset, D(price), at))


def rp2_rows(history) -> list[tuple]:
    """The history as rp2 rows, (asset, class name, keyword arguments), by the mapping rp2's
    documentation gives: a buy is an IN (BUY) with the USD fee as fiat_fee, a sell an OUT
    (SELL), a swap an OUT of BASE and an IN of QUOTE at the same USD value, a transfer an
    INTRA with crypto_sent = quantity + fee."""
    rows = []
    for e in history:
        common = {"timestamp": e.at + " +00:00", "holder": "filer"}
        if e.kind == "buy":
            rows.append((e.base, "In", {**common, "exchange": e.account, "transaction_type": "BUY",
                                        "spot_price": D(e.price), "crypto_in": D(e.size),
                                        "fiat_fee": D(e.fee)}))
        elif e.kind == "sell":
            rows.append((e.base, "Out", {**common, "exchange": e.account, "transaction_type": "SELL",
                                         "spot_price": D(e.price), "crypto_out_no_fee": D(e.size),
                                         "crypto_fee": D(e.fee) if e.fee_in_base else D(0)}))
        elif e.kind == "swap":
            gross = D(e.size) * D(e.price)      # QUOTE units received
            value = gross * D(e.usd)            # their USD value: the swap's value
            rows.append((e.base, "Out", {**common, "exchange": e.account, "transaction_type": "SELL",
                                         "spot_price": value / D(e.size), "crypto_out_no_fee": D(e.size),
                                         "crypto_fee": D(0)}))
            rows.append((e.quote, "In", {**common, "exchange": e.account, "transaction_type": "BUY",
                                         "spot_price": D(e.usd), "crypto_in": gross}))
        else:
            del common["holder"]
            rows.append((e.base, "Intra", {**common, "from_exchange": e.account, "from_holder": "filer",
                                           "to_exchange": e.to, "to_holder": "filer",
                                           "spot_price": D(e.usd) if D(e.fee) else None,
                                           "crypto_sent": D(e.size) + D(e.fee), "crypto_received": D(e.size)}))
    return rows


def run_rp2(tmp_path, monkeypatch, rows) -> list[tuple]:
    """rp2's Form 8949 rows for `rows`: (asset, quantity, date acquired, date sold, proceeds,
    cost basis, gain, term), computed by rp2's own engine, FIFO, US rules. rp2 sets the decimal
    context on import (precision, FloatOperation trapped): it runs in a local context, so the
    other tests of this process keep theirs."""
    monkeypatch.chdir(tmp_path)     # rp2 writes ./log/ on import
    with decimal.localcontext() as ctx:
        out = _run_rp2(tmp_path, rows, ctx)
    assert not decimal.getcontext().traps[decimal.FloatOperation]
    return out


def _run_rp2(tmp_path, rows, ctx) -> list[tuple]:
    from prezzemolo.avl_tree import AVLTree
    from rp2.accounting_engine import AccountingEngine
    from rp2.configuration import MIN_DATE, Configuration
    from rp2.entry_types import EntrySetType
    from rp2.in_transaction import InTransaction
    from rp2.input_data import InputData
    from rp2.intra_transaction import IntraTransaction
    from rp2.out_transaction import OutTransaction
    from rp2.plugin.accounting_method.fifo import AccountingMethod
    from rp2.plugin.country.us import US
    from rp2.rp2_decimal import CRYPTO_DECIMALS, RP2Decimal
    from rp2.tax_engine import compute_tax
    from rp2.transaction_set import TransactionSet

    ctx.prec = CRYPTO_DECIMALS + 18                 # what rp2's import sets (rp2.rp2_decimal)
    ctx.traps[decimal.FloatOperation] = True
    assets = sorted({r[0] for r in rows})
    exchanges = sorted({v for r in rows for k, v in r[2].items() if k.endswith("exchange")})
    ini = tmp_path / "rp2.ini"
    ini.write_text(
        "[general]\n"
        f"assets = {', '.join(assets)}\nexchanges = {', '.join(exchanges)}\nholders = filer\n"
        "[in_header]\ntimestamp = 0\nasset = 1\nexchange = 2\nholder = 3\ntransaction_type = 4\n"
        "spot_price = 6\ncrypto_in = 7\nfiat_fee = 11\n"
        "[out_header]\ntimestamp = 0\nasset = 1\nexchange = 2\nholder = 3\ntransaction_type = 4\n"
        "spot_price = 6\ncrypto_out_no_fee = 7\ncrypto_fee = 8\n"
        "[intra_header]\ntimestamp = 0\nasset = 1\nfrom_exchange = 2\nfrom_holder = 3\nto_exchange = 4\n"
        "to_holder = 5\nspot_price = 6\ncrypto_sent = 7\ncrypto_received = 8\n")
    config = Configuration(str(ini), US())
    methods = AVLTree()
    methods.insert_node(MIN_DATE.year, AccountingMethod())
    engine = AccountingEngine(years_2_methods=methods)
    kinds = {"In": (InTransaction, EntrySetType.IN), "Out": (OutTransaction, EntrySetType.OUT),
             "Intra": (IntraTransaction, EntrySetType.INTRA)}

    def dec(v):
        return RP2Decimal(v) if isinstance(v, D) else v

    out = []
    for asset in assets:
        sets = {name: TransactionSet(config, kind.value, asset) for name, (_, kind) in kinds.items()}
        for n, (a, name, kwargs) in enumerate(rows):
            if a == asset:
                sets[name].add_entry(kinds[name][0](config, asset=asset, row=n + 1,
                                                    **{k: dec(v) for k, v in kwargs.items()}))
        data = InputData(asset, sets["In"], sets["Out"], sets["Intra"])
        for gl in compute_tax(config, engine, data).gain_loss_set:
            out.append((asset, D(gl.crypto_amount), gl.acquired_lot.timestamp.date(), gl.timestamp.date(),
                        D(gl.taxable_event_fiat_amount_with_fee_fraction), D(gl.fiat_cost_basis),
                        D(gl.fiat_gain), "long" if gl.is_long_term_capital_gains() else "short"))
    return sorted(_norm(r) for r in out)


def _norm(row) -> tuple:
    return tuple(v.normalize() if isinstance(v, D) else v for v in row)


def fifo_rows(db) -> list[tuple]:
    db.execute("SELECT compute_fifo_assets()")
    return sorted(_norm(r) for r in db.execute(
        "SELECT asset, quantity, date_acquired, date_sold, proceeds, cost_basis, gain, term "
        "FROM fifo_asset_disposals").fetchall())


def test_asset_view_equals_rp2_under_universal_pooling(db, tmp_path, monkeypatch):
    db.execute("SELECT fifo_set_setting('tax_pooling', 'universal')")
    fifo_inputs(db, HISTORY)
    got = fifo_rows(db)
    want = run_rp2(tmp_path, monkeypatch, rp2_rows(HISTORY))
    assert got == want
    # and the figures, worked by hand (so that the two cannot agree on something wrong)
    d = date.fromisoformat
    assert got == sorted(_norm(r) for r in [
        # t1's fee: 0.001 BTC at 26,000 = 26 of proceeds; basis 20,010 * 0.001 = 20.01 (b1, with its USD fee)
        ("BTC", D("0.001"), d("2023-01-10"), d("2023-09-01"), D(26), D("20.01"), D("5.99"), "short"),
        # 4 ETH for 0.2 BTC = 12,000 USD
        ("ETH", D(4), d("2023-02-01"), d("2024-03-01"), D(12000), D(6000), D(6000), "long"),
        # b3: 1.1 BTC leave (1.099 sold at 66,000 = 72,534 of proceeds, the 0.001 fee on top), one pool
        # across wallets: the rest of b1, then 0.101 of b2 (13,500 for 0.5)
        ("BTC", D("0.999"), d("2023-01-10"), d("2024-07-15"), D("65874.06"), D("19989.99"), D("45884.07"), "long"),
        ("BTC", D("0.101"), d("2023-06-01"), d("2024-07-15"), D("6659.94"), D(2727), D("3932.94"), "long"),
        ("SOL", D(6), d("2024-05-01"), d("2024-08-01"), D(840), D(900), D(-60), "short"),
        # b4: 0.5 BTC at 100,000: the rest of b2, then 0.101 of the BTC the swap bought (basis 12,000 / 0.2)
        ("BTC", D("0.399"), d("2023-06-01"), d("2025-02-01"), D(39900), D(10773), D(29127), "long"),
        ("BTC", D("0.101"), d("2024-03-01"), d("2025-02-01"), D(10100), D(6060), D(4040), "short"),
    ])


def test_where_rp2_differs_holding_period(db, tmp_path, monkeypatch):
    """rp2 calls a lot long-term after 365 days (rp2.gain_loss: `.days >= 365`); fifo-db after
    the calendar anniversary (docs/rules.md rule 6: more than one year, IRC 1222; the
    holding period starts the day after acquisition): a BTC bought 2023-01-10 and sold
    2024-01-10 is long-term to rp2 and short-term to fifo-db, every figure else equal."""
    db.execute("SELECT fifo_set_setting('tax_pooling', 'universal')")
    history = [Ev("buy", "b1", "2023-01-10 10:00", "BTC", "1", "20000"),
               Ev("sell", "b2", "2024-01-10 10:00", "BTC", "1", "45000")]
    fifo_inputs(db, history)
    got = fifo_rows(db)
    want = run_rp2(tmp_path, monkeypatch, rp2_rows(history))
    row = ("BTC", D(1), date(2023, 1, 10), date(2024, 1, 10), D(45000), D(20000), D(25000))
    assert got == [_norm(row + ("short",))]
    assert want == [_norm(row + ("long",))]


def test_where_rp2_differs_wallet_pooling(db, tmp_path, monkeypatch):
    """fifo-db's default pools are per wallet (Treas. Reg. 1.1012-1(j), from 2025); rp2 1.7 has
    one pool per asset. The same history under tax_pooling = 'wallet': the transfers carry
    lots (t1 takes b1 and 0.2 of b2 to the cold wallet, t2 and t3 bring b1's units back), so
    b3 and b4 take other lots than rp2's universal FIFO (real figures below)."""
    fifo_inputs(db, HISTORY)
    got = fifo_rows(db)
    want = run_rp2(tmp_path, monkeypatch, rp2_rows(HISTORY))
    d = date.fromisoformat
    differ = sorted(set(got) - set(want))
    assert differ == sorted(_norm(r) for r in [
        # t1's fee is taken after t1 itself, from what is left in the exchange wallet: b2
        ("BTC", D("0.001"), d("2023-06-01"), d("2023-09-01"), D(26), D(27), D(-1), "short"),
        # b3 in the exchange wallet: b1's 0.7 that t2 brought back, b2's 0.299 left, then 0.101 of x1's BTC
        ("BTC", D("0.7"), d("2023-01-10"), d("2024-07-15"), D("46158"), D("14007"), D("32151"), "long"),
        ("BTC", D("0.299"), d("2023-06-01"), d("2024-07-15"), D("19716.06"), D("8073"), D("11643.06"), "long"),
        ("BTC", D("0.101"), d("2024-03-01"), d("2024-07-15"), D("6659.94"), D(6060), D("599.94"), "short"),
        # b4: what t3 brought (b1's last 0.3, b2's 0.2), older than the 0.099 of x1 still in the wallet
        ("BTC", D("0.3"), d("2023-01-10"), d("2025-02-01"), D(30000), D("6003"), D("23997"), "long"),
        ("BTC", D("0.2"), d("2023-06-01"), d("2025-02-01"), D(20000), D(5400), D(14600), "long"),
    ])
    # the rows without a transfer between them and their lot are the same
    assert sorted(set(got) & set(want)) == sorted(r for r in want if r[0] != "BTC")
