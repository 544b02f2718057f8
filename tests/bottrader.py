"""BotTrader's database, built from the facts in ../shared/bottrader/README.md.

- The bot's SQLAlchemy model (Float columns, JSONB trigger, ARRAY parent_ids,
  the two indexes) created with metadata.create_all, plus its other tables
  that reference trade_records(order_id): trade_strategy_link,
  strategy_snapshots, cash_transactions.
- Its own output tables as DDL: fifo_allocations (FKs ON DELETE CASCADE, the
  unique index, the CHECK on notes), fifo_computation_log, and the two tables
  the README names without columns, fifo_inventory_snapshot and
  manual_review_queue (their columns are a guess: a snapshot of open lots,
  and a review queue of unmatched sells), and the four v_* views written
  from their descriptions.
- Trades written the way the bot writes them: one SQLAlchemy
  pg_insert(...).on_conflict_do_update(index_elements=["order_id"]) per trade,
  values bound as Python float, str, datetime, dict and list. The story:
  the seed's SAPIEN-USD trades (the Dec 3 sell written before its buy),
  partial fills, NULL total_fees_usd, a fee correction, a re-sent batch,
  statuses filled/done/open/cancelled, a remainder below the bot's dust
  threshold, ties, an oversold sell.
- A plain-Python model of the bot's own engine ("How the bot's own engine
  matched"): per symbol, dust <= 1e-8 ignored, per-unit fees, every money
  figure rounded to 8 decimals with banker's rounding. It produced the
  legacy allocations (versions 1 and 2) and shows where fifo-db differs.
- The bot's report SQL in the README's shapes.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import ROUND_HALF_EVEN, Decimal

import psycopg
import psycopg.conninfo
import pytest
from psycopg import sql
from sqlalchemy import Column, DateTime, Float, ForeignKey, Index, Integer, String, create_engine, func
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import Engine, URL
from sqlalchemy.orm import DeclarativeBase

# --- the bot's model ---------------------------------------------------------------------------


class Base(DeclarativeBase):
    pass


class TradeRecord(Base):
    __tablename__ = "trade_records"
    order_id = Column(String, primary_key=True, unique=True)
    parent_id = Column(String)
    parent_ids = Column(ARRAY(String))
    symbol = Column(String, nullable=False)
    side = Column(String, nullable=False)
    order_time = Column(DateTime(timezone=True), nullable=False)
    price = Column(Float, nullable=False)
    size = Column(Float, nullable=False)
    pnl_usd = Column(Float)
    total_fees_usd = Column(Float)
    trigger = Column(JSONB, nullable=False)
    order_type = Column(String)
    status = Column(String)
    source = Column(String)
    cost_basis_usd = Column(Float)
    sale_proceeds_usd = Column(Float)
    net_sale_proceeds_usd = Column(Float)
    realized_profit = Column(Float)
    remaining_size = Column(Float)
    ingest_via = Column(String)
    last_reconciled_at = Column(DateTime(timezone=True))
    last_reconciled_via = Column(String)
    __table_args__ = (
        Index("ix_trade_records_symbol_order_time", "symbol", "order_time"),
        Index("ix_trade_records_symbol", "symbol"),
    )


class StrategySnapshot(Base):
    __tablename__ = "strategy_snapshots"
    id = Column(Integer, primary_key=True)
    order_id = Column(String, ForeignKey("trade_records.order_id", ondelete="CASCADE"))
    params = Column(JSONB)
    taken_at = Column(DateTime(timezone=True), server_default=func.now())


class TradeStrategyLink(Base):
    __tablename__ = "trade_strategy_link"
    id = Column(Integer, primary_key=True)
    order_id = Column(String, ForeignKey("trade_records.order_id", ondelete="CASCADE"), nullable=False)
    strategy_name = Column(String, nullable=False)
    snapshot_id = Column(Integer, ForeignKey("strategy_snapshots.id"))


class CashTransaction(Base):
    __tablename__ = "cash_transactions"
    id = Column(Integer, primary_key=True)
    order_id = Column(String, ForeignKey("trade_records.order_id"))
    amount_usd = Column(Float, nullable=False)
    kind = Column(String)
    created_at = Column(DateTime(timezone=True))


# The bot's own FIFO output, as its migrations made it (README), and the
# views over it. fifo_inventory_snapshot and manual_review_queue: columns guessed.
LEGACY_DDL = """
CREATE TABLE fifo_allocations (
    id                  bigserial PRIMARY KEY,
    sell_order_id       varchar NOT NULL REFERENCES trade_records (order_id) ON DELETE CASCADE,
    buy_order_id        varchar REFERENCES trade_records (order_id) ON DELETE CASCADE,
    symbol              varchar NOT NULL,
    allocated_size      numeric NOT NULL CHECK (allocated_size > 0),
    buy_price           numeric,
    sell_price          numeric NOT NULL,
    buy_fees_per_unit   numeric,
    sell_fees_per_unit  numeric NOT NULL,
    cost_basis_usd      numeric,
    proceeds_usd        numeric NOT NULL,
    net_proceeds_usd    numeric NOT NULL,
    pnl_usd             numeric,
    buy_time            timestamptz,
    sell_time           timestamptz,
    allocation_time     timestamptz NOT NULL DEFAULT now(),
    allocation_version  integer NOT NULL,
    allocation_batch_id uuid,
    notes               text,
    CONSTRAINT fifo_allocations_unmatched_has_notes CHECK (buy_order_id IS NOT NULL OR notes IS NOT NULL)
);
CREATE UNIQUE INDEX uq_fifo_allocations_sell_buy_version
    ON fifo_allocations (sell_order_id, COALESCE(buy_order_id, ''), allocation_version);
CREATE INDEX ix_fifo_allocations_symbol_version ON fifo_allocations (symbol, allocation_version);
COMMENT ON TABLE fifo_allocations IS 'FIFO engine output: the only P&L truth (scripts/compute_allocations.py)';

CREATE TABLE fifo_computation_log (
    id                      bigserial PRIMARY KEY,
    symbol                  varchar,
    allocation_version      integer NOT NULL,
    allocation_batch_id     uuid NOT NULL,
    computation_start       timestamptz NOT NULL DEFAULT now(),
    computation_end         timestamptz,
    computation_duration_ms integer,
    status                  varchar NOT NULL CHECK (status IN ('running', 'completed', 'failed', 'partial')),
    buys_processed          integer DEFAULT 0,
    sells_processed         integer DEFAULT 0,
    allocations_created     integer DEFAULT 0,
    error_message           text,
    symbols_processed       varchar[],
    total_pnl_computed      numeric,
    computation_mode        varchar CHECK (computation_mode IN ('full', 'incremental', 'symbol')),
    triggered_by            varchar
);

CREATE TABLE fifo_inventory_snapshot (
    id                       bigserial PRIMARY KEY,
    symbol                   varchar NOT NULL,
    buy_order_id             varchar NOT NULL REFERENCES trade_records (order_id) ON DELETE CASCADE,
    buy_time                 timestamptz NOT NULL,
    buy_price                numeric NOT NULL,
    original_size            numeric NOT NULL,
    remaining_size           numeric NOT NULL,
    remaining_cost_basis_usd numeric,
    allocation_version       integer NOT NULL,
    allocation_batch_id      uuid,
    snapshot_time            timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE manual_review_queue (
    id                 bigserial PRIMARY KEY,
    order_id           varchar NOT NULL REFERENCES trade_records (order_id) ON DELETE CASCADE,
    symbol             varchar NOT NULL,
    issue_type         varchar NOT NULL,
    unmatched_size     numeric,
    details            jsonb,
    status             varchar NOT NULL DEFAULT 'pending',
    allocation_version integer,
    created_at         timestamptz NOT NULL DEFAULT now(),
    resolved_at        timestamptz,
    resolved_by        varchar,
    resolution_notes   text
);

CREATE VIEW v_allocation_health AS
SELECT allocation_version,
       COUNT(*) AS total_allocations,
       COUNT(DISTINCT sell_order_id) AS sells_matched,
       COUNT(DISTINCT buy_order_id) AS buys_used,
       COUNT(*) FILTER (WHERE buy_order_id IS NULL) AS unmatched_allocations,
       SUM(pnl_usd) AS total_pnl_usd,
       MIN(allocation_time) AS first_allocation,
       MAX(allocation_time) AS last_allocation
FROM fifo_allocations
GROUP BY allocation_version;

CREATE VIEW v_unmatched_sells AS
SELECT fa.allocation_version, fa.sell_order_id, fa.symbol, fa.allocated_size AS unmatched_size,
       fa.sell_price, fa.sell_time, fa.notes
FROM fifo_allocations fa
WHERE fa.buy_order_id IS NULL;

CREATE VIEW v_pnl_by_symbol AS
SELECT symbol,
       COUNT(*) AS allocations,
       COUNT(DISTINCT sell_order_id) AS sells,
       SUM(allocated_size) AS size_sold,
       SUM(cost_basis_usd) AS cost_basis_usd,
       SUM(net_proceeds_usd) AS net_proceeds_usd,
       SUM(pnl_usd) AS pnl_usd
FROM fifo_allocations
WHERE allocation_version = (SELECT MAX(allocation_version) FROM fifo_allocations)
GROUP BY symbol;

CREATE VIEW v_allocation_discrepancies AS
SELECT tr.order_id, tr.symbol, tr.size AS sell_size, fa.allocation_version,
       SUM(fa.allocated_size) AS allocated_total
FROM trade_records tr
JOIN fifo_allocations fa ON fa.sell_order_id = tr.order_id
WHERE tr.side = 'sell'
GROUP BY tr.order_id, tr.symbol, tr.size, fa.allocation_version
HAVING ABS(tr.size - SUM(fa.allocated_size)) > 1e-5;
"""

LEGACY_TABLES = ("fifo_allocations", "fifo_computation_log", "fifo_inventory_snapshot", "manual_review_queue")
BOT_VIEWS = ("v_allocation_health", "v_unmatched_sells", "v_pnl_by_symbol", "v_allocation_discrepancies")


def engine_for(conn: psycopg.Connection) -> Engine:
    """A SQLAlchemy engine (psycopg 3 driver) on the database of `conn`, as the bot connects."""
    info = conn.info
    return create_engine(URL.create("postgresql+psycopg", username=info.user, password=info.password or None,
                                    database=info.dbname, query={"host": info.host, "port": str(info.port)}))


def create_schema(engine: Engine) -> None:
    """The bot's tables (metadata.create_all), then its FIFO tables and views."""
    Base.metadata.create_all(engine)
    with engine.begin() as c:
        c.exec_driver_sql(LEGACY_DDL)


# --- writing the bot's way ---------------------------------------------------------------------

# what the bot's reconciliation may change on a re-upsert (README)
UPSERT_SET = ("status", "price", "size", "total_fees_usd", "trigger", "source", "order_time",
              "last_reconciled_at", "last_reconciled_via")


def upsert(engine: Engine, rows: list[dict]) -> None:
    """One INSERT ... ON CONFLICT (order_id) DO UPDATE per trade, as the bot's trade recorder does."""
    with engine.begin() as c:
        for row in rows:
            stmt = pg_insert(TradeRecord).values(**row)
            stmt = stmt.on_conflict_do_update(
                index_elements=["order_id"],
                set_={k: stmt.excluded[k] for k in UPSERT_SET if k in row})
            c.execute(stmt)


def trade(order_id: str, symbol: str, side: str, size: float, price: float, fees: float | None,
          order_time: datetime, status: str = "filled", trigger: str | None = None,
          source: str = "websocket") -> dict:
    """A row as the bot binds it: Python floats, str, datetime, dict (jsonb), list."""
    return {
        "order_id": order_id, "symbol": symbol, "side": side, "order_time": order_time,
        "price": float(price), "size": float(size), "total_fees_usd": None if fees is None else float(fees),
        "trigger": {"trigger": trigger or ("roc_buy" if side == "buy" else "take_profit")},
        "order_type": "limit", "status": status, "source": source, "ingest_via": "websocket",
        # legacy columns the bot still fills: buys carry [own id] and their size
        "parent_ids": [order_id] if side == "buy" else None,
        "remaining_size": float(size) if side == "buy" else None,
    }


def _t(text_: str) -> datetime:
    return datetime.fromisoformat(text_).replace(tzinfo=timezone.utc)


SAPIEN_SEPT10_BUY = "2bc16f9a-7e43-4f1d-a6c8-51d09e2b8a34"
SAPIEN_SEPT11_SELL = "7c1e9a52-3f6d-4b80-9e27-a4d5c8f01b63"
SAPIEN_DEC3_SELL = "b92820e6-5d1c-4a8e-9f0b-3c2e7d41a9f1"
SAPIEN_DEC3_BUY = "244dfcaf-0b7e-4c35-8d2a-6e91f3b5c7d2"


def recent_base() -> datetime:
    """The start of the 'recent' trades: 3 days ago at 00:00 UTC, so weekly reports see them."""
    now = datetime.now(timezone.utc)
    return now.replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=3)


def story(base: datetime | None = None) -> list[list[dict]]:
    """The bot's writes, in the order they reached the database: a list of batches (one
    transaction each). Symbols other than SAPIEN-USD trade in the last days (see recent_base)."""
    b = base or recent_base()
    h = lambda hours: b + timedelta(hours=hours)   # noqa: E731
    return [
        # the seed's story: the Dec 3 sell is recorded before the buy it consumed
        [trade(SAPIEN_SEPT10_BUY, "SAPIEN-USD", "buy", 188.9, 0.2349, 0.05546, _t("2025-09-10 04:46"), "done")],
        [trade(SAPIEN_SEPT11_SELL, "SAPIEN-USD", "sell", 188.9, 0.2401, 0.05669, _t("2025-09-11 16:02"), "done")],
        [trade(SAPIEN_DEC3_SELL, "SAPIEN-USD", "sell", 188.9, 0.17357, 0.04099, _t("2025-12-03 23:40"))],
        [trade(SAPIEN_DEC3_BUY, "SAPIEN-USD", "buy", 188.9, 0.17477, 0.04126, _t("2025-12-03 23:11"),
               source="reconciled")],
        # BTC-USD: an order filled in two parts, a sell with no fee reported (NULL)
        [trade("btc-b1", "BTC-USD", "buy", 0.01, 60000.0, 3.6, h(1)),
         trade("btc-b2", "BTC-USD", "buy", 0.02, 61000.5, 7.32006, h(2)),
         trade("btc-b2-FILL-2", "BTC-USD", "buy", 0.005, 61000.5, 1.830015, h(2))],
        [trade("btc-s1", "BTC-USD", "sell", 0.025, 63000.25, None, h(5))],
        [trade("btc-s2", "BTC-USD", "sell", 0.01, 59000.0, 3.54, h(6))],
        # ETH-USD: a fee of 1.00 shared by three sells of a third each (per-unit fees round)
        [trade("eth-b1", "ETH-USD", "buy", 3.0, 2000.0, 1.0, h(1))],
        [trade("eth-s1", "ETH-USD", "sell", 1.0, 2100.0, 0.5, h(10)),
         trade("eth-s2", "ETH-USD", "sell", 1.0, 2150.0, 0.5, h(11)),
         trade("eth-s3", "ETH-USD", "sell", 1.0, 2050.0, 0.5, h(12))],
        # a resting buy order the bot also recorded (status open): the bot's engine counted it
        [trade("eth-open", "ETH-USD", "buy", 1.0, 1900.0, 0.0, h(30), "open")],
        # DOGE-USD: remainders at or below 1e-8, which the bot's engine ignored
        [trade("doge-b1", "DOGE-USD", "buy", 100.000000005, 0.1, 0.06, h(1)),
         trade("doge-s1", "DOGE-USD", "sell", 100.0, 0.11, 0.066, h(2)),
         trade("doge-b2", "DOGE-USD", "buy", 50.0, 0.12, 0.036, h(3)),
         trade("doge-s2", "DOGE-USD", "sell", 50.000000004, 0.13, 0.039, h(4))],
        [trade("xrp-b1", "XRP-USD", "buy", 20.0, 0.5, 0.01, h(1)),
         trade("xrp-s1", "XRP-USD", "sell", 20.000000003, 0.6, 0.012, h(2))],
        # TIE-USD: a buy and a sell at the same instant; two buys at one instant
        [trade("tie-b0", "TIE-USD", "buy", 10.0, 1.0, 0.01, h(20)),
         trade("tie-s0", "TIE-USD", "sell", 10.0, 1.1, 0.011, h(20)),
         trade("tie-a", "TIE-USD", "buy", 5.0, 1.2, 0.006, h(21)),
         trade("tie-B", "TIE-USD", "buy", 5.0, 1.0, 0.005, h(21)),
         trade("tie-s1", "TIE-USD", "sell", 5.0, 1.3, 0.0065, h(22))],
        # OVER-USD: a sell larger than the inventory (part of it unmatched)
        [trade("over-b1", "OVER-USD", "buy", 4.0, 10.0, 0.04, h(1)),
         trade("over-s1", "OVER-USD", "sell", 10.0, 11.0, 0.11, h(2))],
        # ADA-USD: a sell order that was cancelled, recorded anyway
        [trade("ada-s1", "ADA-USD", "sell", 50.0, 0.5, 0.0, h(5), "cancelled")],
        # reconciliation: the BTC sell's fee corrected, then the whole BTC batch re-sent
        [{**trade("btc-s2", "BTC-USD", "sell", 0.01, 59000.0, 3.61, h(6), source="reconciled"),
          "last_reconciled_at": h(7), "last_reconciled_via": "rest"}],
        [trade(o, "BTC-USD", s, z, p, f, t, source="reconciled") for o, s, z, p, f, t in (
            ("btc-b1", "buy", 0.01, 60000.0, 3.6, h(1)), ("btc-b2", "buy", 0.02, 61000.5, 7.32006, h(2)),
            ("btc-b2-FILL-2", "buy", 0.005, 61000.5, 1.830015, h(2)),
            ("btc-s1", "sell", 0.025, 63000.25, None, h(5)), ("btc-s2", "sell", 0.01, 59000.0, 3.61, h(6)))],
    ]


# --- the bot's own engine (README: "How the bot's own engine matched") -------------------------

DUST = Decimal("1e-8")
_EIGHT = Decimal("1e-8")


def _r8(x: Decimal) -> Decimal:
    return x.quantize(_EIGHT, rounding=ROUND_HALF_EVEN)


def _d(x: float | None) -> Decimal:
    return Decimal(repr(float(x))) if x is not None else Decimal(0)


@dataclass
class BotAllocation:
    sell_order_id: str
    buy_order_id: str | None
    symbol: str
    allocated_size: Decimal
    buy_price: Decimal | None
    sell_price: Decimal
    buy_fees_per_unit: Decimal | None
    sell_fees_per_unit: Decimal
    cost_basis_usd: Decimal | None
    proceeds_usd: Decimal
    net_proceeds_usd: Decimal
    pnl_usd: Decimal | None
    buy_time: datetime | None
    sell_time: datetime
    notes: str | None


def bot_engine(trades: list[dict]) -> list[BotAllocation]:
    """The bot's matching: per symbol, buys and sells each in (order_time, order_id) order; a
    sell uses buys with order_time <= its own; remainders <= 1e-8 ignored; per-unit fees;
    money rounded to 8 decimals (banker's). Every row counts, whatever its status."""
    out: list[BotAllocation] = []
    for symbol in sorted({t["symbol"] for t in trades}):
        rows = [t for t in trades if t["symbol"] == symbol]
        buys = sorted((t for t in rows if t["side"] == "buy"), key=lambda t: (t["order_time"], t["order_id"]))
        sells = sorted((t for t in rows if t["side"] == "sell"), key=lambda t: (t["order_time"], t["order_id"]))
        left = {b["order_id"]: _d(b["size"]) for b in buys}
        for s in sells:
            need = _d(s["size"])
            sell_price = _d(s["price"])
            sfpu = _r8(_d(s["total_fees_usd"]) / _d(s["size"]))
            for b in buys:
                if b["order_time"] > s["order_time"] or need <= DUST:
                    break
                if left[b["order_id"]] <= DUST:
                    continue
                q = min(left[b["order_id"]], need)
                bfpu = _r8(_d(b["total_fees_usd"]) / _d(b["size"]))
                cost = _r8((_d(b["price"]) + bfpu) * q)
                proceeds = _r8(sell_price * q)
                net = _r8(proceeds - sfpu * q)
                out.append(BotAllocation(s["order_id"], b["order_id"], symbol, q, _d(b["price"]), sell_price,
                                         bfpu, sfpu, cost, proceeds, net, _r8(net - cost),
                                         b["order_time"], s["order_time"], None))
                left[b["order_id"]] -= q
                need -= q
            if need > DUST:
                proceeds = _r8(sell_price * need)
                out.append(BotAllocation(s["order_id"], None, symbol, need, None, sell_price, None, sfpu, None,
                                         proceeds, _r8(proceeds - sfpu * need), None, None, s["order_time"],
                                         f"unmatched: no inventory for {need} {symbol}"))
    return out


def final_rows(batches: list[list[dict]]) -> list[dict]:
    """The table's content after the batches: the last write of each order_id wins."""
    final: dict[str, dict] = {}
    for batch in batches:
        for row in batch:
            final[row["order_id"]] = {**final.get(row["order_id"], {}), **row}
    return list(final.values())


def insert_legacy(conn: psycopg.Connection, trades: list[dict]) -> None:
    """What the bot's engine left behind: allocations at versions 1 (the inline FIFO's era: the
    Dec 3 SAPIEN sell charged to the consumed Sept 10 lot, -14.91) and 2 (the fixed engine), its
    computation log, an inventory snapshot and the review queue."""
    rows = bot_engine(trades)
    batch1, batch2 = uuid.UUID(int=1), uuid.UUID(int=2)
    at1, at2 = _t("2025-12-04 01:50"), _t("2025-12-04 10:30")
    cols = ("sell_order_id", "buy_order_id", "symbol", "allocated_size", "buy_price", "sell_price",
            "buy_fees_per_unit", "sell_fees_per_unit", "cost_basis_usd", "proceeds_usd", "net_proceeds_usd",
            "pnl_usd", "buy_time", "sell_time", "notes")
    values = []
    for version, batch, at in ((1, batch1, at1), (2, batch2, at2)):
        for a in rows:
            v = [getattr(a, c) for c in cols]
            if version == 1 and a.sell_order_id == SAPIEN_DEC3_SELL:
                # the seed's wrong row: matched to the Sept 10 lot, P&L -14.91
                v[1], v[4], v[12] = SAPIEN_SEPT10_BUY, Decimal("0.2349"), _t("2025-09-10 04:46")
                v[11] = Decimal("-14.91")
                v[8] = v[10] - v[11]   # a cost basis that agrees with it
            values.append((*v, at, version, batch))
    with conn.cursor() as cur:
        cur.executemany(
            f"INSERT INTO fifo_allocations ({', '.join(cols)}, allocation_time, allocation_version, "
            f"allocation_batch_id) VALUES ({', '.join(['%s'] * (len(cols) + 3))})", values)
        for version, batch, at in ((1, batch1, at1), (2, batch2, at2)):
            cur.execute(
                "INSERT INTO fifo_computation_log (symbol, allocation_version, allocation_batch_id, computation_start, "
                "computation_end, computation_duration_ms, status, buys_processed, sells_processed, "
                "allocations_created, symbols_processed, total_pnl_computed, computation_mode, triggered_by) "
                "SELECT NULL, %s, %s, %s, %s + interval '88 seconds', 88301, 'completed', "
                "count(*) FILTER (WHERE side = 'buy'), count(*) FILTER (WHERE side = 'sell'), "
                "(SELECT count(*) FROM fifo_allocations WHERE allocation_version = %s), "
                "array_agg(DISTINCT symbol), "
                "(SELECT sum(pnl_usd) FROM fifo_allocations WHERE allocation_version = %s), 'full', 'cron' "
                "FROM trade_records", (version, batch, at, at, version, version))
        cur.execute(
            "INSERT INTO manual_review_queue (order_id, symbol, issue_type, unmatched_size, details, allocation_version) "
            "SELECT sell_order_id, symbol, 'unmatched_sell', allocated_size, jsonb_build_object('notes', notes), 2 "
            "FROM fifo_allocations WHERE allocation_version = 2 AND buy_order_id IS NULL")
        cur.execute(
            "INSERT INTO fifo_inventory_snapshot (symbol, buy_order_id, buy_time, buy_price, original_size, "
            "remaining_size, remaining_cost_basis_usd, allocation_version, allocation_batch_id, snapshot_time) "
            "SELECT tr.symbol, tr.order_id, tr.order_time, tr.price::numeric, tr.size::numeric, "
            "tr.size::numeric - coalesce(u.used, 0), round((tr.size::numeric - coalesce(u.used, 0)) * tr.price::numeric, 8), "
            "2, %s, %s "
            "FROM trade_records tr LEFT JOIN (SELECT buy_order_id, sum(allocated_size) AS used FROM fifo_allocations "
            "WHERE allocation_version = 2 GROUP BY 1) u ON u.buy_order_id = tr.order_id "
            "WHERE tr.side = 'buy' AND tr.size::numeric - coalesce(u.used, 0) > 1e-8", (batch2, at2))


def insert_others(conn: psycopg.Connection) -> None:
    """Rows in the bot's other tables that reference trades (FKs to trade_records.order_id)."""
    conn.execute("INSERT INTO strategy_snapshots (order_id, params) VALUES (%s, '{\"roc\": 0.02}')",
                 (SAPIEN_DEC3_BUY,))
    conn.execute("INSERT INTO trade_strategy_link (order_id, strategy_name, snapshot_id) "
                 "SELECT %s, 'roc_momentum', max(id) FROM strategy_snapshots", (SAPIEN_DEC3_BUY,))
    conn.execute("INSERT INTO cash_transactions (order_id, amount_usd, kind, created_at) "
                 "VALUES (%s, 32.74638359, 'sell_proceeds', %s)", (SAPIEN_DEC3_SELL, _t("2025-12-03 23:41")))


def build(conn: psycopg.Connection, base: datetime | None = None) -> list[dict]:
    """Make the database of `conn` (empty) a BotTrader database with its story and legacy output.
    Returns the trades as the table holds them at the end."""
    engine = engine_for(conn)
    try:
        create_schema(engine)
        batches = story(base)
        for batch in batches:
            upsert(engine, batch)
    finally:
        engine.dispose()
    trades = final_rows(batches)
    insert_legacy(conn, trades)
    insert_others(conn)
    return trades


# --- the bot's report SQL, in the README's shapes ----------------------------------------------

# daily email / weekly reports / metrics: P&L per sell (time window on tr.order_time)
REPORT_PER_SELL = """
SELECT tr.order_id, tr.symbol, tr.trigger->>'trigger' AS trigger, tr.source,
       COALESCE(SUM(fa.pnl_usd), 0) AS pnl_usd
FROM trade_records tr
LEFT JOIN fifo_allocations fa ON fa.sell_order_id = tr.order_id AND fa.allocation_version = 2
WHERE tr.side = 'sell' AND tr.status IN ('filled', 'done') AND tr.order_time >= %(since)s
GROUP BY tr.order_id
ORDER BY tr.order_id"""

# the weekly per-symbol report, straight off the allocations
REPORT_WEEKLY_SYMBOL = """
SELECT symbol, COUNT(*) AS trades, SUM(pnl_usd) AS total_pnl, AVG(pnl_usd) AS avg_pnl,
       STDDEV(pnl_usd) AS stddev_pnl, SUM(allocated_size) AS size, MIN(buy_time) AS first_buy
FROM fifo_allocations
WHERE allocation_version = 2 AND sell_time >= NOW() - INTERVAL '7 days'
GROUP BY symbol
ORDER BY symbol"""

# the seed document's spot check, in fifo-db's (the seed's) names
SPOT_CHECK = """
SELECT tr.symbol, tr.order_id, tr.side, tr.order_time,
       tr.pnl_usd AS db_pnl,
       fa.pnl_amount AS fifo_pnl
FROM trade_records tr
LEFT JOIN fifo_allocations fa ON tr.order_id = fa.sell_trade_id
WHERE tr.side = 'sell'
  AND tr.order_time >= %(since)s
ORDER BY tr.order_time DESC, tr.order_id, fa.buy_trade_id
LIMIT 20"""


def fifo_names(query: str) -> str:
    """The same report in fifo-db's column names (for comparing both vocabularies)."""
    for bot, ours in (("sell_order_id", "sell_trade_id"), ("buy_order_id", "buy_trade_id"),
                      ("allocation_version", "version"), ("pnl_usd", "pnl_amount")):
        query = query.replace(f"fa.{bot}", f"fa.{ours}").replace(f" {bot} ", f" {ours} ") \
                     .replace(f"({bot})", f"({ours})")
    return query


def legacy_rows(conn: psycopg.Connection, version: int = 2) -> list[tuple]:
    """The bot's stored allocations of `version` (as it left them), sorted."""
    return conn.execute(
        "SELECT sell_order_id, buy_order_id, allocated_size, pnl_usd FROM fifo_legacy.fifo_allocations "
        "WHERE allocation_version = %s ORDER BY 1, 2 NULLS LAST", (version,)).fetchall()


# --- test fixtures: a BotTrader database per test, cloned from one built per session -----------

def dump(conn: psycopg.Connection) -> str:
    """pg_dump of the database of `conn`, schema and data, as text (fixed \\restrict key)."""
    import subprocess

    from fifo_db.embedded import find_bindir

    info = conn.info
    pg_dump = str(find_bindir() / "pg_dump")
    # a pg_dump older than 15.14/16.10/17.6 (pgserver's 16.2) has no \restrict lines to fix
    restrict = ["--restrict-key=fifodbtest"] if "--restrict-key" in subprocess.run(
        [pg_dump, "--help"], check=True, capture_output=True, text=True).stdout else []
    return subprocess.run(
        [pg_dump, *restrict, "-h", info.host, "-p", str(info.port),
         "-U", info.user, info.dbname], check=True, capture_output=True, text=True,
        env={**os.environ, "PGPASSWORD": info.password} if info.password else None).stdout


@dataclass
class BotDb:
    conn: psycopg.Connection   # autocommit
    dsn: str
    trades: list[dict]         # the rows as the table holds them after the story
    base: datetime             # recent_base() of the story


def _admin():
    from tests.conftest import SERVER

    return SERVER, psycopg.connect(**SERVER.conninfo("postgres"), autocommit=True)


@pytest.fixture(scope="session")
def bot_template():
    """A BotTrader database built once per session (template of `bot`)."""
    server, admin = _admin()
    name = f"bottrader_tmpl_{os.getpid()}"
    base = recent_base()
    with admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        admin.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(name)))
        with psycopg.connect(**server.conninfo(name), autocommit=True) as c:
            trades = build(c, base)
        yield name, trades, base
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def bot(bot_template) -> BotDb:
    """This test's own BotTrader database (a clone of the session's), fifo-db not installed."""
    template, trades, base = bot_template
    server, admin = _admin()
    name = f"bot_{uuid.uuid4().hex[:12]}"
    with admin:
        admin.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(name), sql.Identifier(template)))
        info = server.conninfo(name)
        conn = psycopg.connect(**info, autocommit=True)
        try:
            yield BotDb(conn, " ".join(f"{k}={v}" for k, v in info.items()), [dict(t) for t in trades], base)
        finally:
            conn.close()
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def main(argv: list[str] | None = None) -> int:
    """`python -m tests.bottrader DBNAME [DSN]`: (re)create DBNAME as a BotTrader database (the
    walk-through of docs/adopting.md). DSN reaches the server (default: the embedded one)."""
    import sys

    from fifo_db.connection import resolve_dsn

    args = sys.argv[1:] if argv is None else argv
    name, dsn = args[0], resolve_dsn(args[1] if len(args) > 1 else None)
    with psycopg.connect(psycopg.conninfo.make_conninfo(dsn, dbname="postgres"), autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        admin.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(name)))
    with psycopg.connect(psycopg.conninfo.make_conninfo(dsn, dbname=name), autocommit=True) as conn:
        trades = build(conn)
    print(f"created BotTrader database {name!r}: {len(trades)} trades written the bot's way, "
          f"its FIFO tables holding versions 1 and 2")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
