"""Scale from zero at the router (router/hold.py): an activatable route with no backend holds requests in a
bounded per-app queue with a timeout, and the next snapshot with a backend releases them in order."""

from __future__ import annotations

import json
import socket
import threading
from typing import Any

import httpx

from yunzhou.router import RouterProcess

from .conftest import APP, HOST, Backend, metric_value, proxy_client, route, snapshot, wait_for


def sleepy_route(backends: list[dict[str, Any]], timeout: float = 10.0, limit: int = 100) -> dict[str, Any]:
    return {**route(HOST, backends), "activation": {"timeout_seconds": timeout, "queue_limit": limit}}


def held(router: RouterProcess) -> int:
    return int(router.activations().get(APP, {}).get("held", 0))


def send_all(router: RouterProcess, count: int, path: str = "/") -> tuple[list[threading.Thread], list[Any]]:
    results: list[Any] = [None] * count

    def one(i: int) -> None:
        with proxy_client(router, timeout=30.0) as client:
            try:
                results[i] = client.get(path, headers={"Host": HOST})
            except httpx.HTTPError as exc:
                results[i] = exc

    threads = [threading.Thread(target=one, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    return threads, results


def test_held_requests_are_released_to_the_first_backend(
    router: RouterProcess, backends: dict[str, Backend]
) -> None:
    router.push_config(snapshot(1, sleepy_route([])))
    threads, results = send_all(router, 8)
    try:
        wait_for(lambda: held(router) == 8, "8 held requests")
        text = router.metrics_text()
        assert metric_value(text, "yunzhou_router_held_requests", app=APP) == 8
        assert router.activations()[APP]["held_total"] == 8
        router.push_config(snapshot(2, sleepy_route([backends["a1"].entry()])))
    finally:
        for t in threads:
            t.join(30)
    assert [r.status_code for r in results] == [200] * 8
    assert all(r.json()["backend"] == "a1" for r in results)
    demand = router.activations()[APP]
    assert (demand["held"], demand["released_total"], demand["timed_out_total"]) == (0, 8, 0)
    # with a backend, nothing is held
    with proxy_client(router) as client:
        assert client.get("/", headers={"Host": HOST}).status_code == 200
    assert router.activations()[APP]["held_total"] == 8


def test_timeout_and_full_queue_answer_503_with_retry_after(router: RouterProcess) -> None:
    router.push_config(snapshot(1, sleepy_route([], timeout=0.5, limit=2)))
    threads, results = send_all(router, 2)
    try:
        wait_for(lambda: held(router) == 2, "2 held requests")
        with proxy_client(router) as client:
            full = client.get("/", headers={"Host": HOST})
        assert full.status_code == 503
        assert full.headers["retry-after"] == "1"
        assert full.json()["error"]["code"] == "activation_queue_full"
        assert full.json()["error"]["reason"] == "hold_queue_full"
    finally:
        for t in threads:
            t.join(30)
    for r in results:
        assert r.status_code == 503
        assert r.headers["retry-after"] == "1"  # ceil(0.5 s)
        error = r.json()["error"]
        assert (error["code"], error["reason"]) == ("activation_timeout", "hold_timeout")
        assert APP in error["message"]
    demand = router.activations()[APP]
    assert (demand["held"], demand["timed_out_total"], demand["rejected_total"]) == (0, 2, 1)
    text = router.metrics_text()
    assert metric_value(text, "yunzhou_router_held_timeouts_total", app=APP) == 2
    assert metric_value(text, "yunzhou_router_held_rejected_total", app=APP) == 1


def test_without_activation_an_empty_route_is_503_at_once(router: RouterProcess) -> None:
    router.push_config(snapshot(1, route(HOST, [])))
    with proxy_client(router) as client:
        r = client.get("/", headers={"Host": HOST})
    assert r.status_code == 503
    assert r.json()["error"]["code"] == "no_ready_backends"
    assert router.activations() == {}


def test_a_held_request_with_a_body_and_a_client_that_leaves(
    router: RouterProcess, backends: dict[str, Backend]
) -> None:
    router.push_config(snapshot(1, sleepy_route([])))
    listen = router.listen.rsplit(":", 1)
    # a client that leaves while held is not counted as waiting and gets nothing sent to a backend
    gone = socket.create_connection((listen[0], int(listen[1])))
    gone.sendall(f"GET /left HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode())
    wait_for(lambda: held(router) == 1, "1 held request")
    gone.close()
    wait_for(lambda: held(router) == 0, "the held request to be dropped")
    # a POST body waits with the request and reaches the backend whole
    body = b"z" * 100_000
    out: dict[str, Any] = {}

    def post() -> None:
        with proxy_client(router, timeout=30.0) as client:
            out["r"] = client.post("/echo", content=body, headers={"Host": HOST})

    thread = threading.Thread(target=post)
    thread.start()
    try:
        wait_for(lambda: held(router) == 1, "the POST to be held")
        router.push_config(snapshot(2, sleepy_route([backends["a2"].entry()])))
    finally:
        thread.join(30)
    assert out["r"].status_code == 200
    assert json.loads(out["r"].text)["length"] == len(body)
    # a route that loses its activation answers its held requests like any empty route
    router.push_config(snapshot(3, sleepy_route([])))
    threads, results = send_all(router, 1)
    try:
        wait_for(lambda: held(router) == 1, "1 held request")
        router.push_config(snapshot(4, route(HOST, [])))
    finally:
        threads[0].join(30)
    assert results[0].status_code == 503
    assert results[0].json()["error"]["code"] == "no_ready_backends"


def test_activation_is_validated(router: RouterProcess) -> None:
    bad = {**route(HOST, []), "activation": {"timeout_seconds": 0, "queue_limit": "x", "extra": 1}}
    (dropped,) = router.push_config(snapshot(1, bad))["dropped"]  # the route is left out, with why
    for path in (
        "routes[0].activation.extra",
        "routes[0].activation.queue_limit",
        "routes[0].activation.timeout_seconds",
    ):
        assert path in dropped["reason"]
    assert router.get_config()["routes"] == []
