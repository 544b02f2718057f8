"""Not part of the suite (its name is not test_*.py): tests/test_first_hour.py runs it by path through
scripts/test, and interrupts the run while this test holds a database of the test server."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest


def test_waits_to_be_interrupted(db):
    ready = os.environ.get("FIFO_DB_TEST_READY")
    if not ready:
        pytest.skip("run by tests/test_first_hour.py::test_an_interrupted_run_stops_its_servers only")
    Path(ready).write_text(f"{db.info.dbname}\n")
    time.sleep(300)
