"""The local autoscaler over the real embedded metric store and query engine and a real database (SQLite
and PostgreSQL): router traffic scales an app out through AppService (desired replicas + audit), the
scale-down stabilization window holds it, then it scales back in; decisions are recorded."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Api
from tests.helpers import UnixClock, control_plane_with_app
from yunzhou.observe.metrics import MetricStore, QueryEngine
from yunzhou.reconcile.autoscale import AutoscaleLoop, autoscale_interval
from yunzhou.services import SYSTEM, ControlPlane
from yunzhou.services.autoscaling import AutoscalingService
from yunzhou.store import Database

T0 = 1_800_000_000.0
LABELS = {"project": "shop", "env": "dev", "app": "orders", "release": "1", "code": "2xx"}
POLICY = {
    "autoscaling": {
        "minReplicas": 1,
        "maxReplicas": 6,
        "metrics": [{"type": "rps", "target": {"type": "AverageValue", "averageValue": 10}}],
    }
}


Clock = UnixClock  # starts at T0


@pytest.fixture
def world(database: Database, tmp_path: Path) -> Iterator[tuple[ControlPlane, MetricStore, Clock]]:
    clock = Clock()
    cp = control_plane_with_app(database, tmp_path / "data", clock, POLICY)
    store = MetricStore.open(None)
    yield cp, store, clock
    store.close()


def replicas(cp: ControlPlane) -> int:
    return int(cp.apps.get("shop", "dev", "orders")["replicas"])


def test_traffic_scales_out_then_back_in_after_the_window(
    world: tuple[ControlPlane, MetricStore, Clock],
) -> None:
    cp, store, clock = world
    loop = AutoscaleLoop(cp, QueryEngine(store), interval=15)
    t, total = T0, 0.0

    def tick(rate: float) -> list[dict[str, object]]:
        nonlocal t, total
        for _ in range(3):  # the router is scraped every 5 s
            t += 5
            total += rate * 5
            store.append("yunzhou_router_requests_total", LABELS, total, t)
        clock.t = t
        return loop.run_once(t)

    tick(5)
    tick(5)
    assert replicas(cp) == 1  # 5 rps / 10 per instance: 1
    # 40 rps: the first 30 s rate is half old traffic (22.5 rps → 3), then ceil(40 / 10) = 4
    assert [tick(40)[0]["desired"], tick(40)[0]["desired"]] == [3, 4]
    assert replicas(cp) == 4
    audit = cp.audit.query(SYSTEM, project="shop", action="app.scale")
    assert audit[0]["actor"] == "system:autoscaler"
    for _ in range(5):
        tick(40)
    assert replicas(cp) == 4
    # demand drops: the 300 s scale-down window holds 4 until the last proposal of 4 is 300 s old
    held = 0
    while replicas(cp) == 4:
        tick(0)
        held += 15
        assert held <= 330
    assert held >= 300
    # the first cycle after the drop still saw half a window of traffic (proposal 2), 15 s younger
    assert replicas(cp) == 2
    tick(0)
    assert replicas(cp) == 1
    history = AutoscalingService(cp.ctx).decisions("shop", "dev", "orders")
    assert [h["desired"] for h in history if h["applied"]] == [1, 2, 4, 3]  # newest first
    assert history[0]["reason"]
    assert history[0]["mode"] == "reactive"
    # the API lists the same, newest first; viewers may read it
    api = Api(cp)
    r = api.http.get(
        "/api/v1/projects/shop/environments/dev/apps/orders/autoscaling/decisions", headers=api.admin
    )
    assert r.status_code == 200
    assert r.json()["items"][0]["desired"] == 1
    r = api.http.get(
        "/api/v1/projects/shop/environments/dev/apps/orders/autoscaling/decisions?limit=0", headers=api.admin
    )
    assert r.status_code == 422


def test_interval_setting() -> None:
    assert autoscale_interval({}) == 15.0
    assert autoscale_interval({"YUNZHOU_AUTOSCALE_INTERVAL": "0.5"}) == 0.5
    with pytest.raises(ValueError, match="YUNZHOU_AUTOSCALE_INTERVAL"):
        autoscale_interval({"YUNZHOU_AUTOSCALE_INTERVAL": "0"})
