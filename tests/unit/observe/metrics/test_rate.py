"""rate/irate/increase/delta with hand-computed Prometheus extrapolation."""

from __future__ import annotations

import pytest

from tests.unit.observe.metrics.helpers import one, vector
from yunzhou.observe.metrics import MetricStore, QueryEngine


def test_rate_of_a_steady_counter(store: MetricStore, engine: QueryEngine) -> None:
    for i in range(1, 11):  # t = 10..100 s, value 1..10
        store.append("c_total", {"app": "a"}, float(i), 10.0 * i)
    # window [40, 100] holds 7 samples 4..10: increase 6 over 60 s, edges on samples → no extrapolation
    assert one(engine, "rate(c_total[1m])", 100) == pytest.approx(0.1)
    assert one(engine, "increase(c_total[1m])", 100) == pytest.approx(6.0)
    # window [45, 105]: samples 50..100 (5..10), 5 s gaps at each edge < 1.1 × 10 s → extrapolated to 60 s
    assert one(engine, "increase(c_total[1m])", 105) == pytest.approx(5 * 60 / 50)
    # one sample in the window → no result
    assert engine.instant("rate(c_total[5s])", 100)["result"] == []


def test_counter_reset_adds_the_value_before_the_drop(store: MetricStore, engine: QueryEngine) -> None:
    for i, v in enumerate([1, 2, 3, 0, 1, 2], start=1):
        store.append("c_total", {}, float(v), 10.0 * i)
    # window [0, 60]: 2 - 1 + 3 (reset) = 4 over 50 s sampled; 10 s to the start (< 11 s, and the
    # zero point 50 × 1/4 = 12.5 s is further) → extrapolated over 60 s: 4 × 60/50
    assert one(engine, "increase(c_total[1m])", 60) == pytest.approx(4.8)
    assert one(engine, "rate(c_total[1m])", 60) == pytest.approx(0.08)


def test_rate_does_not_extrapolate_below_zero(store: MetricStore, engine: QueryEngine) -> None:
    store.append("c_total", {}, 1.0, 40.0)
    store.append("c_total", {}, 5.0, 50.0)
    store.append("c_total", {}, 9.0, 60.0)
    # window [0, 60]: increase 8 over 20 s; start gap 40 s ≥ 11 s → half an interval (5 s) would be
    # added, but the zero point is 20 × 1/8 = 2.5 s before the first sample → 8 × 22.5/20
    assert one(engine, "increase(c_total[1m])", 60) == pytest.approx(8 * 22.5 / 20)


def test_irate_uses_the_last_two_samples(store: MetricStore, engine: QueryEngine) -> None:
    for i, v in enumerate([1, 2, 5, 3], start=1):
        store.append("c_total", {}, float(v), 10.0 * i)
    assert one(engine, "irate(c_total[1m])", 30) == pytest.approx(0.3)  # (5 - 2) / 10
    assert one(engine, "irate(c_total[1m])", 40) == pytest.approx(0.3)  # reset: 3 / 10


def test_delta_of_a_gauge_has_no_reset_handling(store: MetricStore, engine: QueryEngine) -> None:
    for i, v in enumerate([5, 3, 8], start=1):
        store.append("g", {}, float(v), 10.0 * i)
    # window [0, 30]: 8 - 5 = 3 over 20 s, 10 s gap at the start (< 11 s) → × 30/20
    assert one(engine, "delta(g[30s])", 30) == pytest.approx(4.5)


def test_rate_keeps_labels_and_drops_the_name(store: MetricStore, engine: QueryEngine) -> None:
    for i in range(10):
        store.append("c_total", {"app": "a"}, i * 2.0, 10.0 * i)
        store.append("c_total", {"app": "b"}, i * 1.0, 10.0 * i)
    got = vector(engine, "rate(c_total[1m])", 90)
    assert got == {(("app", "a"),): pytest.approx(0.2), (("app", "b"),): pytest.approx(0.1)}
