"""The in-process API over the real store and engine, fed by the real scrape loop with a known load."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import Api
from tests.helpers import score
from yunzhou.observe.metrics import MetricStore, QueryEngine
from yunzhou.observe.metrics.collect import ScrapeLoop
from yunzhou.observe.metrics.collect_instances import InstanceCollector, InstanceSample
from yunzhou.observe.metrics.collect_router import RouterCollector
from yunzhou.router.metrics import RouterMetrics

T0 = 1_700_000_000.0
TICKS = 91  # 15 minutes at 10 s


class Traffic:
    """The router's real metrics object, driven with a known load; the loop reads its text as it would
    from the router's admin port."""

    def __init__(self) -> None:
        self.router = RouterMetrics()
        self.cpu = 0.0

    def tick(self) -> None:
        for i in range(50):  # 5 requests/s over 10 s; one in ten fails; 4 ms each
            self.router.request_started("shop/dev/orders")
            self.router.request_finished("shop/dev/orders", 1, 500 if i % 10 == 0 else 200, 0.004)
        self.cpu += 0.5  # 0.05 cores

    def instances(self) -> list[InstanceSample]:
        return [
            InstanceSample(app="shop/dev/orders", instance="orders-1", release=1, ready=True,
                           cpu_seconds=self.cpu, memory_bytes=100 << 20, restarts=0)
        ]  # fmt: skip


@pytest.fixture
def shop(api: Api) -> Iterator[tuple[Api, ScrapeLoop]]:
    assert api.http.post("/api/v1/projects", json={"name": "shop"}, headers=api.admin).status_code == 201
    assert api.http.post(
        "/api/v1/projects/shop/environments", json={"name": "dev"}, headers=api.admin
    ).is_success
    r = api.http.post(
        "/api/v1/projects/shop/environments/dev/deployments", json={"score": score()}, headers=api.admin
    )
    assert r.status_code == 201, r.text
    traffic = Traffic()
    with MetricStore.open(None) as store:
        loop = ScrapeLoop(
            store,
            [RouterCollector(traffic.router.render), InstanceCollector(traffic.instances, lambda: [])],
            clock=lambda: T0,
        )
        for i in range(TICKS):
            traffic.tick()
            loop.run_once(T0 + 10 * i)
        api.http.app.state.metrics = QueryEngine(store)  # type: ignore[attr-defined]
        api.http.app.state.metrics_scrape = loop  # type: ignore[attr-defined]
        yield api, loop


END = T0 + 10 * (TICKS - 1)
