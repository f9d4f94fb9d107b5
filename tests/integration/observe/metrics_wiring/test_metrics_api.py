"""The metrics API in process, over the real store and engine fed by the real scrape loop: Prometheus-style
query envelopes, /metrics and its auth, and the per-app chart series the console draws."""

from __future__ import annotations

import pytest

from tests.conftest import Api
from tests.integration.observe.metrics_wiring.conftest import END, T0
from yunzhou.observe.metrics.collect import ScrapeLoop


def test_instant_query_answers_like_prometheus(shop: tuple[Api, ScrapeLoop]) -> None:
    api, _ = shop
    q = 'sum by (project, env, app, code) (rate(yunzhou_router_requests_total{app="orders"}[1m]))'
    r = api.http.get("/api/v1/metrics/query", params={"query": q, "time": END}, headers=api.admin)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "success"
    assert body["data"]["resultType"] == "vector"
    rates = {s["metric"]["code"]: float(s["value"][1]) for s in body["data"]["result"]}
    assert rates == pytest.approx({"2xx": 4.5, "3xx": 0.0, "4xx": 0.0, "5xx": 0.5})
    assert {k for s in body["data"]["result"] for k in s["metric"]} == {"project", "env", "app", "code"}


def test_range_query_and_rfc3339_times(shop: tuple[Api, ScrapeLoop]) -> None:
    api, _ = shop
    params = {"query": "sum(yunzhou_instance_memory_bytes)", "start": "2023-11-14T22:20:00Z",
              "end": "2023-11-14T22:25:00Z", "step": "1m"}  # fmt: skip
    r = api.http.get("/api/v1/metrics/query_range", params=params, headers=api.admin)
    assert r.status_code == 200, r.text
    data = r.json()["data"]
    assert data["resultType"] == "matrix"
    assert [float(v) for _, v in data["result"][0]["values"]] == [100 << 20] * 6


@pytest.mark.parametrize(
    ("path", "params", "fragment"),
    [
        ("/api/v1/metrics/query", {"query": "sum(rate(x[5m]"}, ""),
        ("/api/v1/metrics/query", {"query": "up", "time": "yesterday"}, "time"),
        ("/api/v1/metrics/query", {"query": "(" * 3000 + "1" + ")" * 3000}, "query: parse error"),
        ("/api/v1/metrics/query_range", {"query": "up", "start": "0", "end": "100000", "step": "1"}, "step"),
        ("/api/v1/metrics/query_range", {"query": "up", "start": "10", "end": "0", "step": "1"}, "end"),
        ("/api/v1/metrics/query_range", {"query": "up", "start": "0", "end": "10", "step": "-1s"}, "step"),
    ],
)
def test_errors_use_the_prometheus_envelope(
    shop: tuple[Api, ScrapeLoop], path: str, params: dict[str, str], fragment: str
) -> None:
    api, _ = shop
    r = api.http.get(path, params=params, headers=api.admin)
    assert r.status_code == 400, r.text
    body = r.json()
    assert body["status"] == "error"
    assert body["errorType"] == "bad_data"
    assert fragment in body["error"]


def test_raw_promql_and_exposition_need_a_platform_token(shop: tuple[Api, ScrapeLoop]) -> None:
    api, _ = shop
    reader = api.token_for("dashboard", ("read",))
    assert api.http.get("/api/v1/metrics/query", params={"query": "up"}, headers=reader).status_code == 403
    assert api.http.get("/metrics", headers=reader).status_code == 403
    assert api.http.get("/metrics").status_code == 401


def test_exposition_serves_collected_and_own_metrics(shop: tuple[Api, ScrapeLoop]) -> None:
    api, _ = shop
    api.http.get("/api/v1/projects", headers=api.admin)  # counted by the HTTP middleware
    r = api.http.get("/metrics", headers=api.admin)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    lines = r.text.splitlines()
    assert "# TYPE yunzhou_router_requests_total counter" in lines
    assert "# HELP yunzhou_router_requests_total Proxied requests by app, release and status class." in lines
    assert (
        'yunzhou_router_requests_total{app="orders",code="2xx",env="dev",project="shop",release="1"} 4095'
        in lines
    )
    memory = (
        'yunzhou_instance_memory_bytes{app="orders",env="dev",instance="orders-1",project="shop",release="1"}'
    )
    assert f"{memory} 104857600" in lines
    assert any(
        line.startswith('yunzhou_http_requests_total{code="200",method="GET",route="/api/v1/projects"}')
        for line in lines
    )


def test_app_chart_series(shop: tuple[Api, ScrapeLoop]) -> None:
    api, _ = shop
    r = api.http.get(
        "/api/v1/projects/shop/environments/dev/apps/orders/metrics",
        params={"window": "15m", "end": END},
        headers=api.member("shop", "vera", "viewer", ("read",)),
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["app"], body["window"], body["step"]) == ("shop/dev/orders", "15m", 15)
    assert body["end"] - body["start"] == 900
    series = {s["name"]: s for s in body["series"]}
    assert list(series) == ["request_rate", "error_rate", "latency_p50", "latency_p99", "cpu", "memory"]
    assert {s["unit"] for s in body["series"]} == {"req/s", "ratio", "seconds", "cores", "bytes"}

    def settled(name: str) -> list[float]:  # points after the first rate window filled
        return [v for t, v in series[name]["points"] if t >= T0 + 120]

    assert settled("request_rate") == pytest.approx([5.0] * len(settled("request_rate")))
    assert settled("error_rate") == pytest.approx([0.1] * len(settled("error_rate")))
    assert all(0.0025 <= v <= 0.005 for v in settled("latency_p50"))
    assert settled("cpu") == pytest.approx([0.05] * len(settled("cpu")))
    assert settled("memory") == [100 << 20] * len(settled("memory"))
    assert len(settled("request_rate")) > 40


def test_app_chart_window_is_validated_and_apps_must_exist(shop: tuple[Api, ScrapeLoop]) -> None:
    api, _ = shop
    base = "/api/v1/projects/shop/environments/dev/apps/"
    r = api.http.get(base + "orders/metrics", params={"window": "2h"}, headers=api.admin)
    assert r.status_code == 422
    assert r.json()["error"]["problems"][0]["path"] == "query.window"
    assert api.http.get(base + "nope/metrics", headers=api.admin).status_code == 404
