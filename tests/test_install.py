"""Install: idempotent, the same from scratch as in the template, entry points callable
unqualified, internals kept out of public, migrations recorded by yoyo."""

from __future__ import annotations

import uuid

import psycopg

from fifo_db.install import MIGRATIONS_DIR, install
from tests.helpers import add_trades

# The analyst surface in schema public at the time of writing. A new entry point is a
# deliberate change of the public API: add it here (and to the README) on purpose.
PUBLIC_FUNCTIONS = {
    "compute_fifo_assets()",
    "compute_fifo_assets_incremental(p_if_computed boolean)",
    "explain_fifo_asset(p_id text)",
    "fifo_asset_disposals()",
    "fifo_asset_transfers()",
    "fifo_asset_open_lots()",
    "fifo_asset_positions(p_at timestamp with time zone)",
    "fifo_asset_position_totals(p_at timestamp with time zone, p_round integer)",
    "fifo_asset_form_8949(p_from timestamp with time zone, p_to timestamp with time zone, p_reported text)",
    "compute_fifo(p_symbol text, p_version integer)",
    "compute_fifo_all(p_force boolean, p_version integer)",
    "compute_fifo_incremental(p_version integer)",
    "compute_fifo_since(p_since timestamp with time zone, p_version integer)",
    "verify_fifo(p_symbol text, p_version integer)",
    "fifo_set_setting(p_name text, p_value text)",
    "fifo_schedule(p_every text, p_full text)",
    "fifo_unschedule()",
    "fifo_worker_claim(OUT active boolean, OUT holder_pid integer, OUT holder_client text, OUT holder_since timestamp with time zone)",
    "fifo_worker_release()",
    "fifo_grant(p_kind text, p_role text)",
    "fifo_computed_pools(p_symbol text, p_version integer)",
    "fifo_computed_trades(p_symbol text, p_version integer)",
    "fifo_revoke(p_kind text, p_role text)",
    "explain_fifo(p_order_id text)",
    "fifo_report_time(p_text text)",
    "fifo_report_context(p_symbol text, p_order_id text)",
    "fifo_positions(p_symbol text, p_as_of timestamp with time zone, p_round integer)",
    "fifo_tax_lots(p_symbol text, p_from timestamp with time zone, p_to timestamp with time zone)",
    *(f"{name}(p_symbol text, p_from timestamp with time zone, p_to timestamp with time zone, p_round integer)"
      for name in ("fifo_open_lots", "fifo_pnl_by_day", "fifo_pnl_by_month", "fifo_pnl_by_year",
                   "fifo_pnl_by_symbol", "fifo_pnl_summary", "fifo_trade_pnl", "fifo_unmatched_sells",
                   "fifo_pnl_curve")),
    "fifo_form_8949(p_symbol text, p_from timestamp with time zone, p_to timestamp with time zone, "
    "p_reported text)",
}
PUBLIC_TABLES = {"trade_records", "fifo_runs"}
PUBLIC_VIEWS = {"fifo_allocations", "fifo_computation_log", "fifo_open_lots", "fifo_pnl_by_day",
                "fifo_pnl_by_month", "fifo_pnl_by_year", "fifo_pnl_by_symbol", "fifo_positions",
                "fifo_tax_lots", "fifo_trade_pnl", "fifo_unmatched_sells",
                "fifo_asset_disposals", "fifo_asset_transfers", "fifo_asset_open_lots", "fifo_asset_positions"}

SCHEMAS = ("public", "fifo")
CATALOG_QUERIES = {
    "functions": """
        SELECT n.nspname, p.proname, pg_get_function_identity_arguments(p.oid), pg_get_functiondef(p.oid),
               obj_description(p.oid, 'pg_proc')
        FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
        WHERE n.nspname = ANY(%(s)s) AND p.prokind IN ('f', 'p') ORDER BY 1, 2, 3""",
    "views": """
        SELECT n.nspname, c.relname, pg_get_viewdef(c.oid), obj_description(c.oid, 'pg_class')
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = ANY(%(s)s) AND c.relkind IN ('v', 'm') ORDER BY 1, 2""",
    "relations": """
        SELECT n.nspname, c.relname, c.relkind, obj_description(c.oid, 'pg_class')
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = ANY(%(s)s) ORDER BY 1, 2""",
    "columns": """
        SELECT n.nspname, c.relname, a.attnum, a.attname, format_type(a.atttypid, a.atttypmod),
               a.attnotnull, pg_get_expr(d.adbin, d.adrelid), a.attgenerated, a.attidentity,
               a.attcollation::regcollation::text
        FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
        WHERE n.nspname = ANY(%(s)s) AND a.attnum > 0 AND NOT a.attisdropped ORDER BY 1, 2, 3""",
    "indexes": """
        SELECT schemaname, tablename, indexname, indexdef FROM pg_indexes
        WHERE schemaname = ANY(%(s)s) ORDER BY 1, 2, 3""",
    "triggers": """
        SELECT c.relname, t.tgname, pg_get_triggerdef(t.oid), t.tgenabled
        FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = ANY(%(s)s) AND NOT t.tgisinternal ORDER BY 1, 2""",
    "constraints": """
        SELECT n.nspname, c.conrelid::regclass::text, c.conname, pg_get_constraintdef(c.oid)
        FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace
        WHERE n.nspname = ANY(%(s)s) ORDER BY 1, 2, 3""",
    "extensions": "SELECT extname, extversion FROM pg_extension ORDER BY 1",
    "settings": "SELECT name, value FROM fifo.settings ORDER BY 1",
    "migrations": "SELECT migration_id FROM fifo._yoyo_migration ORDER BY 1",
}


def catalog(conn) -> dict[str, list[tuple]]:
    """Everything install creates, as comparable text."""
    return {name: conn.execute(sql, {"s": list(SCHEMAS)}).fetchall() for name, sql in CATALOG_QUERIES.items()}


def test_second_install_changes_nothing(db):
    db.execute("SELECT fifo_set_setting('long_term_days', '30')")   # a user's setting survives
    before = catalog(db)
    assert before["functions"] and before["triggers"] and before["constraints"]
    result = install(db)
    assert result.migrations_applied == []
    assert catalog(db) == before


def test_install_from_scratch_twice_equals_the_template(db):
    """A brand-new database installed twice ends up exactly like the test template."""
    name = f"fifo_fresh_{uuid.uuid4().hex[:12]}"
    db.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
    try:
        with psycopg.connect(db.info.dsn, dbname=name, autocommit=True) as fresh:
            first = install(fresh)
            assert first.migrations_applied == sorted(p.stem for p in MIGRATIONS_DIR.glob("*.sql"))
            after_first = catalog(fresh)
            assert install(fresh).migrations_applied == []
            assert catalog(fresh) == after_first == catalog(db)
    finally:
        db.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_migrations_are_recorded_by_yoyo(db):
    recorded = {r[0] for r in db.execute("SELECT migration_id FROM fifo._yoyo_migration")}
    assert recorded == {p.stem for p in MIGRATIONS_DIR.glob("*.sql")}
    assert "0001.initial-schema" in recorded


def test_compute_fifo_works_unqualified_in_a_fresh_session(db, connect):
    add_trades(db, [
        {"order_id": "b1", "symbol": "X", "side": "buy", "size": 5, "price": 10, "order_time": "2025-01-01"},
        {"order_id": "s1", "symbol": "X", "side": "sell", "size": 2, "price": 12, "order_time": "2025-01-02"},
    ])
    fresh = connect()
    assert fresh.execute("SHOW search_path").fetchone()[0] == '"$user", public'
    assert fresh.execute("SELECT (compute_fifo('X')).status").fetchone()[0] == "ok"
    # 2 * (12 - 10) = 4
    assert fresh.execute("SELECT pnl_amount FROM fifo_allocations").fetchall() == [(4,)]
    assert fresh.execute("SELECT count(*) FROM verify_fifo()").fetchone()[0] == 0


def test_public_holds_only_the_documented_surface(db):
    functions = {r[0] for r in db.execute(
        "SELECT p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')' FROM pg_proc p "
        "WHERE p.pronamespace = 'public'::regnamespace")}
    relations = dict(db.execute(
        "SELECT relname, relkind FROM pg_class WHERE relnamespace = 'public'::regnamespace "
        "AND relkind IN ('r', 'v', 'm', 'p', 'f')").fetchall())
    assert functions == PUBLIC_FUNCTIONS
    assert {n for n, k in relations.items() if k == "r"} == PUBLIC_TABLES
    assert {n for n, k in relations.items() if k == "v"} == PUBLIC_VIEWS
    assert set(relations.values()) <= {"r", "v"}


def test_nothing_private_in_public(db):
    private = db.execute("""
        SELECT 'function', proname FROM pg_proc WHERE pronamespace = 'public'::regnamespace AND proname LIKE '\\_%'
        UNION ALL
        SELECT 'relation', relname FROM pg_class WHERE relnamespace = 'public'::regnamespace AND relname LIKE '\\_%'
        UNION ALL
        -- array types are named _<type> by PostgreSQL itself; only stand-alone types count
        SELECT 'type', typname FROM pg_type t WHERE typnamespace = 'public'::regnamespace
            AND typname LIKE '\\_%' AND NOT EXISTS (SELECT 1 FROM pg_type e WHERE e.typarray = t.oid)
        """).fetchall()
    assert private == []


def test_internals_live_in_schema_fifo(db):
    names = {r[0] for r in db.execute("SELECT proname FROM pg_proc WHERE pronamespace = 'fifo'::regnamespace")}
    assert {"_match", "_run", "_fee_point", "_fee_share", "_lock_pools", "_setting"} <= names


def test_every_plpgsql_function_pins_its_search_path(db):
    """Only LANGUAGE sql functions may go without SET search_path (a SET clause stops the
    planner from inlining them: sql/020_fee_share.sql, the sql/2xx report functions)."""
    unpinned = db.execute(
        "SELECT p.proname, l.lanname FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang "
        "WHERE p.pronamespace IN ('public'::regnamespace, 'fifo'::regnamespace) AND p.prokind = 'f' "
        "AND NOT EXISTS (SELECT 1 FROM unnest(p.proconfig) c WHERE c LIKE 'search\\_path=%')").fetchall()
    assert {"_fee_point", "_fee_share"} <= {name for name, _ in unpinned}
    assert [name for name, lang in unpinned if lang != "sql"] == []
