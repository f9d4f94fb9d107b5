"""Every example in docs/metrics.md marked `<!-- tested: … -->` is what the code does."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import Api
from tests.integration.observe.metrics_wiring.conftest import END
from yunzhou.cli.observe import prometheus_config
from yunzhou.domain.settings import parse_settings
from yunzhou.observe.metrics.collect import ScrapeLoop

DOC = (Path(__file__).resolve().parents[4] / "docs" / "metrics.md").read_text()
BLOCK_RE = re.compile(r"<!-- tested: (?P<marker>[^\n]*?) -->\n```(?P<lang>\w+)\n(?P<body>.*?)```", re.DOTALL)
TESTED = {m["marker"].split()[0]: (m["marker"].split()[1:], m["body"]) for m in BLOCK_RE.finditer(DOC)}


def test_the_page_has_every_tested_example() -> None:
    assert set(TESTED) == {
        "settings",
        "query-response",
        "error-response",
        "chart-response",
        "prometheus-config",
    }


def test_settings_example() -> None:
    settings = parse_settings(yaml.safe_load(TESTED["settings"][1]))
    assert settings.metrics is not None
    assert (settings.metrics.port, settings.metrics.path) == ("web", "/metrics")


def test_prometheus_config_example_is_what_the_cli_prints() -> None:
    (url, token_file), body = TESTED["prometheus-config"]
    assert yaml.safe_load(body) == prometheus_config(url, Path(token_file))


def _shape(value: Any) -> Any:
    """Keys and value types, recursively; a list is shaped by its first item."""
    if isinstance(value, dict):
        return {k: _shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_shape(value[0])] if value else []
    return (
        "number" if isinstance(value, int | float) and not isinstance(value, bool) else type(value).__name__
    )


def test_query_response_example(shop: tuple[Api, ScrapeLoop]) -> None:
    api, _ = shop
    q = 'sum by (project, env, app, code) (rate(yunzhou_router_requests_total{app="orders",code="2xx"}[1m]))'
    real = api.http.get("/api/v1/metrics/query", params={"query": q, "time": END}, headers=api.admin).json()
    assert _shape(json.loads(TESTED["query-response"][1])) == _shape(real)


def test_error_response_example(shop: tuple[Api, ScrapeLoop]) -> None:
    api, _ = shop
    params = {"query": "up", "start": "0", "end": "100000", "step": "1"}
    real = api.http.get("/api/v1/metrics/query_range", params=params, headers=api.admin)
    assert real.status_code == 400
    assert json.loads(TESTED["error-response"][1]) == real.json()


def test_chart_response_example(shop: tuple[Api, ScrapeLoop]) -> None:
    api, _ = shop
    path = "/api/v1/projects/shop/environments/dev/apps/orders/metrics"
    real = api.http.get(path, params={"window": "15m", "end": END}, headers=api.admin).json()
    documented = json.loads(TESTED["chart-response"][1])
    assert _shape(documented) == _shape(real)
    strip = [{k: v for k, v in s.items() if k not in ("points", "query")} for s in real["series"]]
    assert strip == [
        {k: v for k, v in s.items() if k not in ("points", "query")} for s in documented["series"]
    ]
    assert (documented["window"], documented["step"], documented["end"] - documented["start"]) == (
        real["window"],
        real["step"],
        real["end"] - real["start"],
    )


@pytest.mark.parametrize(
    "name", ["request_rate", "error_rate", "latency_p50", "latency_p99", "cpu", "memory"]
)
def test_chart_values_in_the_example_are_plausible(shop: tuple[Api, ScrapeLoop], name: str) -> None:
    api, _ = shop
    path = "/api/v1/projects/shop/environments/dev/apps/orders/metrics"
    real = api.http.get(path, params={"window": "15m", "end": END}, headers=api.admin).json()
    documented = {s["name"]: s["points"][0][1] for s in json.loads(TESTED["chart-response"][1])["series"]}
    last = next(s for s in real["series"] if s["name"] == name)["points"][-1][1]
    assert last == pytest.approx(documented[name], rel=0.35)
