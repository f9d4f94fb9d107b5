"""Slow and greedy clients against a real router process (issue 14, security item 10): slow request heads
(slowloris) and stalled bodies get 408 and are closed on time, one address cannot hold more than its share
of connections (429), and none of it keeps another app from being served promptly."""

from __future__ import annotations

import contextlib
import selectors
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from yunzhou.router import RouterProcess

from .conftest import HOST, Backend, metric_value, proxy_client, route, snapshot, wait_for

SLOW_HOST = "slow.dev.shop.localhost"
SLOW_CLIENTS = 500
HEADER_TIMEOUT = 6.0


def open_from(router: RouterProcess, source: str) -> socket.socket:
    """A connection to the router's proxy port from ``source`` (another loopback address = another client)."""
    host, port = router.listen.rsplit(":", 1)
    sock = socket.socket()
    sock.bind((source, 0))
    sock.connect((host, int(port)))
    return sock


def read_until_closed(socks: list[socket.socket], timeout: float) -> dict[socket.socket, tuple[bytes, float]]:
    """Everything each socket receives until the router closes it, and when it closed (monotonic)."""
    received: dict[socket.socket, bytearray] = {s: bytearray() for s in socks}
    closed: dict[socket.socket, tuple[bytes, float]] = {}
    with selectors.DefaultSelector() as selector:
        for sock in socks:
            sock.setblocking(False)
            selector.register(sock, selectors.EVENT_READ)
        deadline = time.monotonic() + timeout
        while len(closed) < len(socks) and time.monotonic() < deadline:
            for key, _ in selector.select(timeout=0.5):
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                try:
                    data = sock.recv(65536)
                except (BlockingIOError, InterruptedError):
                    continue
                except ConnectionResetError:
                    data = b""
                if data:
                    received[sock] += data
                else:
                    selector.unregister(sock)
                    closed[sock] = (bytes(received[sock]), time.monotonic())
    return closed


@contextmanager
def trickling(socks: list[socket.socket], every: float = 0.5) -> Iterator[None]:
    """Each socket sends one more byte of a header value every ``every`` seconds: the head never ends."""
    stop = threading.Event()

    def run() -> None:
        while not stop.wait(every):
            for sock in socks:
                with contextlib.suppress(OSError):  # closed by the router: what the test waits for
                    sock.send(b"a")

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(5)


def metrics(router: RouterProcess) -> str:
    return router.metrics_text()


def test_500_slowloris_clients_do_not_stop_another_app_and_are_closed_with_408_after_the_header_timeout(
    router_factory: Callable[..., RouterProcess], backends: dict[str, Backend]
) -> None:
    router = router_factory(header_timeout=HEADER_TIMEOUT)
    router.push_config(
        snapshot(
            1,
            route(HOST, [backends["a1"].entry()]),
            route(SLOW_HOST, [backends["a2"].entry()], app="shop/dev/slow"),
        )
    )
    socks: list[socket.socket] = []
    try:
        opened = time.monotonic()
        for i in range(SLOW_CLIENTS):  # from two addresses, each under the per-address bound (256)
            sock = open_from(router, "127.0.0.2" if i % 2 else "127.0.0.3")
            sock.sendall(b"GET / HTTP/1.1\r\nHost: " + SLOW_HOST.encode() + b"\r\nX-Slow: ")
            socks.append(sock)
        with trickling(socks):
            wait_for(
                lambda: metric_value(metrics(router), "yunzhou_router_client_connections") >= SLOW_CLIENTS,
                "the router to hold the slow clients",
            )
            # another app is served promptly while the 500 are held
            started = time.monotonic()
            with proxy_client(router, headers={"Host": HOST}, timeout=5.0) as client:
                response = wait_for(lambda: client.get("/"), "a request to another app", timeout=5.0)
            served_in = time.monotonic() - started
            assert response.status_code == 200
            assert response.json()["backend"] == "a1"
            assert served_in < 2.0, served_in
            assert metric_value(metrics(router), "yunzhou_router_client_connections") >= SLOW_CLIENTS
            assert time.monotonic() - opened < HEADER_TIMEOUT  # all of this while they were held
            # trickling does not extend the deadline: every slow client gets 408 and is closed after it
            closed = read_until_closed(socks, HEADER_TIMEOUT + 30)
        assert len(closed) == SLOW_CLIENTS
        for data, when in closed.values():
            assert data.startswith(b"HTTP/1.1 408 Request Timeout\r\n"), data[:80]
            assert b"Connection: close" in data
            assert when - opened >= HEADER_TIMEOUT - 0.5  # held until the timeout, not before
        assert max(when for _, when in closed.values()) - opened < HEADER_TIMEOUT + 15
        assert metric_value(metrics(router), "yunzhou_router_client_header_timeouts_total") == SLOW_CLIENTS
        assert b"request head did not arrive within 6 s" in next(iter(closed.values()))[0]
    finally:
        for sock in socks:
            sock.close()


def test_a_stalled_request_body_gets_408_after_the_body_timeout(
    router_factory: Callable[..., RouterProcess], backends: dict[str, Backend]
) -> None:
    router = router_factory(body_timeout=1.0)
    router.push_config(snapshot(1, route(HOST, [backends["a1"].entry()])))
    sock = open_from(router, "127.0.0.1")
    try:
        sock.sendall(f"POST / HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: 100\r\n\r\n0123456789".encode())
        started = time.monotonic()
        ((data, when),) = read_until_closed([sock], 30).values()
        assert data.startswith(b"HTTP/1.1 408 Request Timeout\r\n"), data[:80]
        assert b"no request body received for 1 s" in data
        assert 0.9 <= when - started < 10
        assert metric_value(metrics(router), "yunzhou_router_client_body_timeouts_total") == 1
    finally:
        sock.close()


def test_one_address_gets_at_most_its_connection_bound_and_the_others_are_served(
    router_factory: Callable[..., RouterProcess], backends: dict[str, Backend]
) -> None:
    router = router_factory(max_connections_per_client=4)
    router.push_config(snapshot(1, route(HOST, [backends["a1"].entry()])))
    held = [open_from(router, "127.0.0.4") for _ in range(4)]
    try:
        wait_for(
            lambda: metric_value(metrics(router), "yunzhou_router_client_connections") == 4,
            "4 connections held",
        )
        over = open_from(router, "127.0.0.4")
        ((data, _),) = read_until_closed([over], 30).values()
        over.close()
        assert data.startswith(b"HTTP/1.1 429 Too Many Requests\r\n"), data[:80]
        assert b"Retry-After: 1" in data
        assert b"at most 4 at once" in data
        with proxy_client(router, headers={"Host": HOST}) as client:  # another address is served
            assert client.get("/").status_code == 200
        held.pop().close()  # a slot frees when a connection closes
        wait_for(
            lambda: metric_value(metrics(router), "yunzhou_router_client_connections") == 3,
            "a freed connection",
        )
        again = open_from(router, "127.0.0.4")
        held.append(again)
        again.sendall(f"GET / HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n".encode())
        ((data, _),) = read_until_closed([again], 30).values()
        assert data.startswith(b"HTTP/1.1 200 OK\r\n"), data[:80]
        assert metric_value(metrics(router), "yunzhou_router_client_connections_refused_total") == 1
    finally:
        for sock in held:
            sock.close()
