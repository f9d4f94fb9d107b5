"""Config swaps under load, removed backends and SIGTERM, against real router and backend processes."""

from __future__ import annotations

import http.client
import json
import signal
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import pytest

from yunzhou.domain.errors import PermanentError
from yunzhou.router import RouterProcess

from .conftest import APP, HOST, Backend, metric_value, proxy_client, route, snapshot, wait_for


@dataclass
class ClientLoop:
    """One keep-alive client connection sending GET / until told to stop; records every outcome."""

    host: str
    port: int
    stop: threading.Event
    results: list[tuple[float, int, str]] = field(default_factory=list)  # (start, status, backend)
    errors: list[str] = field(default_factory=list)

    def run(self) -> None:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=10)
        conn.auto_open = (
            0  # if the router dropped this connection, the next request fails instead of redialing
        )
        conn.connect()
        try:
            while not self.stop.is_set():
                started = time.monotonic()
                try:
                    conn.request("GET", "/", headers={"Host": HOST})
                    response = conn.getresponse()
                    body = response.read()
                except (OSError, http.client.HTTPException) as exc:
                    self.errors.append(f"{type(exc).__name__}: {exc}")
                    return
                backend = json.loads(body)["backend"] if response.status == 200 else body.decode()
                self.results.append((started, response.status, backend))
        finally:
            conn.close()


def test_swapping_backend_sets_under_load_drops_nothing(
    router: RouterProcess, backends: dict[str, Backend]
) -> None:
    set_a = [backends[n].entry(release=1) for n in ("a1", "a2", "a3")]
    set_b = [backends[n].entry(release=2) for n in ("b1", "b2", "b3")]
    router.push_config(snapshot(1, route(HOST, set_a)))
    host, port = router.listen.rsplit(":", 1)
    stop = threading.Event()
    loops = [ClientLoop(host, int(port), stop) for _ in range(4)]

    def total() -> int:
        return sum(len(loop.results) for loop in loops)

    with ThreadPoolExecutor(len(loops)) as pool:
        futures: list[Future[None]] = [pool.submit(loop.run) for loop in loops]
        try:
            wait_for(lambda: all(len(loop.results) >= 20 for loop in loops), "traffic on every connection")
            swapped_at = 0.0
            for version in range(2, 9):
                mark = total()
                router.push_config(snapshot(version, route(HOST, set_b if version % 2 == 0 else set_a)))
                swapped_at = time.monotonic()
                wait_for(lambda mark=mark: total() >= mark + 40, f"traffic after swap to version {version}")
            assert version % 2 == 0  # the last swap was to set B
            mark = total()
            wait_for(lambda: total() >= mark + 100, "traffic after the last swap")
        finally:
            stop.set()
            for future in futures:
                future.result(timeout=30)

    errors = [error for loop in loops for error in loop.errors]
    assert errors == []
    results = [r for loop in loops for r in loop.results]
    assert {status for _, status, _ in results} == {200}, [r for r in results if r[1] != 200][:5]
    after_last_swap = {backend for started, _, backend in results if started > swapped_at}
    assert after_last_swap == {"b1", "b2", "b3"}
    assert {backend for _, _, backend in results} == {"a1", "a2", "a3", "b1", "b2", "b3"}


def test_removed_backend_finishes_its_in_flight_request(
    router: RouterProcess, backends: dict[str, Backend]
) -> None:
    router.push_config(snapshot(1, route(HOST, [backends["a1"].entry()])))
    with ThreadPoolExecutor(1) as pool, proxy_client(router, headers={"Host": HOST}) as slow_client:
        slow = pool.submit(slow_client.get, "/slow?s=1")
        wait_for(lambda: router.in_flight() == {"a1": 1}, "the slow request to be in flight on a1")
        router.push_config(snapshot(2, route(HOST, [backends["b1"].entry()])))
        with proxy_client(router, headers={"Host": HOST}) as client:
            assert {client.get("/").json()["backend"] for _ in range(3)} == {"b1"}
        assert router.in_flight() == {"a1": 1}  # what a control plane waits on before stopping a1
        response = slow.result(timeout=30)
    assert response.status_code == 200
    assert response.json()["backend"] == "a1"
    assert router.in_flight() == {}


def _refuses_connections(address: str) -> bool:
    host, port = address.rsplit(":", 1)
    try:
        with socket.create_connection((host, int(port)), timeout=1):
            return False
    except OSError:
        return True


def test_sigterm_stops_accepting_and_completes_the_in_flight_request(
    router_factory: Callable[..., RouterProcess], backends: dict[str, Backend]
) -> None:
    router = router_factory(grace=20)
    router.push_config(snapshot(1, route(HOST, [backends["a1"].entry()])))
    host, port = router.listen.rsplit(":", 1)
    idle = socket.create_connection((host, int(port)), timeout=10)  # an idle keep-alive client
    with ThreadPoolExecutor(1) as pool, proxy_client(router, headers={"Host": HOST}) as client:
        slow = pool.submit(client.get, "/slow?s=1.5")
        wait_for(
            lambda: metric_value(router.metrics_text(), "yunzhou_router_requests_in_flight", app=APP) == 1,
            "the slow request to be in flight",
        )
        router.send_signal(signal.SIGTERM)
        wait_for(lambda: _refuses_connections(router.listen), "the router to stop accepting")
        assert idle.recv(1) == b""  # idle connections are closed at once
        idle.close()
        response = slow.result(timeout=30)
    assert response.status_code == 200
    assert response.json()["backend"] == "a1"
    assert response.headers["connection"] == "close"
    assert router.wait(timeout=20) == 0


def test_router_refuses_a_non_loopback_admin_address() -> None:
    router = RouterProcess()
    with pytest.raises(PermanentError, match="exited with code 2"):
        router.start("127.0.0.1:0", "0.0.0.0:0")
    assert not router.running()
