"""The shipped PostgreSQL launcher starts a real server, serves SQLAlchemy and pg_dump, and leaves nothing."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa

from yunzhou.testing import PostgresError, PostgresNotFoundError, PostgresServer, start_postgres

pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresServer]:
    with start_postgres(tmp_path_factory.mktemp("pg")) as pg:
        yield pg


def _engine(url: str) -> sa.Engine:
    return sa.create_engine(url, poolclass=sa.NullPool)


def _processes_mentioning(text: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:  # exited while we looked
            continue
        if text.encode() in cmdline:
            found.append(int(entry.name))
    return found


def _assert_gone(pid: int, data_dir: Path) -> None:
    assert not Path(f"/proc/{pid}").exists(), f"postmaster {pid} still exists"
    assert _processes_mentioning(str(data_dir)) == []
    assert not data_dir.exists()


def test_serves_sqlalchemy_on_loopback(server: PostgresServer) -> None:
    assert server.url == f"postgresql+psycopg://postgres@127.0.0.1:{server.port}/postgres"
    engine = _engine(server.url)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT 1")).scalar_one() == 1
        assert conn.execute(sa.text("SHOW listen_addresses")).scalar_one() == "127.0.0.1"
        assert conn.execute(sa.text("SHOW fsync")).scalar_one() == "off"
        assert conn.execute(sa.text("SHOW server_encoding")).scalar_one() == "UTF8"
    engine.dispose()
    assert any(server.socket_dir.glob(f".s.PGSQL.{server.port}"))


def test_created_database_holds_data_and_dump_shows_it(server: PostgresServer) -> None:
    url = server.create_database("launcher_check")
    assert url == server.url_for("launcher_check")
    engine = _engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE notes (id int PRIMARY KEY, body text NOT NULL)"))
        conn.execute(sa.text("INSERT INTO notes VALUES (1, 'canary-4f1d 云舟')"))
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT body FROM notes WHERE id = 1")).scalar_one() == "canary-4f1d 云舟"

    dump = server.dump("launcher_check")
    assert b"CREATE TABLE public.notes" in dump
    assert "canary-4f1d 云舟".encode() in dump
    assert b"canary-4f1d" not in server.dump("postgres")

    server.drop_database("launcher_check")
    with pytest.raises(sa.exc.OperationalError), engine.connect():
        pass
    engine.dispose()


def test_drop_database_disconnects_open_sessions(server: PostgresServer) -> None:
    url = sa.make_url(server.create_database("held_open"))
    held = psycopg.connect(host=url.host, port=url.port, user=url.username, dbname=url.database)
    server.drop_database("held_open")
    held.close()
    with pytest.raises(PostgresError, match="pg_dump of database 'held_open' failed"):
        server.dump("held_open")


def test_stop_leaves_no_process_and_no_data_even_when_the_test_fails(tmp_path: Path) -> None:
    seen: dict[str, Any] = {}

    def failing_test_body() -> None:
        with start_postgres(tmp_path) as pg:
            seen.update(server=pg, pid=pg.pid, data_dir=pg.data_dir)
            assert (pg.data_dir / "PG_VERSION").exists()
            seen["held"] = psycopg.connect(host=pg.host, port=pg.port, user=pg.user, dbname="postgres")
            raise ZeroDivisionError

    with pytest.raises(ZeroDivisionError):
        failing_test_body()
    seen["held"].close()  # an open session did not keep a backend alive
    _assert_gone(seen["pid"], seen["data_dir"])
    pg: PostgresServer = seen["server"]
    assert not pg.running
    pg.stop()  # idempotent
    assert pg.log_path is not None
    assert "database system is shut down" in pg.log_path.read_text()


def test_interpreter_exit_stops_a_forgotten_server(tmp_path: Path) -> None:
    forgetful = (
        "import sys; from pathlib import Path; from yunzhou.testing import start_postgres; "
        "pg = start_postgres(Path(sys.argv[1])); print(pg.pid, pg.data_dir)"
    )
    done = subprocess.run(
        [sys.executable, "-c", forgetful, str(tmp_path)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    pid, data_dir = done.stdout.split(maxsplit=1)
    _assert_gone(int(pid), Path(data_dir.strip()))


def test_startup_failure_names_it_shows_the_log_and_cleans_up(tmp_path: Path) -> None:
    pg = PostgresServer(tmp_path, settings={"shared_buffers": "lots"})
    with pytest.raises(PostgresError) as failure:
        pg.start()
    message = str(failure.value)
    assert "postgres exited with code" in message
    assert "shared_buffers" in message  # from the server log tail
    assert not pg.running
    assert not list(tmp_path.glob("*/cluster"))


def test_missing_binaries_say_how_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("YUNZHOU_PG_BIN", str(tmp_path))
    with pytest.raises(PostgresNotFoundError, match="apt-get install postgresql"):
        start_postgres(tmp_path / "base")
