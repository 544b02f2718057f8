"""The embedded server: a private PostgreSQL cluster in a per-user directory.

It listens only on a unix socket inside its own directory, preloads pg_cron
when the extension is installed, and is started on demand when no DSN is
given. PostgreSQL refuses to run as root, so when fifo-db runs as root the
server runs as an unprivileged account (FIFO_DB_RUN_AS, default `postgres`).

Layout of FIFO_DB_HOME (default ~/.local/share/fifo-db, or /var/lib/fifo-db
for root):  data/ (the cluster)  run/ (the socket)  postgresql.log  .lock
"""

from __future__ import annotations

import fcntl
import os
import pwd
import shutil
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

from fifo_db.errors import FifoError

DBNAME = "fifo"
SUPERUSER = "postgres"
PORT = 5432
PG_LIB_ROOT = Path("/usr/lib/postgresql")   # Debian/Ubuntu: <root>/<major>/bin, <root>/<major>/lib

_INSTALL_HINT = (
    "PostgreSQL server binaries (initdb, pg_ctl, postgres) were not found: install them "
    "(Debian/Ubuntu: apt-get install postgresql postgresql-15-cron), "
    "or point FIFO_DB_PG_BIN at their directory, or give --dsn / FIFO_DB_DSN for a server you run"
)


def default_home() -> Path:
    if os.environ.get("FIFO_DB_HOME"):
        return Path(os.environ["FIFO_DB_HOME"]).expanduser().absolute()
    if os.geteuid() == 0:
        # /root is not traversable by the unprivileged account the server runs as
        return Path("/var/lib/fifo-db")
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "fifo-db"


def find_bindir() -> Path:
    """Directory of initdb/pg_ctl/postgres: FIFO_DB_PG_BIN, Debian's newest, or PATH."""
    tools = ("initdb", "pg_ctl", "postgres")
    if os.environ.get("FIFO_DB_PG_BIN"):
        explicit = Path(os.environ["FIFO_DB_PG_BIN"])
        missing = [t for t in tools if not (explicit / t).exists()]
        if missing:  # an explicit choice that does not work is an error, not a hint to look elsewhere
            raise FifoError(f"FIFO_DB_PG_BIN={explicit} has no {', '.join(missing)}: point it at the "
                            f"directory holding initdb, pg_ctl and postgres, or unset it")
        return explicit
    candidates: list[Path] = []
    versions = sorted(PG_LIB_ROOT.glob("*/bin"),
                      key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
                      reverse=True)
    candidates.extend(versions)
    on_path = shutil.which("pg_ctl")
    if on_path:
        candidates.append(Path(on_path).resolve().parent)
    for d in candidates:
        if all((d / tool).exists() for tool in tools):
            return d
    raise FifoError(_INSTALL_HINT)


class EmbeddedServer:
    """A private cluster under `home`; methods are safe to call from several processes."""

    def __init__(self, home: Path | str | None = None):
        self.home = Path(home).absolute() if home else default_home()
        self.data = self.home / "data"
        self.sockdir = self.home / "run"
        self.logfile = self.home / "postgresql.log"

    # -- identity ---------------------------------------------------------

    def _run_as(self) -> pwd.struct_passwd | None:
        """The account the server runs as: None for an ordinary user (itself)."""
        if os.geteuid() != 0:
            return None
        name = os.environ.get("FIFO_DB_RUN_AS", "postgres")
        try:
            return pwd.getpwnam(name)
        except KeyError:
            raise FifoError(
                f"running as root, fifo-db starts PostgreSQL as the unprivileged account "
                f"{name!r}, which does not exist: create it (useradd --system {name}) "
                f"or set FIFO_DB_RUN_AS to another account") from None

    def _cmd(self, args: list[str], check: bool = True) -> subprocess.CompletedProcess:
        account = self._run_as()
        kwargs: dict = {"capture_output": True, "text": True, "cwd": str(self.home),
                        "stdin": subprocess.DEVNULL}
        if account is not None:
            kwargs.update(user=account.pw_uid, group=account.pw_gid, extra_groups=[])
        proc = subprocess.run(args, **kwargs)
        if check and proc.returncode != 0:
            detail = (proc.stderr or proc.stdout).strip().splitlines()
            raise FifoError(f"{Path(args[0]).name} failed: {detail[-1] if detail else proc.returncode}"
                            f" (log: {self.logfile})")
        return proc

    @contextmanager
    def _locked(self):
        self.home.mkdir(parents=True, exist_ok=True)
        account = self._run_as()
        if account is not None:
            os.chown(self.home, account.pw_uid, account.pw_gid)
        with open(self.home / ".lock", "a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    # -- state ------------------------------------------------------------

    @property
    def initialized(self) -> bool:
        return (self.data / "PG_VERSION").exists()

    def is_running(self) -> bool:
        if not self.initialized:
            return False
        bindir = find_bindir()
        return self._cmd([str(bindir / "pg_ctl"), "status", "-D", str(self.data)],
                         check=False).returncode == 0

    def url(self, dbname: str = DBNAME) -> str:
        return f"postgresql://{SUPERUSER}@/{dbname}?host={quote(str(self.sockdir), safe='')}&port={PORT}"

    def conninfo(self, dbname: str = DBNAME) -> dict:
        return {"host": str(self.sockdir), "port": PORT, "user": SUPERUSER, "dbname": dbname}

    def pg_cron_available(self) -> bool:
        bindir = find_bindir()
        return (bindir.parent / "lib" / "pg_cron.so").exists()

    # -- lifecycle --------------------------------------------------------

    def _write_config(self) -> None:
        settings = {
            "listen_addresses": "''",
            "unix_socket_directories": f"'{self.sockdir}'",
            "unix_socket_permissions": "0700",
            "port": str(PORT),
            "shared_buffers": "'256MB'",
            "max_wal_size": "'2GB'",
            "logging_collector": "off",
            "timezone": "'UTC'",
        }
        if self.pg_cron_available():
            settings["shared_preload_libraries"] = "'pg_cron'"
            settings["cron.database_name"] = f"'{DBNAME}'"
            settings["cron.use_background_workers"] = "on"
            settings["max_worker_processes"] = "16"
        body = "# written by fifo-db at every start; edit postgresql.conf for your own settings\n"
        body += "".join(f"{k} = {v}\n" for k, v in settings.items())
        conf = self.data / "fifo_db.conf"
        conf.write_text(body)
        account = self._run_as()
        if account is not None:
            os.chown(conf, account.pw_uid, account.pw_gid)

    def start(self) -> bool:
        """Initialize if needed and start; returns True if this call started it."""
        bindir = find_bindir()
        with self._locked():
            if not self.initialized:
                self._cmd([str(bindir / "initdb"), "-D", str(self.data), "-U", SUPERUSER,
                           "-A", "trust", "-E", "UTF8", "--no-locale", "--no-instructions"])
                with open(self.data / "postgresql.conf", "a") as fh:
                    fh.write("\ninclude_if_exists = 'fifo_db.conf'\n")
            if self.is_running():
                return False
            self.sockdir.mkdir(mode=0o700, exist_ok=True)
            account = self._run_as()
            if account is not None:
                os.chown(self.sockdir, account.pw_uid, account.pw_gid)
            self._write_config()
            self._cmd([str(bindir / "pg_ctl"), "start", "-w", "-t", "60", "-D", str(self.data),
                       "-l", str(self.logfile)])
            self._ensure_database()
            return True

    def _ensure_database(self) -> None:
        import psycopg

        deadline = time.monotonic() + 30
        while True:
            try:
                with psycopg.connect(**self.conninfo("postgres"), autocommit=True) as conn:
                    if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                                        (DBNAME,)).fetchone():
                        conn.execute(f'CREATE DATABASE "{DBNAME}"')
                    return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def ensure_started(self) -> "EmbeddedServer":
        if not self.is_running():
            self.start()
        return self

    def stop(self) -> bool:
        """Stop if running; returns True if this call stopped it."""
        bindir = find_bindir()
        with self._locked():
            if not self.is_running():
                return False
            self._cmd([str(bindir / "pg_ctl"), "stop", "-w", "-m", "fast", "-D", str(self.data)])
            return True

    def status(self) -> str:
        if not self.initialized:
            return f"not initialized ({self.home})"
        state = "running" if self.is_running() else "stopped"
        cron = "pg_cron preloaded" if self.pg_cron_available() else "pg_cron not installed"
        return f"{state}: {self.url()} (data {self.data}, {cron})"


def register(sub) -> None:
    p = sub.add_parser("db", help="manage the embedded PostgreSQL server",
                       description="Manage the embedded server (FIFO_DB_HOME: " + str(default_home()) + ").")
    p.add_argument("action", choices=["start", "stop", "status", "url"])
    p.set_defaults(func=_cli_db, needs_db=False)


def _cli_db(args) -> int:
    server = EmbeddedServer()
    if args.action == "start":
        started = server.start()
        print(("started: " if started else "already running: ") + server.url())
    elif args.action == "stop":
        print("stopped" if server.stop() else "not running")
    elif args.action == "status":
        print(server.status())
        return 0 if server.is_running() else 3
    else:
        print(server.url())
    return 0
