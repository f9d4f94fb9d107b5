"""Turning captured lines and router access-log lines into records; time bounds people type."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import pytest

from yunzhou.domain.errors import UserError
from yunzhou.observe import LogRecord, access_record, format_rfc3339, parse_rfc3339, parse_time_bound

NOW = 1_700_000_000.0


@dataclass(frozen=True)
class SupervisorLine:
    """The shape of runtimes.local.LogLine."""

    time: float
    app: str
    instance_id: str
    release: int
    stream: str
    line: str
    fields: Mapping[str, object] = field(default_factory=dict)


def test_a_captured_line_becomes_a_record() -> None:
    captured = SupervisorLine(NOW, "shop/dev/orders", "orders-1", 4, "stderr", '{"a": 1}', {"a": 1})
    assert LogRecord.from_captured(captured) == LogRecord(
        time=NOW,
        app="shop/dev/orders",
        instance="orders-1",
        stream="stderr",
        line='{"a": 1}',
        release=4,
        fields={"a": 1},
        fields_json='{"a": 1}',  # the line is their encoding: the store keeps it once, encodes nothing
    )
    nan = SupervisorLine(NOW, "shop/dev/orders", "orders-1", 4, "stdout", '{"a": NaN}', {"a": math.nan})
    assert LogRecord.from_captured(nan).fields_json is None  # the store makes it strict JSON
    plain = SupervisorLine(NOW, "shop/dev/orders", "orders-1", 4, "stdout", "plain", {"user": "a"})
    assert LogRecord.from_captured(plain).fields == {"user": "a"}


def access_line(**overrides: object) -> str:
    entry = {
        "time": "2023-11-14T22:13:20.250Z",
        "app": "shop/dev/orders",
        "backend": "orders-2",
        "release": 3,
        "method": "GET",
        "host": "orders.dev.shop.localhost",
        "path": "/items?q=1",
        "status": 200,
        "bytes": 1024,
        "duration_ms": 1.234,
        "request_id": "req-1",
    }
    entry.update(overrides)
    return json.dumps(entry)


def test_an_access_log_line_becomes_an_access_record_of_its_app() -> None:
    line = access_line()
    record = access_record(line, now=NOW)
    assert record == LogRecord(
        time=NOW + 0.25,
        app="shop/dev/orders",
        instance="orders-2",
        stream="access",
        line="GET /items?q=1 200 1024B 1.234ms request_id=req-1",
        release=3,
        fields=json.loads(line),
        fields_json=line,  # stored as written: not encoded again
    )


def test_an_access_record_without_a_backend_or_time() -> None:
    record = access_record(access_line(backend=None, release=None, time="yesterday", status=502), now=NOW)
    assert record is not None
    assert (record.instance, record.release, record.time) == (None, None, NOW)
    assert " 502 " in record.line


@pytest.mark.parametrize(
    "line",
    [
        "",
        "not json",
        "[1, 2]",
        access_line(app=None),
        access_line(app="orders"),
        access_line(app="a//b"),
        "{",
    ],
)
def test_lines_that_are_not_access_records_of_an_app(line: str) -> None:
    assert access_record(line, now=NOW) is None


def test_rfc3339_round_trip() -> None:
    assert format_rfc3339(NOW + 0.5) == "2023-11-14T22:13:20.500000Z"
    assert parse_rfc3339("2023-11-14T22:13:20.500000Z") == NOW + 0.5
    assert parse_rfc3339("2023-11-15T06:13:20+08:00") == NOW
    assert parse_rfc3339("2023-11-14T22:13:20") is None  # no zone: ambiguous
    assert parse_rfc3339("10m") is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90s", NOW - 90),
        ("10m", NOW - 600),
        ("1h30m", NOW - 5400),
        ("2d", NOW - 2 * 86400),
        ("0.5h", NOW - 1800),
        (" 5m ", NOW - 300),
        ("2023-11-14T22:00:00Z", NOW - 800),
        ("2023-11-15T06:00:00+08:00", NOW - 800),
    ],
)
def test_time_bounds(text: str, expected: float) -> None:
    assert parse_time_bound(text, now=NOW) == expected


@pytest.mark.parametrize(
    "text", ["", "10", "m", "10 minutes", "-5m", "5w", "2023-11-14T22:00:00", "yesterday"]
)
def test_time_bounds_that_are_refused_name_their_field(text: str) -> None:
    with pytest.raises(UserError) as caught:
        parse_time_bound(text, now=NOW, field="query.since")
    [problem] = caught.value.problems
    assert problem.path == "query.since"
    assert "duration" in problem.message
