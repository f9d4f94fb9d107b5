"""MetricStore: persistence across reopen and crashes, retention, downsampling, concurrency."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests.unit.observe.metrics.helpers import labels, one, vector
from yunzhou.domain.errors import UserError
from yunzhou.observe.metrics import Matcher, MetricStore, QueryEngine

DAY = 86_400.0


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_history_survives_a_restart(tmp_path: Path) -> None:
    with MetricStore.open(tmp_path, chunk_samples=10) as store:
        for i in range(25):  # two sealed chunks and 5 samples in the head
            store.append("c_total", {"app": "a"}, float(i), 10.0 * i)
        store.append("g", {"app": "b"}, 1.5, 10.0)
    assert (tmp_path / "metrics.db").exists()
    with MetricStore.open(tmp_path, chunk_samples=10) as store:
        engine = QueryEngine(store)
        assert one(engine, "count_over_time(c_total[1h])", 240) == 25
        assert one(engine, "c_total", 240) == 24
        assert vector(engine, "g", 20) == {labels(__name__="g", app="b"): 1.5}
        store.append("c_total", {"app": "a"}, 25.0, 250.0)
        store.append("c_total", {"app": "a"}, 0.0, 240.0)  # older than the last: dropped
        assert one(engine, "count_over_time(c_total[1h])", 250) == 26
        assert store.stats()["out_of_order"] == 1


def test_a_crash_loses_at_most_what_came_after_the_last_flush(tmp_path: Path) -> None:
    script = f"""
import os
from yunzhou.observe.metrics import MetricStore
store = MetricStore.open({str(tmp_path)!r}, chunk_samples=8, flush_interval=3600)
for i in range(20):
    store.append("c_total", {{}}, float(i), 10.0 * i)
store.flush()
for i in range(20, 30):
    store.append("c_total", {{}}, float(i), 10.0 * i)
os._exit(0)  # no close(): the last ten samples were never flushed
"""
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)
    with MetricStore.open(tmp_path) as store:
        engine = QueryEngine(store)
        assert one(engine, "count_over_time(c_total[1h])", 300) == 20
        assert one(engine, "max_over_time(c_total[1h])", 300) == 19


def test_appends_flush_on_their_own_every_flush_interval(tmp_path: Path) -> None:
    clock = FakeClock()
    store = MetricStore.open(tmp_path, flush_interval=10, clock=clock)
    store.append("g", {}, 1.0, 10.0)
    clock.now = 11
    store.append("g", {}, 2.0, 20.0)  # this append flushes both
    with MetricStore.open(tmp_path) as other:
        assert one(QueryEngine(other), "count_over_time(g[1m])", 20) == 2
    store.close()


def test_retention_drops_old_chunks_and_forgotten_series(tmp_path: Path) -> None:
    with MetricStore.open(tmp_path, retention=2 * DAY, raw_retention=2 * DAY, chunk_samples=10) as store:
        for i in range(30):
            store.append("old", {}, float(i), 60.0 * i)
        for i in range(30):
            store.append("new", {}, float(i), 3 * DAY + 60.0 * i)
        result = store.compact(now=3 * DAY)
        assert result.deleted_chunks == 3
        assert result.dropped_series == 1
        assert store.series([Matcher.make("__name__", "=~", ".+")]) == [{"__name__": "new"}]


def test_downsampling_keeps_rate_and_over_time_answers(tmp_path: Path) -> None:
    """Raw samples older than raw_retention become 5-minute rollups; increase() through a counter reset
    and the gauge aggregates over whole buckets give the same answers as the raw data did."""
    store = MetricStore.open(tmp_path, raw_retention=DAY, retention=10 * DAY, chunk_samples=60)
    engine = QueryEngine(store)
    value = 0.0
    for i in range(360):  # one hour of 10 s samples starting at t = 0
        value = 3.0 if i == 200 else value + 5
        store.append("c_total", {"app": "a"}, value, 10.0 * i)
        store.append("g", {"app": "a"}, float(i % 7), 10.0 * i)
    store.flush()
    queries = [
        "increase(c_total[30m])",
        "sum_over_time(g[30m])",
        "count_over_time(g[30m])",
        "max_over_time(g[30m])",
        "min_over_time(g[30m])",
        "avg_over_time(g[30m])",
    ]
    at = 3600.0  # windows [1800, 3600] hold whole 5-minute buckets (the last sample is at 3590)
    before = {q: one(engine, q, at) for q in queries}
    result = store.compact(now=2 * DAY)
    assert result.downsampled_chunks == 12
    assert store.stats()["chunk_samples"] == 24  # 12 five-minute buckets per series
    after = {q: one(engine, q, at) for q in queries}
    assert after["sum_over_time(g[30m])"] == before["sum_over_time(g[30m])"]
    assert after["count_over_time(g[30m])"] == 180
    assert after["max_over_time(g[30m])"] == 6
    assert after["min_over_time(g[30m])"] == 0
    # increase() over rollups sees every bucket's last value and the reset: the true increase (every
    # step adds 5, the reset adds 3 from 0) is 179 × 5 - 2; extrapolation differs from the raw answer
    raw_increase = before["increase(c_total[30m])"]
    assert after["increase(c_total[30m])"] == pytest.approx(raw_increase, rel=0.05)
    assert after["increase(c_total[30m])"] > 0
    # the rollups are persisted too
    store.close()
    with MetricStore.open(tmp_path) as again:
        assert one(QueryEngine(again), "count_over_time(g[30m])", at) == 180


def test_appends_and_queries_from_several_threads(tmp_path: Path) -> None:
    store = MetricStore.open(tmp_path, chunk_samples=16, flush_interval=0)
    engine = QueryEngine(store)
    errors: list[BaseException] = []

    def writer(w: int) -> None:
        try:
            for i in range(300):
                store.append_many(
                    ("c_total", {"w": str(w), "s": str(s)}, float(i), 10.0 * i) for s in range(5)
                )
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(3)]
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        engine.range("sum(rate(c_total[1m]))", 0, 3000, 30)
    for t in threads:
        t.join()
    assert not errors
    assert one(engine, "count(c_total)", 2990) == 15
    assert one(engine, "sum(count_over_time(c_total[1h]))", 2990) == 15 * 300
    store.close()


def test_bad_names_are_rejected(store: MetricStore) -> None:
    with pytest.raises(UserError) as e:
        store.append("bad-name", {}, 1.0, 1.0)
    assert e.value.problems[0].path == "name"
    with pytest.raises(UserError) as e:
        store.append("ok", {"bad-label": "x"}, 1.0, 1.0)
    assert e.value.problems[0].path == "labels.bad-label"


def test_empty_label_values_are_the_same_as_no_label(store: MetricStore) -> None:
    store.append("g", {"a": ""}, 1.0, 1.0)
    store.append("g", {}, 2.0, 2.0)
    assert store.series([Matcher.make("__name__", "=", "g")]) == [{"__name__": "g"}]
    assert store.label_values("__name__") == ["g"]


def test_a_bad_row_in_a_batch_is_skipped_and_counted(store: MetricStore) -> None:
    store.append_many(
        [
            ("ok_total", {"a": "1"}, 1.0, 10.0),
            ("bad-name", {}, 1.0, 10.0),
            ("ok_total", {"bad-label": "x"}, 1.0, 10.0),
            ("ok_total", {"a": "2"}, "not a number", 10.0),  # type: ignore[list-item]
            ("ok_total", {"a": "3"}, 3.0, 10.0),
        ]
    )
    assert store.stats()["rejected"] == 3
    assert [s["a"] for s in store.series([Matcher.make("__name__", "=", "ok_total")])] == ["1", "3"]


def test_a_range_query_across_rollups_and_raw_data_is_continuous(tmp_path: Path) -> None:
    """A steady 1/s counter and a constant gauge over 3 days; the first 2 days become rollups. rate()
    and avg_over_time() read the same on both sides of the boundary (with a range of several rollup
    intervals: rate over 15 m of 5-minute rollups sees 3 samples and under-extrapolates, as with any
    downsampled Prometheus data)."""
    with MetricStore.open(tmp_path, raw_retention=DAY, chunk_samples=120) as store:
        rows: list[tuple[str, dict[str, str], float, float]] = []
        for k in range(3 * 8640):
            rows += [("c_total", {}, 10.0 * k, 10.0 * k), ("g", {}, 7.0, 10.0 * k)]
        store.append_many(rows)
        store.compact(now=3 * DAY)
        assert store.stats()["chunk_samples"] < 3 * 8640  # most of it is now rollups
        engine = QueryEngine(store)
        data = engine.range("rate(c_total[1h])", 3600, 3 * DAY - 10, 1800)
        points = [(t, float(v)) for t, v in data["result"][0]["values"]]
        assert len(points) == (3 * DAY - 10 - 3600) // 1800 + 1
        # a window holding both rollups and raw samples extrapolates its sparse start less (the average
        # interval comes from the dense part): within one rollup interval of the range
        straddling = [v for t, v in points if t - 3600 < 2 * DAY < t]
        assert straddling
        assert all(v == pytest.approx(1.0, rel=300 / 3600) for v in straddling)
        assert all(v == pytest.approx(1.0, rel=0.02) for t, v in points if not t - 3600 < 2 * DAY < t)
        data = engine.range("avg_over_time(g[15m])", 3600, 3 * DAY - 10, 1800)
        assert {v for _, v in data["result"][0]["values"]} == {"7"}
