"""bench/alternate.py, the alternated comparison of one statement in two databases (issue 16)."""
import re
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "bench" / "alternate.py"


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=120,
                          stdin=subprocess.DEVNULL)


def _server(postgresql) -> str:
    info = postgresql.info
    return f"host={info.host} port={info.port} user={info.user}"


def test_fresh_sessions_time_each_database_in_turn_and_print_medians(db, postgresql):
    mine = postgresql.info.dbname
    # a table only the test's database has: each database really ran the statement it was given
    db.execute("CREATE TABLE alternate_calls (at timestamptz DEFAULT clock_timestamp())")
    proc = _run("--dsn", _server(postgresql), "--fresh", "--rounds", "3", "--calls", "2", "--late", "1",
                "--statement", "INSERT INTO alternate_calls DEFAULT VALUES", mine)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    lines = proc.stdout.splitlines()
    assert len(lines) == 2
    assert re.fullmatch(rf"{mine}: (\d+\.\d )+?\d+\.\d; median \d+\.\d\d ms, min \d+\.\d\d ms", lines[0])
    assert len(lines[0].split(";")[0].split(": ")[1].split()) == 6          # 3 rounds x 2 calls
    assert re.fullmatch(rf"{mine}, the 1 later calls of each session: median \d+\.\d\d ms, min \d+\.\d\d ms", lines[1])
    # per round: one untimed call, 2 timed, 1 later
    assert db.execute("SELECT count(*) FROM alternate_calls").fetchone()[0] == 3 * (1 + 2 + 1)


def test_one_session_per_database_alternates_the_order(db, postgresql):
    mine = postgresql.info.dbname
    proc = _run("--dsn", _server(postgresql), "--session", "--rounds", "2",
                "--statement", "SELECT 1", mine, "postgres")
    assert proc.returncode == 0, proc.stderr
    names = [line.split(":")[0] for line in proc.stdout.splitlines()]
    assert names == [mine, "postgres"]
    assert all(len(line.split(";")[0].split(": ")[1].split()) == 2 for line in proc.stdout.splitlines())


def test_a_missing_database_is_one_line_and_exit_1(postgresql):
    proc = _run("--dsn", _server(postgresql), "--fresh", "--statement", "SELECT 1", "no_such_database_here")
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert len(proc.stderr.splitlines()) == 1
    assert proc.stderr.startswith("alternate.py: ")
    assert "no_such_database_here" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_failing_statement_is_one_line_and_exit_1(postgresql):
    proc = _run("--dsn", _server(postgresql), "--fresh", "--statement", "SELECT 1/0", postgresql.info.dbname)
    assert (proc.returncode, proc.stdout) == (1, "")
    assert proc.stderr == "alternate.py: division by zero\n"


def test_bad_arguments_are_refused_with_exit_2(postgresql):
    proc = _run("--dsn", _server(postgresql), "--fresh", "--rounds", "0", "--statement", "SELECT 1", "x")
    assert proc.returncode == 2
    assert "--rounds and --calls must be at least 1" in proc.stderr
    assert "Traceback" not in proc.stderr
    proc = _run("--dsn", _server(postgresql), "--statement", "SELECT 1", "x")   # neither --fresh nor --session
    assert proc.returncode == 2
    assert "one of the arguments --session --fresh is required" in proc.stderr
