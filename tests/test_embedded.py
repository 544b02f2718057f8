"""The embedded server: `fifo-db db start|status|url|stop` in a temporary FIFO_DB_HOME,
unix socket only, pg_cron preloaded when installed, an unprivileged server process
(postgres when fifo-db runs as root, the user itself otherwise), and one clear line when
the PostgreSQL binaries are missing. Every server started here is stopped by a finalizer.

Its safety: a home fifo-db did not create is refused and left as it was (owner, mode,
files), links are not followed, status/stop change nothing, TCP never gets `trust`, and the
user's own postgresql.conf settings win over fifo-db's defaults (tests below the line)."""

from __future__ import annotations

import os
import pwd
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import psycopg
import pytest

import fifo_db
from fifo_db.cli import main
from fifo_db.embedded import EmbeddedServer, find_bindir
from fifo_db.errors import FifoError
from fifo_db.sample import copy_rows, sapien_story
from tests.conftest import TEST_HOME

IS_ROOT = os.geteuid() == 0
PG_CRON_INSTALLED = EmbeddedServer().pg_cron_available()     # of the server FIFO_DB_PG_BIN picks
# the account the server runs as, which owns the home
ACCOUNT = pwd.getpwnam(os.environ.get("FIFO_DB_RUN_AS", "postgres")) if IS_ROOT else pwd.getpwuid(os.geteuid())


def _new_home(owner: pwd.struct_passwd | None = None) -> Path:
    """A short path beside the run's test home H, named H-emb-XXXX (unix socket paths are limited
    to ~100 bytes), traversable by the unprivileged server account (pytest's tmp_path is 0700
    under root's tree). A run killed outright leaves its server there, and the next run on H (or
    scripts/test, interrupted) stops it (tests/leftovers.py).

    Without `owner`: a path that does not exist yet, in a fresh 0755 directory of ours, for
    fifo-db to create. With `owner`: an empty directory that account owns."""
    parent = Path(tempfile.mkdtemp(prefix=f"{TEST_HOME.name}-emb-", dir=TEST_HOME.parent))
    if owner is not None:
        os.chown(parent, owner.pw_uid, owner.pw_gid)
        return parent
    parent.chmod(0o755)
    return parent / "home"


def _remove(home: Path) -> None:
    shutil.rmtree(home.parent if home.name == "home" else home, ignore_errors=True)


def _as_account() -> dict:
    """subprocess.run arguments that run a command as the server account (root only)."""
    return {"user": ACCOUNT.pw_uid, "group": ACCOUNT.pw_gid, "extra_groups": []} if IS_ROOT else {}


def _stop_servers_under(path: Path) -> None:
    """Stop every server whose data directory lies under path (links not followed)."""
    for parent, _, files in os.walk(path):
        if "postmaster.pid" in files:
            subprocess.run([str(find_bindir() / "pg_ctl"), "stop", "-w", "-m", "fast", "-D", parent],
                           capture_output=True, cwd="/", **_as_account())


def _server_uid(server: EmbeddedServer) -> int:
    pid = int((server.data / "postmaster.pid").read_text().splitlines()[0])
    return os.stat(f"/proc/{pid}").st_uid


@pytest.fixture
def home(monkeypatch):
    """FIFO_DB_HOME for this test; its server is stopped and its files removed afterwards."""
    path = _new_home()
    monkeypatch.setenv("FIFO_DB_HOME", str(path))
    monkeypatch.delenv("FIFO_DB_DSN", raising=False)
    yield path
    _stop_servers_under(path.parent)
    _remove(path)


def db_cli(capsys, *args) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_db_start_status_url_stop(home, capsys):
    server = EmbeddedServer(home)
    code, out, _ = db_cli(capsys, "db", "status")
    assert (code, out) == (3, f"not initialized ({home})\n")

    code, out, _ = db_cli(capsys, "db", "start")
    assert (code, out) == (0, f"started: {server.url()}\n")
    code, out, _ = db_cli(capsys, "db", "start")          # a no-op the second time
    assert (code, out) == (0, f"already running: {server.url()}\n")
    pid = (server.data / "postmaster.pid").read_text().splitlines()[0]
    assert db_cli(capsys, "db", "start")[0] == 0
    assert (server.data / "postmaster.pid").read_text().splitlines()[0] == pid   # same server

    code, out, _ = db_cli(capsys, "db", "status")
    assert code == 0 and out.startswith(f"running: {server.url()}")
    code, url, _ = db_cli(capsys, "db", "url")
    assert (code, url) == (0, server.url() + "\n")

    with psycopg.connect(url.strip(), autocommit=True) as conn:
        setting = lambda name: conn.execute("SELECT current_setting(%s)", (name,)).fetchone()[0]  # noqa: E731
        assert conn.execute("SELECT current_database(), current_user").fetchone() == ("fifo", "postgres")
        assert setting("listen_addresses") == ""
        assert setting("unix_socket_directories") == str(home / "run")
        assert setting("data_directory") == str(home / "data")
        preload = [x.strip() for x in setting("shared_preload_libraries").split(",")]
        assert ("pg_cron" in preload) == PG_CRON_INSTALLED
        if PG_CRON_INSTALLED:
            assert (setting("cron.database_name"), setting("cron.use_background_workers")) == ("fifo", "on")

    expected_owner = pwd.getpwnam("postgres").pw_uid if IS_ROOT else os.geteuid()
    assert _server_uid(server) == expected_owner
    assert (server.data / "postmaster.pid").stat().st_uid == expected_owner
    # the home fifo-db created: the server account's, 0700, with its marker
    for path, mode in ((home, 0o700), (home / "data", 0o700), (home / "run", 0o700),
                       (home / ".fifo-db-home", 0o644)):
        st = path.lstat()
        assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (expected_owner, mode), path

    assert db_cli(capsys, "db", "stop")[:2] == (0, "stopped\n")
    assert db_cli(capsys, "db", "stop")[:2] == (0, "not running\n")
    code, out, _ = db_cli(capsys, "db", "status")
    assert code == 3 and out.startswith("stopped: ")


def test_commands_without_dsn_start_the_embedded_server_on_demand(home, capsys):
    server = EmbeddedServer(home)
    assert not server.is_running()
    code, out, err = db_cli(capsys, "install")
    assert (code, err) == (0, "")
    assert "installed fifo-db into database 'fifo'" in out
    assert server.is_running()
    with psycopg.connect(server.url(), autocommit=True) as conn:
        copy_rows(conn, sapien_story())
    code, out, _ = db_cli(capsys, "compute", "--symbol", "SAPIEN-USD")
    assert code == 0 and "  - Total PnL: $0.56" in out.splitlines()   # 0.87013 - 0.30893 = 0.5612


def test_pg_bin_override_is_used(monkeypatch):
    real = find_bindir()
    with tempfile.TemporaryDirectory(prefix="fdb-bin-") as tmp:
        for tool in ("initdb", "pg_ctl", "postgres"):
            os.symlink(real / tool, Path(tmp) / tool)
        monkeypatch.setenv("FIFO_DB_PG_BIN", tmp)
        assert find_bindir() == Path(tmp)


def test_pg_bin_override_that_does_not_work_is_an_error(monkeypatch, tmp_path):
    (tmp_path / "pg_ctl").touch()
    monkeypatch.setenv("FIFO_DB_PG_BIN", str(tmp_path))
    with pytest.raises(FifoError) as err:
        find_bindir()
    assert str(err.value) == (f"FIFO_DB_PG_BIN={tmp_path} has no initdb, postgres: point it at the "
                              f"directory holding initdb, pg_ctl and postgres, or unset it")


def test_no_binaries_anywhere_names_the_package(monkeypatch, tmp_path):
    """find_bindir's search (Debian's directory, then PATH) with nothing to find."""
    monkeypatch.delenv("FIFO_DB_PG_BIN", raising=False)
    monkeypatch.setattr("fifo_db.embedded.PG_LIB_ROOT", tmp_path)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(FifoError) as err:
        find_bindir()
    assert str(err.value).startswith("PostgreSQL server binaries (initdb, pg_ctl, postgres) were not found")
    assert "apt-get install postgresql" in str(err.value)


def _can_hide_usr_lib_postgresql() -> bool:
    if not (IS_ROOT and shutil.which("unshare") and shutil.which("mount") and Path("/usr/lib/postgresql").is_dir()):
        return False
    probe = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c",
                            "mount -t tmpfs none /usr/lib/postgresql"], capture_output=True)
    return probe.returncode == 0


@pytest.mark.skipif(not _can_hide_usr_lib_postgresql(),
                    reason="needs root and mount namespaces (unshare) to hide /usr/lib/postgresql; "
                           "find_bindir() always searches that fixed path")
def test_missing_binaries_give_one_clear_line():
    """Run `python -m fifo_db db start` in a private mount namespace where /usr/lib/postgresql
    is an empty tmpfs, FIFO_DB_PG_BIN unset and a PATH without pg_ctl."""
    with tempfile.TemporaryDirectory(prefix="fdb-nobin-") as tmp:
        empty = Path(tmp) / "bin"
        empty.mkdir()
        env = {**os.environ, "PATH": str(empty), "FIFO_DB_HOME": str(Path(tmp) / "home")}
        env.pop("FIFO_DB_DSN", None)
        env.pop("FIFO_DB_PG_BIN", None)
        # absolute paths: PATH is deliberately useless inside
        proc = subprocess.run(
            [shutil.which("unshare"), "--mount", "--propagation", "private", shutil.which("sh"), "-c",
             f'{shutil.which("mount")} -t tmpfs none /usr/lib/postgresql && exec "$0" "$@"',
             sys.executable, "-m", "fifo_db", "db", "start"],
            capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 1
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("fifo-db: error: PostgreSQL server binaries")
    assert "apt-get install postgresql" in lines[0]


# -- an ordinary user ----------------------------------------------------------------

def _python_for(user: str) -> list[str] | None:
    """A command running this Python with fifo-db importable as `user`, or None.

    The test virtualenv may live where `user` cannot read (e.g. under /root); then a system
    python3 of the same version is given the same packages via PYTHONPATH."""
    paths = {str(Path(fifo_db.__file__).resolve().parent.parent)}
    for module in (psycopg, __import__("yoyo")):
        paths.add(str(Path(module.__file__).resolve().parent.parent))
    pythonpath = "PYTHONPATH=" + os.pathsep.join(sorted(paths))
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    for python in (sys.executable, shutil.which(f"python{version}"), f"/usr/bin/python{version}"):
        if not python:
            continue
        cmd = ["runuser", "-u", user, "--", "env", pythonpath, python]
        probe = subprocess.run(cmd + ["-c", "import fifo_db.cli, psycopg, yoyo"], capture_output=True,
                               cwd="/", timeout=60)
        if probe.returncode == 0:
            return cmd
    return None


@pytest.mark.skipif(not IS_ROOT, reason="switching to the `nobody` account needs root; as an ordinary "
                                        "user test_db_start_status_url_stop already covers this")
def test_works_for_an_ordinary_user():
    nobody = pwd.getpwnam("nobody")
    python = _python_for("nobody")
    if python is None:
        pytest.skip("no Python that `nobody` can run with fifo-db, psycopg and yoyo importable")
    home = _new_home(owner=nobody)

    def as_nobody(*args):
        return subprocess.run(python[:5] + [f"HOME={home}", f"FIFO_DB_HOME={home}"] + python[5:]
                              + ["-m", "fifo_db", *args], capture_output=True, text=True, cwd=home,
                              timeout=120)

    try:
        started = as_nobody("db", "start")
        assert started.returncode == 0, started.stderr
        assert started.stdout.startswith("started: ")
        server = EmbeddedServer(home)
        assert _server_uid(server) == nobody.pw_uid
        assert (server.data / "PG_VERSION").stat().st_uid == nobody.pw_uid
        status = as_nobody("db", "status")
        assert status.returncode == 0 and status.stdout.startswith("running: ")
        installed = as_nobody("install")
        assert installed.returncode == 0, installed.stderr
    finally:
        stopped = as_nobody("db", "stop")
        _remove(home)
    assert (stopped.returncode, stopped.stdout) == (0, "stopped\n")


# -- a home fifo-db did not create is refused and left alone ---------------------------

def _snapshot(path: Path) -> dict:
    """Owner, group, mode (and for files, content) of path and everything under it, links unfollowed."""
    out = {}
    for p in [path, *sorted(path.rglob("*"))] if path.is_dir() and not path.is_symlink() else [path]:
        st = p.lstat()
        content = p.read_bytes() if stat.S_ISREG(st.st_mode) else os.readlink(p) if p.is_symlink() else None
        out[str(p)] = (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode), content)
    return out


def _refused(capsys, home: Path, *actions: str) -> list[str]:
    """Run `fifo-db db ACTION` for each action with FIFO_DB_HOME=home: each must fail with one
    line; returns the lines."""
    lines = []
    for action in actions:
        code, out, err = db_cli(capsys, "db", action)
        assert (code, out) == (1, ""), (action, out, err)
        assert err.startswith("fifo-db: error: ") and err.count("\n") == 1, err
        lines.append(err)
    return lines


@pytest.fixture
def scratch(monkeypatch):
    """A fresh 0755 directory of ours under /tmp for hand-made homes; FIFO_DB_DSN unset."""
    monkeypatch.delenv("FIFO_DB_DSN", raising=False)
    path = Path(tempfile.mkdtemp(prefix="fdb-sec-", dir="/tmp"))
    path.chmod(0o755)
    yield path
    _stop_servers_under(path)
    shutil.rmtree(path, ignore_errors=True)


def test_a_users_home_directory_is_refused_and_left_as_it_was(scratch, monkeypatch, capsys):
    """The report: as root, `FIFO_DB_HOME=$HOME fifo-db db stop` gave $HOME to postgres."""
    home = scratch / "home"
    home.mkdir(mode=0o750)
    (home / ".bashrc").write_text("echo hello\n")
    monkeypatch.setenv("FIFO_DB_HOME", str(home))
    before = _snapshot(home)
    lines = _refused(capsys, home, "stop", "status", "start")
    assert set(lines) == {f"fifo-db: error: FIFO_DB_HOME {home} is not a fifo-db home (it holds other files and "
                          f"no .fifo-db-home): point FIFO_DB_HOME at a new or empty directory\n"}
    assert _snapshot(home) == before        # same owner, mode and files: no .lock, no data/


@pytest.mark.skipif(not IS_ROOT, reason="a directory owned by another account needs root to make")
def test_a_home_owned_by_someone_else_is_refused(scratch, monkeypatch, capsys):
    nobody = pwd.getpwnam("nobody")
    home = scratch / "home"
    home.mkdir(mode=0o777)
    os.chown(home, nobody.pw_uid, nobody.pw_gid)
    home.chmod(0o777)
    monkeypatch.setenv("FIFO_DB_HOME", str(home))
    before = _snapshot(home)
    lines = _refused(capsys, home, "stop", "status", "start")
    assert set(lines) == {f"fifo-db: error: FIFO_DB_HOME {home} belongs to nobody, not to {ACCOUNT.pw_name} "
                          f"(the account the server runs as), and fifo-db never takes over a directory it did "
                          f"not create: point FIFO_DB_HOME at a new directory (fifo-db creates it)\n"}
    assert _snapshot(home) == before


@pytest.mark.skipif(not IS_ROOT, reason="as an ordinary user the caller is the server account")
def test_an_empty_directory_of_roots_is_refused_then_works_once_the_server_account_owns_it(
        scratch, monkeypatch, capsys):
    home = scratch / "home"
    home.mkdir(mode=0o700)
    monkeypatch.setenv("FIFO_DB_HOME", str(home))
    before = _snapshot(home)
    (line,) = _refused(capsys, home, "start")
    assert line == (f"fifo-db: error: FIFO_DB_HOME {home} belongs to root, not to {ACCOUNT.pw_name} (the account "
                    f"the server runs as), and fifo-db never takes over a directory it did not create: remove "
                    f"the empty directory (fifo-db then creates it), or `chown {ACCOUNT.pw_name}: {home}`\n")
    assert _snapshot(home) == before
    os.chown(home, ACCOUNT.pw_uid, ACCOUNT.pw_gid)      # the fix the line names
    try:
        assert db_cli(capsys, "db", "start")[:2] == (0, f"started: {EmbeddedServer(home).url()}\n")
        assert (home / ".fifo-db-home").exists()
        assert stat.S_IMODE(home.stat().st_mode) == 0o700     # its mode stays the caller's choice
    finally:
        EmbeddedServer(home).stop()


def test_a_symlinked_home_is_not_followed(scratch, monkeypatch, capsys):
    target = scratch / "elsewhere"
    target.mkdir()
    (target / "precious").write_text("keep me\n")
    home = scratch / "home"
    home.symlink_to(target)
    monkeypatch.setenv("FIFO_DB_HOME", str(home))
    before = _snapshot(target)
    lines = _refused(capsys, home, "stop", "status", "start")
    assert set(lines) == {f"fifo-db: error: FIFO_DB_HOME {home} is a symbolic link (to {target}), which fifo-db "
                          f"does not follow: set FIFO_DB_HOME to a directory's real path\n"}
    assert _snapshot(target) == before


def test_a_symlinked_data_directory_is_not_followed(scratch, monkeypatch, capsys):
    other = scratch / "home2"               # someone's cluster directory
    other.mkdir()
    (other / "PG_VERSION").write_text("15\n")
    home = scratch / "home"
    home.mkdir(mode=0o700)
    (home / ".fifo-db-home").write_text("")
    (home / "data").symlink_to(other)
    if IS_ROOT:
        for p in (home, home / ".fifo-db-home"):
            os.chown(p, ACCOUNT.pw_uid, ACCOUNT.pw_gid)
    monkeypatch.setenv("FIFO_DB_HOME", str(home))
    before = _snapshot(other)
    lines = _refused(capsys, home, "stop", "status", "start")
    assert set(lines) == {f"fifo-db: error: {home / 'data'} is a symbolic link: fifo-db keeps its cluster and socket "
                          f"inside FIFO_DB_HOME, owned by {ACCOUNT.pw_name}; remove {home / 'data'}, or point "
                          f"FIFO_DB_HOME elsewhere\n"}
    assert _snapshot(other) == before


def test_a_parent_anyone_may_write_is_refused_unless_sticky(scratch, monkeypatch, capsys):
    shared = scratch / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    home = shared / "home"
    monkeypatch.setenv("FIFO_DB_HOME", str(home))
    lines = _refused(capsys, home, "start", "status")
    assert set(lines) == {f"fifo-db: error: FIFO_DB_HOME {home} lies inside {shared}, which every user may write "
                          f"(mode 0777, no sticky bit): choose another FIFO_DB_HOME, or `chmod o-w {shared}`\n"}
    assert not home.exists()
    shared.chmod(0o1777)                      # like /tmp: nobody can rename another's entry
    assert db_cli(capsys, "db", "status")[:2] == (3, f"not initialized ({home})\n")


def test_a_planted_lock_link_is_not_followed(scratch, monkeypatch, capsys):
    victim = scratch / "victim"
    victim.write_text("root's file\n")
    victim.chmod(0o644)
    home = scratch / "home"
    home.mkdir(mode=0o700)
    (home / ".fifo-db-home").write_text("")
    (home / ".lock").symlink_to(victim)
    if IS_ROOT:
        for p in (home, home / ".fifo-db-home"):
            os.chown(p, ACCOUNT.pw_uid, ACCOUNT.pw_gid)
        os.chown(home / ".lock", ACCOUNT.pw_uid, ACCOUNT.pw_gid, follow_symlinks=False)
    monkeypatch.setenv("FIFO_DB_HOME", str(home))
    before = _snapshot(victim)
    (line,) = _refused(capsys, home, "start")
    assert line == (f"fifo-db: error: cannot open the lock file {home / '.lock'} (Too many levels of symbolic "
                    f"links): remove it\n")
    assert _snapshot(victim) == before


def test_status_and_stop_create_and_change_nothing(home, capsys):
    assert db_cli(capsys, "db", "stop")[:2] == (0, "not running\n")
    assert db_cli(capsys, "db", "status")[:2] == (3, f"not initialized ({home})\n")
    assert not home.exists()                 # an older fifo-db created (and chowned) it here
    assert db_cli(capsys, "db", "start")[0] == 0
    owners = lambda: {p: (p.lstat().st_uid, p.lstat().st_gid, stat.S_IMODE(p.lstat().st_mode))  # noqa: E731
                      for p in (home, home / "data", home / "run", home / ".fifo-db-home", home / ".lock")}
    before = owners()
    assert db_cli(capsys, "db", "status")[0] == 0
    assert db_cli(capsys, "db", "url")[0] == 0
    assert db_cli(capsys, "db", "stop")[:2] == (0, "stopped\n")
    assert db_cli(capsys, "db", "status")[0] == 3
    assert owners() == before


def test_a_planted_link_for_fifo_db_conf_is_replaced_not_followed(home, capsys):
    """The server account owns data/: a link it plants where fifo-db writes must not make
    fifo-db (root) write through it."""
    victim = home.parent / "victim"
    victim.write_text("root's file\n")
    assert db_cli(capsys, "db", "start")[0] == 0
    assert db_cli(capsys, "db", "stop")[0] == 0
    conf = home / "data" / "fifo_db.conf"
    conf.unlink()
    conf.symlink_to(victim)
    before = _snapshot(victim)
    assert db_cli(capsys, "db", "start")[0] == 0
    assert _snapshot(victim) == before
    assert not conf.is_symlink() and "unix_socket_directories" in conf.read_text()


# -- pg_hba.conf: no password-less TCP ------------------------------------------------

def _hba_rules(server: EmbeddedServer) -> list[tuple]:
    with psycopg.connect(server.url(), autocommit=True) as conn:
        return conn.execute("SELECT type, database, user_name, address, auth_method FROM pg_hba_file_rules "
                            "WHERE error IS NULL ORDER BY line_number").fetchall()


def _port_free(port: int) -> bool:
    import socket
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def test_tcp_is_never_trusted(home, capsys):
    server = EmbeddedServer(home)
    assert db_cli(capsys, "db", "start")[0] == 0
    rules = _hba_rules(server)
    assert {(r[0], r[4]) for r in rules} == {("local", "trust"), ("host", "scram-sha-256")}
    assert {r[3] for r in rules if r[0] == "host"} == {"127.0.0.1", "::1"}
    if not _port_free(PORT_TCP):
        pytest.skip(f"127.0.0.1:{PORT_TCP} is in use: the TCP login attempt needs it")
    # what the report did: open TCP with one ALTER SYSTEM; a login without a password must fail
    with psycopg.connect(server.url(), autocommit=True) as conn:
        conn.execute("ALTER SYSTEM SET listen_addresses = '127.0.0.1'")
    assert db_cli(capsys, "db", "stop")[0] == 0
    assert db_cli(capsys, "db", "start")[0] == 0
    with pytest.raises(psycopg.OperationalError) as err:
        psycopg.connect(host="127.0.0.1", port=PORT_TCP, user="postgres", dbname="fifo", connect_timeout=10)
    assert "no password supplied" in str(err.value)
    with pytest.raises(psycopg.OperationalError) as err:
        psycopg.connect(host="127.0.0.1", port=PORT_TCP, user="postgres", password="guess", dbname="fifo",
                        connect_timeout=10)
    assert 'password authentication failed for user "postgres"' in str(err.value)


PORT_TCP = 5432     # the embedded server's port (TCP and socket alike)


# -- an older fifo-db's home, and the user's own settings ------------------------------

_OLD_FIFO_DB_CONF = """# written by fifo-db at every start; edit postgresql.conf for your own settings
listen_addresses = ''
unix_socket_directories = '{run}'
unix_socket_permissions = 0700
port = 5432
shared_buffers = '256MB'
max_wal_size = '2GB'
logging_collector = off
timezone = 'UTC'
""" + ("""shared_preload_libraries = 'pg_cron'
cron.database_name = 'fifo'
cron.use_background_workers = on
max_worker_processes = 16
""" if PG_CRON_INSTALLED else "")


def _make_older_home(home: Path) -> None:
    """A home as fifo-db made it before the marker: the home chowned to the server account,
    initdb -A trust (so TCP trust), the include of fifo_db.conf appended at the end."""
    home.mkdir()
    os.chown(home, ACCOUNT.pw_uid, ACCOUNT.pw_gid)
    (home / ".lock").touch()
    subprocess.run([str(find_bindir() / "initdb"), "-D", str(home / "data"), "-U", "postgres", "-A", "trust",
                    "-E", "UTF8", "--no-locale", "--no-instructions"], check=True, capture_output=True,
                   cwd=home, **_as_account())
    conf = home / "data" / "postgresql.conf"
    with open(conf, "a") as fh:
        fh.write("\ninclude_if_exists = 'fifo_db.conf'\n")
        fh.write("work_mem = '8MB'\n")                 # a user's line after the include: it won
    text = conf.read_text().replace("#maintenance_work_mem = 64MB", "maintenance_work_mem = '96MB'")
    conf.write_text(text)                              # a user's line before it, not fifo-db's: it won too
    (home / "data" / "fifo_db.conf").write_text(_OLD_FIFO_DB_CONF.format(run=home / "run"))
    (home / "run").mkdir(mode=0o700)
    for p in (home / "data" / "fifo_db.conf", home / "run"):
        os.chown(p, ACCOUNT.pw_uid, ACCOUNT.pw_gid)


def _effective_settings(conninfo: dict) -> dict[str, str]:
    with psycopg.connect(**conninfo, autocommit=True) as conn:
        return dict(conn.execute("SELECT name, setting FROM pg_settings "
                                 "WHERE source IN ('configuration file', 'override') ORDER BY 1").fetchall())


def test_an_older_fifo_db_home_is_adopted_with_the_same_settings_and_no_tcp_trust(scratch, monkeypatch, capsys):
    home = scratch / "home"
    _make_older_home(home)
    server = EmbeddedServer(home)
    pg_ctl = str(find_bindir() / "pg_ctl")
    # the settings in force under the old layout, started the way the old fifo-db did
    subprocess.run([pg_ctl, "start", "-w", "-D", str(server.data), "-l", str(server.logfile)], check=True,
                   capture_output=True, cwd=home, **_as_account())
    try:
        old = _effective_settings(server.conninfo("postgres"))
    finally:
        subprocess.run([pg_ctl, "stop", "-w", "-D", str(server.data)], check=True, capture_output=True,
                       cwd=home, **_as_account())
    assert (old["shared_buffers"], old["work_mem"], old["maintenance_work_mem"]) == ("32768", "8192", "98304")

    monkeypatch.setenv("FIFO_DB_HOME", str(home))
    code, out, err = db_cli(capsys, "db", "start")
    try:
        assert (code, out) == (0, f"started: {server.url()}\n")
        assert err == (f"fifo-db: {server.data / 'pg_hba.conf'}: 4 TCP line(s) changed from trust to "
                       f"scram-sha-256 (no password-less TCP)\n")
        assert _effective_settings(server.conninfo("postgres")) == old
        assert {(r[0], r[4]) for r in _hba_rules(server)} == {("local", "trust"), ("host", "scram-sha-256")}
        lines = (server.data / "postgresql.conf").read_text().splitlines()
        first = next(line for line in lines if line.strip() and not line.startswith("#"))
        assert first == "include_if_exists = 'fifo_db.conf'"
        assert lines.count("include_if_exists = 'fifo_db.conf'") == 1
        assert "#shared_buffers = 128MB\t\t\t# min 128kB\t# fifo-db: set in fifo_db.conf (read first); " \
               "uncomment to override" in lines
        assert (home / ".fifo-db-home").exists() and home.stat().st_uid == ACCOUNT.pw_uid
        assert db_cli(capsys, "db", "start")[1:] == (f"already running: {server.url()}\n", "")   # fixed once
    finally:
        server.stop()


def test_the_users_postgresql_conf_and_alter_system_win_over_fifo_db_defaults(home, capsys):
    server = EmbeddedServer(home)
    assert db_cli(capsys, "db", "start")[0] == 0
    assert db_cli(capsys, "db", "stop")[0] == 0
    conf = server.data / "postgresql.conf"
    text = conf.read_text()
    # edit in place the line fifo-db commented out, and append another of fifo_db.conf's parameters
    old_line = next(line for line in text.splitlines() if line.startswith("#shared_buffers = "))
    conf.write_text(text.replace(old_line, "shared_buffers = 160MB") + "timezone = 'Asia/Tokyo'\n")
    assert db_cli(capsys, "db", "start")[0] == 0
    with psycopg.connect(server.url(), autocommit=True) as conn:
        show = lambda name: conn.execute(f"SHOW {name}").fetchone()[0]  # noqa: E731
        assert (show("shared_buffers"), show("TimeZone"), show("max_wal_size")) == ("160MB", "Asia/Tokyo", "2GB")
        conn.execute("ALTER SYSTEM SET max_wal_size = '3GB'")
    fifo_conf = (server.data / "fifo_db.conf").read_text()
    assert "shared_buffers = '256MB'" in fifo_conf and "timezone = 'UTC'" in fifo_conf   # still written
    assert db_cli(capsys, "db", "stop")[0] == 0
    assert db_cli(capsys, "db", "start")[0] == 0
    with psycopg.connect(server.url(), autocommit=True) as conn:
        assert conn.execute("SHOW max_wal_size").fetchone()[0] == "3GB"
        assert conn.execute("SHOW shared_buffers").fetchone()[0] == "160MB"


def test_pg_hba_lines_rewritten_are_exactly_tcp_trust():
    from fifo_db.embedded import _tcp_trust_to_scram as fix
    assert fix("host    all   all   127.0.0.1/32   trust\n") == "host    all   all   127.0.0.1/32   scram-sha-256\n"
    assert fix("hostssl all all 10.0.0.0 255.0.0.0 trust # lan\n") == \
        "hostssl all all 10.0.0.0 255.0.0.0 scram-sha-256 # lan\n"
    assert fix("hostnossl \"trust\" trust ::1/128 trust\n") == "hostnossl \"trust\" trust ::1/128 scram-sha-256\n"
    for kept in ("local   all   all   trust\n", "host all all 127.0.0.1/32 md5\n",
                 "host all all 127.0.0.1/32 reject\n", "# host all all 0.0.0.0/0 trust\n",
                 "host all all 127.0.0.1/32 cert clientcert=verify-full\n", "\n"):
        assert fix(kept) == kept
