"""Proxying through a real router process to real backend processes."""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import socket
import time
from collections.abc import Callable

from yunzhou.router import RouterProcess

from .conftest import (
    APP,
    HOST,
    Backend,
    free_port,
    metric_value,
    proxy_client,
    read_response,
    route,
    snapshot,
)


def test_routes_by_host_case_insensitively_ignoring_port_and_by_longest_prefix(
    router: RouterProcess, backends: dict[str, Backend]
) -> None:
    a1, b1, b2, b3 = backends["a1"], backends["b1"], backends["b2"], backends["b3"]
    router.push_config(
        snapshot(
            1,
            route(HOST, [a1.entry()]),
            route(HOST, [b1.entry()], app="shop/dev/api", path_prefix="/api"),
            route(HOST, [b2.entry()], app="shop/dev/api-v2", path_prefix="/api/v2/"),
            route("shop.example.test", [b3.entry()], app="shop/prod/web"),
        )
    )
    expected = {
        ("orders.dev.shop.localhost", "/"): "a1",
        ("ORDERS.Dev.Shop.Localhost:8080", "/x?y=1"): "a1",
        (HOST, "/api"): "b1",
        (HOST, "/api/users?page=2"): "b1",
        (HOST, "/apix"): "a1",  # prefixes match whole path segments
        (HOST, "/api/v2"): "b2",
        (HOST, "/api/v2/orders"): "b2",
        ("shop.example.test.", "/anything"): "b3",  # a custom host; the trailing dot is ignored
    }
    with proxy_client(router) as client:
        for (host, path), backend in expected.items():
            response = client.get(path, headers={"Host": host})
            assert response.status_code == 200, (host, path, response.text)
            body = response.json()
            assert body["backend"] == backend, (host, path)
            assert body["path"] == path
            assert body["headers"]["host"] == host  # the original Host reaches the app


def test_round_robin_over_three_backends(router: RouterProcess, backends: dict[str, Backend]) -> None:
    trio = [backends["a1"], backends["a2"], backends["a3"]]
    router.push_config(snapshot(1, route(HOST, [b.entry() for b in trio])))
    with proxy_client(router, headers={"Host": HOST}) as client:
        seen = [client.get("/").json()["backend"] for _ in range(9)]
    assert seen[:3] == seen[3:6] == seen[6:9]
    assert sorted(seen[:3]) == ["a1", "a2", "a3"]


def test_keep_alive_to_the_client_and_pooled_connections_to_the_backend(
    router: RouterProcess, backends: dict[str, Backend]
) -> None:
    router.push_config(snapshot(1, route(HOST, [backends["a1"].entry()])))
    host, port = router.listen.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    conn.auto_open = 0  # a closed client connection must fail loudly, not reconnect silently
    conn.connect()
    client_socket = conn.sock
    peer_ports = set()
    for _ in range(5):
        conn.request("GET", "/", headers={"Host": HOST})
        response = conn.getresponse()
        assert response.status == 200
        peer_ports.add(json.loads(response.read())["peer_port"])
        assert conn.sock is client_socket
    conn.close()
    assert len(peer_ports) == 1, "the router opened a new backend connection per request"
    text = router.metrics_text()
    assert metric_value(text, "yunzhou_router_upstream_connections") >= 1


def test_connect_failure_falls_through_to_a_live_backend(
    router: RouterProcess, backends: dict[str, Backend]
) -> None:
    dead = {"id": "i-dead", "address": f"127.0.0.1:{free_port()}", "release": 2}
    router.push_config(snapshot(1, route(HOST, [dead, backends["a1"].entry(release=2)])))
    with proxy_client(router, headers={"Host": HOST}) as client:
        for _ in range(6):
            response = client.get("/")
            assert response.status_code == 200
            assert response.json()["backend"] == "a1"
    failures = metric_value(
        router.metrics_text(), "yunzhou_router_upstream_connect_failures_total", app=APP, backend="i-dead"
    )
    # The first failure marks the dead backend down: for a while it is tried after the live one.
    assert 1 <= failures < 3


def test_error_bodies_name_the_host_and_the_app(router: RouterProcess, backends: dict[str, Backend]) -> None:
    dead = {"id": "i-dead", "address": f"127.0.0.1:{free_port()}", "release": 1}
    router.push_config(
        snapshot(
            1,
            route(HOST, []),
            route("down.dev.shop.localhost", [dead], app="shop/dev/down"),
            route("bad.dev.shop.localhost", [backends["a1"].entry()], app="shop/dev/bad"),
        )
    )
    with proxy_client(router) as client:
        unknown = client.get("/", headers={"Host": "nope.dev.shop.localhost:8080"})
        assert unknown.status_code == 404
        assert "nope.dev.shop.localhost" in unknown.json()["error"]["message"]
        assert unknown.headers["x-request-id"] == unknown.json()["error"]["request_id"]

        empty = client.get("/", headers={"Host": HOST})
        assert empty.status_code == 503
        assert empty.json()["error"]["code"] == "no_ready_backends"
        assert APP in empty.json()["error"]["message"]

        down = client.get("/", headers={"Host": "down.dev.shop.localhost"})
        assert down.status_code == 502
        assert "shop/dev/down" in down.json()["error"]["message"]

        garbage = client.get("/garbage", headers={"Host": "bad.dev.shop.localhost"})
        assert garbage.status_code == 502
        assert "invalid HTTP response" in garbage.json()["error"]["message"]
        # the client connection survives every one of these
        assert client.get("/", headers={"Host": "bad.dev.shop.localhost"}).status_code == 200


def test_backend_timeout_is_504(
    router_factory: Callable[..., RouterProcess], backends: dict[str, Backend]
) -> None:
    router = router_factory(upstream_timeout=0.3)
    router.push_config(snapshot(1, route(HOST, [backends["a1"].entry()])))
    with proxy_client(router, headers={"Host": HOST}) as client:
        response = client.get("/slow?s=3")
        assert response.status_code == 504
        error = response.json()["error"]
        assert error["code"] == "backend_timeout"
        assert "a1" in error["message"]
        assert "0.3 s" in error["message"]
        assert client.get("/").status_code == 200


def test_backend_timeout_counts_from_each_request_on_a_reused_backend_connection(
    router_factory: Callable[..., RouterProcess], backends: dict[str, Backend]
) -> None:
    """The idle timer stays on the backend connection across its requests (router/upstream.py): armed by
    the first, it must not cut a later request still within the timeout, nor let a stalled one run on."""
    router = router_factory(upstream_timeout=1.0)
    router.push_config(snapshot(1, route(HOST, [backends["a1"].entry()])))
    with proxy_client(router, headers={"Host": HOST}) as client:
        ports = set()
        for _ in range(3):  # 0.4 s each: together well past the first request's deadline
            response = client.get("/slow?s=0.4")
            assert response.status_code == 200
            ports.add(response.json()["peer_port"])
        assert len(ports) == 1, "the requests did not share one backend connection"
        started = time.monotonic()
        response = client.get("/slow?s=6")
        assert response.status_code == 504
        assert time.monotonic() - started < 5.0  # cut at the timeout, not when the backend answered


def test_forwarding_headers_request_id_and_hop_by_hop(
    router: RouterProcess, backends: dict[str, Backend]
) -> None:
    router.push_config(snapshot(1, route(HOST, [backends["a1"].entry()])))
    with proxy_client(router) as client:
        response = client.get(
            "/",
            headers={
                "Host": HOST,
                "X-Forwarded-For": "203.0.113.7",
                "Connection": "keep-alive, X-Hop-Only",
                "X-Hop-Only": "secret",
                "Keep-Alive": "timeout=5",
                "TE": "trailers",
                "X-App-Header": "kept",
            },
        )
        seen = response.json()["headers"]
        assert seen["x-forwarded-for"] == "203.0.113.7, 127.0.0.1"
        assert seen["x-forwarded-proto"] == "http"
        assert seen["x-forwarded-host"] == HOST
        assert seen["x-app-header"] == "kept"
        for hop in ("x-hop-only", "keep-alive", "te", "connection"):
            assert hop not in seen, hop
        generated = seen["x-request-id"]
        assert len(generated) == 32
        assert response.headers["x-request-id"] == generated

        given = client.get("/", headers={"Host": HOST, "X-Request-Id": "req-123"})
        assert given.json()["headers"]["x-request-id"] == "req-123"
        assert given.headers["x-request-id"] == "req-123"


def test_bodies_stream_both_ways_with_content_length_and_chunked(
    router: RouterProcess, backends: dict[str, Backend]
) -> None:
    router.push_config(snapshot(1, route(HOST, [backends["a1"].entry()])))
    payload = os.urandom(3 * 1024 * 1024 + 7)
    digest = hashlib.sha256(payload).hexdigest()
    with proxy_client(router, headers={"Host": HOST}) as client:
        sized = client.post("/echo", content=payload)
        assert sized.json() == {"backend": "a1", "length": len(payload), "sha256": digest}

        def pieces() -> object:
            for start in range(0, len(payload), 100_000):
                yield payload[start : start + 100_000]

        chunked = client.post("/echo", content=pieces())  # no length: httpx sends it chunked
        assert chunked.json() == {"backend": "a1", "length": len(payload), "sha256": digest}

        big = client.get("/big?size=5000000")
        assert big.headers["content-length"] == "5000000"
        assert len(big.content) == 5_000_000
        chunks = client.get("/chunked?size=1000001")
        assert chunks.headers["transfer-encoding"] == "chunked"
        assert len(chunks.content) == 1_000_001

        head = client.head("/")
        assert head.status_code == 200
        assert head.content == b""
        assert client.get("/").status_code == 200  # the connection is still in sync after HEAD


def test_responses_stream_before_the_backend_finishes(
    router: RouterProcess, backend_factory: Callable
) -> None:
    drip = backend_factory("drip")
    router.push_config(snapshot(1, route(HOST, [drip.entry()])))
    with proxy_client(router, headers={"Host": HOST}) as client, client.stream("GET", "/drip") as response:
        chunks = response.iter_raw()
        assert next(chunks) == b"first\n"  # arrives although the backend has not finished the body
        with proxy_client(router, headers={"Host": HOST}) as other:
            assert other.get("/release").status_code == 200
        assert b"".join(chunks) == b"rest\n"


def test_pipelined_requests_are_answered_in_order(
    router: RouterProcess, backends: dict[str, Backend]
) -> None:
    router.push_config(snapshot(1, route(HOST, [backends["a1"].entry(), backends["a2"].entry()])))
    host, port = router.listen.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        requests = b"".join(b"GET /p%d HTTP/1.1\r\nHost: %s\r\n\r\n" % (i, HOST.encode()) for i in range(4))
        sock.sendall(requests)
        reader = sock.makefile("rb")
        paths = []
        for _ in range(4):
            status, _headers, body = read_response(reader)
            assert status == 200
            paths.append(json.loads(body)["path"])
    assert paths == ["/p0", "/p1", "/p2", "/p3"]


def test_malformed_requests_get_400_and_the_connection_closes(router: RouterProcess) -> None:
    host, port = router.listen.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(b"NOT A REQUEST\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    assert data.startswith(b"HTTP/1.1 400 ")
    assert b"Connection: close" in data
