"""Scale to zero on the local target, end to end: a real control plane (autoscaler, wake path, reconciler),
its real router and real app processes. An idle app goes to zero instances; requests that arrive then are
held by the router, wake the app, and all succeed once the first instance is ready; a request held longer
than ``holdTimeoutSeconds`` (a slow-starting app) gets 503 with Retry-After."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.local.test_local_runtime import client, score
from tests.integration.router.conftest import wait_for
from yunzhou.client import YunzhouClient
from yunzhou.testing import ControlPlaneProcess

__all__ = ["client"]  # the project "shop" with its environment "dev", on this module's server

APPS = Path(__file__).parent / "apps"
IDLE_SECONDS = 10  # the policy's minimum idle window


def policy(hold_timeout: int) -> dict[str, Any]:
    return {
        "autoscaling": {
            "minReplicas": 0,
            "maxReplicas": 2,
            "metrics": [{"type": "rps", "target": {"type": "AverageValue", "averageValue": 100}}],
            "scaleToZero": {"enabled": True, "idleSeconds": IDLE_SECONDS, "holdTimeoutSeconds": hold_timeout},
        }
    }


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ControlPlaneProcess]:
    env = {"YUNZHOU_AUTOSCALE_INTERVAL": "0.5", "YUNZHOU_SCRAPE_INTERVAL": "1"}
    with ControlPlaneProcess(tmp_path / "data", env=env, startup_timeout=90, host_processes=True) as cp:
        yield cp


def deploy(client: YunzhouClient, name: str, hold_timeout: int, **env: str) -> None:
    artifact = client.upload_artifact(APPS / "sleepy")
    result = client.deploy("shop", "dev", score(name, "v1", **env), policy(hold_timeout), artifact)
    done = client.wait_for_rollout("shop", "dev", name, result["rollout"]["id"], timeout=60, interval=0.1)
    assert done["state"] == "succeeded", done


def at_zero(client: YunzhouClient, name: str) -> bool:
    app = client.get_app("shop", "dev", name)
    return bool(app["replicas"] == 0 and app["ready_replicas"] == 0)


def concurrent_gets(url: str, host: str, count: int) -> tuple[list[threading.Thread], list[Any]]:
    results: list[Any] = [None] * count

    def one(i: int) -> None:
        started = time.monotonic()
        try:
            r = httpx.get(url, headers={"Host": host}, timeout=60, trust_env=False)
            results[i] = (r, time.monotonic() - started)
        except httpx.HTTPError as exc:
            results[i] = (exc, time.monotonic() - started)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    return threads, results


def test_an_idle_app_scales_to_zero_and_the_requests_after_that_succeed(
    server: ControlPlaneProcess, client: YunzhouClient
) -> None:
    deploy(client, "orders", hold_timeout=30)
    host = "orders.dev.shop.localhost"
    url = f"http://127.0.0.1:{server.router_port}/"
    assert httpx.get(url, headers={"Host": host}, timeout=10, trust_env=False).status_code == 200

    # idle: zero instances after the idle window, the route stays with no backend and an activation
    wait_for(lambda: at_zero(client, "orders"), "orders to scale to zero", IDLE_SECONDS + 40)
    decisions = client.autoscale_decisions("shop", "dev", "orders")
    assert any(d["desired"] == 0 and d["applied"] and "ScaleToZero" in d["reason"] for d in decisions)
    with server.router_admin() as admin:
        routes = {r["host"]: r for r in admin.get("/config").json()["routes"]}
        assert routes[host]["backends"] == []
        assert routes[host]["activation"] == {"timeout_seconds": 30.0, "queue_limit": 1000}

        # N concurrent requests while at zero: held, the app wakes, all succeed
        threads, results = concurrent_gets(url, host, 6)
        try:
            wait_for(
                lambda: (
                    admin.get("/activations").json()["apps"].get("shop/dev/orders", {}).get("held_total", 0)
                    >= 1
                ),
                "the router to hold a request",
                10,
            )
        finally:
            for t in threads:
                t.join(60)
        statuses = [r.status_code if isinstance(r, httpx.Response) else repr(r) for r, _ in results]
        assert statuses == [200] * 6
        demand = admin.get("/activations").json()["apps"]["shop/dev/orders"]
        assert demand["held_total"] == 6
        assert (demand["held"], demand["released_total"], demand["timed_out_total"]) == (0, 6, 0)
        assert 'yunzhou_router_held_requests_total{app="shop/dev/orders"} 6' in admin.get("/metrics").text
    first, last = min(e for _, e in results), max(e for _, e in results)
    print(f"cold start: first held request answered after {first:.3f} s, last after {last:.3f} s")
    woke = [d for d in client.autoscale_decisions("shop", "dev", "orders") if d["mode"] == "wake"]
    assert woke, "no wake decision"
    assert (woke[0]["applied"], woke[0]["desired"]) == (True, 1)
    assert "request arrived while scaled to zero" in woke[0]["reason"]
    app = client.get_app("shop", "dev", "orders")
    assert app["replicas"] >= 1


def test_a_request_held_longer_than_the_timeout_gets_503_with_retry_after(
    server: ControlPlaneProcess, client: YunzhouClient
) -> None:
    deploy(client, "slow", hold_timeout=1, START_DELAY="4")
    host = "slow.dev.shop.localhost"
    url = f"http://127.0.0.1:{server.router_port}/"
    wait_for(lambda: at_zero(client, "slow"), "slow to scale to zero", IDLE_SECONDS + 40)

    r = httpx.get(url, headers={"Host": host}, timeout=30, trust_env=False)
    assert r.status_code == 503
    assert r.headers["retry-after"] == "1"
    error = r.json()["error"]
    assert (error["code"], error["reason"]) == ("activation_timeout", "hold_timeout")
    assert "shop/dev/slow" in error["message"]
    # the held request still woke the app: once its slow start is over, requests succeed
    wait_for(lambda: client.get_app("shop", "dev", "slow")["ready_replicas"] >= 1, "slow to start", 60)
    assert httpx.get(url, headers={"Host": host}, timeout=30, trust_env=False).status_code == 200
