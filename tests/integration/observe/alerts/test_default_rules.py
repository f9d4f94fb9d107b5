"""The four default rules other than the error rate (which test_alert_healing.py fires with real
processes), each made to fire on the embedded metrics path.

Not with processes: their windows and ``for`` (5m, 10m, 2m, 3m, 5m) are the real defaults, untuned, and
only simulated time makes that cheap. What is real: the rules as the evaluator plans them for an app
(expressions, thresholds, windows, ``for``), the metric store and query engine, and the series — written
by the server's own collectors (RouterCollector reading a RouterMetrics exposition that counted the
requests, InstanceCollector reading the instances as the runtime reports them) in a ScrapeLoop, every
15 s. Each scenario starts healthy (nothing may fire), then breaks as a real app would: a slow release, a
crash-looping instance, a killed instance, an instance growing towards its memory limit. Each asserts
pending → firing after exactly the rule's ``for`` (to one evaluation), the labels, and that no other
default rule fired."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import UnixClock, control_plane_with_app
from yunzhou.observe.alerts import AlertEvaluator
from yunzhou.observe.metrics import MetricStore, QueryEngine
from yunzhou.observe.metrics.collect import ScrapeLoop
from yunzhou.observe.metrics.collect_instances import InstanceCollector, InstanceSample
from yunzhou.observe.metrics.collect_router import RouterCollector
from yunzhou.router.metrics import RouterMetrics
from yunzhou.services import SYSTEM, ControlPlane
from yunzhou.store import Database

ADDRESS = "shop/dev/orders"
STEP = 15.0  # the default alert interval; the scrape runs at the same instants
MIB = 1024 * 1024
Active = list[dict[str, Any]]


class App:
    """shop/dev/orders as the collectors see it: the router's counters and the runtime's instances."""

    def __init__(self, database: Database, data_dir: Path) -> None:
        self.clock = UnixClock()
        self.cp: ControlPlane = control_plane_with_app(database, data_dir, self.clock, None)
        self.store = MetricStore.open(None)
        self.router = RouterMetrics()
        self.instances = {
            i: InstanceSample(ADDRESS, i, 1, True, 0.0, 80 * MIB, 0, pid=None, memory_limit_bytes=256 * MIB)
            for i in ("orders-a", "orders-b")
        }
        self.desired = 2
        self.scrape = ScrapeLoop(
            self.store,
            [
                RouterCollector(self.router.render),
                InstanceCollector(
                    lambda: list(self.instances.values()),
                    lambda: [(ADDRESS, self.desired, sum(i.ready for i in self.instances.values()))],
                ),
            ],
            interval=STEP,
        )
        self.evaluator = AlertEvaluator(self.cp, QueryEngine(self.store), interval=STEP)
        self.t = self.clock.t

    def requests(self, n: int, seconds: float, status: int = 200) -> None:
        for _ in range(n):
            self.router.request_started(ADDRESS)
            self.router.request_finished(ADDRESS, 1, status, seconds)

    def tick(self) -> dict[str, Active]:
        """One scrape and one evaluation STEP seconds later; the app's active alerts by name."""
        self.t += STEP
        self.clock.t = self.t
        self.scrape.run_once(self.t)
        self.evaluator.evaluate_once(self.t)
        active: dict[str, Active] = {}
        for a in self.cp.alerts.active(SYSTEM, "shop", "dev", "orders"):
            active.setdefault(str(a["alertname"]), []).append(a)
        return active

    def close(self) -> None:
        self.store.close()


@pytest.fixture
def app(database: Database, tmp_path: Path) -> Iterator[App]:
    world = App(database, tmp_path / "data")
    yield world
    world.close()


def run_until_firing(
    app: App, alertname: str, steps: int, change: Callable[[], None] = lambda: None
) -> Active:
    """Tick (calling ``change`` first, and with 20 quick requests a step) until ``alertname`` fires; only
    it may be firing meanwhile. Returns its firing alerts."""
    for _ in range(steps):
        change()
        app.requests(20, 0.02)
        active = app.tick()
        assert not {n for n, alerts in active.items() if n != alertname and _firing(alerts)}, active
        firing = _firing(active.get(alertname, []))
        if firing:
            return firing
    raise AssertionError(f"{alertname} did not fire in {steps} steps")


def _firing(alerts: Active) -> Active:
    return [a for a in alerts if a["state"] == "firing"]


def held(alert: dict[str, Any]) -> float:
    """How long the alert was pending before it fired (the rule's ``for``, to one evaluation)."""
    return float(alert["fired_at"]) - float(alert["active_at"])


def healthy(app: App, minutes: float, latency: float = 0.02) -> None:
    for _ in range(int(minutes * 60 / STEP)):
        app.requests(20, latency)
        assert app.tick() == {}


def test_a_slow_release_fires_app_latency_high_after_3m(app: App) -> None:
    healthy(app, 6)
    firing = run_until_firing(app, "AppLatencyHigh", 40, lambda: app.requests(20, 1.8))  # 1.8 s each
    assert 180 <= held(firing[0]) <= 180 + STEP
    assert firing[0]["labels"]["severity"] == "warning"
    assert firing[0]["value"] > 1.0  # p95 in seconds, from the router's histogram
    assert "p95 latency" in firing[0]["annotations"]["summary"]


def test_a_crash_looping_instance_fires_app_crash_looping_for_that_instance(app: App) -> None:
    healthy(app, 11)  # longer than the 10m window, with no restarts

    def crash_every_30s() -> None:  # orders-a exits every 30 s and is restarted; orders-b is fine
        a = app.instances["orders-a"]
        exits = int(app.t / STEP) % 2 == 0
        app.instances["orders-a"] = replace(
            a, restarts=a.restarts + exits, last_exit="exit 1", ready=not exits
        )  # fmt: skip

    firing = run_until_firing(app, "AppCrashLooping", 40, crash_every_30s)
    assert [a["labels"]["instance"] for a in firing] == ["orders-a"]  # the failing one only
    assert firing[0]["labels"]["severity"] == "critical"
    assert firing[0]["value"] > 2
    assert held(firing[0]) == 0  # for: 0s
    assert app.instances["orders-a"].restarts <= 4  # on the restart after the threshold (2), or the next


def test_a_killed_instance_fires_app_instance_down_after_2m(app: App) -> None:
    healthy(app, 3)
    del app.instances["orders-b"]  # killed, and its replacement cannot start
    firing = run_until_firing(app, "AppInstanceDown", 20)
    assert 120 <= held(firing[0]) <= 120 + STEP
    assert firing[0]["value"] == 1.0  # desired 2, ready 1
    assert "1 instance(s) not ready" in firing[0]["annotations"]["summary"]


def test_memory_growing_towards_the_limit_fires_app_memory_near_limit_after_5m(app: App) -> None:
    healthy(app, 3)

    def leak() -> None:  # orders-b grows 8 MiB a scrape up to ~96 % of its 256 MiB limit
        b = app.instances["orders-b"]
        app.instances["orders-b"] = replace(b, memory_bytes=min(b.memory_bytes + 8 * MIB, 246 * MIB))

    firing = run_until_firing(app, "AppMemoryNearLimit", 60, leak)
    assert 300 <= held(firing[0]) <= 300 + STEP
    assert [a["labels"]["instance"] for a in firing] == ["orders-b"]
    assert 0.9 < firing[0]["value"] < 1.0
