"""Where the client finds its server and its token: environment variables, then an admin token file."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from yunzhou.client.discovery import find_server

DEFAULT_URL = "http://127.0.0.1:7070"
DEFAULT_DATA_DIR = ".yunzhou"
ADMIN_TOKEN_FILE = "admin-token"  # noqa: S105 -- a file name, not a secret


@dataclass(frozen=True)
class ClientConfig:
    url: str = DEFAULT_URL
    token: str | None = None
    # Where the token came from, for error hints: "YUNZHOU_TOKEN", a file path, or "" when there is none.
    auth_source: str = ""
    data_dir: Path = Path(DEFAULT_DATA_DIR)


def default_data_dir(environ: Mapping[str, str] | None = None, cwd: Path | None = None) -> Path:
    """``YUNZHOU_DATA_DIR`` or ``.yunzhou`` in the current directory."""
    environ = os.environ if environ is None else environ
    base = cwd if cwd is not None else Path.cwd()
    configured = environ.get("YUNZHOU_DATA_DIR", "").strip()
    return base / configured if configured else base / DEFAULT_DATA_DIR


def admin_token_path(data_dir: Path) -> Path:
    return data_dir / ADMIN_TOKEN_FILE


def read_admin_token(data_dir: Path) -> str | None:
    """The admin token the server wrote into its data dir, or None when it is absent or unreadable."""
    try:
        token = admin_token_path(data_dir).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return token or None


def load_config(environ: Mapping[str, str] | None = None, cwd: Path | None = None) -> ClientConfig:
    """``YUNZHOU_TOKEN``; else the admin token of ``YUNZHOU_DATA_DIR``; else that of the server running on
    this machine at the URL (client/discovery.py), from any folder; else that of ``./.yunzhou``."""
    environ = os.environ if environ is None else environ
    url = environ.get("YUNZHOU_URL", "").strip() or DEFAULT_URL
    data_dir = default_data_dir(environ, cwd)
    token = environ.get("YUNZHOU_TOKEN", "").strip()
    if token:
        return ClientConfig(url=url, token=token, auth_source="YUNZHOU_TOKEN", data_dir=data_dir)
    running = None if environ.get("YUNZHOU_DATA_DIR", "").strip() else find_server(url, environ)
    if running is not None and (running_token := read_admin_token(running.data_dir)):
        source = str(admin_token_path(running.data_dir))
        return ClientConfig(url=url, token=running_token, auth_source=source, data_dir=running.data_dir)
    file_token = read_admin_token(data_dir)
    if file_token:
        return ClientConfig(
            url=url, token=file_token, auth_source=str(admin_token_path(data_dir)), data_dir=data_dir
        )
    return ClientConfig(url=url, token=None, auth_source="", data_dir=data_dir)
