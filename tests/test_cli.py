"""The fifo-db command, run in-process (fifo_db.cli.main) against the test database."""

from __future__ import annotations

import re
import subprocess
import sys
from decimal import Decimal as D

import pytest

from fifo_db.cli import main
from fifo_db.sample import SAPIEN_SELL, copy_rows, sapien_story, synthetic_rows
from tests.helpers import add_trades


def run(capsys, dsn, *args):
    """main(['--dsn', dsn, *args]) -> (exit code, stdout, stderr)."""
    code = main(["--dsn", dsn, *args])
    out, err = capsys.readouterr()
    return code, out, err


def stats(out: str) -> dict[str, str]:
    """The '  - Name: value' lines of the statistics block."""
    return dict(re.findall(r"^  - ([^:]+): (.*)$", out, re.M))


def test_compute_symbol_prints_the_statistics_block(db, dsn, capsys):
    copy_rows(db, sapien_story())
    code, out, err = run(capsys, dsn, "compute", "--symbol", "SAPIEN-USD")
    assert (code, err) == (0, "")
    assert out.startswith("Computation SUCCESSFUL\n")
    (batch,) = db.execute("SELECT batch_id::text FROM fifo_runs").fetchone()
    block = stats(out)
    # total P&L 0.87013 - 0.30893 = 0.5612 -> $0.56
    assert {k: block[k] for k in ("Version", "Batch ID", "Symbols processed", "Buys processed",
                                  "Sells processed", "Allocations created", "Total PnL")} == {
        "Version": "1", "Batch ID": batch, "Symbols processed": "1", "Buys processed": "2",
        "Sells processed": "2", "Allocations created": "2", "Total PnL": "$0.56"}
    assert re.fullmatch(r"\d+\.\d\ds \([\d,]+ms\)", block["Duration"])
    assert db.execute("SELECT buy_trade_id IS NOT NULL FROM fifo_allocations WHERE sell_trade_id = %s",
                      (SAPIEN_SELL,)).fetchone()[0] is True


def test_total_pnl_is_rounded_half_up_to_cents(db, dsn, capsys):
    add_trades(db, [
        {"order_id": "b1", "symbol": "UP-USD", "side": "buy", "size": 1, "price": 0, "order_time": "2025-01-01"},
        {"order_id": "s1", "symbol": "UP-USD", "side": "sell", "size": 1, "price": "1234.565",
         "order_time": "2025-01-02"},
        {"order_id": "b2", "symbol": "DOWN-USD", "side": "buy", "size": 1, "price": "0.305", "order_time": "2025-01-01"},
        {"order_id": "s2", "symbol": "DOWN-USD", "side": "sell", "size": 1, "price": 0, "order_time": "2025-01-02"},
    ])
    # 1 * (1234.565 - 0) = 1234.565 -> $1,234.57 (half up, thousands separator)
    assert stats(run(capsys, dsn, "compute", "--symbol", "UP-USD")[1])["Total PnL"] == "$1,234.57"
    # 1 * (0 - 0.305) = -0.305 -> -$0.31
    assert stats(run(capsys, dsn, "compute", "--symbol", "DOWN-USD")[1])["Total PnL"] == "-$0.31"
    # all: 1234.565 - 0.305 = 1234.26, two symbols, two allocations
    code, out, _ = run(capsys, dsn, "compute", "--all-symbols", "--force")
    block = stats(out)
    assert code == 0
    assert (block["Total PnL"], block["Symbols processed"], block["Allocations created"]) == ("$1,234.26", "2", "2")


def test_total_pnl_is_never_added_across_quote_currencies(db, dsn, capsys):
    add_trades(db, [
        {"order_id": "b1", "symbol": "BTC-USD", "side": "buy", "size": 1, "price": 100, "order_time": "2025-01-01"},
        {"order_id": "s1", "symbol": "BTC-USD", "side": "sell", "size": 1, "price": "95.5", "order_time": "2025-01-02"},
        {"order_id": "b2", "symbol": "ETH-BTC", "side": "buy", "size": 2, "price": "0.03", "order_time": "2025-01-01"},
        {"order_id": "s2", "symbol": "ETH-BTC", "side": "sell", "size": 2, "price": "0.0459", "order_time": "2025-01-02"},
        {"order_id": "s3", "symbol": "ODD", "side": "sell", "size": 1, "price": 1, "order_time": "2025-01-02"},
    ])
    code, out, _ = run(capsys, dsn, "compute", "--all-symbols", "--force")
    # USD: 95.5 - 100 = -4.5; BTC: 2 * (0.0459 - 0.03) = 0.0318; ODD has no quote and no matched P&L
    assert (code, stats(out)["Total PnL"]) == (0, "-$4.50; 0.0318 BTC; 0.00 (symbols without a quote currency)")
    assert db.execute("SELECT e.key, e.value::numeric FROM fifo_runs r, jsonb_each_text(r.pnl_by_currency) e "
                      "ORDER BY 1").fetchall() == [("?", D(0)), ("BTC", D("0.0318")), ("USD", D("-4.5"))]


def test_compute_into_another_version(db, dsn, capsys):
    copy_rows(db, sapien_story())
    code, out, _ = run(capsys, dsn, "compute", "--symbol", "SAPIEN-USD", "--version", "2")
    assert (code, stats(out)["Version"]) == (0, "2")
    assert db.execute("SELECT DISTINCT version FROM fifo_allocations").fetchall() == [(2,)]


def test_unknown_symbol_is_one_line_and_exit_1(db, dsn, capsys):
    copy_rows(db, sapien_story())
    code, out, err = run(capsys, dsn, "compute", "--symbol", "NOPE-USD")
    assert code == 1
    assert out == ""
    assert len(err.splitlines()) == 1
    assert "NOPE-USD" in err and err.startswith("fifo-db: error: ")
    assert "Traceback" not in err


def test_missing_database_is_one_line(dsn, capsys):
    code, out, err = run(capsys, dsn.replace("dbname=", "dbname=no_such_db_"), "verify")
    assert code == 1
    assert len(err.splitlines()) == 1
    assert re.search(r'database "no_such_db_\w+" does not exist', err) and "Traceback" not in err


def test_verify_clean_then_tampered(db, dsn, capsys):
    copy_rows(db, sapien_story())
    db.execute("SELECT compute_fifo('SAPIEN-USD')")
    code, out, err = run(capsys, dsn, "verify")
    assert (code, err) == (0, "")
    assert out.startswith("verify: clean (1 computed pool(s)")

    db.execute("UPDATE fifo.allocations SET pnl_amount = pnl_amount + 1 WHERE sell_trade_id = %s",
               (SAPIEN_SELL,))
    code, out, err = run(capsys, dsn, "verify")
    assert code == 1
    lines = out.splitlines()
    assert any(line.startswith(f"money: SAPIEN-USD/default {SAPIEN_SELL}:") for line in lines)
    # verify_fifo()'s recomputation and the reference FIFO see the same row: stored -0.30893 + 1
    assert any(line.startswith(f"not_fifo: SAPIEN-USD/default {SAPIEN_SELL}:")
               and "pnl_amount 0.69107" in line and "expected -0.30893" in line for line in lines)
    assert any(line.startswith(f"reference: SAPIEN-USD/default {SAPIEN_SELL}:") and "0.69107" in line
               for line in lines)
    assert lines[-1] == "verify: 3 finding(s) in 1 computed pool(s)"
    # without the Python reference: the SQL verify alone finds it
    code, out, err = run(capsys, dsn, "verify", "--reference", "off")
    assert code == 1
    assert out.splitlines()[-1] == "verify: 2 finding(s) in 1 computed pool(s)"


def test_install_twice(db, dsn, capsys):
    for _ in range(2):
        code, out, err = run(capsys, dsn, "install")
        assert (code, err) == (0, "")
        assert "migrations applied: none pending" in out   # the template already has every migration


def test_python_dash_m_help():
    proc = subprocess.run([sys.executable, "-m", "fifo_db", "--help"], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage: fifo-db")
    for command in ("install", "compute", "verify", "db"):
        assert command in proc.stdout


def test_an_empty_symbol_is_refused_not_taken_for_all_symbols(db, dsn, capsys):
    copy_rows(db, sapien_story())
    code, out, err = run(capsys, dsn, "compute", "--symbol", "")
    assert (code, out) == (1, "")
    assert err == ("fifo-db: error: symbol must be given, got '' (hint: Pass a symbol, e.g. "
                   "compute_fifo('BTC-USD').) [SQLSTATE 22004]\n")
    assert db.execute("SELECT count(*) FROM fifo_runs").fetchone()[0] == 0


def test_a_version_out_of_range_is_refused_by_the_command_line(db, dsn, capsys):
    for command in (["compute", "--all-symbols"], ["verify"]):
        with pytest.raises(SystemExit) as exit_:
            main(["--dsn", dsn, *command, "--version", "99999999999"])
        assert exit_.value.code == 2
        err = capsys.readouterr().err
        assert "argument --version: must be a whole number from 1 to 2147483647, got '99999999999'" in err


def test_a_reader_that_goes_away_ends_the_report_with_141_and_no_traceback(db, dsn):
    """`fifo-db report trades | head -1`: the pipe closes after one line; the command ends as
    a shell's SIGPIPE would (141), with nothing on stderr, not a BrokenPipeError traceback."""
    copy_rows(db, synthetic_rows(symbols=20, trades=3000, seed=11))
    assert main(["--dsn", dsn, "compute", "--all-symbols"]) == 0
    proc = subprocess.Popen([sys.executable, "-m", "fifo_db", "--dsn", dsn, "report", "trades",
                             "--format", "csv"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    first = proc.stdout.readline()
    proc.stdout.close()                                  # what `head -1` does after its line
    err = proc.stderr.read().decode()
    proc.stderr.close()
    assert proc.wait(timeout=120) == 141, err
    assert first.startswith(b"account,symbol,currency,order_id,"), first
    assert err == "Realized P&L per sell: all symbols, all trades (UTC)\n"     # the range line only
