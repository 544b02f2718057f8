"""A second real cluster the way managed databases are: the database owner is not a
superuser and logs in with a password (scram-sha-256) over TCP on 127.0.0.1.

OwnerCluster is the embedded server with its own home, a free TCP port on 127.0.0.1
(initdb's `host all all 127.0.0.1/32 scram-sha-256` line lets the owner in), and
password_encryption = scram-sha-256. pg_cron is preloaded (cron database 'fifo') when
the server has it; `cron` picks cron.use_background_workers (on: jobs run in background
workers; off: pg_cron connects to cron.host with libpq, and fails without a password).

The superuser only prepares what a DBA would: the owner role (LOGIN PASSWORD, NOSUPERUSER,
NOCREATEDB, NOCREATEROLE) and a database it owns. Everything fifo-db does, the tests do
as that owner, over TCP with the password.
"""

from __future__ import annotations

import shutil
import socket
import uuid
from pathlib import Path

import psycopg

from fifo_db.embedded import SUPERUSER, EmbeddedServer

OWNER_PASSWORD = "owner-secret-1"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class OwnerCluster(EmbeddedServer):
    def __init__(self, home: Path, *, background_workers: bool = True):
        super().__init__(home)
        self.port = _free_port()
        self.background_workers = background_workers

    def _settings(self) -> dict[str, str]:
        settings = super()._settings()
        settings.update({"listen_addresses": "'127.0.0.1'", "port": str(self.port),
                         "password_encryption": "'scram-sha-256'", "shared_buffers": "'32MB'",
                         "max_wal_size": "'256MB'"})
        if "cron.use_background_workers" in settings:
            settings["cron.use_background_workers"] = "on" if self.background_workers else "off"
            # cron.host stays at its default, localhost: with workers off, pg_cron connects over TCP
        return settings

    def start(self) -> bool:
        """Start, and wait (bounded) until pg_cron's launcher shows in pg_stat_activity, as it
        does on a server that has been up for more than a moment."""
        import time

        started = super().start()
        if self.pg_cron_available():
            deadline = time.monotonic() + 30
            with self.superuser("postgres") as su:
                while not su.execute("SELECT 1 FROM pg_stat_activity WHERE backend_type = 'pg_cron launcher'"
                                     ).fetchone():
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"pg_cron's launcher did not start (log: {self.logfile})")
                    time.sleep(0.1)
        return started

    def url(self, dbname: str = "fifo") -> str:
        from urllib.parse import quote
        return f"postgresql://{SUPERUSER}@/{dbname}?host={quote(str(self.sockdir), safe='')}&port={self.port}"

    def conninfo(self, dbname: str = "fifo") -> dict:
        return {"host": str(self.sockdir), "port": self.port, "user": SUPERUSER, "dbname": dbname}

    def superuser(self, dbname: str = "fifo") -> psycopg.Connection:
        return psycopg.connect(**self.conninfo(dbname), autocommit=True)

    def owner_database(self, prefix: str = "owned") -> tuple[str, str]:
        """A fresh LOGIN role with a password, no superuser, no CREATEROLE, no CREATEDB, owning a
        fresh database (and its schema public, as on PostgreSQL 15+ managed services):
        returns (role, database)."""
        tag = uuid.uuid4().hex[:8]
        role, database = f"{prefix}_owner_{tag}", f"{prefix}_{tag}"
        with self.superuser("postgres") as su:
            su.execute(f'CREATE ROLE "{role}" LOGIN PASSWORD %s NOSUPERUSER NOCREATEDB NOCREATEROLE'
                       .replace("%s", "'" + OWNER_PASSWORD + "'"))
            su.execute(f'CREATE DATABASE "{database}" OWNER "{role}"')
        with self.superuser(database) as su:
            su.execute(f'ALTER SCHEMA public OWNER TO "{role}"')
        return role, database

    def owner_dsn(self, role: str, database: str) -> str:
        return f"host=127.0.0.1 port={self.port} user={role} password={OWNER_PASSWORD} dbname={database}"

    def drop(self, role: str, database: str) -> None:
        """Remove what owner_database made, and any pg_cron job of the role."""
        with self.superuser("fifo") as su:
            if su.execute("SELECT 1 FROM pg_extension WHERE extname = 'pg_cron'").fetchone():
                su.execute("SELECT cron.unschedule(jobid) FROM cron.job WHERE username = %s OR database = %s",
                           (role, database))
        with self.superuser("postgres") as su:
            su.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
            for db in ("fifo", "postgres"):
                with self.superuser(db) as c:
                    c.execute(f'DROP OWNED BY "{role}"')
            su.execute(f'DROP ROLE IF EXISTS "{role}"')

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.home, ignore_errors=True)
