"""A small plain-Python FIFO, written from the rules of docs/rules.md, to check the SQL engine.

It walks the pool's events in order with a queue of open lots (the obvious
algorithm, deliberately not the engine's cumulative-quantity formula), so an
agreement between the two is evidence, not an echo. Money is Decimal
throughout; fee shares use the same documented rule as the engine: the
cumulative share at offset x is fee * x / size rounded half-up to 40 decimal
places, and a row's share is the difference of its two end points.
"""

from __future__ import annotations

import decimal
from collections import deque
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Iterable

_CTX = decimal.Context(prec=400, rounding=decimal.ROUND_FLOOR)
_SCALE = Decimal(10) ** 40


@dataclass(frozen=True)
class Trade:
    order_id: str
    account: str
    symbol: str
    side: str  # 'buy' | 'sell'
    size: Decimal
    price: Decimal
    total_fees: Decimal
    order_time: datetime


@dataclass(frozen=True)
class Allocation:
    account: str
    symbol: str
    sell_trade_id: str
    buy_trade_id: str | None
    allocated_size: Decimal
    buy_price: Decimal | None
    sell_price: Decimal
    buy_fees: Decimal | None
    sell_fees: Decimal
    cost_basis: Decimal | None
    sale_proceeds: Decimal
    pnl_amount: Decimal | None
    buy_time: datetime | None
    sell_time: datetime

    def key(self) -> tuple:
        """Identity of a row for comparisons (a sell has at most one row per lot)."""
        return (self.account, self.symbol, self.sell_trade_id, self.buy_trade_id or "")


def fee_point(fee: Decimal, size: Decimal, x: Decimal) -> Decimal:
    """Cumulative fee share at offset x: fee*x/size, half-up to 40 places."""
    if x <= 0 or fee == 0:
        return Decimal(0)
    if x >= size:
        return fee
    num = _CTX.add(_CTX.multiply(_CTX.multiply(_CTX.multiply(fee, x), 2), _SCALE), size)
    quotient = _CTX.divide_int(num, _CTX.multiply(size, 2))
    return _CTX.divide(quotient, _SCALE)


def fee_share(fee: Decimal, size: Decimal, start: Decimal, end: Decimal) -> Decimal:
    return _CTX.subtract(fee_point(fee, size, end), fee_point(fee, size, start))


def event_order(t: Trade) -> tuple:
    """docs/rules.md rule 2: (order_time, buys before sells, order_id bytewise)."""
    return (t.order_time, 0 if t.side == "buy" else 1, t.order_id.encode())


def match_pool(trades: Iterable[Trade]) -> list[Allocation]:
    """FIFO allocations of one pool's trades, in event order."""
    out: list[Allocation] = []
    lots: deque[list] = deque()  # [trade, consumed]
    for t in sorted(trades, key=event_order):
        if t.side == "buy":
            lots.append([t, Decimal(0)])
            continue
        filled = Decimal(0)
        while filled < t.size and lots:
            lot, used = lots[0]
            q = min(lot.size - used, t.size - filled)
            buy_fees = fee_share(lot.total_fees, lot.size, used, used + q)
            sell_fees = fee_share(t.total_fees, t.size, filled, filled + q)
            cost = _CTX.add(_CTX.multiply(q, lot.price), buy_fees)
            proceeds = _CTX.subtract(_CTX.multiply(q, t.price), sell_fees)
            out.append(Allocation(t.account, t.symbol, t.order_id, lot.order_id, q,
                                  lot.price, t.price, buy_fees, sell_fees, cost, proceeds,
                                  _CTX.subtract(proceeds, cost), lot.order_time, t.order_time))
            filled += q
            lots[0][1] = used + q
            if lots[0][1] == lot.size:
                lots.popleft()
        if filled < t.size:  # rule 4: no inventory at this position
            q = t.size - filled
            sell_fees = fee_share(t.total_fees, t.size, filled, t.size)
            out.append(Allocation(t.account, t.symbol, t.order_id, None, q, None, t.price, None,
                                  sell_fees, None, _CTX.subtract(_CTX.multiply(q, t.price), sell_fees),
                                  None, None, t.order_time))
    return out


def match_all(trades: Iterable[Trade]) -> list[Allocation]:
    """Allocations of every pool (account, symbol); pools are independent."""
    pools: dict[tuple[str, str], list[Trade]] = {}
    for t in trades:
        pools.setdefault((t.account, t.symbol), []).append(t)
    out: list[Allocation] = []
    for key in sorted(pools):
        out.extend(match_pool(pools[key]))
    return out
