"""What `yunzhou server` and `yunzhou up` check before they start anything, and what they leave for the CLI.

Checked first, so a refusal leaves nothing running: one server per data dir (``<data dir>/server.lock``,
held while it runs) and free ports. Each refusal is one line that says what to do. Once up, the server
publishes where it is for the CLI (``yunzhou.client.discovery``).
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import sys
from pathlib import Path
from typing import IO

from yunzhou.client import ServerEntry, publish_server, withdraw_server

SERVER_LOCK_FILE = "server.lock"
_WILDCARDS = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}


class StartRefused(SystemExit):
    """The server cannot start; the message is the one line printed (exit status 1, no traceback)."""

    def __init__(self, message: str) -> None:
        super().__init__(f"yunzhou: {message}")


def reachable_url(host: str, port: int) -> str:
    """The URL a client on this machine uses for a server bound to ``host``."""
    host = _WILDCARDS.get(host, host)
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


class ServerLock:
    """``<data dir>/server.lock``, held by the running server; says who holds it when taken."""

    def __init__(self, data_dir: Path, url: str) -> None:
        data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._handle: IO[str] | None = (data_dir / SERVER_LOCK_FILE).open("a+", encoding="utf-8")
        try:
            fcntl.flock(self._handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._handle.seek(0)
            holder = _holder(self._handle.read())
            self.release()
            raise StartRefused(
                f"already running here ({holder}data dir {data_dir}); stop it with Ctrl-C in its terminal "
                "(or SIGTERM), or give this one another --data-dir / YUNZHOU_DATA_DIR"
            ) from None
        self._handle.seek(0)
        self._handle.truncate()
        self._handle.write(json.dumps({"pid": os.getpid(), "url": url}))
        self._handle.flush()

    def release(self) -> None:
        if self._handle is not None:
            self._handle.close()  # closing drops the lock; the file stays (unlinking a lock file races)
            self._handle = None


def _holder(text: str) -> str:
    try:
        info = json.loads(text)
        return f"pid {int(info['pid'])}, {info['url']}, "
    except (ValueError, KeyError, TypeError):
        return ""


def check_port(host: str, port: int, what: str, flag: str, variable: str) -> None:
    """Refuse in one line when ``host:port`` cannot be listened on (bound the way uvicorn/asyncio do)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            in_use = exc.errno == errno.EADDRINUSE
            why = "is in use by another program" if in_use else f"cannot be used: {exc.strerror}"
            raise StartRefused(
                f"port {port} on {host} ({what}) {why}; choose another with {flag} N or {variable}=N "
                f"(e.g. `{variable}={port + 1} make up`)"
            ) from None


class Published:
    """This server's discovery entry for the CLI, removed on ``withdraw``."""

    def __init__(self, url: str, port: int, data_dir: Path) -> None:
        self._pid = os.getpid()
        try:
            self._path: Path | None = publish_server(ServerEntry(url, data_dir, self._pid), port)
        except OSError as exc:  # no writable home: the CLI then needs YUNZHOU_TOKEN or the data dir
            print(f"yunzhou: could not write the CLI's discovery file: {exc}", file=sys.stderr)
            self._path = None

    def withdraw(self) -> None:
        if self._path is not None:
            withdraw_server(self._path, self._pid)
            self._path = None
