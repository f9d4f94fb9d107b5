"""The same samples in our store and in a real Prometheus; the same queries must give the same answers.

This is what "Prometheus semantics" means for the engine: selectors and lookback, rate/irate/increase
extrapolation and counter resets, *_over_time, histogram_quantile, aggregations, binary operators and
vector matching, compared within float tolerance at instant times and over ranges.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from typing import Any

import pytest

from tests.integration.observe.metrics_store.prometheus import Prometheus, Row
from yunzhou.observe.metrics import MetricStore, QueryEngine

pytestmark = pytest.mark.slow

T0 = 1_700_000_000.0
HOURS = 2
BUCKETS = ["0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "+Inf"]


def samples() -> list[Row]:
    """Two hours of 15 s scrapes with jitter: counters with resets, gauges, histograms, a gap, an end."""
    rnd = random.Random(42)
    rows: list[Row] = []
    counters = {("shop", "2xx"): 0.0, ("shop", "5xx"): 0.0, ("blog", "2xx"): 0.0}
    mem = {
        (a, i): 4e8 + 1e8 * n
        for n, (a, i) in enumerate([("shop", "1"), ("shop", "2"), ("blog", "1"), ("blog", "2")])
    }
    hist = {app: [0.0] * len(BUCKETS) for app in ("shop", "blog")}
    hsum = {"shop": 0.0, "blog": 0.0}
    n_scrapes = HOURS * 3600 // 15
    for k in range(n_scrapes):
        t = T0 + 15 * k + rnd.randint(-400, 400) / 1000
        for (app, code), v in counters.items():
            v += rnd.randint(0, 40) if code == "2xx" else rnd.randint(0, 3)
            if k in (100, 333) and app == "shop":
                v = float(rnd.randint(0, 5))  # a restart: the counter starts over
            counters[(app, code)] = v
            rows.append(("http_requests_total", {"app": app, "code": code}, v, t))
        for (app, inst), v in mem.items():
            v = max(1e7, v + rnd.randint(-20, 20) * 1e6)
            mem[(app, inst)] = v
            rows.append(("memory_bytes", {"app": app, "instance": inst}, v, t))
        for app, counts in hist.items():
            for _ in range(rnd.randint(0, 30)):
                d = rnd.expovariate(1 / (0.08 if app == "shop" else 0.6))
                hsum[app] += d
                for i, le in enumerate(BUCKETS):
                    if d <= float(le):
                        counts[i] += 1
            for le, c in zip(BUCKETS, counts, strict=True):
                rows.append(("latency_seconds_bucket", {"app": app, "le": le}, c, t))
            rows.append(("latency_seconds_sum", {"app": app}, hsum[app], t))
            rows.append(("latency_seconds_count", {"app": app}, counts[-1], t))
        if k < n_scrapes // 2:
            rows.append(("up", {"job": "api"}, 1.0, t))
        if not (200 <= k < 240):
            rows.append(("temperature", {"room": "a"}, 20 + rnd.random() * 5, t))
    return rows


QUERIES = [
    "http_requests_total",
    'http_requests_total{code=~"2.."}',
    'http_requests_total{app!="shop"}',
    'http_requests_total{code!~"5.."} offset 5m',
    '{__name__=~"memory_.*", app="blog"}',
    "rate(http_requests_total[5m])",
    "rate(http_requests_total[1m])",
    "irate(http_requests_total[1m])",
    "increase(http_requests_total[10m])",
    "increase(http_requests_total[10m] offset 3m)",
    "delta(memory_bytes[10m])",
    "sum by (app) (rate(http_requests_total[5m]))",
    "sum without (code) (rate(http_requests_total[5m]))",
    "sum(rate(http_requests_total[5m])) by (code)",
    "avg(memory_bytes)",
    "max by (app) (memory_bytes)",
    "min without (instance) (memory_bytes)",
    "count(memory_bytes)",
    "count by (app) (http_requests_total)",
    "topk(2, memory_bytes)",
    "bottomk(1, memory_bytes) by (app)",
    "avg_over_time(memory_bytes[10m])",
    "min_over_time(memory_bytes[10m])",
    "max_over_time(memory_bytes[10m])",
    "sum_over_time(memory_bytes[2m])",
    "count_over_time(temperature[5m])",
    "last_over_time(temperature[15m])",
    "histogram_quantile(0.99, sum by (le, app) (rate(latency_seconds_bucket[5m])))",
    "histogram_quantile(0.5, rate(latency_seconds_bucket[5m]))",
    "histogram_quantile(0.9, sum by (le) (rate(latency_seconds_bucket[10m])))",
    "rate(latency_seconds_sum[5m]) / rate(latency_seconds_count[5m])",
    "abs(delta(memory_bytes[5m]))",
    "clamp_min(memory_bytes, 5e8)",
    "clamp_max(memory_bytes, 5e8)",
    "memory_bytes / 1024 / 1024",
    "memory_bytes > 5e8",
    "memory_bytes > bool 5e8",
    "5e8 < memory_bytes",
    "2 * memory_bytes - 1",
    "memory_bytes % 7",
    "memory_bytes ^ 0.5",
    "-memory_bytes",
    "1 - memory_bytes / 2^30",
    'rate(http_requests_total{code="5xx"}[5m]) / ignoring(code) rate(http_requests_total{code="2xx"}[5m])',
    'sum by (app) (rate(http_requests_total{code="5xx"}[5m]))'
    " / on(app) sum by (app) (rate(http_requests_total[5m]))",
    "memory_bytes * on(app) group_left sum by (app) (rate(http_requests_total[5m]))",
    "sum by (app) (rate(http_requests_total[5m])) / on(app) group_right memory_bytes",
    'http_requests_total and on(app) memory_bytes{instance="2"}',
    "http_requests_total or memory_bytes",
    'memory_bytes unless on(app) http_requests_total{app="blog"}',
    "memory_bytes > on(app, instance) memory_bytes offset 10m",
    "memory_bytes == bool memory_bytes",
    "time()",
    "vector(1)",
    "scalar(sum(memory_bytes))",
    "sum(memory_bytes) / scalar(count(memory_bytes))",
    "up",
    "temperature",
    "sum(rate(http_requests_total[5m])) > 1",
    "1 + 2 * 3 - 4 / 2",
    "2 ^ 3 ^ 2",
    "-1",
    "-(2 + 3) * 4",
    "0x1F + 1e3",
    "vector(1 / 0)",
    "vector(-1 / 0)",
    "vector(0 / 0)",
    "vector(1e21) + vector(0.1 + 0.2)",
    "vector(1e-7)",
    'up{instance=""}',
    '{__name__="up"}',
    'http_requests_total{code=~"2xx|5xx", app=~"s.*"}',
    "quantile(0.9, memory_bytes)",
    "stddev(memory_bytes)",
    "stdvar by (app) (memory_bytes)",
    "group by (app) (memory_bytes)",
    "changes(memory_bytes[5m])",
    "resets(http_requests_total[30m])",
    "deriv(memory_bytes[10m])",
    "deriv(http_requests_total[5m])",
    "predict_linear(memory_bytes[10m], 3600)",
    "predict_linear(memory_bytes[10m] offset 5m, 600)",
    "predict_linear(up[5m], 60)",
    "idelta(memory_bytes[1m])",
    "round(memory_bytes / 3e6)",
    "round(memory_bytes / 3e6, 5)",
    "ceil(memory_bytes / 3e6) - floor(memory_bytes / 3e6)",
    "sqrt(memory_bytes) + ln(memory_bytes) + log2(memory_bytes) + log10(memory_bytes)",
    "exp(-memory_bytes / 1e9)",
    "sgn(delta(memory_bytes[5m]))",
    "clamp(memory_bytes, 4e8, 6e8)",
    "stddev_over_time(memory_bytes[10m])",
    "stdvar_over_time(memory_bytes[10m])",
    "quantile_over_time(0.5, memory_bytes[10m])",
    "present_over_time(up[5m])",
    "absent_over_time(up[5m])",
    'absent(nonexistent{job="x"})',
    "absent(up)",
    'label_replace(memory_bytes, "node", "n-$1", "instance", "(.*)")',
    "rate(http_requests_total[5m]) > bool 0.5",
    "memory_bytes > bool on(app, instance) memory_bytes offset 10m",
    "sum by (app) (memory_bytes) and on(app) sum by (app) (rate(http_requests_total[5m])) > 2",
]

INSTANTS = [T0 + 3600, T0 + 3601.234, T0 + 3900.5, T0 + 200 * 15 + 120, T0 + 7000, T0 + 7500]
RANGES = [(T0 + 600, T0 + 7200, 60.0), (T0 + 1000.5, T0 + 4000, 37.0)]


@pytest.fixture(scope="module")
def both(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[QueryEngine, Prometheus]]:
    rows = samples()
    tmp = tmp_path_factory.mktemp("promdiff")
    store = MetricStore.open(tmp / "ours")
    store.append_many(rows)
    store.flush()
    with Prometheus(tmp, rows) as prom:
        yield QueryEngine(store), prom
    store.close()


def _close(a: str, b: str) -> bool:
    x, y = float(a), float(b)
    if math.isnan(x) or math.isnan(y):
        return math.isnan(x) and math.isnan(y)
    return math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-9)


def _canonical(data: dict[str, Any]) -> tuple[str, Any]:
    kind = data["resultType"]
    if kind == "scalar":
        return kind, [(float(data["result"][0]), data["result"][1])]
    if kind == "vector":
        return kind, {
            tuple(sorted(r["metric"].items())): [(float(r["value"][0]), r["value"][1])]
            for r in data["result"]
        }
    return kind, {
        tuple(sorted(r["metric"].items())): [(float(t), v) for t, v in r["values"]] for r in data["result"]
    }


def assert_same(ours: dict[str, Any], theirs: dict[str, Any], what: str) -> None:
    k1, a = _canonical(ours)
    k2, b = _canonical(theirs)
    assert k1 == k2, f"{what}: result type {k1} != {k2}"
    if k1 == "scalar":
        a, b = {(): a}, {(): b}
    assert set(a) == set(b), (
        f"{what}: series differ\nours only: {set(a) - set(b)}\ntheirs only: {set(b) - set(a)}"
    )
    for key in a:
        pa, pb = a[key], b[key]
        assert [t for t, _ in pa] == [t for t, _ in pb], f"{what} {key}: timestamps differ"
        bad = [(t, x, y) for (t, x), (_, y) in zip(pa, pb, strict=True) if not _close(x, y)]
        assert not bad, f"{what} {key}: values differ (t, ours, prometheus): {bad[:5]}"


@pytest.mark.parametrize("query", QUERIES)
def test_instant_queries_match_prometheus(both: tuple[QueryEngine, Prometheus], query: str) -> None:
    ours, prom = both
    for t in INSTANTS:
        assert_same(ours.instant(query, t), prom.instant(query, t), f"{query} @ {t - T0}")


@pytest.mark.parametrize("query", QUERIES)
def test_range_queries_match_prometheus(both: tuple[QueryEngine, Prometheus], query: str) -> None:
    ours, prom = both
    for start, end, step in RANGES:
        assert_same(
            ours.range(query, start, end, step),
            prom.range(query, start, end, step),
            f"{query} [{start - T0}, {end - T0}, {step}]",
        )


def test_the_comparison_sees_real_data(both: tuple[QueryEngine, Prometheus]) -> None:
    """Guard against a vacuous pass: both sides answer with data for the core queries."""
    ours, prom = both
    for q in ("rate(http_requests_total[5m])", "histogram_quantile(0.99, rate(latency_seconds_bucket[5m]))"):
        theirs = prom.instant(q, T0 + 3600)["result"]
        assert len(theirs) >= 2
        assert len(ours.instant(q, T0 + 3600)["result"]) == len(theirs)
