"""*_over_time, histogram_quantile, math functions, time/vector/scalar — hand-computed."""

from __future__ import annotations

import math

import pytest

from tests.unit.observe.metrics.helpers import labels, one, vector
from yunzhou.observe.metrics import MetricStore, QueryEngine
from yunzhou.observe.metrics.promql.instant_functions import bucket_quantile


@pytest.fixture
def gauge(store: MetricStore) -> MetricStore:
    for i, v in enumerate([4, 8, 1, 7, 5], start=1):  # t = 10..50
        store.append("g", {"a": "x"}, float(v), 10.0 * i)
    return store


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("avg_over_time(g[1m])", 5.0),
        ("min_over_time(g[1m])", 1.0),
        ("max_over_time(g[1m])", 8.0),
        ("sum_over_time(g[1m])", 25.0),
        ("count_over_time(g[1m])", 5.0),
        ("last_over_time(g[1m])", 5.0),
        ("sum_over_time(g[20s])", 13.0),  # window [30, 50], both ends included: 1 + 7 + 5
        ("quantile_over_time(0.5, g[1m])", 5.0),
        ("quantile_over_time(0.25, g[1m])", 4.0),
        ("changes(g[1m])", 4.0),
        ("resets(g[1m])", 2.0),  # 8 → 1 and 7 → 5
        ("stdvar_over_time(g[1m])", 6.0),  # mean 5; (1 + 9 + 16 + 4 + 0) / 5
        ("abs(-g)", 5.0),
        ("clamp_min(g, 6)", 6.0),
        ("clamp_max(g, 3)", 3.0),
        ("clamp(g, 1, 4)", 4.0),
        ("sqrt(g - 1)", 2.0),
        ("scalar(g) * 2", 10.0),
        ("time()", 50.0),
        ("round(g / 3)", 2.0),
        ("ceil(g / 3)", 2.0),
        ("floor(g / 3)", 1.0),
    ],
)
def test_function_values(gauge: MetricStore, engine: QueryEngine, query: str, expected: float) -> None:
    assert one(engine, query, 50) == pytest.approx(expected)


def test_functions_drop_the_metric_name_but_last_over_time_keeps_it(
    gauge: MetricStore, engine: QueryEngine
) -> None:
    assert vector(engine, "max_over_time(g[1m])", 50) == {labels(a="x"): 8}
    assert vector(engine, "last_over_time(g[1m])", 50) == {labels(__name__="g", a="x"): 5}


def test_vector_and_scalar(gauge: MetricStore, engine: QueryEngine) -> None:
    assert vector(engine, "vector(3)", 50) == {(): 3}
    assert math.isnan(one(engine, "scalar(nothing_here)", 50))
    assert one(engine, "scalar(vector(2)) + 1", 50) == 3


def test_absent(gauge: MetricStore, engine: QueryEngine) -> None:
    assert engine.instant("absent(g)", 50)["result"] == []
    assert vector(engine, 'absent(nope{job="api", x=~"y"})', 50) == {labels(job="api"): 1}


BUCKETS = [(0.1, 10.0), (0.5, 30.0), (1.0, 40.0), (math.inf, 50.0)]


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        (0.5, 0.1 + 0.4 * 15 / 20),  # rank 25 lands in (0.1, 0.5]: 15 of its 20
        (0.05, 0.1 * 2.5 / 10),  # rank 2.5 in the first bucket, which starts at 0
        (0.8, 1.0),  # rank 40: exactly the top of (0.5, 1]
        (0.9, 1.0),  # rank 45 is in +Inf: the highest finite bound
        (0.0, 0.0),
        (1.5, math.inf),
        (-1.0, -math.inf),
    ],
)
def test_bucket_quantile(q: float, expected: float) -> None:
    assert bucket_quantile(q, BUCKETS) == pytest.approx(expected)


def test_bucket_quantile_edge_cases() -> None:
    assert math.isnan(bucket_quantile(0.5, [(0.1, 1.0), (1.0, 2.0)]))  # no +Inf bucket
    assert math.isnan(bucket_quantile(0.5, [(0.1, 0.0), (math.inf, 0.0)]))  # no observations
    # non-monotonic counts (a scrape racing an observation) are evened out; duplicate bounds summed
    assert bucket_quantile(0.5, [(1.0, 6.0), (2.0, 5.0), (math.inf, 10.0)]) == pytest.approx(5 / 6)
    assert bucket_quantile(0.5, [(1.0, 2.0), (1.0, 2.0), (math.inf, 8.0)]) == pytest.approx(1.0)
    assert bucket_quantile(0.1, [(-1.0, 5.0), (math.inf, 10.0)]) == -1.0  # first bound ≤ 0 is returned


def test_histogram_quantile_groups_by_labels_other_than_le(store: MetricStore, engine: QueryEngine) -> None:
    for app, counts in {"a": [10, 30, 40, 50], "b": [0, 0, 10, 10]}.items():
        for (le, _), c in zip(BUCKETS, counts, strict=True):
            store.append(
                "h_bucket", {"app": app, "le": "+Inf" if le == math.inf else repr(le)}, float(c), 10.0
            )
    store.append("h_bucket", {"app": "c"}, 1.0, 10.0)  # no le: ignored
    got = vector(engine, "histogram_quantile(0.5, h_bucket)", 10)
    assert got == {labels(app="a"): pytest.approx(0.4), labels(app="b"): pytest.approx(0.75)}


def test_histogram_quantile_over_rates(store: MetricStore, engine: QueryEngine) -> None:
    # every 10 s: 2 requests ≤ 0.1 s, 6 in (0.1, 0.5], 2 in +Inf
    for i in range(31):
        t = 10.0 * i
        for le, c in [("0.1", 2 * i), ("0.5", 8 * i), ("+Inf", 10 * i)]:
            store.append("h_bucket", {"le": le}, float(c), t)
    # rates 0.2, 0.8, 1.0 per second: rank 0.5 → 0.1 + 0.4 × 0.3/0.6
    assert one(engine, "histogram_quantile(0.5, rate(h_bucket[1m]))", 300) == pytest.approx(0.3)
    assert one(engine, "histogram_quantile(0.99, sum by (le) (rate(h_bucket[1m])))", 300) == pytest.approx(
        0.5
    )
