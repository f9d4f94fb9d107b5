"""Selectors, lookback and staleness, offsets, query shapes, and parse errors."""

from __future__ import annotations

import math

import pytest

from tests.unit.observe.metrics.helpers import labels, one, vector
from yunzhou.domain.errors import UserError
from yunzhou.observe.metrics import STALE_NAN, MetricStore, QueryEngine


@pytest.fixture
def reqs(store: MetricStore) -> MetricStore:
    for app, code, v in [
        ("shop", "2xx", 10),
        ("shop", "5xx", 2),
        ("blog", "2xx", 7),
        ("blog-admin", "4xx", 1),
    ]:
        store.append("req_total", {"app": app, "code": code}, v, 100.0)
    store.append("req_total", {"code": "2xx"}, 3, 100.0)  # no app label
    return store


@pytest.mark.parametrize(
    ("query", "apps"),
    [
        ('req_total{app="shop"}', {"shop"}),
        ('req_total{app!="shop"}', {"blog", "blog-admin", None}),
        ('req_total{app=~"blog"}', {"blog"}),  # anchored: not blog-admin
        ('req_total{app=~"blog.*"}', {"blog", "blog-admin"}),
        ('req_total{app!~"blog.*"}', {"shop", None}),
        ('req_total{app=""}', {None}),  # empty matches a missing label
        ('req_total{app=~"shop|blog",code="2xx"}', {"shop", "blog"}),
        ('{__name__="req_total", code=~"[45]xx"}', {"shop", "blog-admin"}),
        ('{__name__=~"req_.*", app="blog"}', {"blog"}),
    ],
)
def test_label_matchers(reqs: MetricStore, engine: QueryEngine, query: str, apps: set[str | None]) -> None:
    got = engine.instant(query, 100)["result"]
    assert {r["metric"].get("app") for r in got} == apps
    assert all(r["metric"]["__name__"] == "req_total" for r in got)


def test_instant_selector_looks_back_five_minutes_inclusive(store: MetricStore, engine: QueryEngine) -> None:
    store.append("g", {}, 1.0, 100.0)
    store.append("g", {}, 2.0, 160.0)
    assert one(engine, "g", 100) == 1
    assert one(engine, "g", 159.999) == 1
    assert one(engine, "g", 160 + 300) == 2  # exactly 5 m later: still there (closed interval)
    assert engine.instant("g", 460.001)["result"] == []
    assert engine.instant("g", 99.999)["result"] == []


def test_a_stale_marker_ends_the_series_at_once(store: MetricStore, engine: QueryEngine) -> None:
    store.append("g", {"i": "1"}, 1.0, 100.0)
    store.mark_stale("g", {"i": "1"}, 110.0)
    assert one(engine, "g", 105) == 1
    assert engine.instant("g", 111)["result"] == []
    assert one(engine, "count_over_time(g[1m])", 111) == 1  # range functions skip the marker
    store.append("g", {"i": "1"}, 5.0, 120.0)
    assert one(engine, "g", 121) == 5
    assert math.isnan(STALE_NAN)


def test_offset_shifts_the_evaluation_time(store: MetricStore, engine: QueryEngine) -> None:
    for i in range(10):
        store.append("g", {}, float(i), 60.0 * i)
    assert one(engine, "g offset 2m", 540) == 7
    assert one(engine, "max_over_time(g[2m] offset 5m)", 540) == 4  # window [120, 240]
    assert one(engine, "g - g offset 1m", 540) == 1


def test_an_instant_query_over_a_range_selector_returns_the_raw_window(
    store: MetricStore, engine: QueryEngine
) -> None:
    for i in range(5):
        store.append("g", {"a": "x"}, float(i), 10.0 * i)
    data = engine.instant("g[20s]", 40)
    assert data == {
        "resultType": "matrix",
        "result": [
            {"metric": {"__name__": "g", "a": "x"}, "values": [[20.0, "2"], [30.0, "3"], [40.0, "4"]]}
        ],
    }


def test_range_query_evaluates_at_start_plus_multiples_of_step(
    store: MetricStore, engine: QueryEngine
) -> None:
    for i in range(20):
        store.append("g", {}, float(i), 10.0 * i)
    data = engine.range("g", 15, 64, 10)
    assert data["resultType"] == "matrix"
    (series,) = data["result"]
    assert series["metric"] == {"__name__": "g"}
    assert series["values"] == [[15.0, "1"], [25.0, "2"], [35.0, "3"], [45.0, "4"], [55.0, "5"]]


def test_range_query_of_a_scalar_is_a_matrix_with_empty_labels(engine: QueryEngine) -> None:
    data = engine.range("time() * 2", 10, 30, 10)
    assert data == {
        "resultType": "matrix",
        "result": [{"metric": {}, "values": [[10.0, "20"], [20.0, "40"], [30.0, "60"]]}],
    }


def test_scalar_instant_result(engine: QueryEngine) -> None:
    assert engine.instant("1 + 2 * 3 ^ 2", 5) == {"resultType": "scalar", "result": [5.0, "19"]}
    assert engine.instant("2 ^ 3 ^ 2", 5)["result"][1] == "512"  # right-associative
    assert engine.instant("-2 ^ 2", 5)["result"][1] == "-4"  # unary minus binds looser than ^


@pytest.mark.parametrize(
    ("value", "text"),
    [(1.0, "1"), (0.5, "0.5"), (1e21, "1000000000000000000000"), (1.5e-7, "0.00000015"), (-3.0, "-3")],
)
def test_values_are_written_as_prometheus_does(value: float, text: str, engine: QueryEngine) -> None:
    assert engine.instant(f"vector({value!r})", 1)["result"][0]["value"][1] == text


def test_special_values(engine: QueryEngine) -> None:
    assert engine.instant("1/0", 1)["result"][1] == "+Inf"
    assert engine.instant("-1/0", 1)["result"][1] == "-Inf"
    assert engine.instant("0/0", 1)["result"][1] == "NaN"


def test_too_many_points_is_a_clear_error(engine: QueryEngine) -> None:
    with pytest.raises(UserError) as e:
        engine.range("vector(1)", 0, 86_400, 1)
    assert e.value.problems[0].path == "step"
    assert "11,000 points" in e.value.message
    assert len(engine.range("vector(1)", 0, 11_000, 1)["result"][0]["values"]) == 11_001


@pytest.mark.parametrize(
    ("start", "end", "step", "field"),
    [(10, 5, 1, "end"), (0, 10, 0, "step"), (0, 10, -1, "step")],
)
def test_bad_range_parameters(engine: QueryEngine, start: float, end: float, step: float, field: str) -> None:
    with pytest.raises(UserError) as e:
        engine.range("vector(1)", start, end, step)
    assert e.value.problems[0].path == field


def test_a_range_query_cannot_return_a_range_vector(engine: QueryEngine) -> None:
    with pytest.raises(UserError, match="range vector"):
        engine.range("foo[5m]", 0, 10, 1)


@pytest.mark.parametrize(
    ("query", "position", "expected"),
    [
        ("sum(", 5, "expected an expression"),
        ("foo{a=}", 7, "expected a quoted label value"),
        ('foo{a~"x"}', 6, "unexpected character"),
        ("rate(foo)", 1, "must be range vector"),
        ("foo[5m", 7, "expected ']'"),
        ("foo[5x]", 5, "expected a duration"),
        ("1 > 2", 3, "BOOL modifier"),
        ("nosuch(foo)", 1, "unknown function"),
        ('{a=""}', 1, "at least one non-empty matcher"),
        ("foo bar", 5, "expected an operator or the end of the query"),
        ("sum by (a (foo)", 11, "expected ',' or ')'"),
        ("rate(foo[5m]) offset", 21, "a duration after offset"),
        ('foo{a=~"("}', 5, "invalid regular expression"),
        ("foo and 1", 5, "set operator"),
        ("topk(foo)", 9, "expected ','"),
        ("", 1, "empty"),
        ("rate(foo[5m:1m])", 12, "subqueries are not supported"),
    ],
)
def test_parse_errors_name_the_position_and_what_was_expected(
    engine: QueryEngine, query: str, position: int, expected: str
) -> None:
    with pytest.raises(UserError) as e:
        engine.instant(query, 1)
    (problem,) = e.value.problems
    assert problem.path == "query"
    assert expected in problem.message
    if "regular expression" not in expected:
        assert f"at char {position}:" in problem.message


def test_duplicate_labelsets_after_dropping_the_name_are_an_error(
    store: MetricStore, engine: QueryEngine
) -> None:
    store.append("a_total", {"x": "1"}, 1, 10)
    store.append("b_total", {"x": "1"}, 1, 10)
    with pytest.raises(UserError, match="same labelset"):
        engine.instant('abs({__name__=~"a_total|b_total"})', 10)
    assert vector(engine, '{__name__=~"a_total|b_total"}', 10) == {
        labels(__name__="a_total", x="1"): 1,
        labels(__name__="b_total", x="1"): 1,
    }


def test_a_query_loading_too_many_samples_is_refused(store: MetricStore) -> None:
    for i in range(100):
        store.append("g", {}, float(i), 10.0 * i)
    engine = QueryEngine(store, max_samples=50)
    assert one(engine, "count_over_time(g[5m])", 990) == 31
    with pytest.raises(UserError, match="too many samples"):
        engine.instant("count_over_time(g[1h])", 990)
