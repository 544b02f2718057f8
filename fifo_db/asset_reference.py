"""A plain-Python asset (tax) view, written from docs/rules.md ("The asset view"), to check
sql/400-440 (asset view).

It walks every event of every pool in one global time order, keeping for each
(wallet, asset) pool a list of held lots and, at each disposal, taking the held lot with
the earliest acquisition key first (the obvious greedy algorithm, deliberately not the
engine's nested-queue formula and not its rounds over transfers), so an agreement is
evidence, not an echo. Legs and their values are derived here from the trades, prices and
settings independently of the SQL. Money is Decimal; shares use the documented rule of
fifo_db.reference.fee_share (cumulative share at offset x rounded half-up to 40 places).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from fifo_db.reference import _CTX, fee_share

MARKER = "!rp2024-28"   # the path segment of a piece the 2025 allocation gave a wallet (sql/415)


@dataclass(frozen=True)
class TradeIn:
    order_id: str
    account: str
    symbol: str
    side: str
    size: Decimal
    price: Decimal
    fee: Decimal
    fee_currency: str | None
    at: datetime


@dataclass(frozen=True)
class TransferIn:
    transfer_id: str
    asset: str
    from_account: str
    to_account: str
    quantity: Decimal
    fee: Decimal
    at: datetime


@dataclass(frozen=True)
class PriceIn:
    asset: str
    currency: str
    price: Decimal
    at: datetime
    source: str = "import"


@dataclass(frozen=True)
class Row:
    """One allocation of the asset view (kind 'transfer' rows realize nothing)."""
    wallet: str
    asset: str
    disposal_id: str
    kind: str
    lot_id: str | None
    quantity: Decimal
    acquired_at: datetime | None
    disposed_at: datetime
    cost_basis: Decimal | None
    proceeds: Decimal | None
    unmatched: bool

    def key(self) -> tuple:
        return (self.wallet, self.asset, self.disposal_id, self.lot_id or "")


def ratio(a: Decimal, b: Decimal) -> Decimal:
    """a / b rounded half up to 20 decimal places (the documented rule for one QUOTE unit's value)."""
    scale = Decimal(10) ** 20
    return _CTX.divide(_CTX.divide_int(_CTX.add(_CTX.multiply(_CTX.multiply(a, 2), scale), b), _CTX.multiply(b, 2)),
                       scale)


def split(symbol: str, symbol_map: str) -> tuple[str | None, str | None]:
    for entry in filter(None, symbol_map.split(",")):
        name, pair = entry.split("=")
        if name == symbol:
            base, quote = pair.split("/")
            return base, quote
    if "-" in symbol:
        base, quote = symbol.rsplit("-", 1)
        if base and quote:
            return base, quote
    return None, None


def compute(trades: list[TradeIn], transfers: list[TransferIn], prices: list[PriceIn], *,
            fiat: list[str], pooling: str = "wallet", window: timedelta = timedelta(days=1),
            symbol_map: str = "", transition: datetime | None = None) -> list[Row]:
    """pooling 'universal-until-2025' needs `transition`, the instant 2025-01-01 00:00 in the
    report time zone (docs/rules.md rule 10a)."""
    # price points: (asset) -> [(at, rank, source, price)]
    points: dict[str, list[tuple]] = {}
    for p in prices:
        if p.currency in fiat and p.asset not in fiat:
            points.setdefault(p.asset, []).append((p.at, 0, p.source, p.price))
    for t in trades:
        base, quote = split(t.symbol, symbol_map)
        if base and quote in fiat and base not in fiat:
            points.setdefault(base, []).append((t.at, 1, "trade " + t.order_id, t.price))

    def price(asset: str, at: datetime) -> Decimal | None:
        if asset in fiat:
            return Decimal(1)
        cands = [p for p in points.get(asset, []) if at - window <= p[0] <= at]
        if not cands:
            return None
        best = min(cands, key=lambda p: (-p[0].timestamp(), p[1], p[2].encode()))
        return best[3]

    def mul(*xs):
        out = Decimal(1)
        for x in xs:
            if x is None:
                return None
            out = _CTX.multiply(out, x)
        return out

    def moves(at: datetime) -> bool:
        """Is an event at `at` in a per-wallet pool (rule 10, 10a)?"""
        return pooling == "wallet" or (pooling == "universal-until-2025" and at >= transition)

    def wallet_of(account: str, at: datetime) -> str:
        return account if moves(at) else "*"

    # what each wallet actually holds at the transition: its own legs and transfers before it
    units: dict[tuple[str, str], Decimal] = {}

    def count(account: str, asset: str, qty: Decimal, at: datetime) -> None:
        if transition is not None and at < transition:
            units[(account, asset)] = units.get((account, asset), Decimal(0)) + qty
    # events: (sort key, kind, payload)
    events: list[tuple] = []
    for t in trades:
        base, quote = split(t.symbol, symbol_map)
        if base is None:
            continue
        fccy = t.fee_currency or quote
        pq, pb = price(quote, t.at), price(base, t.at)
        uq = pq if pq is not None else (ratio(pb, t.price) if pb is not None and t.price > 0 else None)
        ub = mul(t.price, pq) if pq is not None else pb
        val = Decimal(0) if t.price == 0 else mul(t.size, ub)
        if t.fee == 0:
            fv = Decimal(0)
        elif fccy in fiat:
            fv = t.fee
        elif fccy == quote:
            fv = mul(t.fee, uq)
        elif fccy == base:
            fv = mul(t.fee, ub)
        else:
            fv = mul(t.fee, price(fccy, t.at))

        def add(a, b, sign=1):
            return None if a is None or b is None else (a + b if sign > 0 else a - b)

        buy = t.side == "buy"
        g = t.size * t.price
        legs = []
        # base
        if fccy == base:
            legs.append(("base", base, buy, t.size - t.fee if buy else t.size + t.fee, val))
        else:
            legs.append(("base", base, buy, t.size, add(val, fv, 1 if buy else -1)))
        # quote
        if fccy == quote:
            legs.append(("quote", quote, not buy, g + t.fee if buy else g - t.fee, add(val, fv, 1 if buy else -1)))
        else:
            legs.append(("quote", quote, not buy, g, val))
        if fccy not in (base, quote):
            legs.append(("fee", fccy, False, t.fee, fv))
        for leg, asset, acquire, qty, value in legs:
            if qty <= 0 or asset in fiat:
                continue
            leg_id = f"{t.order_id}:{leg}"
            w = wallet_of(t.account, t.at)
            count(t.account, asset, qty if acquire else -qty, t.at)
            if acquire:
                events.append(((t.at, 0, t.order_id.encode(), 0, leg.encode()), "acquire",
                               (w, asset, leg_id, t.order_id, leg, qty, value, t.at)))
            else:
                events.append(((t.at, 2, t.order_id.encode(), 1, leg.encode()), "dispose",
                               (w, asset, leg_id, "fee" if leg == "fee" else "trade", qty, value, t.at, None)))
    for x in transfers:
        if x.asset in fiat:
            continue
        count(x.to_account, x.asset, x.quantity, x.at)
        count(x.from_account, x.asset, -(x.quantity + x.fee), x.at)
        if moves(x.at):
            events.append(((x.at, 1, x.transfer_id.encode(), 1, b"a"), "transfer", x))
        if x.fee > 0:
            p = price(x.asset, x.at)
            events.append(((x.at, 1, x.transfer_id.encode(), 1, b"b"), "dispose",
                           (wallet_of(x.from_account, x.at), x.asset, x.transfer_id + ":fee", "transfer_fee", x.fee,
                            mul(x.fee, p), x.at, None)))
    if pooling == "universal-until-2025":
        # the allocation of unused basis, at the transition before the transfers of that instant
        events.append(((transition, 1, MARKER.encode(), 0, b""), "allocate", None))
    events.sort(key=lambda e: e[0])

    # held[(wallet, asset)] = list of lots: dict(key, lot_id, qty, basis, used, acquired_at)
    held: dict[tuple[str, str], list[dict]] = {}
    rows: list[Row] = []

    def take(wallet, asset, disposal_id, kind, qty, value, at, to_wallet):
        """Greedy: the held lot with the earliest acquisition key first. Returns the pieces taken."""
        lots = held.setdefault((wallet, asset), [])
        filled = Decimal(0)
        taken = []
        while filled < qty:
            open_lots = [lot for lot in lots if lot["used"] < lot["qty"]]
            if not open_lots:
                break
            lot = min(open_lots, key=lambda lot: lot["key"])
            q = min(lot["qty"] - lot["used"], qty - filled)
            basis = None if lot["basis"] is None else fee_share(lot["basis"], lot["qty"], lot["used"], lot["used"] + q)
            proceeds = None if kind == "transfer" or value is None else fee_share(value, qty, filled, filled + q)
            rows.append(Row(wallet, asset, disposal_id, kind, lot["lot_id"], q, lot["acquired_at"], at, basis,
                            proceeds, False))
            taken.append((lot, q, basis))
            lot["used"] += q
            filled += q
        if filled < qty:
            proceeds = None if kind == "transfer" or value is None else fee_share(value, qty, filled, qty)
            rows.append(Row(wallet, asset, disposal_id, kind, None, qty - filled, None, at, None, proceeds, True))
        return taken

    def allocate():
        """Rule 10a: the universal pools' open lots, earliest key first, to the wallets in name order
        (bytewise), each wallet taking the units it holds. Walks both lists: greedy, not the SQL's
        interval overlap."""
        for asset in sorted({a for (w, a) in held if w == "*"} | {a for (_, a) in units}):
            lots = sorted((lot for lot in held.get(("*", asset), []) if lot["used"] < lot["qty"]),
                          key=lambda lot: lot["key"])
            for wallet in sorted((w for (w, a), q in units.items() if a == asset and q > 0), key=str.encode):
                need = units[(wallet, asset)]
                while need > 0 and lots:
                    lot = lots[0]
                    q = min(need, lot["qty"] - lot["used"])
                    basis = None if lot["basis"] is None else fee_share(lot["basis"], lot["qty"], lot["used"],
                                                                        lot["used"] + q)
                    at, order_id, leg, path = lot["key"]
                    held.setdefault((wallet, asset), []).append(
                        {"key": (at, order_id, leg, path + b"/" + MARKER.encode()),
                         "lot_id": lot["lot_id"] + "/" + MARKER, "qty": q, "basis": basis, "used": Decimal(0),
                         "acquired_at": lot["acquired_at"]})
                    lot["used"] += q
                    need -= q
                    if lot["used"] == lot["qty"]:
                        lots.pop(0)

    for _, kind, payload in events:
        if kind == "acquire":
            w, asset, leg_id, order_id, leg, qty, value, at = payload
            held.setdefault((w, asset), []).append(
                {"key": (at, order_id.encode(), leg, b""), "lot_id": leg_id, "qty": qty, "basis": value,
                 "used": Decimal(0), "acquired_at": at})
        elif kind == "dispose":
            take(*payload)
        elif kind == "allocate":
            allocate()
        else:
            x: TransferIn = payload
            for lot, q, basis in take(x.from_account, x.asset, x.transfer_id + ":out", "transfer", x.quantity,
                                      None, x.at, x.to_account):
                at, order_id, leg, path = lot["key"]
                held.setdefault((x.to_account, x.asset), []).append(
                    {"key": (at, order_id, leg, path + b"/" + x.transfer_id.encode()),
                     "lot_id": lot["lot_id"] + "/" + x.transfer_id, "qty": q, "basis": basis,
                     "used": Decimal(0), "acquired_at": lot["acquired_at"]})
    return sorted(rows, key=Row.key)
