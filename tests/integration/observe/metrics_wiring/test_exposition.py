"""The text exposition format: what the router and apps serve parses; what /metrics serves renders back."""

from __future__ import annotations

import math

import pytest

from yunzhou.observe.metrics.collect_router import relabel, split_app_key
from yunzhou.observe.metrics.exposition import ExpositionError, parse, render
from yunzhou.router.metrics import RouterMetrics


def test_router_text_parses_and_relabels_to_project_env_app() -> None:
    metrics = RouterMetrics()
    metrics.request_started("shop/dev/orders")
    metrics.request_finished("shop/dev/orders", 3, 200, 0.004)
    metrics.request_started("shop/dev/orders")
    exposition = parse(metrics.render())
    assert exposition.types["yunzhou_router_requests_total"] == "counter"
    assert exposition.types["yunzhou_router_request_duration_seconds"] == "histogram"
    assert (
        exposition.helps["yunzhou_router_requests_total"]
        == "Proxied requests by app, release and status class."
    )
    by_name = {(s.name, tuple(sorted(relabel(s.labels).items()))): s.value for s in exposition.samples}
    key = (("app", "orders"), ("code", "2xx"), ("env", "dev"), ("project", "shop"), ("release", "3"))
    assert by_name["yunzhou_router_requests_total", key] == 1
    inf = (("app", "orders"), ("env", "dev"), ("le", "+Inf"), ("project", "shop"), ("release", "3"))
    assert by_name["yunzhou_router_request_duration_seconds_bucket", inf] == 1
    flight = (("app", "orders"), ("env", "dev"), ("project", "shop"))
    assert by_name["yunzhou_router_requests_in_flight", flight] == 1
    assert by_name["yunzhou_router_config_version", ()] == 0


def test_labels_escapes_timestamps_and_special_values() -> None:
    text = (
        "# HELP x_total Help with \\\\ and \\n.\n"
        "# TYPE x_total counter\n"
        'x_total{path="/a\\"b\\\\c\\nd",method="GET"} 12 1700000000000\n'
        "nan_gauge NaN\n"
        'inf_gauge{a="1",} +Inf\n'
        "  \n"
        "# a comment\n"
    )
    exposition = parse(text)
    first, nan, inf = exposition.samples
    assert first.labels == {"path": '/a"b\\c\nd', "method": "GET"}
    assert first.value == 12
    assert first.timestamp_ms == 1_700_000_000_000
    assert math.isnan(nan.value)
    assert inf.value == math.inf
    assert inf.labels == {"a": "1"}


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("ok 1\n9bad 1\n", 2),
        ('x{a="1" 1\n', 1),
        ("x{a=1} 1\n", 1),
        ("x one\n", 1),
        ("x 1 2 3\n", 1),
        ('x{a="1",a="2"} 1\n', 1),
        ("# TYPE x bogus\n", 1),
        ('x{a="\\q"} 1\n', 1),
        ("x 1 soon\n", 1),
    ],
)
def test_bad_text_names_the_line(text: str, line: int) -> None:
    with pytest.raises(ExpositionError) as caught:
        parse(text)
    assert caught.value.line == line


def test_render_groups_families_and_round_trips() -> None:
    samples = [
        ("req_seconds_bucket", {"le": "+Inf", "app": "a"}, 3.0),
        ("req_seconds_count", {"app": "a"}, 3.0),
        ("up", {}, 1.0),
        ("req_seconds_bucket", {"le": "0.1", "app": "a"}, 2.0),
        ("temp", {"where": 'q"uote'}, 21.5),
    ]
    text = render(samples, {"req_seconds": "histogram", "up": "gauge"}, {"up": "Is it up."})
    lines = text.splitlines()
    assert lines[0] == "# TYPE req_seconds histogram"
    assert lines.count("# TYPE req_seconds histogram") == 1
    assert "# HELP up Is it up." in lines
    assert "# TYPE temp untyped" in lines
    back = {(s.name, tuple(sorted(s.labels.items()))): s.value for s in parse(text).samples}
    assert back == {(n, tuple(sorted(labels.items()))): v for n, labels, v in samples}


def test_app_keys() -> None:
    assert split_app_key("shop/dev/orders") == {"project": "shop", "env": "dev", "app": "orders"}
    assert split_app_key("orders") is None
    assert relabel({"app": "not-a-key", "x": "1"}) == {"app": "not-a-key", "x": "1"}
    assert relabel({"app": "shop/dev/orders", "backend": "shop-dev-orders-r1-ab12"}) == {
        "project": "shop",
        "env": "dev",
        "app": "orders",
        "instance": "shop-dev-orders-r1-ab12",
    }
