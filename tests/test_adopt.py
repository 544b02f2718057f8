"""Adopting BotTrader's database (`fifo-db install --adopt`): refusal without --adopt, the dry
run, what is kept and moved, exact allocations at the bot's version, the bot's reports through
both vocabularies, the bot still reading and writing, and errors."""

from __future__ import annotations

from decimal import Decimal, localcontext

import psycopg
import pytest
from sqlalchemy.orm import Session

from fifo_db.adopt import adopt
from fifo_db.cli import main
from fifo_db.errors import FifoError
from fifo_db.install import install
from fifo_db.reference import Trade, match_all
from tests import bottrader
from tests.bottrader import (SAPIEN_DEC3_BUY, SAPIEN_DEC3_SELL, TradeRecord, bot, bot_template,  # noqa: F401
                             dump)
from tests.helpers import stored

SINCE = "2000-01-01"


def reference(trades: list[dict], statuses: tuple[str, ...] | None = None) -> list:
    """The plain-Python reference FIFO over the bot's rows, each float read as its shortest decimal."""
    def d(x):
        return Decimal(repr(x)) if x is not None else Decimal(0)
    rows = [Trade(t["order_id"], "default", t["symbol"], t["side"], d(t["size"]), d(t["price"]),
                  d(t["total_fees_usd"]), t["order_time"])
            for t in trades if statuses is None or t["status"] in statuses]
    return sorted(match_all(rows), key=lambda a: a.key())


def dsum(values) -> Decimal:
    """An exact sum (the reference's figures carry up to 40 decimals)."""
    with localcontext(prec=400):
        return sum(values, Decimal(0))


def adopted(bot, compute: bool = True):
    adopt(bot.conn)
    if compute:
        assert bot.conn.execute("SELECT (compute_fifo_all(true)).status").fetchone()[0] == "ok"
    return bot.conn


def test_plain_install_refuses_and_changes_nothing(bot, capsys):
    before = dump(bot.conn)
    assert main(["--dsn", bot.dsn, "install"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "public.trade_records" in err and "fifo-db install --adopt" in err
    assert dump(bot.conn) == before


def test_dry_run_prints_the_plan_proves_it_and_changes_nothing(bot, capsys):
    before = dump(bot.conn)
    assert main(["--dsn", bot.dsn, "install", "--adopt", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "public.fifo_allocations -> fifo_legacy.fifo_allocations: 34 rows " \
           "(allocation_version 1: 17, allocation_version 2: 17)" in out
    assert "status: filled 24, done 2, cancelled 1, open 1" in out
    assert "2 rows have a status other than filled/done" in out
    assert "public.v_allocation_discrepancies, public.v_allocation_health, public.v_pnl_by_symbol, " \
           "public.v_unmatched_sells" in out
    assert "current_version = 2" in out
    assert "public.manual_review_queue: no fifo-db equivalent, always NULL: resolved_at, resolved_by, " \
           "resolution_notes" in out
    assert out.rstrip().endswith("checked: adoption succeeds; nothing was changed. "
                                 "Run `fifo-db install --adopt` to adopt.")
    assert dump(bot.conn) == before


def test_adopt_keeps_the_bots_tables_and_rows_under_fifo_legacy(bot):
    c = bot.conn
    old = {t: c.execute(f"SELECT * FROM public.{t} ORDER BY id").fetchall() for t in bottrader.LEGACY_TABLES}
    fks = c.execute("SELECT conname, conrelid::regclass::text FROM pg_constraint WHERE contype = 'f' "
                    "AND confrelid = 'public.trade_records'::regclass ORDER BY 1").fetchall()
    adopted(bot, compute=False)
    for table, rows in old.items():
        assert c.execute(f"SELECT * FROM fifo_legacy.{table} ORDER BY id").fetchall() == rows
        assert c.execute("SELECT relkind FROM pg_class WHERE oid = %s::regclass", (f"public.{table}",)
                         ).fetchone()[0] == "v"
    # the bot's foreign keys to trade_records all still hold (the legacy tables' follow them)
    assert c.execute("SELECT conname, replace(conrelid::regclass::text, 'fifo_legacy.', '') FROM pg_constraint "
                     "WHERE contype = 'f' AND confrelid = 'public.trade_records'::regclass ORDER BY 1"
                     ).fetchall() == [(n, t.replace("fifo_legacy.", "")) for n, t in fks]
    assert dict(c.execute("SELECT name, value FROM fifo.settings WHERE name IN "
                          "('trades_source', 'fill_statuses', 'current_version')").fetchall()) == \
        {"trades_source": "bottrader", "fill_statuses": "*", "current_version": "2"}
    assert c.execute("SELECT legacy_tables, triggers, bot_version, pg_cron_existed FROM fifo.adoption").fetchone() == (
        list(bottrader.LEGACY_TABLES),
        ["fifo_asset_capture_delete", "fifo_asset_capture_insert", "fifo_asset_capture_truncate",
         "fifo_asset_capture_update", "fifo_capture_delete", "fifo_capture_insert", "fifo_capture_truncate",
         "fifo_capture_update"], 2, False)
    # the bot's trade_records kept its columns and types (no column added or changed)
    assert c.execute("SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = "
                     "'public.trade_records'::regclass AND attname = 'size'").fetchone()[0] == "double precision"
    # every column the bot's tables had is there, with its type, in the replacement views
    for table in bottrader.LEGACY_TABLES:
        legacy = c.execute("SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
                           "WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped",
                           (f"fifo_legacy.{table}",)).fetchall()
        view = set(c.execute("SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
                             "WHERE attrelid = %s::regclass AND attnum > 0", (f"public.{table}",)).fetchall())
        assert set(legacy) <= view, table


def test_allocations_equal_the_reference_fifo_at_the_bots_version(bot):
    c = adopted(bot)
    assert stored(c, version=2) == reference(bot.trades)
    assert c.execute("SELECT count(*) FROM verify_fifo()").fetchone()[0] == 0
    # SAPIEN-USD: the Dec 3 sell -> the Dec 3 lot, read through the bot's names
    assert c.execute("SELECT buy_order_id, pnl_usd FROM fifo_allocations "
                     "WHERE sell_order_id = %s AND allocation_version = 2", (SAPIEN_DEC3_SELL,)).fetchall() == \
        [(SAPIEN_DEC3_BUY, Decimal("-0.30893"))]
    # floats are read as their shortest decimal: 188.9, 0.17357
    assert c.execute("SELECT allocated_size::text, sell_price::text FROM fifo_allocations "
                     "WHERE sell_order_id = %s", (SAPIEN_DEC3_SELL,)).fetchone() == ("188.9", "0.17357")
    # NULL total_fees_usd is a fee of 0
    assert c.execute("SELECT sum(sell_fees) FROM fifo_allocations WHERE sell_order_id = 'btc-s1'").fetchone()[0] == 0


def test_verify_cli_is_clean_after_compute_cli(bot, capsys):
    adopted(bot, compute=False)
    assert main(["--dsn", bot.dsn, "compute", "--version", "2", "--all-symbols", "--force"]) == 0
    assert "  - Version: 2\n" in capsys.readouterr().out
    assert main(["--dsn", bot.dsn, "verify"]) == 0
    assert capsys.readouterr().out.startswith("verify: clean (8 computed pool(s)")


def test_the_bots_report_sql_gives_the_same_numbers_in_both_vocabularies(bot):
    c = adopted(bot)
    expected = reference(bot.trades)
    per_sell = c.execute(bottrader.REPORT_PER_SELL, {"since": SINCE}).fetchall()
    assert per_sell == c.execute(bottrader.fifo_names(bottrader.REPORT_PER_SELL), {"since": SINCE}).fetchall()
    fills = {t["order_id"] for t in bot.trades if t["side"] == "sell" and t["status"] in ("filled", "done")}
    want = {s: dsum(a.pnl_amount or 0 for a in expected if a.sell_trade_id == s)
            for s in fills}
    assert {r[0]: r[4] for r in per_sell} == want
    assert dict((r[0], r[2]) for r in per_sell)[SAPIEN_DEC3_SELL] == "take_profit"   # trigger->>'trigger'

    weekly = c.execute(bottrader.REPORT_WEEKLY_SYMBOL).fetchall()
    assert weekly == c.execute(bottrader.fifo_names(bottrader.REPORT_WEEKLY_SYMBOL)).fetchall()
    btc = [a for a in expected if a.symbol == "BTC-USD"]
    row = next(r for r in weekly if r[0] == "BTC-USD")
    assert row[1:3] == (len(btc), dsum(a.pnl_amount for a in btc))
    assert "SAPIEN-USD" not in {r[0] for r in weekly}   # sold in 2025, outside the week

    # the seed's spot check, in fifo-db's own names
    spot = c.execute(bottrader.SPOT_CHECK, {"since": "2025-12-01"}).fetchall()
    assert (spot[-1][1], spot[-1][4], spot[-1][5]) == (SAPIEN_DEC3_SELL, None, Decimal("-0.30893"))

    # the bot's views, re-pointed at fifo-db's allocations
    assert c.execute("SELECT allocation_version, total_allocations, unmatched_allocations, total_pnl_usd "
                     "FROM v_allocation_health").fetchall() == \
        [(2, len(expected), sum(a.buy_trade_id is None for a in expected),
          dsum(a.pnl_amount or 0 for a in expected))]
    assert c.execute("SELECT sell_order_id, unmatched_size FROM v_unmatched_sells ORDER BY 1").fetchall() == \
        [(a.sell_trade_id, a.allocated_size) for a in sorted(expected, key=lambda a: a.sell_trade_id)
         if a.buy_trade_id is None]
    assert dict(c.execute("SELECT symbol, pnl_usd FROM v_pnl_by_symbol").fetchall()) == \
        {s: dsum(a.pnl_amount for a in expected if a.symbol == s and a.pnl_amount is not None)
         if any(a.pnl_amount is not None for a in expected if a.symbol == s) else None
         for s in {a.symbol for a in expected}}
    assert c.execute("SELECT * FROM v_allocation_discrepancies").fetchall() == []


def test_the_bots_model_still_reads_and_writes(bot):
    adopted(bot)
    engine = bottrader.engine_for(bot.conn)
    try:
        with Session(engine) as s:
            row = s.get(TradeRecord, SAPIEN_DEC3_SELL)
            assert (row.size, row.price, row.total_fees_usd) == (188.9, 0.17357, 0.04099)
            assert row.trigger == {"trigger": "take_profit"} and row.status == "filled"
        new = bottrader.trade("sol-b1", "SOL-USD", "buy", 1.23456789, 150.1, 0.1, bot.base)
        bottrader.upsert(engine, [new])
        with Session(engine) as s:
            row = s.get(TradeRecord, "sol-b1")
            assert (row.size, row.price, row.parent_ids) == (1.23456789, 150.1, ["sol-b1"])
            row.status = "done"   # an ORM update, as the bot's reconciler may do
            s.commit()
        # the bot's other tables still reference trade_records
        bot.conn.execute("INSERT INTO cash_transactions (order_id, amount_usd, kind) VALUES ('sol-b1', -185.4, 'buy')")
    finally:
        engine.dispose()


def test_further_bot_writes_are_picked_up_by_the_incremental_run(bot):
    c = adopted(bot)
    engine = bottrader.engine_for(c)
    h = bot.base
    try:
        # re-sending a batch unchanged (reconciliation) marks nothing
        bottrader.upsert(engine, [t for t in bot.trades if t["symbol"] == "ETH-USD"])
        assert c.execute("SELECT count(*) FROM fifo.pool_changes WHERE processed_at IS NULL").fetchone()[0] == 0
        assert c.execute("SELECT compute_fifo_incremental()").fetchone()[0] is None
        writes = [
            # a fee correction, a back-dated sell, a new buy and a partial fill
            {**next(t for t in bot.trades if t["order_id"] == "eth-s2"), "total_fees_usd": 0.75},
            bottrader.trade("btc-s0", "BTC-USD", "sell", 0.005, 62000.0, 1.1, h.replace(hour=3)),
            bottrader.trade("tie-b9", "TIE-USD", "buy", 2.5, 0.9, 0.002, h.replace(hour=23)),
            bottrader.trade("tie-b9-FILL-2", "TIE-USD", "buy", 0.5, 0.9, 0.0004, h.replace(hour=23)),
        ]
        bottrader.upsert(engine, writes)
    finally:
        engine.dispose()
    pending = {r[0] for r in c.execute("SELECT symbol FROM fifo.pool_changes WHERE processed_at IS NULL")}
    assert pending == {"ETH-USD", "BTC-USD", "TIE-USD"}
    run = c.execute("SELECT mode, pools, status FROM compute_fifo_incremental()").fetchone()
    assert run == ("incremental", 3, "ok")
    assert stored(c, version=2) == reference(bottrader.final_rows([bot.trades, writes]))


def test_since_picks_up_the_bots_writes(bot, capsys):
    c = adopted(bot)
    engine = bottrader.engine_for(c)
    try:
        fix = {**next(t for t in bot.trades if t["order_id"] == SAPIEN_DEC3_BUY), "total_fees_usd": 0.05}
        bottrader.upsert(engine, [fix])
    finally:
        engine.dispose()
    assert main(["--dsn", bot.dsn, "compute", "--version", "2", "--all-symbols", "--since", "10 minutes ago"]) == 0
    # every pool changed in the last 10 minutes: the adoption queued them all, and the fee fix
    assert "  - Symbols processed: 8\n" in capsys.readouterr().out
    assert stored(c, version=2) == reference(bottrader.final_rows([bot.trades, [fix]]))
    assert main(["--dsn", bot.dsn, "compute", "--symbol", "SAPIEN-USD", "--force"]) == 0


def test_fill_statuses_leaves_out_other_rows_and_requeues_every_pool(bot):
    c = adopted(bot)
    c.execute("SELECT fifo_set_setting('fill_statuses', 'filled,done')")
    assert c.execute("SELECT count(DISTINCT symbol) FROM fifo.pool_changes WHERE processed_at IS NULL"
                     ).fetchone()[0] == 8
    c.execute("SELECT compute_fifo_incremental()")
    assert stored(c, version=2) == reference(bot.trades, ("filled", "done"))
    assert c.execute("SELECT count(*) FROM fifo_allocations WHERE symbol = 'ADA-USD'").fetchone()[0] == 0
    # a cancelled order filled after all: its update is captured
    c.execute("UPDATE trade_records SET status = 'filled' WHERE order_id = 'ada-s1'")
    c.execute("SELECT compute_fifo_incremental()")
    assert c.execute("SELECT count(*) FROM fifo_allocations WHERE symbol = 'ADA-USD'").fetchone()[0] == 1
    for bad in ("", "filled,", "filled, done", ",done"):
        with pytest.raises(psycopg.errors.InvalidParameterValue, match="fill_statuses\" cannot be .*: it must be \\* \\(every row counts\\)"):
            c.execute("SELECT fifo_set_setting('fill_statuses', %s)", (bad,))


def test_a_problem_row_is_reported_and_fails_only_its_pool(bot, capsys):
    engine = bottrader.engine_for(bot.conn)
    try:
        bottrader.upsert(engine, [bottrader.trade("bad-1", "BAD-USD", "sell", -1.0, 2.0, 0.0, bot.base),
                                  bottrader.trade("nan-1", "NAN-USD", "buy", 1.0, float("nan"), 0.0, bot.base)])
    finally:
        engine.dispose()
    assert main(["--dsn", bot.dsn, "install", "--adopt"]) == 0
    out = capsys.readouterr().out
    assert "2 rows cannot be matched" in out
    assert "  bad-1: size -1 is not a positive number\n" in out
    assert "  nan-1: price NaN is not a finite number >= 0\n" in out
    run = bot.conn.execute("SELECT status, failed_pools, pools, error FROM compute_fifo_all(true)").fetchone()
    assert run[:3] == ("partial", 2, 10)
    assert "trade bad-1 (BAD-USD/default) cannot be matched: size -1 is not a positive number" in run[3]
    assert stored(bot.conn, version=2) == reference(bot.trades)


@pytest.mark.parametrize("change, message", [
    ("ALTER TABLE trade_records DROP COLUMN total_fees_usd",
     "column total_fees_usd is missing (expected double precision, real, numeric or an integer type)"),
    ("ALTER TABLE trade_records ALTER COLUMN order_time TYPE timestamp",
     "column order_time is timestamp without time zone (expected timestamptz)"),
    ("ALTER TABLE trade_records ALTER COLUMN price TYPE text",
     "column price is text (expected double precision, real, numeric or an integer type)"),
])
def test_missing_or_unusable_columns_are_named_in_one_line(bot, capsys, change, message):
    bot.conn.execute("DROP VIEW v_allocation_discrepancies")
    bot.conn.execute(change)
    bot.conn.execute("ALTER TABLE trade_records DROP COLUMN status")
    before = dump(bot.conn)
    assert main(["--dsn", bot.dsn, "install", "--adopt", "--dry-run"]) == 1
    err = capsys.readouterr().err
    assert err == (f"fifo-db: error: public.trade_records cannot be adopted as bottrader's table: {message}; "
                   f"column status is missing (expected text or varchar); nothing was changed\n")
    assert dump(bot.conn) == before


def test_numeric_real_and_integer_columns_are_adopted_too(bot):
    c = bot.conn
    c.execute("DROP VIEW v_allocation_discrepancies")
    c.execute("ALTER TABLE trade_records ALTER COLUMN size TYPE real, ALTER COLUMN price TYPE numeric, "
              "ALTER COLUMN total_fees_usd TYPE numeric")
    adopted(bot)
    assert c.execute("SELECT allocated_size::text, sell_price::text FROM fifo_allocations "
                     "WHERE sell_order_id = %s", (SAPIEN_DEC3_SELL,)).fetchone() == ("188.9", "0.17357")
    assert c.execute("SELECT count(*) FROM verify_fifo()").fetchone()[0] == 0
    assert c.execute("SELECT fifo._decimal(188.9::real)::text, fifo._decimal('NaN'::numeric), "
                     "fifo._decimal('-Infinity'::numeric), fifo._decimal(9007199254740993::bigint)::text, "
                     "fifo._decimal(7::integer)::text").fetchone() == ("188.9", None, None, "9007199254740993", "7")


def test_a_long_bot_transaction_gives_a_clear_try_again(bot, connect):
    other = psycopg.connect(bot.dsn)
    try:
        other.execute("UPDATE trade_records SET source = 'x' WHERE order_id = %s", (SAPIEN_DEC3_BUY,))
        before_adopt = bot.conn.execute("SELECT count(*) FROM pg_namespace WHERE nspname = 'fifo'").fetchone()
        with pytest.raises(FifoError, match=r"holds a lock on the bot's tables .* nothing was changed; try again"):
            adopt(bot.conn, lock_timeout="200ms")
        assert bot.conn.execute("SELECT count(*) FROM pg_namespace WHERE nspname = 'fifo'").fetchone() == before_adopt
    finally:
        other.rollback()
        other.close()


def test_adopting_twice_upgrades_and_a_plain_install_upgrades_too(bot, capsys):
    adopted(bot, compute=False)
    assert main(["--dsn", bot.dsn, "install", "--adopt"]) == 0
    assert "was adopted on" in capsys.readouterr().out
    assert install(bot.conn).migrations_applied == []
    assert bot.conn.execute("SELECT value FROM fifo.settings WHERE name = 'trades_source'").fetchone()[0] == "bottrader"


def test_nothing_to_adopt(db, bot, capsys):
    assert main(["--dsn", db.info.dsn, "install", "--adopt"]) == 1
    assert "already installed" in capsys.readouterr().err
    bot.conn.execute("DROP TABLE trade_records CASCADE")
    assert main(["--dsn", bot.dsn, "install", "--adopt"]) == 1
    assert "has no public.trade_records: there is nothing to adopt" in capsys.readouterr().err


def test_the_report_shapes_also_run_on_a_fresh_install(worked):
    """fifo_allocations answers to the bot's names in every install: the same shapes run on
    fifo-db's own trade_records (no status or trigger column there)."""
    c = worked
    c.execute("SELECT compute_fifo_all(true, 2)")
    per_sell = """
        SELECT tr.order_id, COALESCE(SUM(fa.pnl_usd), 0) AS pnl_usd
        FROM trade_records tr
        LEFT JOIN fifo_allocations fa ON fa.sell_order_id = tr.order_id AND fa.allocation_version = 2
        WHERE tr.side = 'sell' AND tr.order_time >= %(since)s
        GROUP BY tr.order_id ORDER BY tr.order_id"""
    rows = c.execute(per_sell, {"since": SINCE}).fetchall()
    assert rows and rows == c.execute(bottrader.fifo_names(per_sell), {"since": SINCE}).fetchall()
    weekly = bottrader.REPORT_WEEKLY_SYMBOL.replace("NOW() - INTERVAL '7 days'", "%(since)s")
    assert c.execute(weekly, {"since": SINCE}).fetchall() == \
        c.execute(bottrader.fifo_names(weekly), {"since": SINCE}).fetchall() != []
    for view in bottrader.LEGACY_DDL.split("CREATE VIEW ")[1:]:
        c.execute("CREATE VIEW " + view.rstrip().rstrip(";"))
    assert c.execute("SELECT allocation_version, total_allocations FROM v_allocation_health ORDER BY 1").fetchall() \
        == c.execute("SELECT version, count(*) FROM fifo_allocations GROUP BY 1 ORDER BY 1").fetchall()
    # the seed's spot check (its db_pnl column is the bot's legacy trade_records.pnl_usd)
    assert c.execute(bottrader.SPOT_CHECK.replace("tr.pnl_usd", "NULL::numeric"), {"since": SINCE}).fetchall()


def test_import_into_an_adopted_database_refuses_in_one_line(bot, capsys, tmp_path):
    """`fifo-db import` writes fifo-db's trade_records columns; the bot's table has others, so it
    says so and loads nothing (the bot keeps writing its trades itself)."""
    adopted(bot)
    before = dump(bot.conn)
    f = tmp_path / "fills.csv"
    f.write_text("order_id,symbol,side,size,price,total_fees,order_time\n"
                 "n1,X-USD,buy,1,10,0,2025-01-01T00:00:00Z\n")
    capsys.readouterr()
    assert main(["--dsn", bot.dsn, "import", str(f)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert "not fifo-db's own trades table" in err and "nothing was imported" in err
    assert "account" in err and "total_fees" in err
    assert dump(bot.conn) == before


def test_an_adopted_double_reads_as_its_shortest_round_trip_decimal_at_every_magnitude(db):
    """Issue 14: PostgreSQL prints integral doubles from 2^53 on with every digit
    (6.3050394783186944e+16); fifo._decimal reads the shortest decimal that round-trips,
    which is what Python's repr() prints."""
    values = [2.0 ** 53, 2.0 ** 53 + 2, 2.0 ** 54, 6.305039478318694e16, -6.305039478318694e16, 1e16, 1e17,
              1e22, 1.2345678901234567e25, 2.0 ** 70, 1.7976931348623157e308, 0.1, 188.9, 5e-324,
              2.2250738585072014e-308, 1e-7, 123.456]
    got = db.execute("SELECT array_agg(fifo._decimal(v) ORDER BY i) FROM unnest(%s::float8[]) WITH ORDINALITY "
                     "AS x(v, i)", (values,)).fetchone()[0]
    assert got == [Decimal(repr(v)) for v in values]
    assert got[3] == Decimal(63050394783186940)
    # real columns likewise, with their own shortest decimal
    reals = db.execute("SELECT fifo._decimal(1.2345679e9::real), fifo._decimal(16777216::real), "
                       "fifo._decimal(188.9::real)").fetchone()
    assert reals == (Decimal(1234568000), Decimal(16777216), Decimal("188.9"))
