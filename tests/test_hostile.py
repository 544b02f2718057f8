"""A hostile role with CREATE on schema public (PostgreSQL's default before 15, and in every
database upgraded from one) plants look-alike operators and functions there, then waits for a
superuser or the cron job to run fifo-db (issue 8, item 1). Each look-alike, if ever picked,
logs who ran it and tries to make its author superuser. Every entry point is then run as
superuser, with the default search_path and with one that puts public before pg_catalog:
nothing may be logged and nobody escalated."""

from __future__ import annotations

import uuid

import psycopg
import pytest

from fifo_db.cli import main
from tests.helpers import add_trades

OPERATORS = ["=", "<>", "<", "<=", ">", ">=", "+", "-", "*", "/", "%", "||", "~", "!~", "~~", "!~~"]
TYPES = ["numeric", "integer", "bigint", "smallint", "text", "varchar", "timestamptz", "timestamp",
         "date", "interval", "boolean", "uuid", "double precision"]
# functions with a better (exact) match than pg_catalog's for the arguments fifo-db passes,
# or exact copies that win when public comes first
FUNCTIONS = [
    ("format", ["text", "text"]), ("format", ["text", "numeric"]), ("format", ["text", "text", "text"]),
    ("format", ["text", "timestamptz"]), ("format", ["text", "numeric", "numeric"]),
    ("trim_scale", ["numeric"]), ("div", ["numeric", "numeric"]), ("abs", ["numeric"]),
    ("round", ["numeric", "integer"]), ("lower", ["text"]), ("btrim", ["text"]), ("length", ["text"]),
    ("concat_ws", ["text", "text", "text"]), ("to_char", ["timestamp", "text"]),
    ("hashtext", ["text"]), ("now", []), ("clock_timestamp", []), ("gen_random_uuid", []),
    ("isfinite", ["timestamptz"]), ("split_part", ["text", "text", "integer"]),
    ("quote_literal", ["text"]), ("string_to_array", ["text", "text"]), ("cardinality", ["text[]"]),
    ("array_fill", ["timestamptz", "integer[]"]), ("array_fill", ["text", "integer[]"]),
    ("make_interval", ["integer"]), ("current_setting", ["text"]), ("current_setting", ["text", "boolean"]),
    ("has_function_privilege", ["name", "text", "text"]), ("timezone", ["text", "timestamptz"]),
]
AGGREGATES = [("sum", "numeric"), ("min", "timestamptz"), ("max", "timestamptz"), ("count", "text"),
              ("string_agg", "text")]


@pytest.fixture
def attacker(db):
    """A role with CREATE on public that has planted its look-alikes; yields its name."""
    name = f"mallory_{uuid.uuid4().hex[:8]}"
    db.execute(f'CREATE ROLE "{name}" LOGIN')
    db.execute(f'GRANT CREATE ON SCHEMA public TO "{name}"')
    db.execute("CREATE TABLE public.hostile_log (ran_as text, ran_by text, what text)")
    db.execute("GRANT INSERT ON public.hostile_log TO PUBLIC")
    db.execute(f'SET ROLE "{name}"')
    try:
        db.execute(f"""
            CREATE FUNCTION public.hostile_strike(p_what text) RETURNS void LANGUAGE plpgsql AS $$
            BEGIN
                INSERT INTO public.hostile_log VALUES (current_user, session_user, p_what);
                BEGIN
                    EXECUTE 'ALTER ROLE "{name}" SUPERUSER';
                EXCEPTION WHEN OTHERS THEN NULL;
                END;
            END $$""")
        for i, (op, left, right) in enumerate((o, a, b) for o in OPERATORS for a in TYPES for b in TYPES):
            result = "boolean" if op in ("=", "<>", "<", "<=", ">", ">=", "~", "!~", "~~", "!~~") else left
            db.execute(f"""
                CREATE FUNCTION public.hostile_op_{i}(a {left}, b {right}) RETURNS {result}
                LANGUAGE plpgsql AS $$ BEGIN PERFORM public.hostile_strike('operator {op}({left}, {right})');
                RETURN NULL; END $$""")
            db.execute(f"CREATE OPERATOR public.{op} (LEFTARG = {left}, RIGHTARG = {right}, "
                       f"FUNCTION = public.hostile_op_{i})")
        for fn, args in FUNCTIONS:
            params = ", ".join(f"a{j} {t}" for j, t in enumerate(args))
            ret = {"now": "timestamptz", "clock_timestamp": "timestamptz", "gen_random_uuid": "uuid",
                   "isfinite": "boolean", "hashtext": "integer", "has_function_privilege": "boolean",
                   "cardinality": "integer", "array_fill": f"{args[0] if args else 'text'}[]",
                   "make_interval": "interval", "string_to_array": "text[]", "timezone": "timestamp",
                   "length": "integer"}.get(fn, "numeric" if args and args[0] == "numeric" else "text")
            db.execute(f"""
                CREATE FUNCTION public.{fn}({params}) RETURNS {ret} LANGUAGE plpgsql AS $$
                BEGIN PERFORM public.hostile_strike('function {fn}({", ".join(args)})'); RETURN NULL; END $$""")
        for fn, typ in AGGREGATES:
            db.execute(f"""
                CREATE FUNCTION public.hostile_agg_{fn}(s {typ}, v {typ}) RETURNS {typ} LANGUAGE plpgsql AS $$
                BEGIN PERFORM public.hostile_strike('aggregate {fn}({typ})'); RETURN s; END $$""")
            db.execute(f"CREATE AGGREGATE public.{fn}({typ}) (SFUNC = public.hostile_agg_{fn}, STYPE = {typ})")
    finally:
        db.execute("RESET ROLE")
    yield name
    db.execute(f'DROP OWNED BY "{name}"')
    db.execute(f'DROP ROLE "{name}"')


def every_entry_point(db, path: str) -> None:
    """Run what a superuser or the cron job runs, reports and triggers included, with `path` as
    the session's search_path. The test's own statements (writing trades, listing views) run with
    the default path: they are not fifo-db's code."""
    def entry(sql: str, params: tuple = ()) -> None:
        db.execute(f"SET search_path = {path}")
        try:
            cur = db.execute(sql, params)
            if cur.description:
                cur.fetchall()
        finally:
            db.execute('SET search_path = "$user", public')

    add_trades(db, [
        {"order_id": "b1", "symbol": "X-USD", "side": "buy", "size": 2, "price": 10, "total_fees": "0.1",
         "order_time": "2025-01-01"},
        {"order_id": "s1", "symbol": "X-USD", "side": "sell", "size": 3, "price": 13, "total_fees": "0.2",
         "order_time": "2025-01-02"},
        {"order_id": "b2", "symbol": "X-USD", "side": "buy", "size": 1, "price": 9, "order_time": "2025-01-03"},
    ])
    entry("SELECT compute_fifo('X-USD')")
    entry("SELECT compute_fifo_all(true)")
    entry("SELECT compute_fifo_all(false)")
    db.execute("UPDATE trade_records SET total_fees = 0.3 WHERE order_id = 's1'")    # capture triggers
    db.execute("DELETE FROM trade_records WHERE order_id = 'b2'")
    entry("SELECT compute_fifo_incremental()")
    since = db.execute("SELECT now() - interval '1 hour'").fetchone()[0]
    entry("SELECT compute_fifo_since(%s)", (since,))
    for sql in ("SELECT * FROM verify_fifo()", "SELECT * FROM explain_fifo('s1')", "SELECT * FROM explain_fifo('b1')",
                "SELECT fifo_set_setting('report_timezone', 'UTC')", "SELECT fifo_report_time('2025-01-01')",
                "SELECT fifo_report_time('7 days ago')"):
        entry(sql)
    views = [r[0] for r in db.execute(
        "SELECT c.relname, EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'symbol') "
        "FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace AND c.relkind = 'v' AND c.relname <> 'hostile_log'")
        if r[1]]
    assert "fifo_trade_pnl" in views
    for view in views:
        entry(f'SELECT * FROM public."{view}"')
        entry(f"SELECT * FROM public.\"{view}\" WHERE symbol OPERATOR(pg_catalog.=) 'X-USD'::pg_catalog.text")
    functions = [r[0] for r in db.execute(
        "SELECT p.proname FROM pg_proc p WHERE p.pronamespace = 'public'::regnamespace "
        "AND p.proname LIKE 'fifo\\_%' AND pg_get_function_identity_arguments(p.oid) "
        "IN ('p_symbol text, p_from timestamp with time zone, p_to timestamp with time zone', "
        "    'p_symbol text, p_from timestamp with time zone, p_to timestamp with time zone, p_round integer')")]
    assert "fifo_trade_pnl" in functions
    for fn in functions:
        entry(f"SELECT * FROM public.{fn}('X-USD', '2024-01-01', '2026-01-01')")
        if fn != "fifo_tax_lots":   # the rounded reports (fifo._money) too
            entry(f"SELECT * FROM public.{fn}('X-USD', '2024-01-01', '2026-01-01', 2)")
    db.execute("TRUNCATE trade_records")
    entry("SELECT compute_fifo_incremental()")


@pytest.mark.parametrize("path", ['"$user", public', "public, pg_catalog"])
def test_look_alikes_in_public_are_never_run_by_fifo_db(db, dsn, attacker, path):
    every_entry_point(db, path)
    for args in (["report", "pnl"], ["report", "trades"], ["report", "tax", "--format", "csv"],
                 ["verify"], ["install"]):
        main(["--dsn", dsn, *args])
    assert sorted({r[0] for r in db.execute("SELECT what FROM public.hostile_log")}) == []
    assert db.execute("SELECT rolsuper FROM pg_roles WHERE rolname = %s", (attacker,)).fetchone() == (False,)


def test_the_look_alikes_are_live(db, attacker):
    """The trap works: an unqualified call that resolves to public does run it (so the test above
    can fail)."""
    db.execute("SET search_path = public, pg_catalog")
    db.execute("SELECT 1::numeric <= 2")
    db.execute('SET search_path = "$user", public')
    assert db.execute("SELECT what FROM public.hostile_log").fetchall() == [("operator <=(numeric, integer)",)]
    assert db.execute("SELECT rolsuper FROM pg_roles WHERE rolname = %s", (attacker,)).fetchone() == (True,)
