"""Undoing an adoption (`fifo-db uninstall --restore`) gives back the database byte for byte
(pg_dump, schema and data); roles, grants and views over views survive adoption and restore;
scheduling replaces the bot's crontab; a fresh install's uninstall keeps the trades."""

from __future__ import annotations

from decimal import Decimal

import psycopg
import pytest

from fifo_db.adopt import adopt
from fifo_db.cli import main
from fifo_db.uninstall import uninstall
from tests import bottrader
from tests.bottrader import bot, bot_template, dump  # noqa: F401
from tests.helpers import add_trades
from tests.test_schedule import cron_conn, cron_jobs

BOT_ROLE, READER_ROLE = "fifo_test_bottrader", "fifo_test_bot_reader"


def test_uninstall_restore_gives_back_the_database_byte_for_byte(bot, capsys):
    before = dump(bot.conn)
    assert main(["--dsn", bot.dsn, "install", "--adopt"]) == 0
    assert main(["--dsn", bot.dsn, "compute", "--version", "2", "--all-symbols", "--force"]) == 0
    assert dump(bot.conn) != before
    capsys.readouterr()
    assert main(["--dsn", bot.dsn, "uninstall", "--restore", "--dry-run"]) == 0
    assert capsys.readouterr().out.rstrip().endswith("checked: uninstall succeeds; nothing was changed")
    assert bot.conn.execute("SELECT to_regnamespace('fifo') IS NOT NULL").fetchone()[0]
    assert main(["--dsn", bot.dsn, "uninstall", "--restore"]) == 0
    out = capsys.readouterr().out
    assert "the bot's tables were moved back to public: fifo_allocations, fifo_computation_log, " \
           "fifo_inventory_snapshot, manual_review_queue" in out
    assert dump(bot.conn) == before


def _roles(conn) -> None:
    for role in (BOT_ROLE, READER_ROLE):
        conn.execute(f"DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{role}') THEN "
                     f"CREATE ROLE {role}; END IF; END $$")


def test_owners_grants_and_views_over_views_survive_adoption_and_restore(bot, capsys):
    c = bot.conn
    _roles(c)
    # the bot's objects belong to the bot's role; a reporting role may read its P&L
    for (name, kind) in c.execute("SELECT c.oid::regclass::text, c.relkind FROM pg_class c "
                                  "WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'v', 'm')"
                                  ).fetchall():
        c.execute(f"ALTER {'VIEW' if kind == 'v' else 'TABLE'} {name} OWNER TO {BOT_ROLE}")
    c.execute(f"GRANT USAGE, CREATE ON SCHEMA public TO {BOT_ROLE}")
    c.execute(f"GRANT SELECT ON fifo_allocations, v_pnl_by_symbol, trade_records TO {READER_ROLE}")
    # a view over a view, with options and a comment; a materialized view on the bot's table
    c.execute("CREATE VIEW v_winners WITH (security_barrier = true) AS "
              "SELECT symbol, pnl_usd FROM v_pnl_by_symbol WHERE pnl_usd > 0")
    c.execute("COMMENT ON VIEW v_winners IS 'symbols in profit'")
    c.execute(f"ALTER VIEW v_winners OWNER TO {BOT_ROLE}")
    c.execute(f"GRANT SELECT ON v_winners TO {READER_ROLE}")
    c.execute("CREATE MATERIALIZED VIEW mv_versions AS SELECT allocation_version, count(*) FROM fifo_allocations GROUP BY 1")
    before = dump(c)

    assert main(["--dsn", bot.dsn, "install", "--adopt"]) == 0
    out = capsys.readouterr().out
    assert "public.v_allocation_discrepancies, public.v_allocation_health, public.v_pnl_by_symbol, " \
           "public.v_unmatched_sells, public.v_winners" in out
    assert "left as they are, still reading the bot's tables in fifo_legacy (only views are re-pointed): " \
           "materialized view public.mv_versions" in out
    c.execute("SELECT compute_fifo_all(true)")
    assert c.execute("SELECT obj_description('v_winners'::regclass), reloptions FROM pg_class "
                     "WHERE oid = 'v_winners'::regclass").fetchone() == ("symbols in profit", ["security_barrier=true"])

    # the reader reads the bot's P&L, now fifo-db's; the bot writes and reads as before
    with psycopg.connect(bot.dsn, autocommit=True) as reader:
        reader.execute(f"SET ROLE {READER_ROLE}")
        assert reader.execute("SELECT pnl_usd FROM fifo_allocations WHERE sell_order_id = %s",
                              (bottrader.SAPIEN_DEC3_SELL,)).fetchone()[0] == Decimal("-0.30893")
        assert reader.execute("SELECT count(*) FROM v_winners").fetchone()[0] > 0
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            reader.execute("SELECT count(*) FROM v_allocation_health")   # never granted to it
    with psycopg.connect(bot.dsn, autocommit=True) as writer:
        writer.execute(f"SET ROLE {BOT_ROLE}")
        writer.execute("INSERT INTO trade_records (order_id, symbol, side, order_time, price, size, trigger, status) "
                       "VALUES ('sapien-b9', 'SAPIEN-USD', 'buy', now(), 0.2, 10.0, '{}', 'filled')")
        assert writer.execute("SELECT total_allocations FROM v_allocation_health").fetchone()[0] > 0
        writer.execute("DELETE FROM trade_records WHERE order_id = 'sapien-b9'")
    assert c.execute("SELECT count(*) FROM fifo.pool_changes WHERE symbol = 'SAPIEN-USD' "
                     "AND processed_at IS NULL").fetchone()[0] == 1

    assert main(["--dsn", bot.dsn, "uninstall", "--restore"]) == 0
    assert dump(c) == before


def test_restore_refuses_to_drop_what_the_operator_built_on_fifo_db(bot, capsys):
    adopt(bot.conn)
    bot.conn.execute("CREATE VIEW my_lots AS SELECT * FROM fifo_open_lots")
    before = dump(bot.conn)
    assert main(["--dsn", bot.dsn, "uninstall", "--restore"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("fifo-db: error: view public.my_lots (uses view public.fifo_open_lots) was not created by fifo-db "
                          "and would be dropped with it") and err.count("\n") == 1
    assert dump(bot.conn) == before
    assert main(["--dsn", bot.dsn, "uninstall"]) == 1
    assert "was adopted by fifo-db: `fifo-db uninstall --restore`" in capsys.readouterr().err


@pytest.fixture
def unschedule_bot(bot):
    yield
    with cron_conn() as conn:
        if conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'pg_cron'").fetchone():
            conn.execute("SELECT cron.unschedule(jobid) FROM cron.job WHERE database = %s", (bot.conn.info.dbname,))


@pytest.mark.pg_cron
def test_schedule_replaces_the_bots_crontab_and_restore_removes_it(bot, unschedule_bot, capsys):
    """The bot's two lines: every 5 minutes incremental, nightly full at 01:50 Pacific (09:50 GMT)."""
    name = bot.conn.info.dbname
    adopt(bot.conn)
    assert main(["--dsn", bot.dsn, "schedule", "install", "--every", "*/5 * * * *", "--full", "50 9 * * *"]) == 0
    assert cron_jobs(name) == [
        (f"fifo-db assets ({name})", "*/5 * * * *", "SELECT public.compute_fifo_assets_incremental(true)"),
        (f"fifo-db full ({name})", "50 9 * * *", "SELECT public.compute_fifo_all(true)"),
        (f"fifo-db incremental ({name})", "*/5 * * * *", "SELECT public.compute_fifo_incremental()"),
    ]
    capsys.readouterr()
    assert main(["--dsn", bot.dsn, "uninstall", "--restore", "--dry-run"]) == 0
    assert f"pg_cron job 'fifo-db incremental ({name})' would be removed (in cron database 'fifo')" \
        in capsys.readouterr().out
    assert len(cron_jobs(name)) == 3
    assert main(["--dsn", bot.dsn, "uninstall", "--restore"]) == 0
    assert f"pg_cron job 'fifo-db full ({name})' removed (in cron database 'fifo')" in capsys.readouterr().out
    assert cron_jobs(name) == []


def test_uninstall_of_a_fresh_install_keeps_the_trades(db, dsn, capsys):
    add_trades(db, [
        {"order_id": "b1", "symbol": "X", "side": "buy", "size": 5, "price": 10, "order_time": "2025-01-01"},
        {"order_id": "s1", "symbol": "X", "side": "sell", "size": 2, "price": 12, "order_time": "2025-01-02"},
    ])
    db.execute("SELECT compute_fifo_all(true)")
    assert main(["--dsn", dsn, "uninstall", "--restore"]) == 1
    assert "was not adopted" in capsys.readouterr().err
    assert main(["--dsn", dsn, "uninstall"]) == 0
    out = capsys.readouterr().out
    assert "kept: public.trade_records and its 2 rows" in out
    assert db.execute("SELECT relname, relkind FROM pg_class WHERE relnamespace = 'public'::regnamespace "
                      "AND relkind IN ('r', 'v', 'm') ORDER BY 1").fetchall() == [("trade_records", "r")]
    assert db.execute("SELECT count(*) FROM pg_proc WHERE pronamespace = 'public'::regnamespace").fetchone()[0] == 0
    assert db.execute("SELECT count(*) FROM pg_trigger WHERE tgrelid = 'trade_records'::regclass "
                      "AND NOT tgisinternal").fetchone()[0] == 0
    assert db.execute("SELECT to_regnamespace('fifo')").fetchone()[0] is None
    assert main(["--dsn", dsn, "uninstall"]) == 0
    assert "not installed" in capsys.readouterr().out
    # installing again: the plain install refuses a trade_records it did not create (it cannot
    # tell), --adopt recognizes fifo-db's own and takes it back with its trades
    assert main(["--dsn", dsn, "install"]) == 1
    assert "fifo-db install --adopt" in capsys.readouterr().err
    assert main(["--dsn", dsn, "install", "--adopt"]) == 0
    assert "as a fifo-db database" in capsys.readouterr().out
    assert db.execute("SELECT (compute_fifo_all(true)).allocations").fetchone()[0] == 1
    assert db.execute("SELECT pnl_amount FROM fifo_allocations").fetchall() == [(4,)]
    result = uninstall(db)
    assert result.trade_rows == 2 and not result.legacy_tables
    assert uninstall(db) is None
