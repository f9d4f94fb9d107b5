"""The scrape loop over the real store and engine: a failing collector costs only its own samples, vanished
series end at once (staleness), the thread runs and stops; the state-store sources read a real database."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update

from tests.conftest import Api
from tests.helpers import score
from yunzhou.observe.metrics import MetricStore, QueryEngine
from yunzhou.observe.metrics.collect import ScrapeLoop, scrape_interval
from yunzhou.observe.metrics.collect_db import StateReader
from yunzhou.observe.metrics.collect_instances import InstanceSample
from yunzhou.observe.metrics.collect_setup import retention
from yunzhou.observe.metrics.exposition import Sample
from yunzhou.store.models import App, Instance, WorkItem

T0 = 1_700_000_000.0


class Scripted:
    """A collector whose answers the test sets tick by tick (an exception is raised)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.next: list[Sample] | Exception = []

    def collect(self, now: float) -> Iterable[Sample]:
        if isinstance(self.next, Exception):
            raise self.next
        return list(self.next)


@pytest.fixture
def store() -> Iterator[MetricStore]:
    with MetricStore.open(None) as s:
        yield s


def _value(engine: QueryEngine, expr: str, t: float) -> list[float]:
    return [float(s["value"][1]) for s in engine.instant(expr, t)["result"]]


def test_a_failing_collector_costs_only_its_own_samples(store: MetricStore) -> None:
    good, bad = Scripted("good"), Scripted("bad")
    loop = ScrapeLoop(store, [bad, good])
    good.next = [Sample("good_total", {"a": "1"}, 1.0)]
    bad.next = [Sample("bad_gauge", {}, 5.0)]
    loop.run_once(T0)
    bad.next = RuntimeError("boom")
    good.next = [Sample("good_total", {"a": "1"}, 2.0)]
    loop.run_once(T0 + 10)
    engine = QueryEngine(store)
    assert _value(engine, "good_total", T0 + 10) == [2.0]
    assert _value(engine, 'yunzhou_scrape_errors_total{source="bad"}', T0 + 10) == [1.0]
    assert _value(engine, 'yunzhou_scrape_errors_total{source="good"}', T0 + 10) == [0.0]
    latest = {name: value for name, _, value in loop.latest()}
    assert latest["bad_gauge"] == 5.0  # a failed run says nothing new: the last value stays on /metrics
    assert "yunzhou_scrape_errors_total" in loop.render()


def test_a_failure_is_logged_when_it_is_new(store: MetricStore, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="yunzhou.observe.metrics")
    source = Scripted("router")
    loop = ScrapeLoop(store, [source])
    source.next = OSError("connection refused")
    for i in range(3):
        loop.run_once(T0 + i)
    source.next = []
    loop.run_once(T0 + 3)
    messages = [r.getMessage() for r in caplog.records if r.name == "yunzhou.observe.metrics"]
    assert messages == [
        "metrics collector router failed: OSError: connection refused",
        "metrics collector router works again",
    ]
    assert _value(QueryEngine(store), 'yunzhou_scrape_errors_total{source="router"}', T0 + 3) == [3.0]


def test_a_series_that_vanishes_ends_at_once(store: MetricStore) -> None:
    source = Scripted("s")
    loop = ScrapeLoop(store, [source])
    source.next = [Sample("up_gauge", {"i": "1"}, 1.0), Sample("up_gauge", {"i": "2"}, 1.0)]
    loop.run_once(T0)
    source.next = [Sample("up_gauge", {"i": "1"}, 1.0)]
    loop.run_once(T0 + 10)
    engine = QueryEngine(store)
    assert _value(engine, "sum(up_gauge)", T0 + 5) == [2.0]
    assert _value(engine, "sum(up_gauge)", T0 + 11) == [1.0]  # without the marker: 2 for 5 minutes
    assert [labels for name, labels, _ in loop.latest() if name == "up_gauge"] == [{"i": "1"}]


def test_the_thread_scrapes_every_interval_and_stops(store: MetricStore) -> None:
    source = Scripted("s")
    source.next = [Sample("x_total", {}, 1.0)]
    loop = ScrapeLoop(store, [source], interval=0.05).start()
    try:
        deadline = time.monotonic() + 10
        while loop.ticks < 3 and time.monotonic() < deadline:
            time.sleep(0.01)  # polling interval, bounded by the deadline
        assert loop.ticks >= 3
    finally:
        loop.stop()
    ticks = loop.ticks
    assert loop._thread is None
    assert loop.ticks == ticks


def test_environment_settings() -> None:
    assert scrape_interval({}) == 10.0
    assert scrape_interval({"YUNZHOU_SCRAPE_INTERVAL": "0.5"}) == 0.5
    with pytest.raises(ValueError, match="YUNZHOU_SCRAPE_INTERVAL"):
        scrape_interval({"YUNZHOU_SCRAPE_INTERVAL": "fast"})
    assert retention({}) == {}
    assert retention({"YUNZHOU_METRICS_RETENTION": "30d", "YUNZHOU_METRICS_ROLLUP": "1m"}) == {
        "retention": 30 * 86400,
        "rollup_interval": 60,
    }
    with pytest.raises(ValueError, match="YUNZHOU_METRICS_RAW_RETENTION"):
        retention({"YUNZHOU_METRICS_RAW_RETENTION": "-1d"})


def test_state_store_sources(api: Api) -> None:
    assert api.http.post("/api/v1/projects", json={"name": "shop"}, headers=api.admin).status_code == 201
    assert api.http.post(
        "/api/v1/projects/shop/environments", json={"name": "dev"}, headers=api.admin
    ).is_success
    body = {
        "score": score(resources={"limits": {"memory": "64Mi", "cpu": "250m"}}),
        "settings": {"replicas": 2, "metrics": {"port": "web", "path": "/prom"}},
    }
    r = api.http.post("/api/v1/projects/shop/environments/dev/deployments", json=body, headers=api.admin)
    assert r.status_code == 201, r.text
    state = StateReader(api.cp.ctx.db)
    assert state.replicas() == [("shop/dev/orders", 2, 0)]
    assert state.metrics_path("shop/dev/orders", 1) == "/prom"
    assert state.metrics_path("shop/dev/orders", 2) is None  # no such release (yet): nothing to scrape
    body["settings"] = {"metrics": {"path": "/v2"}}
    body["score"] = score()
    r = api.http.post("/api/v1/projects/shop/environments/dev/deployments", json=body, headers=api.admin)
    assert r.status_code == 201, r.text
    assert state.metrics_path("shop/dev/orders", 2) == "/v2"  # a release that did not exist is not cached
    assert state.release_facts("shop/dev/orders", 2).memory_limit_bytes is None
    assert state.release_facts("shop/dev/orders", 2).cpu_limit_cores is None
    assert sum(state.queue_depth().values()) == 1  # the deploy's work item, due and not leased
    with api.cp.ctx.db.transaction() as s:
        s.execute(update(WorkItem).values(due_at=datetime.now(UTC) + timedelta(hours=1)))
    depth = state.queue_depth()
    assert list(depth.values()) == [0]  # nothing waits now, and the kind is still reported
    reported = InstanceSample(app="shop/dev/orders", instance="i-1", release=1, ready=True, cpu_seconds=0,
                              memory_bytes=0, restarts=0, port=4000)  # fmt: skip
    [declared] = state.with_endpoints([reported])
    assert (declared.metrics_path, declared.memory_limit_bytes) == ("/prom", 64 << 20)
    assert declared.cpu_limit_cores == 0.25
    assert state.reported_instances() == []  # nothing ran them: no reconciler in this test
    with api.cp.ctx.db.transaction() as s:  # what a reconcile pass records
        app_id = s.scalar(select(App.id))
        row = Instance(app_id=app_id, instance_id="orders-r1-a", release=1, pid=None, port=80, state="ready",
                       ready=True, restarts=3, last_exit="exit 1", cpu_seconds=1.5, memory_bytes=2048,
                       observed_at=datetime.now(UTC))  # fmt: skip
        s.add(row)
    [seen] = state.reported_instances()
    assert (seen.app, seen.instance, seen.ready, seen.restarts, seen.cpu_seconds) == (
        "shop/dev/orders",
        "orders-r1-a",
        True,
        3,
        1.5,
    )
    assert state.reported_instances(except_target="local") == []  # read live by the local collector
