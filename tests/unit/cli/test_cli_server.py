"""`yunzhou server` / `yunzhou up` hand their options to yunzhou.server (replaced here by a recorder)."""

from __future__ import annotations

import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.unit.cli.conftest import Run


@pytest.fixture
def server_module(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, dict[str, Any]]]:
    calls: list[tuple[str, dict[str, Any]]] = []
    module = ModuleType("yunzhou.server")
    module.run_server = lambda **kwargs: calls.append(("run_server", kwargs))  # type: ignore[attr-defined]
    module.run_up = lambda **kwargs: calls.append(("run_up", kwargs))  # type: ignore[attr-defined]
    module.run_worker = lambda **kwargs: calls.append(("run_worker", kwargs))  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "yunzhou.server", module)
    return calls


def test_server_defaults(run: Run, server_module: list[tuple[str, dict[str, Any]]], tmp_path: Path) -> None:
    result = run("server")
    assert result.exit_code == 0, result.output
    assert server_module == [
        (
            "run_server",
            {
                "data_dir": tmp_path.resolve() / ".yunzhou",
                "api_host": "127.0.0.1",
                "api_port": 7070,
                "router_port": 8080,
                "runtime": True,
                "tls_listen": None,
            },
        )
    ]


def test_server_options_and_environment(
    run: Run, server_module: list[tuple[str, dict[str, Any]]], tmp_path: Path
) -> None:
    env = {"YUNZHOU_API_PORT": "9000", "YUNZHOU_ROUTER_PORT": "9080", "YUNZHOU_DATA_DIR": "state"}
    assert run("server", "--api-host", "0.0.0.0", env=env).exit_code == 0
    assert run("up", "--data-dir", "/srv/yz", "--api-port", "7071", "--router-port", "8081").exit_code == 0
    assert server_module == [
        (
            "run_server",
            {
                "data_dir": tmp_path.resolve() / "state",
                "api_host": "0.0.0.0",
                "api_port": 9000,
                "router_port": 9080,
                "runtime": True,
                "tls_listen": None,
            },
        ),
        (
            "run_up",
            {"data_dir": Path("/srv/yz"), "api_host": "127.0.0.1", "api_port": 7071, "router_port": 8081},
        ),
    ]


def test_bad_port_is_a_usage_error(run: Run, server_module: list[tuple[str, dict[str, Any]]]) -> None:
    assert run("server", "--api-port", "70000").exit_code == 2
    assert server_module == []


def test_up_without_run_up_explains(run: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "yunzhou.server", ModuleType("yunzhou.server"))
    result = run("up")
    assert result.exit_code == 1
    assert "cannot start the server" in result.stderr
    assert "Traceback" not in result.output


def test_api_and_runtime_can_run_apart(
    run: Run, server_module: list[tuple[str, dict[str, Any]]], tmp_path: Path
) -> None:
    assert run("server", "--no-runtime").exit_code == 0
    assert run("worker", "--router-port", "9090").exit_code == 0
    assert server_module[0][1]["runtime"] is False
    assert server_module[1] == (
        "run_worker",
        {"data_dir": tmp_path.resolve() / ".yunzhou", "router_port": 9090},
    )


def test_server_tls_listen_option(run: Run, server_module: list[tuple[str, dict[str, Any]]]) -> None:
    assert run("server", "--tls-listen", "127.0.0.1:8443").exit_code == 0
    assert server_module[0][1]["tls_listen"] == "127.0.0.1:8443"
