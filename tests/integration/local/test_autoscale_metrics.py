"""Every metric kind but rps, end to end on the local target: one real control plane (1 s scrapes,
autoscaler every 0.5 s), its real router and real app processes (apps/busy). An app with a CPU limit that
burns CPU scales out on cpu Utilization (and one without a CPU limit gets a decision saying why it cannot);
requests held concurrently scale an app out on inflight; an app's own gauge, scraped from its metrics
endpoint, scales it out on a custom metric (per instance), and a custom query over it is evaluated.
(rps: test_autoscale_load.py; memory Utilization: tests/unit/reconcile/test_autoscale_readings.py.)"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from yunzhou.client import YunzhouClient
from yunzhou.testing import ControlPlaneProcess
from yunzhou.testing.polling import wait_until

APP = Path(__file__).parent / "apps" / "busy"
DEADLINE = 120.0  # generous: a loaded 2-core machine, and cpu is a rate over 1 minute
SCALE_DOWN_HELD = {"scaleDown": {"stabilizationWindowSeconds": 600}}  # only scaling out is under test


def score(name: str, limits: dict[str, str] | None = None) -> dict[str, Any]:
    container: dict[str, Any] = {
        "image": "python:3.11-slim",
        "command": ["python3", "app.py"],
        "readinessProbe": {"httpGet": {"path": "/healthz", "port": 8080}},
    }
    if limits:
        container["resources"] = {"limits": limits}
    return {
        "apiVersion": "score.dev/v1b1",
        "metadata": {"name": name},
        "containers": {"web": container},
        "service": {"ports": {"web": {"port": 80, "targetPort": 8080}}},
    }


def policy(*metrics: dict[str, Any], max_replicas: int = 3) -> dict[str, Any]:
    return {
        "minReplicas": 1,
        "maxReplicas": max_replicas,
        "metrics": list(metrics),
        "behavior": SCALE_DOWN_HELD,
    }


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlaneProcess]:
    env = {"YUNZHOU_AUTOSCALE_INTERVAL": "0.5", "YUNZHOU_SCRAPE_INTERVAL": "1"}
    with ControlPlaneProcess(
        tmp_path_factory.mktemp("autoscale") / "data", env=env, startup_timeout=90, host_processes=True
    ) as cp:
        yield cp


@pytest.fixture(scope="module")
def client(server: ControlPlaneProcess) -> Iterator[YunzhouClient]:
    with YunzhouClient(server.url, server.admin_token) as c:
        c.create_project("shop")
        c.create_environment("shop", "dev")
        yield c


def deploy(client: YunzhouClient, doc: dict[str, Any], settings: dict[str, Any]) -> None:
    result = client.deploy("shop", "dev", doc, settings, client.upload_artifact(APP))
    name = doc["metadata"]["name"]
    done = client.wait_for_rollout("shop", "dev", name, result["rollout"]["id"], timeout=60, interval=0.1)
    assert done["state"] == "succeeded", done
    assert ready(client, name) == 1


def ready(client: YunzhouClient, app: str) -> int:
    return sum(1 for i in client.list_instances("shop", "dev", app) if i["ready"])


def scaled_out(client: YunzhouClient, app: str) -> list[dict[str, Any]]:
    return [
        d
        for d in client.autoscale_decisions("shop", "dev", app)
        if d["applied"] and d["desired"] > max(1, d["current"])
    ]


def get(server: ControlPlaneProcess, app: str, path: str, timeout: float = 10) -> httpx.Response:
    host = f"{app}.dev.shop.localhost"
    url = f"http://127.0.0.1:{server.router_port}{path}"
    return httpx.get(url, headers={"Host": host}, timeout=timeout, trust_env=False)


class HeldRequests:
    """``n`` clients, each sending one slow request after another through the router (so about ``n``
    are in flight at any time) until stopped; their outcomes are counted."""

    def __init__(self, server: ControlPlaneProcess, app: str, n: int, seconds: float) -> None:
        self.server, self.app, self.seconds = server, app, seconds
        self.outcomes: list[int | str] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(n)]

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                r = get(self.server, self.app, f"/slow?s={self.seconds}", timeout=30)
                self.outcomes.append(r.status_code)
            except httpx.HTTPError as exc:
                self.outcomes.append(type(exc).__name__)

    def __enter__(self) -> HeldRequests:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(35)


def test_cpu_utilization_scales_a_burning_app_out(server: ControlPlaneProcess, client: YunzhouClient) -> None:
    cpu = {"type": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}}
    deploy(client, score("burner", {"cpu": "250m"}), {"autoscaling": policy(cpu)})
    # a memory limit gives the instance a cgroup of its own: no CPU quota, not even an inherited one
    deploy(client, score("unlimited", {"memory": "256Mi"}), {"autoscaling": policy(cpu)})
    started = time.monotonic()
    assert get(server, "burner", "/burn").status_code == 200  # one instance burns all its 0.25 cores
    try:
        wait_until("the burning app to scale out", lambda: ready(client, "burner") > 1, DEADLINE)
        elapsed = time.monotonic() - started
        [decision, *_] = wait_until("an applied scale-out decision", lambda: scaled_out(client, "burner"))
        assert isinstance(decision["inputs"]["proposals"]["cpu"], int)
        assert decision["inputs"]["proposals"]["cpu"] > 1
        limits = decision["inputs"]["requests"]["cpu"]
        assert limits
        assert set(limits.values()) == {0.25}, limits
        assert max(decision["inputs"]["cpu"].values()) > 0.25 * 0.549  # 55 %: target 50 % + tolerance

        def says_why() -> dict[str, Any] | None:
            return next(
                (
                    d
                    for d in client.autoscale_decisions("shop", "dev", "unlimited")
                    if str(d["inputs"].get("proposals", {}).get("cpu", "")).startswith(
                        "invalid: missing request for cpu on instance shop-dev-unlimited-"
                    )
                ),
                None,
            )

        why = wait_until("the unlimited app's decision to say it has no CPU limit", says_why, 30)
        assert why["reason"].startswith("FailedGetMetrics: keeping the count (cpu: missing request for cpu")
        assert set(why["inputs"]["requests"]["cpu"].values()) == {None}
        assert client.get_app("shop", "dev", "unlimited")["replicas"] == 1
        print(
            f"cpu: >1 ready {elapsed:.1f} s after /burn; decision {decision['reason']} {decision['inputs']}"
        )
    finally:
        client.remove_app("shop", "dev", "burner")  # stops the burner: the other tests need the CPU
        client.remove_app("shop", "dev", "unlimited")


def test_inflight_requests_scale_an_app_out(server: ControlPlaneProcess, client: YunzhouClient) -> None:
    inflight = {"type": "inflight", "target": {"type": "AverageValue", "averageValue": 2}}
    deploy(client, score("waiter"), {"autoscaling": policy(inflight, max_replicas=4)})
    started = time.monotonic()
    with HeldRequests(server, "waiter", 6, seconds=2) as held:  # 6 in flight / 2 per instance: 3
        wait_until("the held requests to scale the app out", lambda: ready(client, "waiter") > 1, DEADLINE)
        elapsed = time.monotonic() - started
        [decision, *_] = wait_until("an applied scale-out decision", lambda: scaled_out(client, "waiter"))
    assert decision["inputs"]["inflight"] > 2
    assert decision["inputs"]["proposals"]["inflight"] > 1
    assert decision["desired"] <= 4
    assert held.outcomes
    assert set(held.outcomes) == {200}, held.outcomes
    print(
        f"inflight: >1 ready {elapsed:.1f} s after holding 6; "
        f"decision {decision['reason']} {decision['inputs']}"
    )
    client.remove_app("shop", "dev", "waiter")


def test_a_custom_metric_from_the_app_endpoint_scales_it_out(
    server: ControlPlaneProcess, client: YunzhouClient
) -> None:
    per_instance = {
        "type": "custom",
        "name": "queue_depth",
        "target": {"type": "AverageValue", "averageValue": 5},
    }
    backlog = {
        "type": "custom",
        "name": "backlog",
        "query": 'sum(queue_depth{project="shop",env="dev",app="queue"})',
        "target": {"type": "Value", "value": 100},
    }
    settings = {"metrics": {"port": "web", "path": "/metrics"}, "autoscaling": policy(per_instance, backlog)}
    deploy(client, score("queue"), settings)
    started = time.monotonic()
    assert get(server, "queue", "/queue?n=20").status_code == 200  # 20 queued / 5 per instance: 4, max 3
    wait_until("the backlog to scale the app to maxReplicas", lambda: ready(client, "queue") == 3, DEADLINE)
    elapsed = time.monotonic() - started
    [decision, *_] = wait_until("an applied scale-out decision", lambda: scaled_out(client, "queue"))
    assert 20 in decision["inputs"]["custom:queue_depth"].values()
    assert decision["inputs"]["proposals"]["custom:queue_depth"] > 1
    assert decision["inputs"]["custom:backlog"] == 20  # the query, summed over the app's instances
    assert isinstance(decision["inputs"]["proposals"]["custom:backlog"], int)
    print(
        f"custom: 3 ready {elapsed:.1f} s after queue_depth 20; "
        f"decision {decision['reason']} {decision['inputs']}"
    )
    client.remove_app("shop", "dev", "queue")
