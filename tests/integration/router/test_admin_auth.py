"""Security (issue 14, item 1): apps share the loopback network with the router, so its admin API takes only
requests with the admin token RouterProcess makes per start, handed over outside the world-readable argv.
A real router process."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from yunzhou.router import RouterProcess

from .conftest import HOST, Backend, admin_client, metric_value, proxy_client, route, snapshot, wait_for

ROUTER_BY_HAND = [sys.executable, "-m", "yunzhou.router", "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"]


def takeover(backends: dict[str, Backend]) -> dict[str, object]:
    """What an app would PUT: every host (here the victim's) rerouted to its own backend."""
    return snapshot(99, route(HOST, [backends["b1"].entry()], app="mallory/dev/thief"))


def environ_without_token() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "YUNZHOU_ROUTER_ADMIN_TOKEN"}


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong-token-of-the-same-shape-0123456789abcdefghij"},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": "Bearer"},
    ],
    ids=["no-token", "wrong-token", "other-scheme", "empty-bearer"],
)
def test_admin_api_without_the_token_is_401_and_the_routes_stay(
    router: RouterProcess, backends: dict[str, Backend], headers: dict[str, str]
) -> None:
    good = snapshot(5, route(HOST, [backends["a1"].entry()]))
    router.push_config(good)
    with admin_client(router, headers=headers) as stranger:
        refused = stranger.put("/config", json=takeover(backends))
        assert refused.status_code == 401, refused.text
        assert refused.json()["error"]["code"] == "unauthenticated"
        assert "Authorization: Bearer" in refused.json()["error"]["message"]
        assert refused.headers["www-authenticate"].startswith("Bearer")
        for path in ("/config", "/status", "/metrics", "/inflight", "/activations", "/nope"):
            answer = stranger.get(path)
            assert answer.status_code == 401, (path, answer.text)
            assert "routes" not in answer.text
            assert "yunzhou_router" not in answer.text
        assert stranger.get("/healthz").status_code == 200  # liveness needs no secret
    assert router.get_config() == good
    with proxy_client(router, headers={"Host": HOST}) as client:
        assert client.get("/").json()["backend"] == "a1"
    assert metric_value(router.metrics_text(), "yunzhou_router_admin_unauthorized_total") == 7


def test_refused_body_is_not_kept_and_the_connection_still_serves_the_token_holder(
    router: RouterProcess, backends: dict[str, Backend]
) -> None:
    with httpx.Client(base_url=f"http://{router.admin}", trust_env=False, timeout=10) as shared:
        assert (
            shared.put("/config", content=b"x" * (40 * 1024 * 1024)).status_code == 401
        )  # > 32 MiB: not 413
        good = snapshot(3, route(HOST, [backends["a2"].entry()]))
        accepted = shared.put(
            "/config", json=good, headers=router.admin_headers
        )  # same keep-alive connection
        assert accepted.status_code == 200, accepted.text
    assert router.get_config() == good


def test_the_admin_token_is_not_on_the_router_command_line(router: RouterProcess) -> None:
    token = router.admin_headers["Authorization"].removeprefix("Bearer ")
    assert len(token) >= 32
    cmdline = Path(f"/proc/{router.pid}/cmdline").read_bytes()
    assert b"yunzhou.router" in cmdline
    assert token.encode() not in cmdline
    environ = Path(f"/proc/{router.pid}/environ")
    assert token.encode() in environ.read_bytes()  # where it is: readable by the router's user only
    assert environ.stat().st_uid == os.getuid()
    assert (environ.stat().st_mode & 0o077) == 0


def test_each_start_has_its_own_token(router_factory: Callable[..., RouterProcess]) -> None:
    first, second = router_factory(), router_factory()
    assert first.admin_headers != second.admin_headers
    with admin_client(first, headers=second.admin_headers) as wrong:
        assert wrong.get("/config").status_code == 401


def run_router(
    tmp_path: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``python -m yunzhou.router`` by hand, as an operator would; only for options that stop it at once."""
    return subprocess.run(
        [*ROUTER_BY_HAND, *args],
        env={**environ_without_token(), **(env or {})},
        capture_output=True,
        text=True,
        timeout=30,
        cwd=tmp_path,
    )


def test_a_router_started_by_hand_without_a_token_refuses_to_start(tmp_path: Path) -> None:
    done = run_router(tmp_path)
    assert done.returncode == 2
    assert "YUNZHOU_ROUTER_ADMIN_TOKEN or give --admin-token-file" in done.stderr
    assert "--insecure-admin" in done.stderr


def test_admin_token_file_must_be_private_and_long_enough(tmp_path: Path) -> None:
    token_file = tmp_path / "admin-token"
    token_file.write_text("a" * 40 + "\n")
    token_file.chmod(0o644)
    done = run_router(tmp_path, "--admin-token-file", str(token_file))
    assert done.returncode == 2
    assert "other users may read it (mode 0644); chmod 600 it" in done.stderr
    token_file.chmod(0o600)
    token_file.write_text("short")
    done = run_router(tmp_path, "--admin-token-file", str(token_file))
    assert done.returncode == 2
    assert "at least 16 characters" in done.stderr
    done = run_router(tmp_path, "--insecure-admin", env={"YUNZHOU_ROUTER_ADMIN_TOKEN": "b" * 40})
    assert done.returncode == 2
    assert "--insecure-admin means no admin token" in done.stderr


def test_admin_token_file_is_read_and_enforced(tmp_path: Path) -> None:
    token = "operator-token-" + "c" * 30
    token_file = tmp_path / "admin-token"
    token_file.write_text(token + "\n")
    token_file.chmod(0o600)
    ready = tmp_path / "ready.json"
    proc = subprocess.Popen(
        [*ROUTER_BY_HAND, "--admin-token-file", str(token_file), "--ready-file", str(ready)],
        env=environ_without_token(),
        stdin=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: ready.exists() or proc.poll() is not None, "the router to listen", 30)
        assert proc.poll() is None, f"router exited with {proc.returncode}"
        admin = json.loads(ready.read_text())["admin"]
        with httpx.Client(base_url=f"http://{admin}", trust_env=False, timeout=10) as client:
            assert client.get("/config").status_code == 401
            assert client.get("/config", headers={"Authorization": f"Bearer {token}"}).status_code == 200
            assert client.get("/config", headers={"Authorization": f"bearer {token}"}).status_code == 200
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _open_admin_socket(router: RouterProcess) -> socket.socket:
    host, port = router.admin.rsplit(":", 1)
    return socket.create_connection((host, int(port)), timeout=30)


def _closed_by_peer(sock: socket.socket) -> bool:
    sock.settimeout(0.2)
    try:
        return sock.recv(1) == b""
    except TimeoutError:
        return False


def test_a_connection_that_never_authenticates_is_closed_and_a_trusted_one_stays(
    router: RouterProcess,
) -> None:
    """An app cannot hold admin connections for free: one that has sent no authorised request is closed
    after UNTRUSTED_CONNECTION_SECONDS; the control plane's keep-alive connection, once authorised, stays."""
    token = router.admin_headers["Authorization"]
    request = f"GET /status HTTP/1.1\r\nHost: admin\r\nAuthorization: {token}\r\n\r\n".encode()
    idle, trusted, refused = (_open_admin_socket(router) for _ in range(3))
    with idle, trusted, refused:
        trusted.sendall(request)
        assert trusted.recv(65536).startswith(b"HTTP/1.1 200")
        refused.sendall(b"GET /config HTTP/1.1\r\nHost: admin\r\n\r\n")
        # a refused request ends its connection at once
        wait_for(lambda: _closed_by_peer(refused), "the refused connection to be closed", timeout=10)
        wait_for(lambda: _closed_by_peer(idle), "the idle untrusted connection to be closed", timeout=30)
        trusted.settimeout(10)
        trusted.sendall(request)
        assert trusted.recv(65536).startswith(b"HTTP/1.1 200")
