"""Sample trades: the seed's SAPIEN-USD story and deterministic synthetic pools.

The story (seed/000_*.txt): a Sept 10 buy of 188.9 SAPIEN at 0.2349 was
already consumed by a Sept 11 sell; on Dec 3 a buy of 188.9 at 0.17477
(23:11) and a sell of 188.9 at 0.17357 (23:40) happened, but the sell was
recorded first and the buy imported afterwards. The seed's inline FIFO
matched the sell to the consumed Sept 10 lot; the right lot is Dec 3's.

synthetic_rows() makes a seed-sized (or any size) multi-symbol history:
per symbol a random-walk price, buys and sells with partial fills, fees at
Coinbase-like rates, and now and then a sell larger than the inventory.
The same arguments always give the same trades.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Iterable, Iterator

import psycopg

COLUMNS = ("order_id", "account", "symbol", "side", "size", "price", "total_fees", "order_time", "source")

SAPIEN_SELL = "b92820e6-5d1c-4a8e-9f0b-3c2e7d41a9f1"
SAPIEN_DEC3_BUY = "244dfcaf-0b7e-4c35-8d2a-6e91f3b5c7d2"
SAPIEN_SEPT10_BUY = "2bc16f9a-7e43-4f1d-a6c8-51d09e2b8a34"


def _t(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc)


def sapien_story() -> list[tuple]:
    """The seed's SAPIEN-USD trades, in the order they reached the database."""
    return [
        (SAPIEN_SEPT10_BUY, "default", "SAPIEN-USD", "buy", Decimal("188.9"), Decimal("0.2349"),
         Decimal("0.05546"), _t("2025-09-10 04:46:00"), "seed-story"),
        ("7c1e9a52-3f6d-4b80-9e27-a4d5c8f01b63", "default", "SAPIEN-USD", "sell", Decimal("188.9"),
         Decimal("0.2401"), Decimal("0.05669"), _t("2025-09-11 16:02:00"), "seed-story"),
        # recorded before the buy it consumed: the out-of-order import of the bug
        (SAPIEN_SELL, "default", "SAPIEN-USD", "sell", Decimal("188.9"), Decimal("0.17357"),
         Decimal("0.04099"), _t("2025-12-03 23:40:00"), "seed-story"),
        (SAPIEN_DEC3_BUY, "default", "SAPIEN-USD", "buy", Decimal("188.9"), Decimal("0.17477"),
         Decimal("0.04126"), _t("2025-12-03 23:11:00"), "seed-story"),
    ]


def synthetic_rows(symbols: int = 171, trades: int = 4513, seed: int = 7,
                   accounts: int = 1, start: datetime | None = None) -> Iterator[tuple]:
    """`trades` trades spread over `symbols` symbols (and `accounts` accounts), deterministic."""
    rnd = random.Random(seed)
    start = start or _t("2025-09-01 00:00:00")
    names = [f"SYN{i:04d}-USD" for i in range(symbols)]
    per_pool = [trades // symbols + (1 if i < trades % symbols else 0) for i in range(symbols)]
    for i, name in enumerate(names):
        price = Decimal(rnd.randint(10, 500_000)) / Decimal(10_000)
        held = Decimal(0)
        when = start + timedelta(minutes=rnd.randint(0, 600))
        account = f"acct{i % accounts}" if accounts > 1 else "default"
        for n in range(per_pool[i]):
            when += timedelta(minutes=rnd.randint(1, 240), seconds=rnd.randint(0, 59))
            price = max(Decimal("0.0001"), (price * Decimal(1 + rnd.uniform(-0.03, 0.031))).quantize(Decimal("0.0001")))
            if held == 0 or rnd.random() < 0.5:
                side = "buy"
                size = Decimal(rnd.randint(1, 5000)) / Decimal(10)
                held += size
            else:
                side = "sell"
                # mostly partial or full exits; about 1 in 50 oversells (rule 4)
                size = held if rnd.random() < 0.4 else (held * Decimal(rnd.randint(10, 90)) / 100).quantize(Decimal("0.1"))
                if rnd.random() < 0.02:
                    size = held + Decimal(rnd.randint(1, 50))
                size = max(size, Decimal("0.1"))
                held = max(Decimal(0), held - size)
            fee = (size * price * Decimal("0.006")).quantize(Decimal("0.00000001"))
            yield (f"{name}-{seed}-{n:07d}", account, name, side, size, price, fee, when, "synthetic")


def copy_rows(conn: psycopg.Connection, rows: Iterable[tuple]) -> int:
    """Load trade tuples (COLUMNS order) with COPY; returns how many."""
    count = 0
    with conn.cursor() as cur:
        with cur.copy(f"COPY trade_records ({', '.join(COLUMNS)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
                count += 1
    return count
