"""The Metrics tab over the in-process API with a real metrics store and query engine: the charts'
data in display units, the empty state, a server without a metrics engine, windows, and languages."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator

import pytest

from tests.conftest import Api
from tests.integration.web.conftest import Browser
from yunzhou.observe.metrics import MetricStore, QueryEngine
from yunzhou.web.i18n import translate
from yunzhou.web.metrics_pages import chart_data

TAB = "/projects/shop/dev/apps/web/metrics"
LABELS = {"project": "shop", "env": "dev", "app": "web", "release": "1"}


def seed(api: Api) -> None:
    score = {
        "apiVersion": "score.dev/v1b1",
        "metadata": {"name": "web"},
        "containers": {"web": {"image": "python:3.11-slim", "command": ["python3", "app.py"]}},
    }
    for method, path, body in (
        ("POST", "/api/v1/projects", {"name": "shop"}),
        ("POST", "/api/v1/projects/shop/environments", {"name": "dev"}),
        ("POST", "/api/v1/projects/shop/environments/dev/deployments", {"score": score}),
    ):
        r = api.http.request(method, path, json=body, headers=api.admin)
        assert r.status_code in (200, 201), r.text


@pytest.fixture
def store(web_api: Api) -> Iterator[MetricStore]:
    metric_store = MetricStore.open(None)
    web_api.http.app.state.metrics = QueryEngine(metric_store)
    yield metric_store
    metric_store.close()


def traffic(store: MetricStore, minutes: int = 5) -> None:
    """What the scrape loop would have stored: 10 req/s (1 in 10 a 5xx), 20 ms each, 64 MiB, 0.5 cores."""
    now = time.time()
    rows = []
    for i in range(minutes * 6 + 1):
        t = now - minutes * 60 + i * 10
        n = i * 100
        rows += [
            ("yunzhou_router_requests_total", {**LABELS, "code": "2xx"}, n * 0.9, t),
            ("yunzhou_router_requests_total", {**LABELS, "code": "5xx"}, n * 0.1, t),
            ("yunzhou_router_request_duration_seconds_bucket", {**LABELS, "le": "0.025"}, float(n), t),
            ("yunzhou_router_request_duration_seconds_bucket", {**LABELS, "le": "+Inf"}, float(n), t),
            ("yunzhou_instance_cpu_seconds_total", {**LABELS, "instance": "i1"}, i * 5.0, t),
            ("yunzhou_instance_memory_bytes", {**LABELS, "instance": "i1"}, 64 * 1048576.0, t),
        ]
    store.append_many(rows)


def embedded(page: str) -> dict:  # type: ignore[type-arg]
    match = re.search(r'<script type="application/json" id="metrics-data">(.*?)</script>', page, re.S)
    assert match, page[-2000:]
    return json.loads(match.group(1))  # type: ignore[no-any-return]


def latest(data: dict, key: str, line: int = 0) -> float:  # type: ignore[type-arg]
    chart = next(c for c in data["charts"] if c["key"] == key)
    value = chart["series"][line]["latest"]
    assert value is not None, chart
    return float(value)


def test_charts_show_the_stored_series_in_display_units(
    browser: Browser, web_api: Api, store: MetricStore
) -> None:
    seed(web_api)
    traffic(store)
    browser.login(web_api.admin_token)
    page = browser.http.get(TAB + "?window=15m")
    assert page.status_code == 200, page.text[:500]
    data = embedded(page.text)
    assert data["has_data"]
    assert 'id="metrics-empty" hidden' in page.text
    assert latest(data, "request_rate") == pytest.approx(10, rel=0.05)
    assert latest(data, "error_rate") == pytest.approx(10, rel=0.05)  # percent
    assert 0 < latest(data, "latency", 0) <= 25  # ms
    assert latest(data, "cpu") == pytest.approx(0.5, rel=0.05)
    assert latest(data, "memory") == pytest.approx(64)  # MiB
    # every 15 s step of the window is there (gaps as null), in ms for the time axis
    points = data["charts"][0]["series"][0]["points"]
    assert len(points) == 61
    assert points[1][0] - points[0][0] == 15_000
    assert 'aria-current="page" class="current">15 min' in page.text
    # the open tab's refresh gets the same JSON
    fresh = browser.http.get(TAB + "/data?window=15m")
    assert fresh.headers["content-type"].startswith("application/json")
    assert fresh.json()["charts"][0]["key"] == "request_rate"
    assert fresh.headers["cache-control"] == "no-store"


def test_no_samples_shows_the_empty_state(browser: Browser, web_api: Api, store: MetricStore) -> None:
    seed(web_api)
    browser.login(web_api.admin_token)
    page = browser.http.get(TAB)
    assert page.status_code == 200
    assert embedded(page.text)["has_data"] is False
    assert 'id="metrics-charts" hidden' in page.text
    assert "No data yet" in page.text
    zh = browser.http.get(TAB + "?window=7d", headers={"Accept-Language": "zh-CN"}).text
    assert "暂无数据" in zh
    assert "7 天" in zh


def test_a_server_without_a_metrics_engine_says_so(browser: Browser, web_api: Api) -> None:
    seed(web_api)
    browser.login(web_api.admin_token)
    page = browser.http.get(TAB + "?window=bogus")  # an unknown window falls back to 1 h
    assert page.status_code == 200
    assert 'id="metrics-unavailable"' in page.text
    assert 'aria-current="page" class="current">1 hour' in page.text
    assert browser.http.get(TAB + "/data").json()["unavailable"]


def test_a_viewer_reads_metrics_and_a_stranger_does_not(
    browser: Browser, web_api: Api, store: MetricStore
) -> None:
    seed(web_api)
    traffic(store)
    browser.login(web_api.member("shop", "vera", "viewer")["Authorization"].removeprefix("Bearer "))
    assert embedded(browser.http.get(TAB).text)["has_data"]
    stranger = Browser(web_api)
    with stranger.http:
        stranger.login(web_api.token_for("eve")["Authorization"].removeprefix("Bearer "))
        refused = stranger.http.get(TAB)
        assert refused.status_code in (403, 404)  # the API does not say whether a project it hides exists
        assert "metrics-data" not in refused.text


def test_chart_data_fills_the_window_and_translates() -> None:
    answer = {
        "start": 1000.0, "end": 1060.0, "step": 15,
        "series": [{"name": "request_rate", "points": [[1030.0, 2.0], [1045.0, float("nan")]]},
                   {"name": "memory", "points": [[1060.0, 2 * 1048576.0]]}],
    }  # fmt: skip
    data = chart_data(answer, "15m", lambda key, **v: translate("zh-CN", key, **v))
    rate = data["charts"][0]
    assert rate["title"] == "请求速率"
    assert rate["series"][0]["points"] == [
        [1000000.0, None], [1015000.0, None], [1030000.0, 2.0], [1045000.0, None], [1060000.0, None]
    ]  # fmt: skip
    assert rate["samples"] == 1
    assert data["charts"][-1]["series"][0]["latest"] == 2.0
    assert [c["key"] for c in data["charts"]] == ["request_rate", "error_rate", "latency", "cpu", "memory"]
    assert chart_data({"series": []}, "1h", lambda key, **v: key)["has_data"] is False
