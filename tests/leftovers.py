"""The servers a killed test run leaves behind, and stopping them.

A run on test home H starts its server in H and, for the tests that need a second cluster, in
homes named H-<name> (H-owner, H-passwords, H-cron-off, H-first-XXXX, and H-emb-XXXX/home: the
homes tests/test_embedded.py has fifo-db create). H-pg16 and H-pg18 (and
their H-pg16-<name>) are the homes of the other servers' runs, with locks of their own: never
touched here. Only homes holding fifo-db's marker are stopped, through EmbeddedServer.stop().

Used by tests/conftest.py (at start: the leftovers of an earlier killed run; it holds H.lock)
and by scripts/test when it is interrupted (`python -m tests.leftovers H`: after its pytest
ended; it skips homes whose lock a live run holds).
"""

from __future__ import annotations

import fcntl
import os
import re
import sys
from pathlib import Path

from fifo_db.embedded import MARKER, EmbeddedServer


def homes_of(test_home: Path) -> list[Path]:
    """H and its H-<name> homes (not H-pgN...), and a home named `home` in one of those, that hold a
    running server's postmaster.pid."""
    found = []
    for path in [test_home, *sorted(test_home.parent.glob(f"{test_home.name}-*"))]:
        if path != test_home and re.match(r"-pg\d", path.name[len(test_home.name):]):
            continue
        for home in (path, path / "home"):
            if (home / MARKER).is_file() and (home / "data" / "postmaster.pid").exists():
                found.append(home)
    return found


def stop_leftovers(test_home: Path, *, locked: bool = False) -> list[Path]:
    """Stop the servers left running in the homes of test home `test_home`; the homes stopped.
    locked: the caller holds <test_home>.lock (conftest); else a live run holding it means the
    servers are in use, and nothing is stopped."""
    lock = None
    if not locked:
        try:
            lock = os.open(f"{test_home}.lock", os.O_RDWR | os.O_NOFOLLOW)
        except FileNotFoundError:
            pass
        if lock is not None:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(lock)
                return []
    try:
        stopped = []
        for home in homes_of(test_home):
            try:
                if EmbeddedServer(home).stop():
                    stopped.append(home)
            except Exception as exc:     # one home's trouble does not keep the others running
                print(f"tests: could not stop the server in {home}: {exc}", file=sys.stderr, flush=True)
        return stopped
    finally:
        if lock is not None:
            os.close(lock)


if __name__ == "__main__":
    for home in stop_leftovers(Path(sys.argv[1])):
        print(f"scripts/test: stopped the server left running in {home}", file=sys.stderr, flush=True)
