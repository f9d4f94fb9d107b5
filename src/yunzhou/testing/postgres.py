"""A real, throwaway PostgreSQL server for tests.

``start_postgres(base_dir)`` runs ``initdb`` into a fresh directory, starts ``postgres`` on 127.0.0.1 with
a free port (plus a unix socket beside the data), waits until it accepts connections and returns a
:class:`PostgresServer`. ``stop()`` (or leaving the ``with`` block) shuts it down and deletes the data.
Durability is switched off for speed: never point this at data you want to keep.

When running as root the server runs as the ``postgres`` system user (PostgreSQL refuses root).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import IO, Any
from urllib.parse import quote

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

SUPERUSER = "postgres"
HOST = "127.0.0.1"

_TOOLS = ("initdb", "postgres", "pg_ctl", "pg_dump")
_SYSTEM_BIN_GLOB = "/usr/lib/postgresql/*/bin"
_SERVICE_USER = "postgres"
_FAST_SETTINGS = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}
_MAX_SOCKET_DIR = 80  # sun_path holds 107 bytes, and "/.s.PGSQL.NNNNN.lock" follows the dir
_PORT_ATTEMPTS = 3
_LOG_TAIL_LINES = 30


class PostgresError(RuntimeError):
    """The test PostgreSQL server could not be found, started, used or stopped."""


class PostgresNotFoundError(PostgresError):
    """No PostgreSQL server binaries on this machine."""


class _PortTaken(Exception):
    """Another process won the race for the port we picked; try another."""


def find_postgres_bin() -> Path:
    """The directory holding initdb/postgres/pg_ctl/pg_dump.

    Order: ``$YUNZHOU_PG_BIN``, then ``initdb`` on PATH, then the newest ``/usr/lib/postgresql/*/bin``.
    """
    override = os.environ.get("YUNZHOU_PG_BIN")
    if override:
        missing = _missing_tools(Path(override))
        if missing:
            raise PostgresNotFoundError(
                f"YUNZHOU_PG_BIN={override} lacks {', '.join(missing)}; point it at a PostgreSQL bin "
                "directory, or unset it and run `apt-get install postgresql`"
            )
        return Path(override)
    on_path = shutil.which("initdb")
    if on_path:
        found = Path(on_path)
        for candidate in (found.parent, found.resolve().parent):
            if not _missing_tools(candidate):
                return candidate
    system = sorted(Path("/").glob(_SYSTEM_BIN_GLOB.lstrip("/")), key=_version_key, reverse=True)
    for candidate in system:
        if not _missing_tools(candidate):
            return candidate
    raise PostgresNotFoundError(
        "PostgreSQL server binaries (initdb, postgres, pg_ctl, pg_dump) were not found on PATH or under "
        f"{_SYSTEM_BIN_GLOB}. Install them with `apt-get install postgresql`, or set YUNZHOU_PG_BIN to "
        "the directory that holds them."
    )


def _missing_tools(directory: Path) -> list[str]:
    return [tool for tool in _TOOLS if not os.access(directory / tool, os.X_OK)]


def _version_key(bin_dir: Path) -> tuple[int, ...]:
    parts = bin_dir.parent.name.split(".")
    return tuple(int(p) for p in parts) if all(p.isdigit() for p in parts) else (-1,)


class PostgresServer:
    """One PostgreSQL cluster owned by a test session. Use :func:`start_postgres` or ``with``."""

    def __init__(
        self,
        base_dir: Path,
        *,
        bin_dir: Path | None = None,
        settings: Mapping[str, str] | None = None,
        startup_timeout: float = 30.0,
        stop_timeout: float = 10.0,
    ) -> None:
        self.base_dir = Path(base_dir)
        self.bin_dir = bin_dir
        self.settings = {**_FAST_SETTINGS, **(settings or {})}
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self.host = HOST
        self.user = SUPERUSER
        self.port = 0
        self.log_path: Path | None = None
        self._home: Path | None = None  # owned by the server's user: data dir + socket
        self._proc: subprocess.Popen[bytes] | None = None
        self._owner_pid = os.getpid()
        self._run_as: dict[str, Any] = {}

    # -- public surface -------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """SQLAlchemy URL of the ``postgres`` database."""
        return self.url_for("postgres")

    def url_for(self, dbname: str) -> str:
        return f"postgresql+psycopg://{self.user}@{self.host}:{self.port}/{quote(dbname, safe='')}"

    @property
    def data_dir(self) -> Path:
        return self._require_home() / "data"

    @property
    def socket_dir(self) -> Path:
        return self._require_home()

    @property
    def pid(self) -> int:
        """Process id of the postmaster."""
        if self._proc is None:
            raise PostgresError("the PostgreSQL server is not started")
        return self._proc.pid

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> PostgresServer:
        if self._proc is not None or self._home is not None:
            raise PostgresError("this PostgresServer was already started; make a new one")
        try:
            self._prepare()
            self._initdb()
            self._launch()
        except BaseException:
            self.stop()
            raise
        _RUNNING.add(self)
        return self

    def create_database(self, name: str) -> str:
        """Create database ``name`` and return its SQLAlchemy URL."""
        if not name or len(name.encode()) > 63:
            raise PostgresError(f"database name must be 1-63 bytes, got {name!r}")
        self._admin(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)), f"create database {name}")
        return self.url_for(name)

    def drop_database(self, name: str) -> None:
        """Drop database ``name`` (if it exists), disconnecting its sessions."""
        statement = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        self._admin(statement, f"drop database {name}")

    def dump(self, dbname: str = "postgres") -> bytes:
        """``pg_dump`` of ``dbname`` in plain SQL format (schema and data)."""
        self._require_running(f"dump database {dbname}")
        command = [str(self._bin("pg_dump")), "--no-password", f"--dbname={self._conninfo(dbname)}"]
        try:
            done = subprocess.run(command, capture_output=True, env=_clean_env(), timeout=120, check=False)
        except subprocess.TimeoutExpired as exc:
            raise PostgresError(f"pg_dump of database {dbname!r} timed out{self._log_tail()}") from exc
        if done.returncode != 0:
            stderr = done.stderr.decode(errors="replace").strip()
            raise PostgresError(
                f"pg_dump of database {dbname!r} failed (exit {done.returncode}): {stderr}{self._log_tail()}"
            )
        return done.stdout

    def stop(self) -> None:
        """Stop the server (fast shutdown, then SIGKILL) and delete its data. Safe to call twice."""
        _RUNNING.discard(self)
        proc, self._proc = self._proc, None
        if proc is not None:
            self._shut_down(proc)
        home, self._home = self._home, None
        if home is not None:
            shutil.rmtree(home, ignore_errors=True)
            if home.exists():
                raise PostgresError(f"could not remove the PostgreSQL data under {home}")

    def __enter__(self) -> PostgresServer:
        if self._proc is None:
            self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<PostgresServer {self.host}:{self.port} {state}>"

    # -- starting -------------------------------------------------------------------------------------

    def _prepare(self) -> None:
        self.bin_dir = self.bin_dir or find_postgres_bin()
        self.base_dir.mkdir(parents=True, exist_ok=True)
        run_dir = Path(tempfile.mkdtemp(prefix="postgres-", dir=self.base_dir))
        self.log_path = run_dir / "postgres.log"
        self.log_path.touch()
        uid, gid, groups = _server_identity()
        if os.geteuid() == 0:
            self._run_as = {"user": uid, "group": gid, "extra_groups": sorted(groups)}
            run_dir.chmod(0o755)
        home = run_dir / "cluster"
        if not _reachable(run_dir, uid, groups) or len(str(home)) > _MAX_SOCKET_DIR:
            # e.g. pytest's tmp dirs are 0700 root-only; the server user must be able to reach its data
            home = Path(tempfile.mkdtemp(prefix="yunzhou-pg-"))
        home.mkdir(mode=0o700, exist_ok=True)
        os.chown(home, uid, gid)
        self._home = home

    def _initdb(self) -> None:
        command = [
            str(self._bin("initdb")),
            f"--pgdata={self.data_dir}",
            f"--username={self.user}",
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
        ]
        with self._log_writer() as log:
            try:
                done = subprocess.run(
                    command, stdout=log, stderr=subprocess.STDOUT, timeout=120, check=False, **self._spawn()
                )
            except subprocess.TimeoutExpired as exc:
                raise PostgresError(f"initdb timed out{self._log_tail()}") from exc
        if done.returncode != 0:
            raise PostgresError(f"initdb failed (exit {done.returncode}){self._log_tail()}")

    def _launch(self) -> None:
        for attempt in range(1, _PORT_ATTEMPTS + 1):
            self.port = _free_port()
            log_start = self._log_size()
            command = [str(self._bin("postgres")), "-D", str(self.data_dir)]
            for key, value in self._server_settings().items():
                command += ["-c", f"{key}={value}"]
            with self._log_writer() as log:
                self._proc = subprocess.Popen(
                    command,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # its own process group, so stop() can kill every backend
                    **self._spawn(),
                )
            try:
                self._wait_ready(self._proc, log_start)
                return
            except _PortTaken:
                proc, self._proc = self._proc, None
                self._shut_down(proc)
                if attempt == _PORT_ATTEMPTS:
                    raise PostgresError(
                        f"postgres could not get a free port in {_PORT_ATTEMPTS} tries{self._log_tail()}"
                    ) from None

    def _server_settings(self) -> dict[str, str]:
        return {
            "listen_addresses": self.host,
            "port": str(self.port),
            "unix_socket_directories": str(self.socket_dir),
            **self.settings,
        }

    def _wait_ready(self, proc: subprocess.Popen[bytes], log_start: int) -> None:
        deadline = time.monotonic() + self.startup_timeout
        delay = 0.005
        last_error = "no attempt yet"
        while True:
            code = proc.poll()
            if code is not None:
                if _BIND_FAILED.search(self._log_text(log_start)):
                    raise _PortTaken
                raise PostgresError(f"postgres exited with code {code} while starting{self._log_tail()}")
            try:
                with psycopg.connect(self._conninfo("postgres"), autocommit=True, connect_timeout=2) as conn:
                    row = conn.execute("SHOW data_directory").fetchone()
            except psycopg.OperationalError as exc:
                last_error = str(exc).strip()
            else:
                if row is not None and Path(row[0]) == self.data_dir:
                    return
                raise _PortTaken  # someone else's server answered on "our" port
            if time.monotonic() >= deadline:
                raise PostgresError(
                    f"postgres did not accept connections on {self.host}:{self.port} within "
                    f"{self.startup_timeout:g}s (last error: {last_error}){self._log_tail()}"
                )
            time.sleep(delay)
            delay = min(delay * 2, 0.1)

    # -- stopping -------------------------------------------------------------------------------------

    def _shut_down(self, proc: subprocess.Popen[bytes]) -> None:
        if proc.poll() is None:
            command = [str(self._bin("pg_ctl")), "stop", "-D", str(self.data_dir), "-m", "fast", "-W"]
            try:
                stopped = subprocess.run(command, capture_output=True, timeout=30, **self._spawn())
                asked = stopped.returncode == 0
            except (OSError, subprocess.TimeoutExpired):
                asked = False
            if not asked:
                proc.send_signal(signal.SIGINT)  # the same fast shutdown pg_ctl would have asked for
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=self.stop_timeout)
        if proc.returncode != 0:
            # Hung or died hard: backends may linger. Their group id stays taken while any of them (or the
            # unreaped postmaster) lives, so this signal reaches only our processes.
            _kill_group(proc.pid)
        proc.wait()

    # -- helpers --------------------------------------------------------------------------------------

    def _admin(self, statement: sql.Composed, what: str) -> None:
        self._require_running(what)
        try:
            with psycopg.connect(self._conninfo("postgres"), autocommit=True, connect_timeout=10) as conn:
                conn.execute(statement)
        except psycopg.Error as exc:
            raise PostgresError(f"could not {what}: {exc}".rstrip()) from exc

    def _conninfo(self, dbname: str) -> str:
        return make_conninfo(host=self.host, port=self.port, user=self.user, dbname=dbname)

    def _bin(self, tool: str) -> Path:
        assert self.bin_dir is not None
        return self.bin_dir / tool

    def _spawn(self) -> dict[str, Any]:
        env = _clean_env()
        if self._run_as:
            env["HOME"] = str(self._require_home())
        return {"env": env, "cwd": self._require_home(), **self._run_as}

    def _require_home(self) -> Path:
        if self._home is None:
            raise PostgresError("the PostgreSQL server is not started")
        return self._home

    def _require_running(self, what: str) -> None:
        if not self.running:
            raise PostgresError(f"cannot {what}: the PostgreSQL server is not running{self._log_tail()}")

    def _log_writer(self) -> IO[bytes]:
        assert self.log_path is not None
        return self.log_path.open("ab")

    def _log_size(self) -> int:
        return self.log_path.stat().st_size if self.log_path else 0

    def _log_text(self, start: int = 0) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        with self.log_path.open("rb") as log:
            log.seek(start)
            return log.read().decode(errors="replace")

    def _log_tail(self) -> str:
        lines = self._log_text().splitlines()[-_LOG_TAIL_LINES:]
        if not lines:
            return ""
        return f"\n--- last {len(lines)} lines of {self.log_path} ---\n" + "\n".join(lines)


def start_postgres(base_dir: Path, **options: Any) -> PostgresServer:
    """Start a throwaway PostgreSQL server under ``base_dir``; see :class:`PostgresServer` for options."""
    return PostgresServer(base_dir, **options).start()


_BIND_FAILED = re.compile(r"could not bind|could not create any TCP/IP sockets|Address already in use")


def _server_identity() -> tuple[int, int, frozenset[int]]:
    """uid, gid and groups the server runs as: ``postgres`` when we are root, else ourselves."""
    if os.geteuid() != 0:
        return os.geteuid(), os.getegid(), frozenset(os.getgroups()) | {os.getegid()}
    try:
        account = pwd.getpwnam(_SERVICE_USER)
    except KeyError:
        raise PostgresNotFoundError(
            f"running as root, but there is no {_SERVICE_USER!r} system user to run PostgreSQL as "
            "(`apt-get install postgresql` creates it)"
        ) from None
    groups = frozenset(os.getgrouplist(account.pw_name, account.pw_gid))
    return account.pw_uid, account.pw_gid, groups


def _reachable(directory: Path, uid: int, groups: frozenset[int]) -> bool:
    """Whether ``uid`` may traverse every directory down to ``directory`` (mode bits only)."""
    if uid == 0:
        return True
    for part in (directory, *directory.parents):
        info = part.stat()
        if info.st_uid == uid:
            bit = 0o100
        elif info.st_gid in groups:
            bit = 0o010
        else:
            bit = 0o001
        if not info.st_mode & bit:
            return False
    return True


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


def _clean_env() -> dict[str, str]:
    """The environment minus libpq's PG* variables, so ambient settings cannot redirect our tools."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("PG")}
    env["LC_ALL"] = "C"
    return env


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)


_RUNNING: set[PostgresServer] = set()


@atexit.register
def _stop_leftovers() -> None:
    """Safety net for sessions that never reached stop(); skipped in forked children."""
    for server in list(_RUNNING):
        if server._owner_pid == os.getpid():
            try:
                server.stop()
            except Exception:  # noqa: S112 - best effort at interpreter exit
                continue
