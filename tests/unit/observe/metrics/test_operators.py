"""Aggregations and binary operators (arithmetic, comparisons, set operators, vector matching)."""

from __future__ import annotations

import pytest

from tests.unit.observe.metrics.helpers import labels, one, vector
from yunzhou.domain.errors import UserError
from yunzhou.observe.metrics import MetricStore, QueryEngine

T = 100.0


@pytest.fixture
def data(store: MetricStore) -> MetricStore:
    for app, inst, mem in [("shop", "1", 100), ("shop", "2", 300), ("blog", "1", 50)]:
        store.append("mem", {"app": app, "instance": inst}, float(mem), T)
    for app, limit in [("shop", 400), ("blog", 100)]:
        store.append("limit", {"app": app}, float(limit), T)
    for app, code, v in [("shop", "2xx", 90), ("shop", "5xx", 10), ("blog", "2xx", 20)]:
        store.append("req", {"app": app, "code": code}, float(v), T)
    return store


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("sum(mem)", {(): 450}),
        ("sum by (app) (mem)", {labels(app="shop"): 400, labels(app="blog"): 50}),
        ("sum(mem) by (app)", {labels(app="shop"): 400, labels(app="blog"): 50}),
        ("avg without (instance) (mem)", {labels(app="shop"): 200, labels(app="blog"): 50}),
        ("max by (instance) (mem)", {labels(instance="1"): 100, labels(instance="2"): 300}),
        ("min(mem)", {(): 50}),
        ("count by (app) (mem)", {labels(app="shop"): 2, labels(app="blog"): 1}),
        ("topk(1, mem)", {labels(__name__="mem", app="shop", instance="2"): 300}),
        (
            "bottomk(1, mem) by (app)",
            {
                labels(__name__="mem", app="shop", instance="1"): 100,
                labels(__name__="mem", app="blog", instance="1"): 50,
            },
        ),
        ("topk(0, mem)", {}),
        ("quantile(0.5, mem)", {(): 100}),
        ("group by (app) (mem)", {labels(app="shop"): 1, labels(app="blog"): 1}),
    ],
)
def test_aggregations(
    data: MetricStore, engine: QueryEngine, query: str, expected: dict[object, float]
) -> None:
    assert vector(engine, query, T) == expected


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        (
            "mem / 10",
            {
                labels(app="shop", instance="1"): 10,
                labels(app="shop", instance="2"): 30,
                labels(app="blog", instance="1"): 5,
            },
        ),
        (
            "mem > 60",
            {
                labels(__name__="mem", app="shop", instance="1"): 100,
                labels(__name__="mem", app="shop", instance="2"): 300,
            },
        ),
        (
            "60 < mem",
            {
                labels(__name__="mem", app="shop", instance="1"): 100,
                labels(__name__="mem", app="shop", instance="2"): 300,
            },
        ),
        (
            "mem > bool 60",
            {
                labels(app="shop", instance="1"): 1,
                labels(app="shop", instance="2"): 1,
                labels(app="blog", instance="1"): 0,
            },
        ),
        (
            "mem % 40",
            {
                labels(app="shop", instance="1"): 20,
                labels(app="shop", instance="2"): 20,
                labels(app="blog", instance="1"): 10,
            },
        ),
        # one-to-one: labels must match exactly (minus the name) unless on/ignoring says otherwise
        ('req{code="5xx"} / ignoring(code) req{code="2xx"}', {labels(app="shop"): pytest.approx(10 / 90)}),
        ('req{code="5xx"} / on(app) req{code="2xx"}', {labels(app="shop"): pytest.approx(10 / 90)}),
        ('sum by (app) (req{code="5xx"}) / sum by (app) (req)', {labels(app="shop"): 0.1}),
        # many-to-one: each instance divided by its app's limit; group_left copies labels from the one side
        (
            "mem / on(app) group_left limit",
            {
                labels(app="shop", instance="1"): 0.25,
                labels(app="shop", instance="2"): 0.75,
                labels(app="blog", instance="1"): 0.5,
            },
        ),
        (
            "limit / on(app) group_right mem",
            {
                labels(app="shop", instance="1"): 4,
                labels(app="shop", instance="2"): pytest.approx(4 / 3),
                labels(app="blog", instance="1"): 2,
            },
        ),
        ("mem > on(app) group_left limit * 0.6", {labels(__name__="mem", app="shop", instance="2"): 300}),
        # set operators match on all labels but the name, or on(...)
        (
            'mem and on(app) req{code="5xx"}',
            {
                labels(__name__="mem", app="shop", instance="1"): 100,
                labels(__name__="mem", app="shop", instance="2"): 300,
            },
        ),
        ('mem unless on(app) req{code="5xx"}', {labels(__name__="mem", app="blog", instance="1"): 50}),
        (
            "limit or sum by (app) (mem)",
            {labels(__name__="limit", app="shop"): 400, labels(__name__="limit", app="blog"): 100},
        ),
        (
            'limit{app="shop"} or sum by (app) (mem)',
            {labels(__name__="limit", app="shop"): 400, labels(app="blog"): 50},
        ),
    ],
)
def test_binary_operators(
    data: MetricStore, engine: QueryEngine, query: str, expected: dict[object, float]
) -> None:
    assert vector(engine, query, T) == expected


def test_group_left_with_labels_copies_them(
    data: MetricStore, engine: QueryEngine, store: MetricStore
) -> None:
    store.append("app_info", {"app": "shop", "team": "payments"}, 1.0, T)
    got = vector(engine, "mem * on(app) group_left(team) app_info", T)
    assert got == {
        labels(app="shop", instance="1", team="payments"): 100,
        labels(app="shop", instance="2", team="payments"): 300,
    }


def test_many_to_many_matching_is_an_error(data: MetricStore, engine: QueryEngine) -> None:
    with pytest.raises(UserError, match="many-to-many matching not allowed"):
        engine.instant("mem / on(app) req", T)
    with pytest.raises(UserError, match="many-to-many matching not allowed"):
        engine.instant("mem / on(app) group_left req", T)


def test_scalar_arithmetic_and_precedence(engine: QueryEngine) -> None:
    assert one(engine, "1 + 2 * 3 - 4 / 2", 0) == 5
    assert one(engine, "7 % 4 ^ 1", 0) == 3
    assert one(engine, "(1 + 2) * 3", 0) == 9
    assert one(engine, "2 > bool 1", 0) == 1
    assert one(engine, "0x10 + 1e1", 0) == 26
