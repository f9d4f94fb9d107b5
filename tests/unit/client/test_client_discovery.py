"""The CLI finds a server running on this machine, and its admin token, from any folder (issue 14, first
hour 2): through the entry the server writes under ~/.config/yunzhou/servers/<port>.json."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

from yunzhou.client import (
    ServerEntry,
    admin_token_path,
    find_server,
    load_config,
    publish_server,
    withdraw_server,
)
from yunzhou.client.discovery import servers_dir


def _server(tmp_path: Path, port: int = 7070, pid: int | None = None) -> tuple[dict[str, str], Path]:
    environ = {"HOME": str(tmp_path / "home")}
    data_dir = tmp_path / "clone" / ".yunzhou"
    data_dir.mkdir(parents=True)
    admin_token_path(data_dir).write_text("yzt_admin\n")
    entry = ServerEntry(f"http://127.0.0.1:{port}", data_dir, os.getpid() if pid is None else pid)
    publish_server(entry, port, environ)
    return environ, data_dir


def test_the_cli_finds_the_running_servers_token_from_any_folder(tmp_path: Path) -> None:
    environ, data_dir = _server(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    config = load_config(environ, cwd=elsewhere)
    assert (config.url, config.token) == ("http://127.0.0.1:7070", "yzt_admin")
    assert config.auth_source == str(admin_token_path(data_dir))
    assert (
        load_config(environ | {"YUNZHOU_URL": "http://localhost:7070/"}, cwd=elsewhere).token == "yzt_admin"
    )


def test_the_entry_is_private_to_the_user(tmp_path: Path) -> None:
    environ, _ = _server(tmp_path)
    where = servers_dir(environ)
    assert where == tmp_path / "home" / ".config" / "yunzhou" / "servers"
    assert stat.S_IMODE(where.stat().st_mode) == 0o700
    assert stat.S_IMODE((where / "7070.json").stat().st_mode) == 0o600
    assert servers_dir({"XDG_CONFIG_HOME": str(tmp_path / "xdg")}) == tmp_path / "xdg" / "yunzhou" / "servers"
    assert servers_dir({}) is None  # no home: no discovery


def test_only_the_server_at_the_url_is_used(tmp_path: Path) -> None:
    environ, _ = _server(tmp_path)
    assert load_config(environ | {"YUNZHOU_URL": "http://127.0.0.1:7071"}, cwd=tmp_path).token is None
    assert find_server("http://paas.example.com:7070", environ) is None  # another machine
    assert load_config(environ | {"YUNZHOU_TOKEN": "mine"}, cwd=tmp_path).token == "mine"


def test_an_explicit_data_dir_wins(tmp_path: Path) -> None:
    environ, _ = _server(tmp_path)
    (tmp_path / "state").mkdir()
    admin_token_path(tmp_path / "state").write_text("from-state")
    assert load_config(environ | {"YUNZHOU_DATA_DIR": "state"}, cwd=tmp_path).token == "from-state"


def test_an_entry_left_by_a_dead_server_is_ignored(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    environ, _ = _server(tmp_path, pid=int(done.stdout))
    assert find_server("http://127.0.0.1:7070", environ) is None
    assert load_config(environ, cwd=tmp_path / "clone").token == "yzt_admin"  # ./.yunzhou still works


def test_withdraw_removes_only_its_own_entry(tmp_path: Path) -> None:
    environ, _ = _server(tmp_path)
    path = servers_dir(environ) / "7070.json"  # type: ignore[operator]
    withdraw_server(path, os.getpid() + 1)  # a newer server on the port wrote it since: kept
    assert path.exists()
    withdraw_server(path, os.getpid())
    assert not path.exists()
