"""A newcomer's first hour: the demo, then the README's next commands exactly as printed (on a
fresh embedded server); a database created without psql; connection failures said as what they
are; `fifo-db import` recognising (or explaining) the file it is given; a reject file that cannot
be written loading nothing; CSV cells a spreadsheet would execute neutralised everywhere."""

from __future__ import annotations

import csv
import os
import re
import shlex
import shutil
import tempfile
from pathlib import Path

import psycopg
import pytest

from fifo_db.cli import main
from fifo_db.csvsafe import safe_cell
from fifo_db.demo import run_demo
from fifo_db.embedded import EmbeddedServer
from fifo_db.sample import SAPIEN_SELL
from tests.conftest import TEST_HOME
from tests.helpers import add_trades

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).parent / "data"


def cli(capsys, *args) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def one_error_line(code, err, *needles):
    assert code == 1
    assert len(err.splitlines()) == 1 and err.startswith("fifo-db: error: ") and "Traceback" not in err, err
    for needle in needles:
        assert needle in err, err


@pytest.fixture
def fresh_home(monkeypatch):
    """A new FIFO_DB_HOME and no DSN: what a new user has; the server is stopped and removed after."""
    path = Path(tempfile.mkdtemp(prefix=f"{TEST_HOME.name}-first-", dir=TEST_HOME.parent))   # tests/leftovers.py
    if os.geteuid() == 0:
        import pwd
        account = pwd.getpwnam(os.environ.get("FIFO_DB_RUN_AS", "postgres"))
        os.chown(path, account.pw_uid, account.pw_gid)
    monkeypatch.setenv("FIFO_DB_HOME", str(path))
    monkeypatch.delenv("FIFO_DB_DSN", raising=False)
    yield path
    server = EmbeddedServer(path)
    if server.is_running():
        server.stop()
    shutil.rmtree(path, ignore_errors=True)


def readme_block_after(command: str) -> str:
    """The output the README shows under `$ command` (up to the next `$ ` line or the fence)."""
    lines = (ROOT / "README.md").read_text().splitlines()
    start = lines.index(f"$ {command}") + 1
    end = next(i for i in range(start, len(lines)) if lines[i].startswith("$ ") or lines[i] == "```")
    return "\n".join(lines[start:end]).rstrip("\n")


def test_demo_then_the_readme_commands_exactly_as_printed(fresh_home, capsys):
    code, out, err = cli(capsys, "demo")
    assert (code, err) == (0, "")
    assert "installed fifo-db into database 'fifo', the embedded server's default" in out
    assert "verify: clean (172 pools" in out
    commands = ["fifo-db compute --symbol SAPIEN-USD", "fifo-db report pnl --symbol SAPIEN-USD",
                f"fifo-db explain {SAPIEN_SELL}"]
    readme = (ROOT / "README.md").read_text()
    for command in commands:
        assert f"$ {command}" in readme.splitlines(), command   # the README prints it so
        assert f"  {command}" in out.splitlines()                # and so does the demo
        code, out_, err_ = cli(capsys, *shlex.split(command)[1:])
        assert (code, err_) == (0, ""), (command, err_)
        if command != commands[0]:                               # compute prints a fresh batch id
            assert out_.rstrip("\n") == readme_block_after(command), command
    # a second run replaces the demo's own trades, nothing else
    code, out, _ = cli(capsys, "demo")
    assert code == 0 and "replaced the 4,517 trades of an earlier demo run" in out


def test_demo_never_touches_other_data(db, dsn, capsys):
    add_trades(db, [{"order_id": "mine", "symbol": "X-USD", "side": "buy", "size": 1, "price": 1,
                     "order_time": "2025-01-01"}])
    code, _, err = cli(capsys, "--dsn", dsn, "demo")
    one_error_line(code, err, "already holds 1 trade(s) that are not the demo's", "fifo-db db create fifo_demo")
    assert db.execute("SELECT count(*) FROM trade_records").fetchone()[0] == 1
    db.execute("DELETE FROM trade_records")
    assert run_demo(dsn, out=lambda *_: None) == 0
    assert db.execute("SELECT count(*), count(*) FILTER (WHERE source = 'fifo-db demo') FROM trade_records"
                      ).fetchone() == (4517, 4517)


def test_db_create_then_install(db, dsn, capsys):
    name = "fifo_created_by_test"
    db.execute(f'DROP DATABASE IF EXISTS "{name}"')
    try:
        code, out, err = cli(capsys, "--dsn", dsn, "db", "create", name)
        assert (code, err) == (0, "")
        new_dsn = re.search(r"export FIFO_DB_DSN='([^']+)'", out).group(1)
        assert cli(capsys, "--dsn", new_dsn, "install")[0] == 0
        with psycopg.connect(new_dsn) as conn:
            assert conn.execute("SELECT current_database()").fetchone()[0] == name
        one_error_line(*cli(capsys, "--dsn", dsn, "db", "create", name)[::2], f"database '{name}' already exists")
    finally:
        db.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_connection_failures_are_said_as_what_they_are(dsn, capsys):
    one_error_line(*cli(capsys, "--dsn", "foo", "verify")[::2], "cannot use DSN 'foo'",
                   "a DSN looks like postgresql://USER@HOST:5432/DBNAME")
    missing_db = re.sub(r"dbname=\S+", "dbname=no_such_database", dsn)
    one_error_line(*cli(capsys, "--dsn", missing_db, "report", "pnl")[::2],
                   'database "no_such_database" does not exist', "fifo-db db create no_such_database")
    missing_role = re.sub(r"user=\S+", "user=no_such_role", dsn)
    one_error_line(*cli(capsys, "--dsn", missing_role, "verify")[::2], 'role "no_such_role" does not exist')


# --- import: which file is this? ----------------------------------------------------------------------

def test_import_detects_coinbase_fills_and_says_so(db, dsn, capsys):
    code, out, err = cli(capsys, "--dsn", dsn, "import", str(DATA / "coinbase_fills.csv"))
    assert (code, err) == (0, "")
    assert out.splitlines()[0] == "format: coinbase (Coinbase fills; detected from the header; --format overrides)"
    assert "imported 5 of 5 rows" in out


def test_import_explains_files_it_cannot_read(db, dsn, capsys, tmp_path):
    retail = tmp_path / "history.csv"
    retail.write_text(
        '"You can use this transaction report to inform your likely tax obligations."\n\nTransactions\n'
        "User,someone@example.com,00000000-0000-0000-0000-000000000000\n"
        "ID,Timestamp,Transaction Type,Asset,Quantity Transacted,Price Currency,Price at Transaction,Subtotal,"
        "Total (inclusive of fees and/or spread),Fees and/or Spread,Notes\n"
        "a1,2025-01-17 16:57:02 UTC,Buy,BTC,0.001,USD,$40000,$40.00,$41.00,$1.00,Bought 0.001 BTC\n")
    one_error_line(*cli(capsys, "--dsn", dsn, "import", str(retail))[::2],
                   "looks like Coinbase's transaction history", "on line 5 below 4 preamble line(s)",
                   "Download the fills report")
    semi = tmp_path / "semi.csv"
    semi.write_text("order_id;symbol;side;size;price;total_fees;order_time\n"
                    "a;X-USD;buy;1,5;10;0;2025-01-01T00:00:00Z\n")
    for extra in ((), ("--format", "generic")):
        one_error_line(*cli(capsys, "--dsn", dsn, "import", str(semi), *extra)[::2],
                       "separated by semicolons, not commas", "Field delimiter ','")
    unknown = tmp_path / "other.csv"
    unknown.write_text("when,what,how much\n2025-01-01,buy,1\n")
    one_error_line(*cli(capsys, "--dsn", dsn, "import", str(unknown))[::2], "missing column(s)",
                   "or the Coinbase fills header")
    assert db.execute("SELECT count(*) FROM trade_records").fetchone()[0] == 0


def test_unwritable_reject_file_loads_nothing(db, dsn, capsys, tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("order_id,symbol,side,size,price,order_time\n"
                    "g1,X-USD,buy,1,10,2025-01-01T00:00:00Z\nb1,X-USD,buy,0,10,2025-01-01T00:00:00Z\n")
    for target, why in ((tmp_path / "no" / "rej.csv", "does not exist"), (tmp_path, "is a directory")):
        code, out, err = cli(capsys, "--dsn", dsn, "import", str(path), "--skip-invalid", "--reject-file", str(target))
        one_error_line(code, err, "--reject-file", why, "nothing was imported")
        assert db.execute("SELECT count(*) FROM trade_records").fetchone()[0] == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.csv"]      # no temporary file left behind
    good = tmp_path / "rej.csv"
    assert cli(capsys, "--dsn", dsn, "import", str(path), "--skip-invalid", "--reject-file", str(good))[0] == 0
    assert db.execute("SELECT count(*) FROM trade_records").fetchone()[0] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rej.csv", "t.csv"]


# --- CSV formula injection ----------------------------------------------------------------------------

def test_safe_cell_neutralises_formulas_not_numbers():
    for text in ("=HYPERLINK(\"http://x\",\"y\")", "+cmd", "-2+3", "@SUM(A1)", "\tx", "\rx", "=1"):
        assert safe_cell(text) == "'" + text
    for value in ("-10.30", "+5", "-0.31", "1e-3", "-1E+5", "BTC-USD", "", 7, None, "2025-01-01"):
        assert safe_cell(value) == value


def test_report_tax_and_reject_csv_neutralise_formula_cells(db, dsn, capsys, tmp_path):
    evil = '=HYPERLINK("http://evil.example","x")'
    add_trades(db, [
        {"order_id": "@b", "symbol": evil, "side": "buy", "size": 1, "price": 1, "order_time": "2025-01-01"},
        {"order_id": "-s", "symbol": evil, "side": "sell", "size": 1, "price": "0.5", "order_time": "2025-01-02"},
        {"order_id": "b2", "symbol": "X-=cmd", "side": "buy", "size": 1, "price": 1, "order_time": "2025-01-01"},
        {"order_id": "s2", "symbol": "X-=cmd", "side": "sell", "size": 1, "price": 2, "order_time": "2025-01-02"},
        {"order_id": "b3", "symbol": "=cmd-USD", "side": "buy", "size": 1, "price": 1, "order_time": "2025-01-01"},
        {"order_id": "+s3", "symbol": "=cmd-USD", "side": "sell", "size": 1, "price": 3, "order_time": "2025-01-02"},
    ])
    db.execute("SELECT compute_fifo_all(true)")
    code, out, _ = cli(capsys, "--dsn", dsn, "report", "trades", "--format", "csv")
    rows = list(csv.DictReader(out.splitlines()))
    assert {r["symbol"] for r in rows} == {"'" + evil, "X-=cmd", "'=cmd-USD"}
    assert {r["order_id"] for r in rows} == {"'-s", "s2", "'+s3"}
    assert {r["currency"] for r in rows} == {"", "'=cmd", "USD"}
    assert {r["pnl_amount"] for r in rows} == {"-0.5", "1", "2"}             # numbers untouched
    # the tax CSV: the one USD row, its asset after the quantity, nothing a spreadsheet would run
    code, out, err = cli(capsys, "--dsn", dsn, "report", "tax")
    [row] = list(csv.DictReader(out.splitlines()))
    assert (row["Description of property"], row["Gain or (loss)"]) == ("1 =cmd", "2.00")
    assert "left out, not in USD (USD): " in err
    bad = tmp_path / "bad.csv"
    bad.write_text(f"order_id,symbol,side,size,price,order_time\n=1+1,{'=cmd|x'},buy,0,1,2025-01-01T00:00:00Z\n")
    rejects = tmp_path / "rej.csv"
    assert cli(capsys, "--dsn", dsn, "import", str(bad), "--skip-invalid", "--reject-file", str(rejects))[0] == 0
    with rejects.open(newline="") as f:
        [row] = list(csv.DictReader(f))
    assert (row["order_id"], row["symbol"], row["size"]) == ("'=1+1", "'=cmd|x", "0")


# --- `fifo-db` on PATH in a new shell (scripts/bootstrap) ---------------------------------------------

def _bootstrap(home: Path, bin_dir: Path) -> str:
    """scripts/bootstrap as a user whose home is `home`, linking into `bin_dir`; its stderr."""
    import subprocess

    env = {**os.environ, "HOME": str(home), "FIFO_DB_BIN_DIR": str(bin_dir)}
    done = subprocess.run([str(ROOT / "scripts" / "bootstrap")], env=env, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=600)
    assert done.returncode == 0, done.stderr
    return done.stderr


def _login_shell(home: Path, command: str) -> str:
    """`command` in a new login shell of a user whose home is `home` (nothing inherited)."""
    import subprocess

    done = subprocess.run(["env", "-i", f"HOME={home}", "PATH=/usr/bin:/bin", "bash", "-lc", command],
                          capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=60)
    return done.stdout.strip()


def test_bootstrap_puts_fifo_db_on_path_for_a_new_login_shell(tmp_path):
    """A user's ~/.local/bin (Debian's ~/.profile puts it on PATH when it exists): after bootstrap, a
    new login shell runs `fifo-db` as the README prints it; a re-run changes nothing; a file bootstrap
    did not make is never replaced; a link left by a clone that is gone is pointed here."""
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy("/etc/skel/.profile", home / ".profile")        # what a new Debian/Ubuntu user has
    bin_dir = home / ".local" / "bin"
    link = bin_dir / "fifo-db"
    target = ROOT / ".venv" / "bin" / "fifo-db"
    assert _login_shell(home, "command -v fifo-db") != str(link)
    assert _bootstrap(home, bin_dir).endswith(f"bootstrap: linked {link} -> {target}\n")
    assert _login_shell(home, "command -v fifo-db") == str(link)
    assert _login_shell(home, "fifo-db --version-info").startswith("fifo-db ")
    assert "fifo-db" not in _bootstrap(home, bin_dir)                    # a re-run: nothing to say
    assert os.readlink(link) == str(target)

    link.unlink()
    link.write_text("#!/bin/sh\necho mine\n")
    assert _bootstrap(home, bin_dir).endswith(
        f"bootstrap: {link} exists and fifo-db did not make it, left alone: the command is {target}\n")
    assert link.read_text() == "#!/bin/sh\necho mine\n"
    link.unlink()
    link.symlink_to("/nonexistent/clone/.venv/bin/fifo-db")
    assert _bootstrap(home, bin_dir).endswith(
        f"bootstrap: {link} pointed at /nonexistent/clone/.venv/bin/fifo-db, which is gone: now {target}\n")
    assert _login_shell(home, "command -v fifo-db") == str(link)


@pytest.mark.skipif(os.geteuid() != 0, reason="as root, bootstrap links into /usr/local/bin")
def test_as_root_the_link_goes_where_a_new_login_shell_looks():
    """scripts/test ran scripts/bootstrap: /usr/local/bin/fifo-db is a .venv/bin/fifo-db (this clone's, or
    another clone's that it left alone), and a new login shell of root finds it there."""
    assert os.readlink("/usr/local/bin/fifo-db").endswith("/.venv/bin/fifo-db")
    assert _login_shell(Path("/root"), "command -v fifo-db") == "/usr/local/bin/fifo-db"


# --- an interrupted test run stops its servers (scripts/test, conftest.py, tests/leftovers.py) --------

def _postgres_of(home: Path) -> list[int]:
    """The pids of postgres processes whose data directory is in `home` (never another run's)."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"postgres") and str(home / "data").encode() in argv:
            pids.append(int(proc.name))
    return pids


def _postgres_left(home: Path) -> list[int]:
    """_postgres_of(home) once the stopped servers' processes are gone: a postmaster removes its pid
    file (which `pg_ctl stop -w` waits for) a moment before it exits; bounded at 30 s."""
    import time

    deadline = time.monotonic() + 30
    while (pids := _postgres_of(home)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return pids


def _scripts_test(home: Path, ready: Path | None, *args: str):
    import subprocess

    env = {**os.environ, "FIFO_DB_TEST_HOME": str(home)}
    if ready is not None:
        env["FIFO_DB_TEST_READY"] = str(ready)
    for name in ("FIFO_DB_TEST_COUNTS", "FIFO_DB_TEST_SERVERS", "FIFO_DB_TEST_READY"):
        if name in env and not (ready is not None and name == "FIFO_DB_TEST_READY"):
            env.pop(name)
    return subprocess.Popen([str(ROOT / "scripts" / "test"), "-q", *args], env=env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, preexec_fn=_as_from_a_terminal)


def _as_from_a_terminal() -> None:
    """SIGINT handled as in a shell's foreground job (this pytest may run with it ignored: scripts/test
    starts it in the background, and bash cannot trap a signal ignored when it started)."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize("sig, code", [("SIGINT", 130), ("SIGTERM", 143)])
def test_an_interrupted_run_stops_its_servers(sig, code, tmp_path):
    """scripts/test on tests/interrupt_target.py (whose test waits), interrupted while the test holds a
    database: it stops the run, its server stops, and no postgres of that test home is left."""
    import signal
    import time

    home = TEST_HOME.parent / f"{TEST_HOME.name}-interrupted-{sig.lower()}"
    shutil.rmtree(home, ignore_errors=True)
    ready = tmp_path / "ready"
    run = _scripts_test(home, ready, "tests/interrupt_target.py")
    try:
        deadline = time.monotonic() + 300
        while not ready.exists() and run.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert ready.exists(), run.communicate(timeout=60)
        assert _postgres_of(home)                       # the run's server is up
        if sig == "SIGINT":
            os.killpg(run.pid, signal.SIGINT)           # as Ctrl-C does: to the whole process group
        else:
            os.kill(run.pid, signal.SIGTERM)            # as `kill PID` does: to scripts/test alone
        out, err = run.communicate(timeout=120)
        assert run.returncode == code, (out, err)
        assert f"scripts/test: interrupted ({sig}): stopping the test run and its servers in {home}\n" in err
        assert _postgres_left(home) == [], (out, err, (home / "postgresql.log").read_text()[-3000:])
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
        from tests.leftovers import stop_leftovers
        stop_leftovers(home)
        shutil.rmtree(home, ignore_errors=True)
        Path(f"{home}.lock").unlink(missing_ok=True)


def test_a_run_killed_outright_has_its_server_stopped_by_the_next_run(tmp_path):
    """SIGKILL leaves no chance to clean up: the server (and a second cluster's) stay up. The next run on
    the same test home stops them first, says so, and stops its own at its end."""
    home = TEST_HOME.parent / f"{TEST_HOME.name}-killed"
    shutil.rmtree(home, ignore_errors=True)
    # the run's own home, a second cluster's, and one tests/test_embedded.py has fifo-db create
    left = [home, Path(f"{home}-owner"), Path(f"{home}-emb-x1y2") / "home"]
    shutil.rmtree(left[2].parent, ignore_errors=True)
    left[2].parent.mkdir(mode=0o755)
    run = None
    try:
        for path in left:
            EmbeddedServer(path).start()                # what a SIGKILLed run leaves behind
            assert _postgres_of(path)
        run = _scripts_test(home, None, "tests/interrupt_target.py")
        out, err = run.communicate(timeout=300)
        assert run.returncode == 0, (out, err)          # its one test skips: not asked to wait
        for path in left:
            assert f"stopped the server an interrupted test run left running in {path}\n" in err
            assert _postgres_left(path) == []
        assert _postgres_left(home) == []               # and the run's own server stopped at its end
    finally:
        import signal

        if run is not None and run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
        from tests.leftovers import stop_leftovers
        stop_leftovers(home)
        for path in left:
            shutil.rmtree(path, ignore_errors=True)
        shutil.rmtree(left[2].parent, ignore_errors=True)
        Path(f"{home}.lock").unlink(missing_ok=True)


# --- long steps say what they are doing ----------------------------------------------------------------

def test_verify_says_on_stderr_what_it_is_doing_and_stdout_stays_its_result(worked, dsn, capsys, monkeypatch):
    """From PROGRESS_TRADES computed trades (lowered here to this database's size), verify prints its steps
    on stderr: what, over how many trades and pools, "still ..." while a step runs, and when it is done;
    stdout is the same as without them."""
    from fifo_db import verify

    code, quiet_out, err = cli(capsys, "--dsn", dsn, "verify")
    assert (code, err) == (0, "")
    trades = worked.execute("SELECT count(*) FROM fifo_computed_trades(NULL, NULL)").fetchone()[0]
    pools = worked.execute("SELECT count(*) FROM fifo_computed_pools(NULL, NULL)").fetchone()[0]
    monkeypatch.setattr(verify, "PROGRESS_TRADES", trades)
    monkeypatch.setattr(verify, "PROGRESS_EVERY", 0.001)
    code, out, err = cli(capsys, "--dsn", dsn, "verify")
    assert (code, out) == (0, quiet_out)
    sql = (f"recomputing FIFO in SQL over {trades:,} trades of {pools:,} computed pool(s) and comparing every "
           f"allocation (verify_fifo())")
    ref = f"matching the {trades:,} trades again with the Python reference FIFO"
    steps = [re.sub(r"\(\d+ s\)$", "(N s)", re.sub(r"done in [\d.]+ s$", "done in N s", line))
             for line in err.splitlines()]
    steps = [line for i, line in enumerate(steps) if i == 0 or line != steps[i - 1]]   # one "still" line each
    assert steps in ([f"verify: {sql} ...", f"verify: {sql}: done in N s",
                      f"verify: {ref} ...", f"verify: {ref}: done in N s"],
                     [f"verify: {sql} ...", f"verify: ... still {sql} (N s)", f"verify: {sql}: done in N s",
                      f"verify: {ref} ...", f"verify: {ref}: done in N s"],
                     [f"verify: {sql} ...", f"verify: ... still {sql} (N s)", f"verify: {sql}: done in N s",
                      f"verify: {ref} ...", f"verify: ... still {ref} (N s)", f"verify: {ref}: done in N s"],
                     [f"verify: {sql} ...", f"verify: {sql}: done in N s",
                      f"verify: {ref} ...", f"verify: ... still {ref} (N s)", f"verify: {ref}: done in N s"]), err
    monkeypatch.setattr(verify, "PROGRESS_TRADES", trades + 1)       # below it: nothing on stderr
    assert cli(capsys, "--dsn", dsn, "verify")[1:] == (quiet_out, "")
