"""What `yunzhou server`/`up` check before starting anything (issue 14, first hour 1): each refusal is one
line, exit status 1, naming what to do."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from yunzhou.startup import ServerLock, StartRefused, check_port, reachable_url


def test_a_second_server_on_a_data_dir_is_refused_naming_the_first(tmp_path: Path) -> None:
    first = ServerLock(tmp_path / "data", "http://127.0.0.1:7070")
    with pytest.raises(StartRefused) as refused:
        ServerLock(tmp_path / "data", "http://127.0.0.1:7071")
    message = str(refused.value.code)
    assert message.startswith(
        f"yunzhou: already running here (pid {os.getpid()}, http://127.0.0.1:7070, data dir "
    )
    assert "\n" not in message
    first.release()
    ServerLock(tmp_path / "data", "http://127.0.0.1:7071").release()  # free again once released


def test_a_busy_port_names_the_option_and_the_variable() -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        with pytest.raises(StartRefused) as refused:
            check_port("127.0.0.1", port, "router", "--router-port", "YUNZHOU_ROUTER_PORT")
    assert refused.value.code == (
        f"yunzhou: port {port} on 127.0.0.1 (router) is in use by another program; choose another with "
        f"--router-port N or YUNZHOU_ROUTER_PORT=N (e.g. `YUNZHOU_ROUTER_PORT={port + 1} make up`)"
    )
    check_port("127.0.0.1", port, "router", "--router-port", "YUNZHOU_ROUTER_PORT")  # closed: free


def test_the_url_a_client_uses() -> None:
    assert reachable_url("0.0.0.0", 7070) == "http://127.0.0.1:7070"
    assert reachable_url("::", 7070) == "http://[::1]:7070"
    assert reachable_url("10.0.0.5", 80) == "http://10.0.0.5:80"
