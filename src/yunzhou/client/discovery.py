"""How the CLI finds a server running on this machine, from any folder.

A running ``yunzhou server`` / ``yunzhou up`` writes ``<config home>/yunzhou/servers/<api port>.json``
(mode 0600, ``$XDG_CONFIG_HOME`` or ``~/.config``) with its URL, data dir and pid, and removes it when it
stops. Only one process can listen on a port, so the CLI looks up the entry for the port of the URL it
talks to and reads the admin token from that data dir, when the file is readable by the user.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

_LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1", "0.0.0.0", "::"})


@dataclass(frozen=True)
class ServerEntry:
    url: str
    data_dir: Path
    pid: int


def servers_dir(environ: Mapping[str, str] | None = None) -> Path | None:
    """``$XDG_CONFIG_HOME/yunzhou/servers`` or ``$HOME/.config/yunzhou/servers``; None without either."""
    environ = os.environ if environ is None else environ
    configured = environ.get("XDG_CONFIG_HOME", "").strip()
    home = environ.get("HOME", "").strip()
    if not configured and not home:
        return None
    base = Path(configured) if configured else Path(home) / ".config"
    return base / "yunzhou" / "servers"


def _entry_path(port: int, environ: Mapping[str, str] | None) -> Path | None:
    where = servers_dir(environ)
    return None if where is None else where / f"{port}.json"


def publish_server(entry: ServerEntry, port: int, environ: Mapping[str, str] | None = None) -> Path | None:
    """Write this server's entry (mode 0600, directory 0700); returns its path for ``withdraw_server``."""
    path = _entry_path(port, environ)
    if path is None:
        return None
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    text = json.dumps({"url": entry.url, "data_dir": str(entry.data_dir), "pid": entry.pid})
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    tmp.replace(path)
    return path


def withdraw_server(path: Path, pid: int) -> None:
    """Remove the entry at ``path`` if it is still the one process ``pid`` wrote."""
    entry = _read(path)
    if entry is not None and entry.pid == pid:
        path.unlink(missing_ok=True)


def _read(path: Path) -> ServerEntry | None:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return ServerEntry(url=str(raw["url"]), data_dir=Path(raw["data_dir"]), pid=int(raw["pid"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: alive, and its data dir will not be readable anyway
    return True


def find_server(url: str, environ: Mapping[str, str] | None = None) -> ServerEntry | None:
    """The running server on this machine that answers at ``url``, or None."""
    try:
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return None
    path = _entry_path(port, environ)
    entry = None if path is None else _read(path)
    if entry is None or not _alive(entry.pid):
        return None
    entry_host = urlsplit(entry.url).hostname or ""
    host = parts.hostname or ""
    if host != entry_host and not (host in _LOCAL_HOSTS and entry_host in _LOCAL_HOSTS):
        return None
    return entry
