"""The embedded server: `fifo-db db start|status|url|stop` in a temporary FIFO_DB_HOME,
unix socket only, pg_cron preloaded when installed, an unprivileged server process
(postgres when fifo-db runs as root, the user itself otherwise), and one clear line when
the PostgreSQL binaries are missing. Every server started here is stopped by a finalizer."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
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

IS_ROOT = os.geteuid() == 0
PG_CRON_INSTALLED = bool(glob.glob("/usr/lib/postgresql/*/lib/pg_cron.so"))


def _new_home(owner: pwd.struct_passwd | None = None) -> Path:
    """A short path under /tmp (unix socket paths are limited to ~100 bytes), traversable by
    the unprivileged server account (pytest's tmp_path is 0700 under root's tree)."""
    home = Path(tempfile.mkdtemp(prefix="fdb-emb-", dir="/tmp"))
    if owner is not None:
        os.chown(home, owner.pw_uid, owner.pw_gid)
    return home


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
    server = EmbeddedServer(path)
    if server.is_running():
        server.stop()
    shutil.rmtree(path, ignore_errors=True)


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
        shutil.rmtree(home, ignore_errors=True)
    assert (stopped.returncode, stopped.stdout) == (0, "stopped\n")
