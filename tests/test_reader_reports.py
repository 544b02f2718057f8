"""Readers are promised every report (issue 14, section 5): a role granted `fifo-db grant reader`,
logging in with its own name, runs every `fifo-db report` kind, format and option, `explain`
and `verify`, and gets exactly what the owner gets. The class behind the one failure found
(fifo_report_time read fifo._report_tz() without definer rights): no function or view granted
to a kind of role may need a right that kind lacks."""

from __future__ import annotations

import uuid

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from fifo_db.cli import main

KINDS = ("pnl", "trades", "daily", "monthly", "yearly", "lots", "positions", "unmatched", "tax")
FORMATS = ("table", "csv", "json")
# option sets each kind takes (positions: as of --to only; tax: --term / --reported too)
BOUNDS = ([], ["--symbol", "AAA-USD"], ["--from", "2024-01-01"], ["--to", "2026-01-01"],
          ["--from", "2025-03-01", "--to", "2026-03-03"], ["--year", "2025"], ["--from", "400 days ago"])


@pytest.fixture
def reader_dsn(worked, dsn):
    name = f"fdb_reader_{uuid.uuid4().hex[:8]}"
    worked.execute(f'CREATE ROLE "{name}" LOGIN')
    assert main(["--dsn", dsn, "grant", "reader", name]) == 0
    yield make_conninfo(dsn, user=name)
    worked.execute(f'DROP OWNED BY "{name}"')
    worked.execute(f'DROP ROLE "{name}"')


def cli(capsys, dsn, *args):
    rc = main(["--dsn", dsn, *args])
    out = capsys.readouterr()
    return rc, out.out, out.err


def option_sets(kind):
    for bounds in BOUNDS:
        if kind == "positions" and any(b in bounds for b in ("--from", "--year")):
            continue
        for fmt in FORMATS:
            yield [*bounds, "--format", fmt]
            if fmt != "table" and kind != "tax":
                yield [*bounds, "--format", fmt, "--round", "2"]
    if kind == "tax":
        for extra in (["--term", "short"], ["--term", "long"], ["--reported", "proceeds"],
                      ["--reported", "basis"], ["--year", "2025", "--term", "long", "--reported", "basis"]):
            yield extra


def test_every_report_kind_format_and_option_as_a_reader_equals_the_owners(worked, dsn, reader_dsn, capsys):
    runs = 0
    for kind in KINDS:
        for options in option_sets(kind):
            owner = cli(capsys, dsn, "report", kind, *options)
            reader = cli(capsys, reader_dsn, "report", kind, *options)
            assert owner[0] == 0, (kind, options, owner)
            assert reader == owner, (kind, options)
            runs += 1
    assert runs == 286


def test_the_reports_the_issue_named_give_the_reader_its_figures(worked, reader_dsn, capsys):
    rc, out, err = cli(capsys, reader_dsn, "report", "pnl", "--from", "2024-01-01")
    assert (rc, err) == (0, "")
    lines = out.splitlines()
    assert lines[0] == "Realized P&L by symbol: all symbols, traded from 2024-01-01 on (UTC)"
    assert lines[3].split() == ["AAA-USD", "USD", "3", "3", "2", "1", "66.7%", "74.00", "2.28", "2.68", "3", "13.72"]
    assert lines[-1].split() == ["TOTAL", "USD", "5", "4", "2", "2", "50.0%", "304.00", "2.78", "3.18", "4", "-6.78"]
    rc, out, err = cli(capsys, reader_dsn, "report", "tax", "--year", "2025")
    assert rc == 0
    assert out.splitlines()[1:] == [
        "10 AAA,01/01/2025,03/10/2025,39.60,21.00,,,18.60,Short-term,I,I,,USD",
        "5 AAA,03/01/2025,03/10/2025,19.80,15.25,,,4.55,Short-term,I,I,,USD",
        "2 BBB,03/10/2025,03/10/2025,179.80,200.30,,,-20.50,Short-term,I,I,,USD",
        "1 BBB,,03/11/2025,50.00,,,,50.00,Short-term,I,I,yes,USD"]
    assert err.splitlines()[0] == "Form 8949 rows: all symbols, sold from 2025-01-01 to before 2026-01-01 (UTC)"
    assert err.splitlines()[1] == (
        "tax (2025; USD; long-term rule anniversary; broker reported none): Part I (short-term, box I): "
        "4 row(s), proceeds 289.20, cost 236.55, gain 52.65; Part II (long-term, box -): 0 row(s), "
        "proceeds 0.00, cost 0.00, gain 0.00")


def test_chart_html_and_files_as_a_reader(worked, dsn, reader_dsn, capsys, tmp_path):
    for who, conninfo in (("owner", dsn), ("reader", reader_dsn)):
        rc, _, err = cli(capsys, conninfo, "report", "pnl", "--year", "2025", "-o", str(tmp_path / f"{who}.txt"),
                         "--chart", str(tmp_path / f"{who}.svg"), "--html", str(tmp_path / f"{who}.html"))
        assert rc == 0, err
    for ext in ("txt", "svg", "html"):
        assert (tmp_path / f"reader.{ext}").read_text() == (tmp_path / f"owner.{ext}").read_text()
    assert (tmp_path / "reader.txt").read_text().splitlines()[-1].split() == [
        "TOTAL", "USD", "3", "2", "1", "1", "50.0%", "290.00", "2.35", "2.67", "1", "2.65"]   # 2025 only


def test_explain_verify_and_compute_as_a_reader(worked, dsn, reader_dsn, capsys):
    owner = cli(capsys, dsn, "explain", "s1")
    assert owner[0] == 0
    assert cli(capsys, reader_dsn, "explain", "s1") == owner
    rc, out, err = cli(capsys, reader_dsn, "verify")
    assert (rc, err) == (0, "")
    assert out.splitlines()[-1] == ("verify: clean (3 computed pool(s): every allocation equal to FIFO recomputed "
                                    "in SQL and to the Python reference FIFO)")
    rc, out, _ = cli(capsys, reader_dsn, "verify", "--symbol", "BBB-USD")
    assert rc == 0 and out.splitlines()[-1].startswith("verify: clean (1 computed pool(s)")
    rc, _, err = cli(capsys, reader_dsn, "compute", "--symbol", "AAA-USD")
    assert rc == 0, err


@pytest.mark.parametrize("kind", ["reader", "bot", "operator"])
def test_nothing_granted_needs_a_right_the_grantee_lacks(db, kind):
    """Every function granted runs with the owner's rights (SECURITY DEFINER), so its body never
    needs a right the grantee lacks; every view granted reads its tables as its owner and calls
    only functions the grantee may execute; no trigger on the trades table runs as the writer."""
    name = f"fdb_{kind}_{uuid.uuid4().hex[:8]}"
    db.execute(f'CREATE ROLE "{name}"')
    try:
        db.execute("SELECT fifo_grant(%s, %s)", (kind, name))
        invoker = db.execute("""
            SELECT f.object_name FROM fifo._privileges(%s) f JOIN pg_proc p ON p.oid = f.object_name::regprocedure
            WHERE f.object_kind = 'FUNCTION' AND NOT p.prosecdef""", (kind,)).fetchall()
        assert invoker == []
        views = db.execute("""
            SELECT c.relname, p.oid::regprocedure::text, has_function_privilege(%s, p.oid, 'EXECUTE'),
                   coalesce('security_invoker=true' = ANY (c.reloptions), false)
            FROM fifo._privileges(%s) f JOIN pg_class c ON c.oid = f.object_name::regclass
            JOIN pg_rewrite rw ON rw.ev_class = c.oid
            JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = rw.oid
                                AND d.refclassid = 'pg_proc'::regclass
            JOIN pg_proc p ON p.oid = d.refobjid
            WHERE f.object_kind = 'TABLE' AND c.relkind = 'v'""", (name, kind)).fetchall()
        assert [v for v in views if not v[2] or v[3]] == []
        if kind == "reader":
            # the nine report views and the asset view's four, each over its report function
            assert len(views) == 13
        triggers = db.execute("""
            SELECT t.tgname, p.oid::regprocedure::text FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid
            WHERE t.tgrelid = 'public.trade_records'::regclass AND NOT t.tgisinternal AND NOT p.prosecdef""").fetchall()
        assert triggers == []
    finally:
        db.execute(f'DROP OWNED BY "{name}"')
        db.execute(f'DROP ROLE "{name}"')
