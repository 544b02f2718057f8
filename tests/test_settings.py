"""Settings: fifo_set_setting validates every name and value (type, range, time zone) and
refuses NULL or unknown names with a SQLSTATE and a HINT; a bad value already stored (written
by hand) makes readers fail with one error naming the setting and the fix."""

from __future__ import annotations

import psycopg
import pytest

from fifo_db.cli import main
from tests.helpers import add_trades


def stored(db) -> dict[str, str]:
    return dict(db.execute("SELECT name, value FROM fifo.settings").fetchall())


def refused(db, name, value) -> psycopg.Error:
    with pytest.raises(psycopg.Error) as info:
        db.execute("SELECT fifo_set_setting(%s, %s)", (name, value))
    return info.value


DEFAULTS = {"current_version": "1", "long_term_days": "365", "report_timezone": "UTC", "trades_source": "fifo-db",
            "change_retention": "7 days", "fill_statuses": "*", "long_term_rule": "anniversary",
            "report_currency": "USD", "report_currency_aliases": "", "run_retention": "10000", "lock_timeout": "30 s",
            "forced_in_place_below": "10000", "tax_pooling": "wallet", "price_window": "1 day", "symbol_map": ""}


@pytest.mark.parametrize("name, value", [
    ("current_version", "2"),
    ("current_version", "2147483647"),          # a version never computed may be made current
    ("long_term_days", "1"),
    ("long_term_days", "36600"),
    ("report_timezone", "Asia/Tokyo"),
    ("report_timezone", "Etc/GMT+5"),
    ("change_retention", "1 hour"),
    ("change_retention", "400 days"),
    ("change_retention", "36 hours"),
    ("fill_statuses", "*"),
    ("fill_statuses", "filled,done"),
    ("fill_statuses", "filled"),
    ("long_term_rule", "days"),
    ("run_retention", "100"),
    ("run_retention", "100000000"),
    ("report_currency", "EUR"),
    ("report_currency_aliases", "USDC,USDT"),
    ("lock_timeout", "100 ms"),
    ("lock_timeout", "1 hour"),
    ("lock_timeout", "2 min"),
    ("forced_in_place_below", "0"),              # always the fresh table
    ("forced_in_place_below", "100000000"),
])
def test_valid_values_are_stored(db, name, value):
    db.execute("SELECT fifo_set_setting(%s, %s)", (name, value))
    assert stored(db) == {**DEFAULTS, name: value}


@pytest.mark.parametrize("name, value, rule", [
    ("current_version", "99999999999", "a whole number from 1 to 2147483647"),
    ("current_version", "2147483648", "a whole number from 1 to 2147483647"),
    ("current_version", "0", "a whole number from 1 to 2147483647"),
    ("current_version", "-1", "a whole number from 1 to 2147483647"),
    ("current_version", "1.5", "a whole number from 1 to 2147483647"),
    ("current_version", " 2", "a whole number from 1 to 2147483647"),
    ("current_version", "", "a whole number from 1 to 2147483647"),
    ("long_term_days", "3000000000", "a whole number of days from 1 to 36600"),
    ("long_term_days", "36601", "a whole number of days from 1 to 36600"),
    ("long_term_days", "0", "a whole number of days from 1 to 36600"),
    ("long_term_days", "365.25", "a whole number of days from 1 to 36600"),
    ("long_term_days", "1 year", "a whole number of days from 1 to 36600"),
    ("report_timezone", "Mars/Olympus_Mons", "a time zone name from pg_timezone_names"),
    ("report_timezone", "PDT", "a time zone name from pg_timezone_names"),   # an abbreviation: no DST
    ("report_timezone", "", "a time zone name from pg_timezone_names"),
    ("change_retention", "59 minutes", "an interval from 1 hour to 400 days"),
    ("change_retention", "2 years", "an interval from 1 hour to 400 days"),
    ("change_retention", "a week", "an interval such as '7 days' or '36 hours'"),
    ("fill_statuses", "", "* (every row counts) or a comma-separated list of status values, e.g. filled,done"),
    ("fill_statuses", "filled,", "* (every row counts) or a comma-separated list of status values, e.g. filled,done"),
    ("fill_statuses", "filled, done", "* (every row counts) or a comma-separated list of status values, e.g. filled,done"),
    ("long_term_rule", "months", "anniversary (long-term when sold after the one-year anniversary of the acquisition "
                                 "date) or days (when sold more than long_term_days days after it)"),
    ("run_retention", "99", "a whole number of runs from 100 to 100000000"),
    ("run_retention", "100000001", "a whole number of runs from 100 to 100000000"),
    ("run_retention", "1e4", "a whole number of runs from 100 to 100000000"),
    ("report_currency", "US D", "a currency code of letters and digits, such as USD"),
    ("report_currency", "", "a currency code of letters and digits, such as USD"),
    ("report_currency_aliases", "USDC, USDT", "a comma-separated list of currency codes without spaces (or empty)"),
    ("report_currency_aliases", "USDC,", "a comma-separated list of currency codes without spaces (or empty)"),
    ("lock_timeout", "0", "an interval from 100 milliseconds to 1 hour"),
    ("lock_timeout", "61 min", "an interval from 100 milliseconds to 1 hour"),
    ("lock_timeout", "forever", "an interval such as '30 s' or '2 min'"),
    ("forced_in_place_below", "-1", "a whole number of trades from 0 to 100000000"),
    ("forced_in_place_below", "100000001", "a whole number of trades from 0 to 100000000"),
    ("forced_in_place_below", "1e4", "a whole number of trades from 0 to 100000000"),
])
def test_invalid_values_are_refused_and_nothing_changes(db, name, value, rule):
    err = refused(db, name, value)
    assert err.sqlstate == "22023"
    assert err.diag.message_primary == f'fifo-db setting "{name}" cannot be "{value}": it must be {rule}' + (
        " (e.g. UTC, Europe/London)" if name == "report_timezone" else "")
    example = {"current_version": "1", "long_term_days": "365", "report_timezone": "America/New_York",
               "change_retention": "7 days", "fill_statuses": "filled,done", "long_term_rule": "anniversary",
               "report_currency": "USD", "report_currency_aliases": "USDC,USDT", "run_retention": "10000", "lock_timeout": "30 s",
               "forced_in_place_below": "10000"}[name]
    assert err.diag.message_hint == f"Example: SELECT fifo_set_setting('{name}', '{example}');"
    assert stored(db) == DEFAULTS


def test_null_and_unknown_names_and_null_values_are_refused(db):
    err = refused(db, None, "5")
    assert (err.sqlstate, err.diag.message_primary) == ("22004", "fifo_set_setting: the setting name is NULL")
    assert err.diag.message_hint == ("Name one of: change_retention, current_version, fill_statuses, forced_in_place_below, lock_timeout, long_term_days, "
                                     "long_term_rule, price_window, report_currency, report_currency_aliases, report_timezone, "
                                     "run_retention, symbol_map, tax_pooling.")

    err = refused(db, "long_term_dayz", "5")
    assert (err.sqlstate, err.diag.message_primary) == ("42704", 'unknown fifo-db setting "long_term_dayz"')
    assert err.diag.message_hint == ("Settings are: change_retention, current_version, fill_statuses, forced_in_place_below, lock_timeout, long_term_days, "
                                     "long_term_rule, price_window, report_currency, report_currency_aliases, report_timezone, "
                                     "run_retention, symbol_map, tax_pooling.")

    err = refused(db, "long_term_days", None)
    assert (err.sqlstate, err.diag.message_primary) == \
        ("22004", 'fifo-db setting "long_term_days" cannot be set to NULL')
    assert err.diag.message_hint == "Give a value, e.g. SELECT fifo_set_setting('long_term_days', '365');"
    assert stored(db) == DEFAULTS


def _trades(db):
    add_trades(db, [
        {"order_id": "b1", "symbol": "AAA-USD", "side": "buy", "size": 2, "price": 10, "order_time": "2025-01-01"},
        {"order_id": "s1", "symbol": "AAA-USD", "side": "sell", "size": 1, "price": 12, "order_time": "2025-02-01"},
    ])


def test_trades_source_is_left_to_install_and_checked_when_read(db):
    err = refused(db, "trades_source", "bottrader")
    assert (err.sqlstate, err.diag.message_primary) == \
        ("55000", 'fifo-db setting "trades_source" is not changed with fifo_set_setting')
    assert err.diag.message_hint == ("It is set by `fifo-db install` (`--adopt` for a BotTrader database), which "
                                     "regenerates fifo.trades and the change-capture triggers.")
    assert stored(db) == DEFAULTS
    db.execute("UPDATE fifo.settings SET value = 'csv' WHERE name = 'trades_source'")
    with pytest.raises(psycopg.Error) as info:
        db.execute("SELECT fifo._setting('trades_source')")
    assert (info.value.sqlstate, info.value.diag.message_primary) == (
        "F0001", 'fifo-db setting "trades_source" holds "csv", which is not valid: it must be a trades source '
                 'fifo-db knows (fifo-db, bottrader)')
    assert info.value.diag.message_hint.startswith("It is set by `fifo-db install`")
    assert "UPDATE fifo.settings SET value = 'fifo-db' WHERE name = 'trades_source'" in info.value.diag.message_hint


def test_a_missing_row_is_written_back_by_fifo_set_setting(db):
    _trades(db)
    db.execute("SELECT compute_fifo_all(true)")
    db.execute("DELETE FROM fifo.settings WHERE name = 'long_term_days'")
    with pytest.raises(psycopg.Error) as info:
        db.execute("SELECT * FROM fifo_tax_lots").fetchall()
    assert info.value.diag.message_primary == 'fifo-db setting "long_term_days" is not set'
    db.execute("SELECT fifo_set_setting('long_term_days', '400')")
    assert stored(db)["long_term_days"] == "400"


# (setting, value written by hand, what then fails) -- each a statement that used to die
# deep inside with an integer overflow or an unknown time zone
HAND_WRITTEN = [
    ("current_version", "99999999999", "SELECT compute_fifo_all(true)"),
    ("current_version", "99999999999", "SELECT compute_fifo_incremental()"),    # the cron tick
    ("current_version", "99999999999", "SELECT * FROM fifo_pnl_summary()"),
    ("current_version", "0", "SELECT * FROM fifo_trade_pnl"),
    ("long_term_days", "3000000000", "SELECT * FROM fifo_tax_lots"),
    ("long_term_days", "3000000000", "SELECT * FROM fifo_open_lots"),
    ("report_timezone", "Mars/Olympus_Mons", "SELECT * FROM fifo_pnl_by_day"),
    ("report_timezone", "Mars/Olympus_Mons", "SELECT * FROM fifo_unmatched_sells"),
]


@pytest.mark.parametrize("name, value, statement", HAND_WRITTEN)
def test_a_bad_value_written_by_hand_gives_one_error_naming_the_setting(db, name, value, statement):
    _trades(db)                       # an open lot in AAA-USD, an unmatched sell in BBB-USD
    add_trades(db, [{"order_id": "u1", "symbol": "BBB-USD", "side": "sell", "size": 1, "price": 3,
                     "order_time": "2025-03-01"}])
    db.execute("SELECT compute_fifo_all(true)")
    db.execute("UPDATE fifo.settings SET value = %s WHERE name = %s", (value, name))
    add_trades(db, [{"order_id": "b9", "symbol": "AAA-USD", "side": "buy", "size": 1, "price": 9,
                     "order_time": "2025-04-01"}])   # a pending change for the incremental run
    with pytest.raises(psycopg.Error) as info:
        db.execute(statement).fetchall()
    err = info.value
    assert err.sqlstate == "F0001"
    assert err.diag.message_primary.startswith(f'fifo-db setting "{name}" holds "{value}", which is not valid: it must be ')
    assert err.diag.message_hint.startswith(f"Set a valid value, e.g. SELECT fifo_set_setting('{name}', ")
    # the fix the hint names repairs it
    db.execute("SELECT fifo_set_setting(%s, %s)", (name, DEFAULTS[name]))
    assert db.execute(statement).fetchall()


def test_cli_shows_a_bad_stored_setting_as_one_line(db, dsn, capsys):
    _trades(db)
    db.execute("SELECT compute_fifo_all(true)")
    db.execute("UPDATE fifo.settings SET value = '3000000000' WHERE name = 'long_term_days'")
    code = main(["--dsn", dsn, "report", "tax"])
    out, err = capsys.readouterr()
    assert code == 1 and out == ""
    assert err == ('fifo-db: error: fifo-db setting "long_term_days" holds "3000000000", which is not valid: '
                   "it must be a whole number of days from 1 to 36600 (hint: Set a valid value, e.g. "
                   "SELECT fifo_set_setting('long_term_days', '365');) [SQLSTATE F0001]\n")


def test_switching_to_a_version_never_computed_is_allowed(db):
    _trades(db)
    db.execute("SELECT compute_fifo_all(true)")
    db.execute("SELECT fifo_set_setting('current_version', '7')")
    assert db.execute("SELECT fifo._current_version()").fetchone()[0] == 7
    assert db.execute("SELECT count(*) FROM fifo_allocations WHERE version = 7").fetchone()[0] == 0


def test_readers_accept_every_value_the_setter_accepts(db):
    """The reader's cheap checks never refuse what fifo_set_setting stored."""
    for name, value in [("current_version", "2147483647"), ("long_term_days", "36600"),
                        ("report_timezone", "America/Argentina/Buenos_Aires")]:
        db.execute("SELECT fifo_set_setting(%s, %s)", (name, value))
        assert db.execute("SELECT fifo._setting(%s)", (name,)).fetchone()[0] == value
    assert db.execute("SELECT fifo._long_term_days()").fetchone()[0] == 36600


def test_setting_functions_pin_their_search_path(db):
    got = dict(db.execute(
        "SELECT p.oid::regprocedure::text, array_to_string(p.proconfig, ',') FROM pg_proc p "
        "WHERE p.oid = ANY(ARRAY['fifo._setting_rule(text, text, boolean)'::regprocedure, "
        "'fifo._setting(text)'::regprocedure, 'fifo._current_version()'::regprocedure, "
        "'fifo_set_setting(text, text)'::regprocedure])").fetchall())
    assert set(got.values()) == {"search_path=pg_catalog, pg_temp"}
    assert len(got) == 4
