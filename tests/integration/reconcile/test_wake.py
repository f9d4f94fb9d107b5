"""The scale-from-zero wake path (reconcile/wake.py) over a real database and the real autoscaler loop: an
app at zero with held requests at the router is scaled to one at once and the decision says why; nothing
is read from the router while no app is at zero; the idle clock restarts on a wake."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import UnixClock as Clock
from tests.helpers import control_plane_with_app
from yunzhou.observe.metrics import MetricStore, QueryEngine
from yunzhou.reconcile.autoscale import AutoscaleLoop
from yunzhou.reconcile.wake import WakeOnDemand
from yunzhou.services import SYSTEM, ControlPlane
from yunzhou.services.autoscaling import AutoscalingService
from yunzhou.store import Database

APP = "shop/dev/orders"
POLICY = {
    "autoscaling": {
        "minReplicas": 0,
        "maxReplicas": 3,
        "metrics": [{"type": "rps", "target": {"type": "AverageValue", "averageValue": 10}}],
        "scaleToZero": {"enabled": True, "idleSeconds": 60},
    }
}


class Router:
    """The router's /activations answer as data, and how often it was read."""

    def __init__(self) -> None:
        self.apps: dict[str, dict[str, Any]] = {}
        self.reads = 0

    def __call__(self) -> Mapping[str, Mapping[str, Any]]:
        self.reads += 1
        return self.apps


@pytest.fixture
def world(database: Database, tmp_path: Path) -> Iterator[tuple[ControlPlane, AutoscaleLoop, Clock]]:
    clock = Clock()
    cp = control_plane_with_app(database, tmp_path / "data", clock, POLICY)
    store = MetricStore.open(None)
    yield cp, AutoscaleLoop(cp, QueryEngine(store), interval=15), clock
    store.close()


def replicas(cp: ControlPlane) -> int:
    return int(cp.apps.get("shop", "dev", "orders")["replicas"])


def scale_to_zero(cp: ControlPlane) -> None:
    cp.apps.scale(SYSTEM, "shop", "dev", "orders", 0, None)


def test_held_requests_wake_an_app_at_zero(world: tuple[ControlPlane, AutoscaleLoop, Clock]) -> None:
    cp, loop, clock = world
    router = Router()
    wake = WakeOnDemand(loop, router)
    assert wake.run_once() == []
    assert router.reads == 0  # no app at zero: the router is not asked

    scale_to_zero(cp)
    wake = WakeOnDemand(loop, router)
    assert wake.run_once() == []  # at zero, nothing held
    assert router.reads == 1
    router.apps[APP] = {"held": 3, "held_total": 3}
    [decision] = wake.run_once()
    assert (decision["current"], decision["desired"], decision["applied"]) == (0, 1, True)
    assert decision["mode"] == "wake"
    assert "request arrived while scaled to zero" in decision["reason"]
    assert replicas(cp) == 1
    history = AutoscalingService(cp.ctx).decisions("shop", "dev", "orders")
    assert (history[0]["mode"], history[0]["desired"], history[0]["applied"]) == ("wake", 1, True)
    audit = cp.audit.query(SYSTEM, project="shop", action="app.scale")
    assert audit[0]["actor"] == "system:autoscaler"
    assert wake.run_once() == []  # no longer at zero

    # the idle window starts at the wake: the next cycle keeps the instance (no traffic metrics yet)
    clock.t += 30
    assert loop.run_once(clock.t)[0]["desired"] == 1
    clock.t += 31
    assert loop.run_once(clock.t)[0]["desired"] == 0
    assert replicas(cp) == 0


def test_a_request_that_timed_out_before_the_read_still_wakes(
    world: tuple[ControlPlane, AutoscaleLoop, Clock],
) -> None:
    cp, loop, _ = world
    scale_to_zero(cp)
    router = Router()
    router.apps[APP] = {"held": 0, "held_total": 4}  # from before: not a new request
    wake = WakeOnDemand(loop, router)
    assert wake.run_once() == []
    router.apps[APP] = {"held": 0, "held_total": 5}  # one more was held and timed out between two reads
    [decision] = wake.run_once()
    assert decision["desired"] == 1
    assert replicas(cp) == 1


def test_a_scale_to_zero_is_seen_at_once_and_a_wake_wakes_the_reconcile_worker(
    world: tuple[ControlPlane, AutoscaleLoop, Clock],
) -> None:
    # without the hook, apps at zero are re-read once a second: a request arriving in that second waited
    cp, loop, clock = world
    router = Router()
    woke: list[int] = []
    wake = WakeOnDemand(loop, router, woke=lambda: woke.append(1))
    loop.scaled_to_zero = wake.refresh
    assert wake.run_once() == []  # nothing at zero: the targets are read, the router is not
    assert loop.run_once(clock.t)[0]["desired"] == 1  # the idle clock starts
    clock.t += 61  # idle past idleSeconds (no traffic): the autoscaler scales to zero
    assert loop.run_once(clock.t)[0]["desired"] == 0
    assert replicas(cp) == 0
    router.apps[APP] = {"held": 1, "held_total": 1}
    [decision] = wake.run_once()  # at once, not after TARGETS_EVERY
    assert decision["desired"] == 1
    assert woke == [1]  # the server's worker.wake: the scale is applied now, not at its next idle poll
    assert wake.run_once() == []
    assert woke == [1]
