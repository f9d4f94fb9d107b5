"""WebSocket (and other Upgrade) passthrough by a real router process to a real WebSocket backend process.

The backend (ws_backend.py) and the client are the ``websockets`` library: real RFC 6455 handshakes and
masked frames on both sides of the router.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed, ConnectionClosedError, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from yunzhou.router import RouterProcess

from .conftest import Backend, metric_value, read_response, route, snapshot, wait_for

HOST = "orders.dev.shop.localhost"
APP = "shop/dev/orders"
WS_SCRIPT = Path(__file__).with_name("ws_backend.py")


@pytest.fixture
def ws_backends(backend_factory: Callable[..., Backend]) -> Callable[[str], Backend]:
    """Start WebSocket backends owned by one test."""
    return lambda name: backend_factory(name, WS_SCRIPT)


@pytest.fixture
def ws1(router: RouterProcess, ws_backends: Callable[[str], Backend]) -> Backend:
    """A WebSocket backend that the default router routes HOST to."""
    backend = ws_backends("ws1")
    router.push_config(snapshot(1, route(HOST, [backend.entry()])))
    return backend


def router_with_ws1(
    router_factory: Callable[..., RouterProcess], ws_backends: Callable[[str], Backend], **options: Any
) -> tuple[RouterProcess, Backend]:
    """A router started with ``options`` that routes HOST to a new WebSocket backend ws1."""
    router = router_factory(**options)
    backend = ws_backends("ws1")
    router.push_config(snapshot(1, route(HOST, [backend.entry()])))
    return router, backend


def ws_connect(
    router: RouterProcess, path: str = "/echo", host: str = HOST, max_queue: int = 16, **headers: str
) -> ClientConnection:
    """A WebSocket client connected through the router (the URI names the routed host; the socket goes to
    the router's listen address)."""
    address, _, port = router.listen.rpartition(":")
    sock = socket.create_connection((address, int(port)), timeout=10)
    try:
        return connect(
            f"ws://{host}{path}",
            sock=sock,
            max_size=None,
            max_queue=max_queue,
            compression=None,  # frames cross the router as they are sent (and random bytes do not shrink)
            ping_interval=None,  # the tests decide when bytes flow (the idle-timeout test needs silence)
            open_timeout=30,
            close_timeout=5,
            additional_headers=headers or None,
        )
    except BaseException:
        sock.close()
        raise


def backend_stats(backend: Backend) -> dict[str, int]:
    with httpx.Client(trust_env=False, timeout=5) as client:
        stats: dict[str, int] = client.get(f"http://{backend.address}/stats").json()
        return stats


def open_on_backend(backend: Backend) -> int:
    return backend_stats(backend)["open"]


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for process {pid}")


def metrics(router: RouterProcess, name: str, **labels: str) -> float:
    return metric_value(router.metrics_text(), name, **labels)


def test_websocket_echo_through_the_router_many_messages_both_ways_and_a_2_mb_message(
    router: RouterProcess, ws1: Backend, tmp_path: Path
) -> None:
    with ws_connect(router) as ws:
        for i in range(50):
            ws.send(f"message {i}")
        assert [ws.recv(timeout=10) for _ in range(50)] == [f"message {i}" for i in range(50)]
        big = os.urandom(2 * 1024 * 1024 + 17)
        ws.send(big)
        assert ws.recv(timeout=30) == big
        ws.send("name?")
        assert ws.recv(timeout=10) == "ws1"
        assert metrics(router, "yunzhou_router_tunnels", app=APP) == 1
        assert router.in_flight() == {"ws1": 1}
    wait_for(lambda: not router.in_flight(), "the tunnel to leave the in-flight count")
    text = router.metrics_text()
    assert metric_value(text, "yunzhou_router_upgrades_total", app=APP, outcome="switched") == 1
    assert metric_value(text, "yunzhou_router_tunnels", app=APP) == 0
    closed = sum(
        metric_value(text, "yunzhou_router_tunnels_closed_total", app=APP, by=by)
        for by in ("client", "backend")
    )
    assert closed == 1
    # the handshake is one request (101) in the request metrics; its latency is the handshake's
    assert metric_value(text, "yunzhou_router_requests_total", app=APP, release="1", code="1xx") == 1
    access_log = tmp_path / "access-0.log"  # written in batches: wait for the line
    lines = wait_for(lambda: access_log.read_text().splitlines(), "the tunnel's access log line")
    logged = [json.loads(line) for line in lines]
    assert [(e["path"], e["status"]) for e in logged] == [("/echo", 101)]
    assert logged[0]["bytes"] > 2 * 1024 * 1024  # the 101 and every frame sent back, 2 MiB one included


def test_a_client_that_does_not_read_holds_the_backend_back_and_the_router_buffers_little(
    router: RouterProcess, ws1: Backend
) -> None:
    total_mib = 64
    with ws_connect(router, max_queue=1) as ws:  # the client stops reading its socket after one message
        ws.send("hello")
        assert ws.recv(timeout=10) == "hello"
        before = rss_bytes(router.pid)
        ws.send(f"flood {total_mib}")
        wait_for(lambda: backend_stats(ws1)["flooded"] >= 2 * 1024 * 1024, "the backend to start flooding")
        deadline = time.monotonic() + 2.0  # watch the stalled tunnel for a while
        peak = before
        while time.monotonic() < deadline:
            peak = max(peak, rss_bytes(router.pid))
            time.sleep(0.05)
        held_back = backend_stats(ws1)["flooded"]
        assert held_back < total_mib * 1024 * 1024 // 2, held_back  # the backend is waiting on the client
        assert peak - before < 16 * 1024 * 1024, (before, peak)  # the router holds socket buffers, no more
        received = sum(len(ws.recv(timeout=30)) for _ in range(total_mib))
    assert received == total_mib * 1024 * 1024


def test_a_refused_caller_gets_the_normal_403_at_the_handshake_and_no_tunnel(
    router: RouterProcess, ws_backends: Callable[[str], Backend]
) -> None:
    ws1 = ws_backends("ws1")
    doc = snapshot(1, route(HOST, [ws1.entry()]))
    doc["callers"] = {
        hashlib.sha256(b"token-web").hexdigest(): "shop/dev/web",
        hashlib.sha256(b"token-batch").hexdigest(): "shop/dev/batch",
    }
    doc["policies"] = {APP: {"traffic": {"access": {"deny": ["batch"]}}, "split": {"stable": 100}}}
    router.push_config(doc)

    with pytest.raises(InvalidStatus) as refused:
        ws_connect(router, **{"x-yunzhou-caller-token": "token-batch"})
    response = refused.value.response
    assert response.status_code == 403
    assert b'"access_denied"' in response.body
    assert b"shop/dev/orders traffic.access.deny.0" in response.body
    assert open_on_backend(ws1) == 0  # the backend never saw the handshake
    assert not router.in_flight()

    # the same route lets an allowed caller through, with its identity set by the router at the handshake
    with ws_connect(router, **{"x-yunzhou-caller-token": "token-web"}) as ws:
        ws.send("caller?")
        assert ws.recv(timeout=10) == "shop/dev/web"
    text = router.metrics_text()
    assert metric_value(text, "yunzhou_router_upgrades_total", app=APP, outcome="refused") == 1
    assert metric_value(text, "yunzhou_router_upgrades_total", app=APP, outcome="switched") == 1
    assert metric_value(text, "yunzhou_router_denied_total", app=APP, policy="access.deny.0") == 1


def test_rate_limits_count_each_handshake_and_a_limited_one_gets_429_and_no_tunnel(
    router: RouterProcess, ws_backends: Callable[[str], Backend]
) -> None:
    ws1 = ws_backends("ws1")
    doc = snapshot(1, route(HOST, [ws1.entry()]))
    doc["policies"] = {APP: {"traffic": {"rateLimit": {"rps": 0.001, "burst": 2}}, "split": {"stable": 100}}}
    router.push_config(doc)
    with ws_connect(router) as first, ws_connect(router) as second:
        with pytest.raises(InvalidStatus) as limited:
            ws_connect(router)
        assert limited.value.response.status_code == 429
        assert limited.value.response.headers["Retry-After"]
        assert b'"rate_limited"' in limited.value.response.body
        assert open_on_backend(ws1) == 2
        first.send("one")  # the two admitted tunnels are unaffected
        second.send("two")
        assert (first.recv(timeout=10), second.recv(timeout=10)) == ("one", "two")
    assert metrics(router, "yunzhou_router_upgrades_total", app=APP, outcome="refused") == 1


def test_a_backend_that_answers_200_to_an_upgrade_is_relayed_as_a_normal_response_then_closed(
    router: RouterProcess, ws1: Backend
) -> None:
    address, _, port = router.listen.rpartition(":")
    with socket.create_connection((address, int(port)), timeout=10) as sock:
        sock.sendall(
            f"GET /plain HTTP/1.1\r\nHost: {HOST}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
            "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n".encode()
        )
        received = b""
        while chunk := sock.recv(65536):  # the router closes the connection after the answer
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ")
    assert b"connection: close" in head.lower()
    assert body.endswith(b"plain answer from ws1\n")
    assert metrics(router, "yunzhou_router_upgrades_total", app=APP, outcome="declined") == 1
    assert not router.in_flight()


def test_a_client_that_closes_closes_the_tunnel_and_the_backend_connection(
    router: RouterProcess, ws1: Backend
) -> None:
    with ws_connect(router) as ws:
        ws.send("hello")
        assert ws.recv(timeout=10) == "hello"
        assert open_on_backend(ws1) == 1
        assert router.in_flight() == {"ws1": 1}
        ws.socket.shutdown(socket.SHUT_RDWR)  # gone without a close frame, as a client that crashes
        wait_for(lambda: open_on_backend(ws1) == 0, "the backend's WebSocket to close")
        wait_for(lambda: not router.in_flight(), "the in-flight count to return to 0")
    text = router.metrics_text()
    assert metric_value(text, "yunzhou_router_tunnels", app=APP) == 0
    assert metric_value(text, "yunzhou_router_tunnels_closed_total", app=APP, by="client") == 1


def test_a_redeploy_drains_open_tunnels_and_sends_new_upgrades_to_the_new_backend(
    router: RouterProcess, ws_backends: Callable[[str], Backend]
) -> None:
    old, new = ws_backends("old"), ws_backends("new")
    router.push_config(snapshot(1, route(HOST, [old.entry(1)])))
    with ws_connect(router) as before:
        before.send("name?")
        assert before.recv(timeout=10) == "old"

        router.push_config(snapshot(2, route(HOST, [new.entry(2)])))  # the redeploy: the old instance leaves
        with ws_connect(router) as after:
            after.send("name?")
            assert after.recv(timeout=10) == "new"
        # the open tunnel still works, and keeps the old backend in flight: a drain waits for it
        before.send("still here")
        assert before.recv(timeout=10) == "still here"
        wait_for(lambda: router.in_flight() == {"old": 1}, "only the old tunnel in flight")
    wait_for(lambda: not router.in_flight(), "the old backend to drain once its tunnel closed")

    # a tunnel still open at the drain limit: the runtime stops the old instance, which ends the tunnel
    with ws_connect(router) as lingering:
        lingering.send("name?")
        assert lingering.recv(timeout=10) == "new"
        router.push_config(snapshot(3, route(HOST, [old.entry(3)])))
        assert router.in_flight() == {"new": 1}
        closed_before = metrics(router, "yunzhou_router_tunnels_closed_total", app=APP, by="backend")
        new.stop()
        with pytest.raises(ConnectionClosedError):  # cut (no close frame): the backend went away
            lingering.recv(timeout=10)
    wait_for(lambda: not router.in_flight(), "the stopped backend to leave the in-flight count")
    closed_after = metrics(router, "yunzhou_router_tunnels_closed_total", app=APP, by="backend")
    assert closed_after == closed_before + 1
    assert metrics(router, "yunzhou_router_tunnels", app=APP) == 0


def test_an_idle_tunnel_is_closed_after_the_tunnel_idle_timeout(
    router_factory: Callable[..., RouterProcess], ws_backends: Callable[[str], Backend]
) -> None:
    router, ws1 = router_with_ws1(router_factory, ws_backends, tunnel_idle_timeout=1)
    with ws_connect(router) as ws:
        ws.send("hello")
        assert ws.recv(timeout=10) == "hello"
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=15)  # nothing flows either way: the router closes both sides
    wait_for(lambda: open_on_backend(ws1) == 0, "the backend's WebSocket to close")
    assert not router.in_flight()
    assert metrics(router, "yunzhou_router_tunnels_closed_total", app=APP, by="idle_timeout") == 1


@pytest.fixture
def upper_backend() -> Iterator[tuple[str, list[bytes]]]:
    """A backend of another protocol (not WebSocket): it switches to ``x-upper`` on any upgrade request and
    then sends back every byte upper-cased. Yields its address and the request heads it received."""
    heads: list[bytes] = []
    listener = socket.create_server(("127.0.0.1", 0))
    connections: list[socket.socket] = []

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return  # the listener was closed: the test is over
            connections.append(conn)
            data = b""
            while b"\r\n\r\n" not in data and (chunk := conn.recv(65536)):
                data += chunk
            head, _, rest = data.partition(b"\r\n\r\n")
            heads.append(head)
            conn.sendall(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x-upper\r\nConnection: Upgrade\r\n\r\n"
            )
            if rest:
                conn.sendall(rest.upper())
            while chunk := conn.recv(65536):
                conn.sendall(chunk.upper())
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"127.0.0.1:{listener.getsockname()[1]}", heads
    listener.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked in accept (close alone does not)
    listener.close()
    for conn in connections:
        conn.close()
    thread.join(5)


def test_another_protocol_upgrades_too_and_bytes_sent_before_the_101_reach_the_backend(
    router: RouterProcess, upper_backend: tuple[str, list[bytes]]
) -> None:
    address, heads = upper_backend
    router.push_config(snapshot(1, route(HOST, [{"id": "upper", "address": address, "release": 1}])))
    host, _, port = router.listen.rpartition(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        head = (
            f"POST /tunnel HTTP/1.1\r\nHost: {HOST}\r\nConnection: keep-alive, Upgrade\r\n"
            "Upgrade: x-upper\r\n\r\n"
        )
        sock.sendall(head.encode() + b"early bytes")  # sent before the backend switched
        received = b""
        while b"EARLY BYTES" not in received and (chunk := sock.recv(65536)):
            received += chunk
        answer, _, tunnelled = received.partition(b"\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
        assert b"Upgrade: x-upper" in answer
        assert tunnelled == b"EARLY BYTES"
        sock.sendall(b"later")
        assert sock.recv(65536) == b"LATER"
    forwarded = heads[0].decode().lower().split("\r\n")
    assert "connection: upgrade" in forwarded
    assert "upgrade: x-upper" in forwarded
    wait_for(lambda: not router.in_flight(), "the tunnel to close")


def test_router_shutdown_waits_for_open_tunnels_up_to_the_grace_then_cuts_them(
    router_factory: Callable[..., RouterProcess], ws_backends: Callable[[str], Backend]
) -> None:
    router, ws1 = router_with_ws1(router_factory, ws_backends, grace=1)
    with ws_connect(router) as ws:
        ws.send("hello")
        assert ws.recv(timeout=10) == "hello"  # the tunnel is open end to end
        started = time.monotonic()
        assert router.stop(timeout=15) == 0
        assert 0.9 <= time.monotonic() - started < 10  # waited for the tunnel, up to --grace
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=10)
    wait_for(lambda: open_on_backend(ws1) == 0, "the backend's WebSocket to close")


def test_an_h2c_upgrade_is_ignored_and_answered_in_http_1_1(
    router: RouterProcess, backends: dict[str, Backend]
) -> None:
    router.push_config(snapshot(1, route(HOST, [backends["a1"].entry()])))
    address, _, port = router.listen.rpartition(":")
    with socket.create_connection((address, int(port)), timeout=10) as sock:
        reader = sock.makefile("rb")
        request = (
            f"GET /first HTTP/1.1\r\nHost: {HOST}\r\nConnection: Upgrade, HTTP2-Settings\r\n"
            "Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n"
            f"GET /second HTTP/1.1\r\nHost: {HOST}\r\n\r\n"
        )
        sock.sendall(request.encode())
        answers: list[dict[str, Any]] = []
        for _ in range(2):
            status, _headers, body = read_response(reader)
            assert status == 200
            answers.append(json.loads(body))
    assert [a["path"] for a in answers] == ["/first", "/second"]
    forwarded = answers[0]["headers"]
    assert "upgrade" not in forwarded
    assert "http2-settings" not in forwarded
