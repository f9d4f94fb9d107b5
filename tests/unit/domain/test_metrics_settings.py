"""The settings' `metrics:` key: an app's own Prometheus endpoint, validated with field paths."""

from __future__ import annotations

import pytest

from yunzhou.domain.errors import UserError
from yunzhou.domain.metrics import MetricsEndpoint, chart_window, metrics_problems
from yunzhou.domain.settings import parse_settings


def test_declared_endpoint_is_kept_in_the_effective_settings() -> None:
    settings = parse_settings({"metrics": {"port": "web", "path": "/metrics"}})
    assert settings.metrics == MetricsEndpoint("web", "/metrics")
    assert settings.to_dict()["metrics"] == {"port": "web", "path": "/metrics"}


def test_no_endpoint_by_default_and_path_defaults_to_metrics() -> None:
    assert parse_settings({}).metrics is None
    assert "metrics" not in parse_settings({}).to_dict()
    assert parse_settings({"metrics": {}}).metrics == MetricsEndpoint(None, "/metrics")


def test_environment_override() -> None:
    doc = {"metrics": {"path": "/metrics"}, "environments": {"prod": {"metrics": {"path": "/prom"}}}}
    settings = parse_settings(doc, "prod")
    assert settings.metrics is not None
    assert settings.metrics.path == "/prom"


@pytest.mark.parametrize(
    ("value", "path"),
    [
        ("yes", "settings.metrics"),
        ({"port": 0}, "settings.metrics.port"),
        ({"port": "Web_1"}, "settings.metrics.port"),
        ({"path": "metrics"}, "settings.metrics.path"),
        ({"path": "/m?x=1"}, "settings.metrics.path"),
        ({"interval": "5s"}, "settings.metrics.interval"),
    ],
)
def test_problems_name_the_field(value: object, path: str) -> None:
    assert [p.path for p in metrics_problems(value)] == [path]
    with pytest.raises(UserError) as caught:
        parse_settings({"metrics": value})
    assert path in [p.path for p in caught.value.problems]


def test_chart_windows() -> None:
    assert chart_window("1h") == (3600, "1m", 60)
    with pytest.raises(UserError) as caught:
        chart_window("2h")
    assert caught.value.problems[0].path == "query.window"
    assert "15m, 1h, 6h, 24h, 7d" in caught.value.message
