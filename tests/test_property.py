"""Property tests: the SQL engine equals the plain-Python reference FIFO (fifo_db.reference)
row for row, exactly, on random pools; and insertion order never matters.

Pools are small but dense in the hard cases: two accounts x two symbols, a handful of
order_times (many ties), order_ids whose bytewise order differs from a locale's
('B' < 'a', '10' < '9', 'é' after 'z'), random sides (so oversells and partial fills
are common), fees 0 or not, 8- and 18-decimal sizes.

Hypothesis with function-scoped fixtures: every example runs in the same test database
(the `db` fixture is created once per test function, not per example). That is safe here
because each example begins with helpers.reset(db), which empties trade_records and every
table the engine writes (allocations, runs, pool state, pending changes), so no example
sees another's data. Hence the function_scoped_fixture health check is suppressed.
"""

from __future__ import annotations

import os
import random
from datetime import timedelta
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fifo_db.sample import copy_rows, synthetic_rows
from tests.helpers import expected, findings, reset, stored, ts

# A fixed profile for CI: deterministic examples (derandomize), no example database on
# disk, no per-example deadline (a shared 2-core machine is noisy). More examples locally
# with FIFO_DB_HYPOTHESIS_EXAMPLES=500.
EXAMPLES = int(os.environ.get("FIFO_DB_HYPOTHESIS_EXAMPLES", "60"))
CI = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture])

T0 = ts("2025-01-01 00:00")
TIMES = [T0 + timedelta(minutes=m) for m in (0, 0, 1, 2, 3, 5, 8)]
ID_PREFIXES = ["a", "B", "b", "A", "10-", "9-", "é", "z"]
E8, E18 = Decimal("1E-8"), Decimal("1E-18")

sizes = st.one_of(
    st.sampled_from([Decimal(1), Decimal("0.5"), Decimal(2), E8, E18]),      # exact boundaries, dust
    st.builds(lambda units: Decimal(units) * E8, st.integers(1, 300_000_000)),  # 8 decimals, up to 3
    st.builds(lambda units: Decimal(units) * E18,                            # 18 decimals, up to ~3
              st.integers(1, 3 * 10**18)),
)
prices = st.builds(lambda units: Decimal(units) / 10_000, st.integers(0, 1_000_000))
fees = st.one_of(
    st.just(Decimal(0)),
    st.builds(lambda units: Decimal(units) * E8, st.integers(0, 10**8)),
    st.builds(lambda units: Decimal(units) * E18, st.integers(1, 10**15)),
)


@st.composite
def trade_lists(draw, max_trades: int = 24) -> list[tuple]:
    """Trades as sample.COLUMNS tuples, order_ids unique."""
    out = []
    for i in range(draw(st.integers(0, max_trades))):
        out.append((f"{draw(st.sampled_from(ID_PREFIXES))}{i}",
                    draw(st.sampled_from(["acct1", "acct2"])),
                    draw(st.sampled_from(["X", "Y-USD"])),
                    draw(st.sampled_from(["buy", "sell"])),
                    draw(sizes), draw(prices), draw(fees),
                    draw(st.sampled_from(TIMES)),
                    "hypothesis"))
    return out


def compute_all(db, force: bool = True) -> None:
    db.execute("SELECT compute_fifo_all(%s)", (force,))


@CI
@given(trades=trade_lists())
def test_full_recompute_equals_reference(db, trades):
    reset(db)
    copy_rows(db, trades)
    compute_all(db, force=True)
    assert stored(db) == expected(db)
    assert findings(db) == []


@CI
@given(trades=trade_lists(), cut=st.integers(0, 24))
def test_suffix_recompute_after_more_trades_equals_reference(db, trades, cut):
    """Compute, add more trades (often back-dated into the computed past), bring pools current:
    the suffix recompute with carried open lots gives what a full recompute would."""
    reset(db)
    copy_rows(db, trades[:cut])
    compute_all(db, force=False)
    copy_rows(db, trades[cut:])
    compute_all(db, force=False)
    assert stored(db) == expected(db)
    assert findings(db) == []


def _allocation_rows(db) -> list[tuple]:
    """Every column except id, batch_id and computed_at, in a total order."""
    return db.execute(
        "SELECT version, account, symbol, sell_trade_id, buy_trade_id, allocated_size, buy_price, "
        "sell_price, buy_fees, sell_fees, cost_basis, sale_proceeds, pnl_amount, buy_time, sell_time, "
        "unmatched FROM fifo_allocations ORDER BY account, symbol, sell_trade_id COLLATE \"C\", "
        "buy_trade_id COLLATE \"C\" NULLS LAST").fetchall()


def _allocations_when_inserted_as(db, rows) -> list[tuple]:
    reset(db)
    copy_rows(db, rows)
    compute_all(db)
    return _allocation_rows(db)


@settings(CI, max_examples=max(10, EXAMPLES // 2))   # three computations per example
@given(trades=trade_lists(), data=st.data())
def test_insertion_order_does_not_matter(db, trades, data):
    first = _allocations_when_inserted_as(db, trades)
    for _ in range(2):
        assert _allocations_when_inserted_as(db, data.draw(st.permutations(trades))) == first


def test_insertion_order_does_not_matter_on_a_synthetic_history(db):
    """Three pools of 200 trades each (oversells included), inserted forward, backward and shuffled."""
    rows = list(synthetic_rows(symbols=3, trades=600, seed=11, accounts=2))
    shuffled = rows[:]
    random.Random(3).shuffle(shuffled)
    forward = _allocations_when_inserted_as(db, rows)
    assert len(forward) > 300 and any(r[-1] for r in forward)   # many rows, some unmatched
    assert _allocations_when_inserted_as(db, rows[::-1]) == forward
    assert _allocations_when_inserted_as(db, shuffled) == forward
    assert stored(db) == expected(db)
