"""The embedded server: a private PostgreSQL cluster in a per-user directory.

It listens only on a unix socket inside its own directory, preloads pg_cron
when the extension is installed, and is started on demand when no DSN is
given. PostgreSQL refuses to run as root, so when fifo-db runs as root the
server runs as an unprivileged account (FIFO_DB_RUN_AS, default `postgres`).

Layout of FIFO_DB_HOME (default ~/.local/share/fifo-db, or /var/lib/fifo-db
for root), owned by the account the server runs as, mode 0700:
    .fifo-db-home (marker)  .lock  data/ (the cluster)  run/ (the socket)  postgresql.log

What keeps it safe (docs/embedded.md):
- fifo-db uses only a home it created: a path that does not exist yet (it
  creates it; the one chown fifo-db ever does is of that new directory), one
  holding its marker, an empty directory the server account owns, or the home
  of an older fifo-db (data/fifo_db.conf). A symbolic link, a directory owned
  by someone else or holding other files, a parent anyone may write: refused
  with the fix, before anything is created or changed. status/stop/url change
  nothing.
- As root, every file operation inside the home runs with the server
  account's identity (seteuid), so a link planted there cannot make root write
  outside it.
- pg_hba.conf: trust on the unix socket (its directory is 0700), scram-sha-256
  for TCP; a TCP `trust` line (older fifo-db wrote them) is rewritten at start.
- fifo_db.conf (fifo-db's defaults, rewritten at every start) is included at
  the top of postgresql.conf: the user's own settings below it win, and so
  does ALTER SYSTEM.
"""

from __future__ import annotations

import fcntl
import os
import pwd
import re
import shutil
import stat
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

from fifo_db.errors import FifoError

DBNAME = "fifo"
SUPERUSER = "postgres"
PORT = 5432
PG_LIB_ROOT = Path("/usr/lib/postgresql")   # Debian/Ubuntu: <root>/<major>/bin, <root>/<major>/lib
MARKER = ".fifo-db-home"
_MARKER_TEXT = ("This directory is a fifo-db home: the embedded PostgreSQL cluster (data/), its socket (run/)\n"
                "and log. fifo-db created it; stop the server (fifo-db db stop) before removing it.\n")
_INCLUDE = "include_if_exists = 'fifo_db.conf'"
_INCLUDE_HEADER = [
    "# fifo-db: its defaults (fifo_db.conf, rewritten at every start) are read first, so that",
    "# your settings below, and ALTER SYSTEM, override them. fifo-db connects through",
    "# unix_socket_directories and port: keep those.",
    _INCLUDE,
    "",
]
_OVERRIDE_NOTE = "\t# fifo-db: set in fifo_db.conf (read first); uncomment to override"
_TCP_TYPES = {"host", "hostssl", "hostnossl", "hostgssenc", "hostnogssenc"}
_AUTH_METHODS = {"trust", "reject", "scram-sha-256", "md5", "password", "gss", "sspi", "ident",
                 "peer", "pam", "ldap", "radius", "cert"}

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


def server_version(bindir: Path) -> str:
    """The version of the server binaries in `bindir`: '15.18', '16.2', '18.6'."""
    try:
        out = subprocess.run([str(bindir / "postgres"), "--version"], capture_output=True, text=True,
                             stdin=subprocess.DEVNULL, check=True).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        raise FifoError(f"{bindir / 'postgres'} --version failed ({exc}): point FIFO_DB_PG_BIN at a "
                        f"working PostgreSQL bin directory") from None
    m = re.search(r"\(PostgreSQL\) (\d+(?:\.\d+)?)", out)
    if not m:
        raise FifoError(f"{bindir / 'postgres'} --version printed {out.strip()!r}, not a PostgreSQL version")
    return m.group(1)


def pkglibdirs(bindir: Path) -> list[Path]:
    """Where a server's extension libraries may be: Debian's and the PyPI wheels' <prefix>/lib,
    or <prefix>/lib/postgresql (pgserver, a `make install` under /usr/local)."""
    return [bindir.parent / "lib", bindir.parent / "lib" / "postgresql"]


def _user(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


def _read_text(path: Path) -> str:
    """A file's text, not following a symbolic link at its last component."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    with os.fdopen(fd, encoding="utf-8", errors="surrogateescape") as fh:
        return fh.read()


def _replace_file(path: Path, text: str, mode: int = 0o600) -> None:
    """Write `path` through a new file renamed over it: a link planted at `path` is replaced,
    never followed, and a crash leaves the old or the new file, never half of one."""
    tmp = path.with_name(f".{path.name}.fifo-db-new")
    try:
        os.unlink(tmp)
    except FileNotFoundError:
        pass
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    with os.fdopen(fd, "w", encoding="utf-8", errors="surrogateescape") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _setting_name(line: str) -> str | None:
    """The parameter a postgresql.conf line sets (lower case), or None (comment, blank, include)."""
    m = re.match(r"\s*([A-Za-z_][A-Za-z0-9_.$]*)\s*(?:=|\s|$)", line)
    return m.group(1).lower() if m else None


def _tcp_trust_to_scram(line: str) -> str:
    """A pg_hba.conf line with method `trust` for a TCP connection type, made scram-sha-256."""
    body = line.split("#", 1)[0]
    tokens = list(re.finditer(r'"[^"]*"|\S+', body))
    if len(tokens) < 5 or tokens[0].group() not in _TCP_TYPES:
        return line
    for m in tokens[4:]:       # after type, database, user, address: [mask] method [options]
        if m.group() in _AUTH_METHODS:
            if m.group() != "trust":
                return line
            return line[:m.start()] + "scram-sha-256" + line[m.end():]
    return line


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

    def _account(self) -> pwd.struct_passwd:
        """The account the server runs as, which owns the home."""
        return self._run_as() or pwd.getpwuid(os.geteuid())

    @contextmanager
    def _as_server(self):
        """Run the block as the server account (root only: seteuid, dropping root's groups), so
        that nothing inside the home can make root follow a link out of it."""
        account = self._run_as()
        if account is None:
            yield
            return
        groups, egid = os.getgroups(), os.getegid()
        try:
            os.setgroups([])
            os.setegid(account.pw_gid)
            os.seteuid(account.pw_uid)
            yield
        finally:
            os.seteuid(0)
            os.setegid(egid)
            os.setgroups(groups)

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

    # -- the home: refuse what fifo-db did not create ----------------------

    def _check_parents(self) -> None:
        """Every existing directory above the home belongs to root, the caller or the server
        account, and is not writable by everyone (unless sticky, like /tmp): else another user
        could swap the home for a link between our checks and our writes."""
        trusted = {0, os.geteuid(), self._account().pw_uid}
        real = Path(os.path.realpath(self.home.parent))
        for d in (real, *real.parents):
            try:
                st = os.stat(d)
            except FileNotFoundError:
                continue
            except OSError as exc:
                raise FifoError(f"FIFO_DB_HOME {self.home}: cannot inspect {d} ({exc.strerror})") from None
            if st.st_uid not in trusted:
                raise FifoError(f"FIFO_DB_HOME {self.home} lies inside {d}, which belongs to {_user(st.st_uid)}, "
                                f"who could replace it: choose a FIFO_DB_HOME under directories of yours or root's")
            if st.st_mode & stat.S_IWOTH and not st.st_mode & stat.S_ISVTX:
                raise FifoError(f"FIFO_DB_HOME {self.home} lies inside {d}, which every user may write (mode "
                                f"{stat.S_IMODE(st.st_mode):04o}, no sticky bit): choose another FIFO_DB_HOME, "
                                f"or `chmod o-w {d}`")

    def _older_home(self) -> bool:
        """A home of a fifo-db from before the marker: data/fifo_db.conf is its file."""
        try:
            return (stat.S_ISDIR(os.lstat(self.data).st_mode)
                    and stat.S_ISREG(os.lstat(self.data / "fifo_db.conf").st_mode))
        except OSError:
            return False

    def _check_home(self) -> bool:
        """Refuse, with the fix, a home fifo-db must not use; True if the home exists.
        Read-only: it creates, chowns and chmods nothing."""
        self._check_parents()
        account = self._account()
        for _ in range(20):
            try:
                st = os.lstat(self.home)
            except FileNotFoundError:
                return False
            if stat.S_ISLNK(st.st_mode):
                raise FifoError(f"FIFO_DB_HOME {self.home} is a symbolic link (to {os.readlink(self.home)}), which "
                                f"fifo-db does not follow: set FIFO_DB_HOME to a directory's real path")
            if not stat.S_ISDIR(st.st_mode):
                raise FifoError(f"FIFO_DB_HOME {self.home} is not a directory: point FIFO_DB_HOME at a new "
                                f"directory (fifo-db creates it)")
            try:
                entries = set(os.listdir(self.home))
            except OSError:
                entries = None
            if entries == set() and st.st_uid == os.geteuid() != account.pw_uid:
                time.sleep(0.05)      # maybe another fifo-db is between its mkdir and its chown
                continue
            break
        owner = _user(st.st_uid)
        if entries is not None and not (MARKER in entries or entries <= {".lock"} or self._older_home()):
            raise FifoError(f"FIFO_DB_HOME {self.home} is not a fifo-db home (it holds other files and no "
                            f"{MARKER}): point FIFO_DB_HOME at a new or empty directory")
        if st.st_uid != account.pw_uid:
            fix = "point FIFO_DB_HOME at a new directory (fifo-db creates it)"
            if not entries and st.st_uid == os.geteuid():
                fix = (f"remove the empty directory (fifo-db then creates it), or `chown "
                       f"{account.pw_name}: {self.home}`")
            raise FifoError(f"FIFO_DB_HOME {self.home} belongs to {owner}, not to {account.pw_name} (the account "
                            f"the server runs as), and fifo-db never takes over a directory it did not "
                            f"create: {fix}")
        for sub in (self.data, self.sockdir):
            try:
                sst = os.lstat(sub)
            except FileNotFoundError:
                continue
            if stat.S_ISLNK(sst.st_mode) or not stat.S_ISDIR(sst.st_mode) or sst.st_uid != account.pw_uid:
                what = ("a symbolic link" if stat.S_ISLNK(sst.st_mode) else
                        "not a directory" if not stat.S_ISDIR(sst.st_mode) else f"owned by {_user(sst.st_uid)}")
                raise FifoError(f"{sub} is {what}: fifo-db keeps its cluster and socket inside FIFO_DB_HOME, "
                                f"owned by {account.pw_name}; remove {sub}, or point FIFO_DB_HOME elsewhere")
        return True

    def _create_home(self) -> None:
        """Create the home (and missing parents, as the caller), owned by the server account."""
        account = self._account()
        try:
            self.home.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise FifoError(f"cannot create {self.home.parent} for FIFO_DB_HOME: {exc.strerror}") from None
        self._check_parents()
        with self._as_server():
            reachable = os.access(self.home.parent, os.X_OK, effective_ids=True)
        if not reachable:
            raise FifoError(f"FIFO_DB_HOME {self.home}: the server account {account.pw_name} cannot reach "
                            f"{self.home.parent}: choose a FIFO_DB_HOME it can reach (for root the default is "
                            f"/var/lib/fifo-db)")
        try:
            os.mkdir(self.home, 0o700)
        except FileExistsError:
            return              # another fifo-db was quicker: the caller checks what is there
        except OSError as exc:
            raise FifoError(f"cannot create FIFO_DB_HOME {self.home}: {exc.strerror}") from None
        if account.pw_uid != os.geteuid():
            # the one chown fifo-db does: the directory it has just created
            os.chown(self.home, account.pw_uid, account.pw_gid, follow_symlinks=False)
        self._write_marker()

    def _write_marker(self) -> None:
        with self._as_server():
            try:
                fd = os.open(self.home / MARKER, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
            except FileExistsError:
                return
            with os.fdopen(fd, "w") as fh:
                fh.write(_MARKER_TEXT)

    @contextmanager
    def _locked(self):
        """The home's lock (flock on .lock), opened as the server account, never through a link."""
        lock = self.home / ".lock"
        try:
            with self._as_server():
                fd = os.open(lock, os.O_RDONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise FifoError(f"cannot open the lock file {lock} ({exc.strerror}): remove it") from None
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise FifoError(f"the lock file {lock} is not a regular file: remove it")
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    # -- state ------------------------------------------------------------

    @property
    def initialized(self) -> bool:
        return (self.data / "PG_VERSION").exists()

    def _pg_running(self, bindir: Path) -> bool:
        return self._cmd([str(bindir / "pg_ctl"), "status", "-D", str(self.data)], check=False).returncode == 0

    def is_running(self) -> bool:
        if not self._check_home() or not self.initialized:
            return False
        return self._pg_running(find_bindir())

    def url(self, dbname: str = DBNAME) -> str:
        return f"postgresql://{SUPERUSER}@/{dbname}?host={quote(str(self.sockdir), safe='')}&port={PORT}"

    def conninfo(self, dbname: str = DBNAME) -> dict:
        return {"host": str(self.sockdir), "port": PORT, "user": SUPERUSER, "dbname": dbname}

    def pg_cron_available(self) -> bool:
        return any((d / "pg_cron.so").exists() for d in pkglibdirs(find_bindir()))

    # -- configuration (all of it runs as the server account) --------------

    def _settings(self) -> dict[str, str]:
        """fifo-db's defaults, written to fifo_db.conf at every start."""
        settings = {
            "listen_addresses": "''",
            "unix_socket_directories": "'" + str(self.sockdir).replace("'", "''") + "'",
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
        return settings

    def _write_config(self, settings: dict[str, str]) -> None:
        body = ("# written by fifo-db at every start: its defaults. postgresql.conf reads this file first,\n"
                "# so set your own values in postgresql.conf (below its include line) or with ALTER SYSTEM.\n")
        body += "".join(f"{k} = {v}\n" for k, v in settings.items())
        _replace_file(self.data / "fifo_db.conf", body, 0o600)

    def _include_defaults_first(self, names: set[str], fresh: bool) -> None:
        """Make postgresql.conf read fifo_db.conf first, so that the user's settings win.

        A fresh cluster, or one of an older fifo-db (which appended the include at the end),
        gets the include at the top; a line above the old include that sets one of
        fifo_db.conf's parameters never took effect (initdb's shared_buffers, say), so it is
        commented out and the running configuration does not change. A postgresql.conf
        without the include (the user removed it) is left alone."""
        conf = self.data / "postgresql.conf"
        lines = _read_text(conf).splitlines()
        first = next((line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")), None)
        if first == _INCLUDE:
            return
        at = max((i for i, line in enumerate(lines) if line.strip() == _INCLUDE), default=None)
        if at is None:
            if not fresh:
                return
            at = len(lines)
        kept = [("#" + line + _OVERRIDE_NOTE) if i < at and _setting_name(line) in names else line
                for i, line in enumerate(lines) if i != at]
        _replace_file(conf, "\n".join(_INCLUDE_HEADER + kept) + "\n", 0o600)

    def _no_tcp_trust(self) -> int:
        """Rewrite every TCP `trust` line of pg_hba.conf to scram-sha-256; the number changed."""
        hba = self.data / "pg_hba.conf"
        lines = _read_text(hba).splitlines(keepends=True)
        fixed = [_tcp_trust_to_scram(line) for line in lines]
        changed = sum(a != b for a, b in zip(lines, fixed))
        if changed:
            _replace_file(hba, "".join(fixed), 0o600)
        return changed

    # -- lifecycle --------------------------------------------------------

    def start(self) -> bool:
        """Initialize if needed and start; returns True if this call started it."""
        bindir = find_bindir()
        if not self._check_home():
            self._create_home()
            self._check_home()
        with self._locked():
            self._write_marker()          # adopts an empty home or an older fifo-db's
            settings = self._settings()
            fresh = not self.initialized
            if not fresh:
                self._check_cluster_version(bindir)
            if fresh:
                self._cmd([str(bindir / "initdb"), "-D", str(self.data), "-U", SUPERUSER,
                           "--auth-local=trust", "--auth-host=scram-sha-256",
                           "-E", "UTF8", "--no-locale", "--no-instructions"])
            try:
                with self._as_server():
                    self._include_defaults_first({name.lower() for name in settings}, fresh)
                    fixed = self._no_tcp_trust()
            except OSError as exc:
                raise FifoError(f"cannot update {exc.filename}: {exc.strerror}") from None
            running = self._pg_running(bindir)
            if fixed:
                print(f"fifo-db: {self.data / 'pg_hba.conf'}: {fixed} TCP line(s) changed from trust to "
                      f"scram-sha-256 (no password-less TCP)", file=sys.stderr)
                if running:
                    self._cmd([str(bindir / "pg_ctl"), "reload", "-D", str(self.data)])
            if running:
                return False
            try:
                with self._as_server():
                    self.sockdir.mkdir(mode=0o700, exist_ok=True)
                    self._write_config(settings)
            except OSError as exc:
                raise FifoError(f"cannot write {exc.filename}: {exc.strerror}") from None
            self._cmd([str(bindir / "pg_ctl"), "start", "-w", "-t", "60", "-D", str(self.data),
                       "-l", str(self.logfile)])
            self._ensure_database()
            return True

    def _check_cluster_version(self, bindir: Path) -> None:
        """A cluster made by another major version cannot start: say which, not pg_ctl's 'could not start'."""
        try:
            with self._as_server():
                have = _read_text(self.data / "PG_VERSION").strip()
        except OSError as exc:
            raise FifoError(f"cannot read {exc.filename}: {exc.strerror}") from None
        version = server_version(bindir)
        if have != version.split(".")[0]:
            raise FifoError(f"the cluster in {self.data} is PostgreSQL {have}, and the server binaries in {bindir} "
                            f"are PostgreSQL {version}: point FIFO_DB_PG_BIN at PostgreSQL {have}'s bin directory, "
                            f"or use another FIFO_DB_HOME for PostgreSQL {version.split('.')[0]}")

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
        """Stop if running; returns True if this call stopped it. Creates and changes nothing."""
        if not self._check_home() or not self.initialized:
            return False
        bindir = find_bindir()
        with self._locked():
            if not self._pg_running(bindir):
                return False
            self._cmd([str(bindir / "pg_ctl"), "stop", "-w", "-m", "fast", "-D", str(self.data)])
            return True

    def status(self) -> str:
        if not self._check_home() or not self.initialized:
            return f"not initialized ({self.home})"
        state = "running" if self._pg_running(find_bindir()) else "stopped"
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
