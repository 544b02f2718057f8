"""The server the suite runs on, picked by FIFO_DB_PG_BIN (scripts/test runs PostgreSQL 15,
16 and 18): the version fifo-db reads from the binaries is the server's, and a home whose
cluster another major version made is refused in one line, not pg_ctl's 'could not start'."""

from __future__ import annotations

from fifo_db.embedded import EmbeddedServer, find_bindir, server_version
from tests.test_embedded import db_cli, home  # noqa: F401  (home: a fixture)


def test_the_binaries_version_is_the_servers(db):
    version = server_version(find_bindir())
    assert db.execute("SHOW server_version").fetchone()[0].split()[0] == version
    assert db.execute("SELECT current_setting('server_version_num')::int / 10000").fetchone()[0] \
        == int(version.split(".")[0])


def test_a_cluster_of_another_major_version_is_refused_in_one_line(home, capsys):  # noqa: F811
    server = EmbeddedServer(home)
    assert db_cli(capsys, "db", "start")[0] == 0
    assert db_cli(capsys, "db", "stop")[:2] == (0, "stopped\n")
    bindir = find_bindir()
    version = server_version(bindir)
    major = version.split(".")[0]
    other = "14" if major != "14" else "13"
    (server.data / "PG_VERSION").write_text(other + "\n")     # as if PostgreSQL `other` had made it
    assert db_cli(capsys, "db", "start") == (
        1, "", f"fifo-db: error: the cluster in {server.data} is PostgreSQL {other}, and the server binaries "
               f"in {bindir} are PostgreSQL {version}: point FIFO_DB_PG_BIN at PostgreSQL {other}'s bin "
               f"directory, or use another FIFO_DB_HOME for PostgreSQL {major}\n")
    assert not server.is_running()
