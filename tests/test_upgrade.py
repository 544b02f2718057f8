"""Upgrading a database that runs the fifo-db users have today (commit ce88bc8, kept in
tests/data/landed-ce88bc8) with the current install: every migration applies in one
transaction, the result has exactly the functions, views and tables of a fresh install, the
allocations already computed survive, and computing again equals the reference FIFO."""

from __future__ import annotations

import uuid
from pathlib import Path

import psycopg
import pytest

from fifo_db import migrate
from fifo_db.errors import FifoError
from fifo_db.install import MIGRATIONS_DIR, install
from fifo_db.sample import copy_rows, sapien_story, synthetic_rows
from tests.helpers import expected, findings, stored
from tests.test_install import catalog

LANDED = Path(__file__).parent / "data" / "landed-ce88bc8"
# what only a database with data has: the partition of a second computed version, and the
# settings and yoyo bookkeeping it had before
DATA_ONLY = ("allocations_v2",)


def install_landed(conn: psycopg.Connection) -> None:
    """The landed install: its migrations (recorded by yoyo), then its sql/ files."""
    with conn.transaction():
        conn.execute("CREATE SCHEMA fifo")
        conn.execute("SET LOCAL search_path = fifo, pg_catalog")
        assert migrate.apply(conn, str(LANDED / "migrations")) == ["0001.initial-schema"]
    with conn.transaction():
        for path in sorted((LANDED / "sql").glob("*.sql")):
            conn.execute(path.read_text())


def structure(conn: psycopg.Connection) -> dict:
    """The catalog without what depends on data or on the order things were made in."""
    cat = catalog(conn)
    cat["relations"] = [r for r in cat["relations"] if not r[1].startswith(DATA_ONLY)]
    cat["indexes"] = [r for r in cat["indexes"] if not r[1].startswith(DATA_ONLY)]
    cat["constraints"] = [r for r in cat["constraints"] if not r[1].startswith(("fifo." + DATA_ONLY[0]))]
    cat["columns"] = [r for r in cat["columns"] if not r[1].startswith(DATA_ONLY)]
    for key in ("settings", "migrations"):
        cat.pop(key)
    return cat


def test_the_landed_schema_upgrades_in_place(db):
    names = [f"fifo_upgrade_{uuid.uuid4().hex[:8]}", f"fifo_fresh_{uuid.uuid4().hex[:8]}"]
    for name in names:
        db.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
    try:
        with psycopg.connect(db.info.dsn, dbname=names[0], autocommit=True) as old, \
                psycopg.connect(db.info.dsn, dbname=names[1], autocommit=True) as fresh:
            install_landed(old)
            copy_rows(old, sapien_story())
            copy_rows(old, synthetic_rows(symbols=6, trades=300, seed=3))
            old.execute("SELECT compute_fifo_all(true)")
            old.execute("SELECT compute_fifo_all(true, 2)")
            before = old.execute("SELECT version, sell_trade_id, buy_trade_id, allocated_size, pnl_amount "
                                 "FROM public.fifo_allocations ORDER BY 1, 2, 3").fetchall()

            result = install(old)
            assert result.migrations_applied == sorted(p.stem for p in MIGRATIONS_DIR.glob("*.sql"))[1:]
            install(fresh)
            assert structure(old) == structure(fresh)
            # nothing computed was lost, in either version, and it reads in both vocabularies
            assert old.execute("SELECT version, sell_trade_id, buy_trade_id, allocated_size, pnl_amount "
                               "FROM fifo_allocations ORDER BY 1, 2, 3").fetchall() == before
            assert old.execute("SELECT count(*) FROM fifo_allocations WHERE pnl_usd IS DISTINCT FROM pnl_amount "
                               "OR sell_order_id <> sell_trade_id").fetchone()[0] == 0
            assert findings(old) == []
            old.execute("SELECT compute_fifo_all(true)")
            assert stored(old) == expected(old) and findings(old) == []
    finally:
        for name in names:
            db.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')




def test_a_users_view_on_a_report_view_stops_0014_with_its_name_and_changes_nothing(db):
    """0014 drops and re-creates the report views; a view of the user's on one of them is
    named (not PostgreSQL's bare 'other objects depend on them') and nothing changes. The
    database is a current install with 0014 made pending again."""
    name = f"fifo_upgrade_{uuid.uuid4().hex[:8]}"
    db.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
    try:
        with psycopg.connect(db.info.dsn, dbname=name, autocommit=True) as conn:
            install(conn)
            conn.execute("DELETE FROM fifo._yoyo_migration WHERE migration_id LIKE '0014.%'")
            conn.execute("CREATE VIEW public.my_desk AS SELECT symbol FROM public.fifo_pnl_by_symbol")
            before = structure(conn)
            with pytest.raises(FifoError) as e:
                install(conn)
            assert str(e.value).startswith("fifo-db 0014 re-creates the report views and functions "
                                           "(they gained a rounding argument), and objects not made by "
                                           "fifo-db depend on them: public.my_desk (hint: Save their definitions")
            assert structure(conn) == before
            conn.execute("DROP VIEW public.my_desk")
            install(conn)
            conn.execute("CREATE VIEW public.my_desk AS SELECT symbol FROM public.fifo_pnl_by_symbol")
            assert conn.execute("SELECT count(*) FROM public.my_desk").fetchone()[0] == 0
    finally:
        db.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_a_users_view_blocking_a_landed_migrations_drop_is_named_with_the_migration(db):
    """The landed install (ce88bc8) upgrades through 0003, which drops fifo_trade_pnl to
    re-create it. A view of the user's on it stops the install in one line naming the
    migration and the view, never PostgreSQL's 'use DROP ... CASCADE', and nothing changes."""
    name = f"fifo_upgrade_{uuid.uuid4().hex[:8]}"
    db.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
    try:
        with psycopg.connect(db.info.dsn, dbname=name, autocommit=True) as conn:
            install_landed(conn)
            conn.execute("CREATE VIEW public.my_sells AS SELECT * FROM public.fifo_trade_pnl")
            before = catalog(conn)
            with pytest.raises(FifoError) as e:
                install(conn)
            assert str(e.value) == (
                "fifo-db migration 0003.report-currency-and-long-term-rule re-creates fifo-db objects, and "
                "objects not made by fifo-db depend on them: view public.my_sells depends on view public.fifo_trade_pnl "
                "(hint: save their definitions (pg_get_viewdef / pg_get_functiondef), drop them, install "
                "again (nothing was changed), then re-create them) [SQLSTATE 2BP01]")
            assert "CASCADE" not in str(e.value)
            assert catalog(conn) == before
    finally:
        db.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
