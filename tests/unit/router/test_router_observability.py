"""Metrics exposition, access-log format and the small HTTP helpers: pure, no sockets."""

from __future__ import annotations

import json

from yunzhou.router.accesslog import _utc_timestamp, format_lines
from yunzhou.router.http import (
    RequestIds,
    connection_tokens,
    json_error_body,
    reason_phrase,
    simple_response,
    valid_request_id,
)
from yunzhou.router.metrics import RouterMetrics


def samples(text: str) -> dict[str, float]:
    return {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line and not line.startswith("#")
    }


def test_requests_are_counted_by_status_class_with_a_cumulative_histogram() -> None:
    metrics = RouterMetrics()
    for status, seconds in [(200, 0.0004), (201, 0.003), (404, 0.2), (502, 61.0)]:
        metrics.request_started("shop/dev/orders")
        metrics.request_finished("shop/dev/orders", 3, status, seconds)
    metrics.request_started("shop/dev/orders")  # still in flight
    values = samples(metrics.render())
    labels = 'app="shop/dev/orders",release="3"'
    assert values[f'yunzhou_router_requests_total{{{labels},code="2xx"}}'] == 2
    assert values[f'yunzhou_router_requests_total{{{labels},code="4xx"}}'] == 1
    assert values[f'yunzhou_router_requests_total{{{labels},code="5xx"}}'] == 1
    bucket = "yunzhou_router_request_duration_seconds_bucket"
    assert values[f'{bucket}{{{labels},le="0.0005"}}'] == 1
    assert values[f'{bucket}{{{labels},le="0.005"}}'] == 2
    assert values[f'{bucket}{{{labels},le="0.25"}}'] == 3
    assert values[f'{bucket}{{{labels},le="60"}}'] == 3
    assert values[f'{bucket}{{{labels},le="+Inf"}}'] == 4
    assert values[f"yunzhou_router_request_duration_seconds_count{{{labels}}}"] == 4
    assert values['yunzhou_router_requests_in_flight{app="shop/dev/orders"}'] == 1


def test_every_family_has_help_and_type_and_labels_are_escaped() -> None:
    metrics = RouterMetrics()
    metrics.request_started('we"ird\\app')
    metrics.request_finished('we"ird\\app', None, 200, 0.01)
    metrics.connect_failed("shop/dev/orders", "i-1")
    metrics.config_version = 12
    text = metrics.render()
    families = {line.split()[2] for line in text.splitlines() if line.startswith("# TYPE")}
    helps = {line.split()[2] for line in text.splitlines() if line.startswith("# HELP")}
    assert families == helps
    assert "yunzhou_router_upstream_connect_failures_total" in families
    assert 'app="we\\"ird\\\\app",release=""' in text
    values = samples(text)
    assert values["yunzhou_router_config_version"] == 12
    assert values['yunzhou_router_upstream_connect_failures_total{app="shop/dev/orders",backend="i-1"}'] == 1
    assert text.endswith("\n")


def test_backend_in_flight_counts_only_busy_backends() -> None:
    metrics = RouterMetrics()
    metrics.backend_started("i-1")
    metrics.backend_started("i-1")
    metrics.backend_started("i-2")
    metrics.backend_finished("i-2")
    metrics.backend_finished("i-1")
    assert metrics.backend_in_flight == {"i-1": 1}
    assert 'yunzhou_router_backend_requests_in_flight{backend="i-1"} 1' in metrics.render()


def test_access_log_time_is_utc_with_milliseconds() -> None:
    assert _utc_timestamp(0.25) == "1970-01-01T00:00:00.250Z"


def test_access_log_lines_formatted_in_batches_are_what_json_dumps_writes() -> None:
    """The batch formatter writes each line itself (no dict, no json.dumps per request): same bytes."""
    entries = [
        (
            1733616000.1239,
            "shop/dev/orders",
            "i-1",
            3,
            "GET",
            "orders.example.com",
            "/a?b=1",
            200,
            1024,
            0.0123456,
            "r1",
        ),
        (1733616000.9999, None, None, None, "POST", "x.test", '/"q"\\\n\u00e9\t\x01', 404, 0, 2.5, "r-2"),
        (1733616001.0004, "a/b/c", "i-é", 0, "GET", "héllo.test", "/\u2028", 499, 7, 0.0, "r_3"),
    ]
    keys = ("app", "backend", "release", "method", "host", "path", "status", "bytes")
    for entry, line in zip(entries, format_lines(entries), strict=True):
        now, *fields, duration, request_id = entry
        expected = {"time": _utc_timestamp(now), **dict(zip(keys, fields, strict=True))}
        expected |= {"duration_ms": round(duration * 1000, 3), "request_id": request_id}
        assert line == json.dumps(expected, ensure_ascii=False, separators=(",", ":"))


def test_connection_header_tokens_name_extra_hop_by_hop_headers() -> None:
    assert connection_tokens(b"keep-alive, X-Hop, close,  Foo ", None) == {b"x-hop", b"foo"}


def test_request_ids_are_unique_and_validated() -> None:
    ids = RequestIds()
    made = {ids.next() for _ in range(1000)}
    assert len(made) == 1000
    assert all(len(i) == 32 and valid_request_id(i.encode()) for i in made)
    assert valid_request_id(b"req-123_abc.def:1/2+3=")
    assert not valid_request_id(b"")
    assert not valid_request_id(b"has space")
    assert not valid_request_id(b"x" * 129)
    assert not valid_request_id(b"new\r\nline")


def test_error_bodies_are_json_built_as_data() -> None:
    body = json_error_body(404, "no_route", "no route for host '\"}evil'", "rid")
    assert json.loads(body) == {
        "error": {
            "code": "no_route",
            "message": "no route for host '\"}evil'",
            "status": 404,
            "request_id": "rid",
        }
    }


def test_simple_response_is_framed_by_content_length() -> None:
    response = simple_response(503, b"{}", keep_alive=False, extra=[(b"X-Request-Id", b"r")])
    head, _, body = response.partition(b"\r\n\r\n")
    assert head.split(b"\r\n") == [
        b"HTTP/1.1 503 Service Unavailable",
        b"Content-Type: application/json",
        b"Content-Length: 2",
        b"X-Request-Id: r",
        b"Connection: close",
    ]
    assert body == b"{}"
    assert reason_phrase(599) == b"Unknown"
