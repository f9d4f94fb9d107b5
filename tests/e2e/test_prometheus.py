"""The must-show: Debian's Prometheus scrapes a running Yunzhou (local runtime, a real app behind the real
router, with traffic) using the config `yunzhou observe prometheus-config` prints, and a PromQL query
through Prometheus's HTTP API returns the app's request rate with project/env/app/release labels. The
same query through Yunzhou's embedded engine agrees in shape, and so does PrometheusQueryEngine (the
YUNZHOU_PROMETHEUS_URL path) talking to that Prometheus."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from yunzhou.client import YunzhouClient
from yunzhou.domain.errors import UserError
from yunzhou.observe.metrics.remote import PrometheusQueryEngine
from yunzhou.testing import ControlPlaneProcess, polling
from yunzhou.testing.prometheus import PrometheusServer

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
APP_DIR = Path(__file__).parent / "metrics_app"
HOST = "orders.dev.shop.localhost"
RATE = 'rate(yunzhou_router_requests_total{project="shop",env="dev",app="orders",code="2xx"}[10s])'
DEADLINE = 90.0


def wait_until(what: str, check: Callable[[], Any], timeout: float = DEADLINE) -> Any:
    return polling.wait_until(what, check, timeout, interval=0.2)


class Load:
    """Requests through the router at a steady pace until stopped."""

    def __init__(self, router: str) -> None:
        self.router = router
        self.sent = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(base_url=f"http://{self.router}", headers={"Host": HOST}, timeout=10) as c:
            while not self._stop.is_set():
                c.get("/")
                self.sent += 1
                self._stop.wait(0.02)  # pacing of the load, not a wait for a condition

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(15)


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ControlPlaneProcess, YunzhouClient]]:
    data = tmp_path_factory.mktemp("yunzhou") / "data"
    with (
        ControlPlaneProcess(data, env={"YUNZHOU_SCRAPE_INTERVAL": "0.5"}, host_processes=True) as server,
        YunzhouClient(server.url, server.admin_token) as client,
    ):
        client.create_project("shop")
        client.create_environment("shop", "dev")
        settings = yaml.safe_load((APP_DIR / "yunzhou.yaml").read_text())
        doc = yaml.safe_load((APP_DIR / "score.yaml").read_text())
        result = client.deploy("shop", "dev", doc, settings, client.upload_artifact(APP_DIR))
        rollout_id = result["rollout"]["id"]
        rollout = client.wait_for_rollout("shop", "dev", "orders", rollout_id, timeout=DEADLINE, interval=0.2)
        assert rollout["state"] == "succeeded", rollout
        doc["metadata"]["name"] = "broken"  # the same app, serving text that is not the exposition format
        doc["containers"]["web"]["variables"] = {"METRICS_BROKEN": "1"}
        doc["containers"]["web"]["resources"] = {"limits": {"memory": "128Mi"}}  # read back from its cgroup
        result = client.deploy("shop", "dev", doc, settings, client.upload_artifact(APP_DIR))
        rollout = client.wait_for_rollout("shop", "dev", "broken", result["rollout"]["id"], timeout=DEADLINE)
        assert rollout["state"] == "succeeded", rollout
        with Load(f"127.0.0.1:{server.router_port}"):
            yield server, client


@pytest.fixture(scope="module")
def prometheus(
    running: tuple[ControlPlaneProcess, YunzhouClient], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PrometheusServer]:
    server, client = running
    # Prometheus holds a read-only `metrics` token of its own, as docs/metrics.md advises
    token_file = tmp_path_factory.mktemp("prometheus-token") / "token"
    token_file.write_text(client.create_token("prometheus", ["metrics"])["token"])
    printed = subprocess.run(
        [sys.executable, "-m", "yunzhou", "observe", "prometheus-config", "--interval", "1s",
         "--credentials-file", str(token_file)],
        env=server.client_env(), capture_output=True, text=True, timeout=60, check=True,
    ).stdout  # fmt: skip
    config = yaml.safe_load(printed)
    job = config["scrape_configs"][0]
    assert job["static_configs"] == [{"targets": [f"127.0.0.1:{server.api_port}"]}]
    assert job["metrics_path"] == "/metrics"
    assert job["authorization"]["credentials_file"] == str(token_file.resolve())
    with PrometheusServer(tmp_path_factory.mktemp("prometheus"), printed) as prom:
        yield prom


def test_prometheus_scrapes_yunzhou_and_returns_the_apps_request_rate(prometheus: PrometheusServer) -> None:
    up = wait_until("the scrape to succeed", lambda: [s for s in prometheus.query('up{job="yunzhou"}')
                                                      if s["value"][1] == "1"])  # fmt: skip
    assert len(up) == 1
    result = wait_until(
        "a request rate > 0", lambda: [s for s in prometheus.query(RATE) if float(s["value"][1]) > 0]
    )
    [series] = result
    labels = series["metric"]
    assert {k: labels[k] for k in ("project", "env", "app", "release", "code", "job")} == {
        "project": "shop",
        "env": "dev",
        "app": "orders",
        "release": "1",
        "code": "2xx",
        "job": "yunzhou",
    }
    # the app's own endpoint, scraped by Yunzhou per instance, reaches Prometheus with the app's labels
    orders = wait_until("orders_total", lambda: prometheus.query('orders_total{app="orders"} > 0'))
    assert {k: orders[0]["metric"][k] for k in ("project", "env", "app", "release", "kind")} == {
        "project": "shop",
        "env": "dev",
        "app": "orders",
        "release": "1",
        "kind": "book",
    }
    assert orders[0]["metric"]["instance"].startswith("shop-dev-orders-r1-")
    # an app serving bad text is counted and reported, and costs nothing else
    failures = 'yunzhou_app_scrape_failures_total{app="broken"} > 0'
    broken = wait_until("the broken endpoint to be counted", lambda: prometheus.query(failures))
    assert broken[0]["metric"]["instance"].startswith("shop-dev-broken-r1-")
    assert prometheus.query('yunzhou_app_scrape_up{app="broken"} == 0')
    assert prometheus.query('yunzhou_app_scrape_up{app="orders"} == 1')
    assert not prometheus.query('orders_total{app="broken"}')
    # the control plane's own metrics: reconcile passes, work queue, HTTP requests by route template
    assert prometheus.query('yunzhou_reconcile_pass_duration_seconds_count{kind="app",result="ok"} > 0')
    assert prometheus.query("yunzhou_reconcile_queue_depth")
    deploys = 'yunzhou_http_requests_total{route="/api/v1/projects/{project}/environments/{env}/deployments"}'
    assert [s["metric"]["code"] for s in prometheus.query(deploys)] == ["201"]
    # instance and host series are there too
    limit = wait_until(
        "a memory limit", lambda: prometheus.query('yunzhou_instance_memory_limit_bytes{app="broken"}')
    )
    assert float(limit[0]["value"][1]) == 128 << 20
    assert not prometheus.query('yunzhou_instance_memory_limit_bytes{app="orders"}')  # no limit, no series
    assert prometheus.query('yunzhou_instance_ready{app="orders"} == 1')
    assert prometheus.query('yunzhou_host_memory_bytes{kind="total"} > 0')


def test_embedded_engine_and_remote_engine_agree_in_shape(
    running: tuple[ControlPlaneProcess, YunzhouClient], prometheus: PrometheusServer
) -> None:
    _, client = running

    def embedded_rates() -> list[dict[str, Any]]:
        return [s for s in client.metrics_query(RATE)["result"] if float(s["value"][1]) > 0]

    embedded = wait_until("an embedded rate > 0", embedded_rates)
    remote_engine = PrometheusQueryEngine(prometheus.url)
    try:
        remote = wait_until("a remote rate > 0", lambda: remote_engine.instant(RATE, time.time())["result"])
        assert remote_engine.instant(RATE, time.time())["resultType"] == "vector"
        with pytest.raises(UserError) as caught:
            remote_engine.instant("sum(rate(", time.time())
        assert caught.value.problems[0].path == "query"
    finally:
        remote_engine.close()
    ignore = {"job", "instance"}  # target labels Prometheus adds
    assert [{k: v for k, v in s["metric"].items() if k not in ignore} for s in embedded] == [
        {k: v for k, v in s["metric"].items() if k not in ignore} for s in remote
    ]
    for series in embedded + remote:
        t, value = series["value"]
        assert isinstance(t, float | int)
        assert isinstance(value, str)
        assert float(value) > 0

    def chart_rates() -> list[float]:
        # the chart's steps are aligned to the window's step (15 s): its newest point may predate the rate
        charts = client.app_metrics("shop", "dev", "orders", "15m")
        series = next(s for s in charts["series"] if s["name"] == "request_rate")
        return [v for _, v in series["points"] if v]

    assert all(v > 0 for v in wait_until("a request rate in the app's chart", chart_rates))


def test_a_server_with_yunzhou_prometheus_url_queries_that_prometheus(
    prometheus: PrometheusServer, tmp_path: Path
) -> None:
    """A second control plane (API only) pointed at the Prometheus: its query API answers from there,
    which the target labels Prometheus adds (job) show."""
    env = {"YUNZHOU_PROMETHEUS_URL": prometheus.url, "YUNZHOU_SCRAPE_INTERVAL": "0.2"}
    with (
        ControlPlaneProcess(
            tmp_path / "data", env=env, extra_args=("--no-runtime",), host_processes=True
        ) as server,
        YunzhouClient(server.url, server.admin_token) as client,
    ):
        result = wait_until("a request rate from Prometheus", lambda: client.metrics_query(RATE)["result"])
        assert result[0]["metric"]["job"] == "yunzhou"
        assert result[0]["metric"]["app"] == "orders"
        # its own /metrics still serves what it collects itself (host series in --no-runtime mode)
        auth = {"Authorization": f"Bearer {server.admin_token}"}

        def exposition() -> str:
            text = httpx.get(f"{server.url}/metrics", headers=auth, timeout=10).text
            return text if "yunzhou_host_memory_bytes{" in text else ""

        text = wait_until("host series on /metrics", exposition)
        assert 'yunzhou_host_memory_bytes{kind="total"}' in text
        bad = httpx.get(f"{server.url}/api/v1/metrics/query", params={"query": "sum(rate("}, headers=auth)
        assert bad.status_code == 400
        assert bad.json()["errorType"] == "bad_data"
