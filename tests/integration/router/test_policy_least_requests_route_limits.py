"""Two traffic policies through a real router process in front of real backend processes:
``loadBalancer: least-requests`` steers new requests away from an instance still busy with a long one
(where round-robin would alternate), and a route's ``rateLimit`` has its own bucket, replacing the app's
for the requests that route matches."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import httpx

from yunzhou.router import RouterProcess

from .conftest import Backend, metric_value, proxy_client, route, snapshot
from .test_policy import backend_names, policy, with_policies

HOST = "orders.dev.shop.localhost"
APP = "shop/dev/orders"


def test_least_requests_sends_new_requests_to_the_instance_not_busy(
    router: RouterProcess, backend_factory: Callable[[str], Backend]
) -> None:
    # own backends: /release stays released for the process's life
    pair = {b.name: b for b in (backend_factory("lr1"), backend_factory("lr2"))}
    lb = {"loadBalancer": {"policy": "least-requests"}}
    router.push_config(
        with_policies(
            snapshot(1, route(HOST, [b.entry() for b in pair.values()], app=APP)),
            shop__dev__orders=policy(lb),
        )
    )
    with (
        proxy_client(router) as held_client,
        proxy_client(router) as client,
        held_client.stream("GET", "/drip", headers={"Host": HOST}) as held,
    ):
        assert held.status_code == 200  # one request in flight on one instance until /release
        seen = backend_names(client, 40)
        assert len(seen) == 1, seen  # round-robin would send half of them to the busy instance
        (idle,) = seen
        busy = next(name for name in pair if name != idle)
        with httpx.Client(trust_env=False, timeout=5) as direct:
            direct.get(f"http://{pair[busy].address}/release")
        held.read()
    with proxy_client(router) as client:
        spread = backend_names(client, 40)
    assert set(spread) == set(pair), spread  # nothing in flight: both take requests again


def test_a_routes_rate_limit_has_its_own_bucket_and_replaces_the_apps(
    router: RouterProcess, backends: dict[str, Backend]
) -> None:
    traffic = {
        "rateLimit": {"rps": 0.001, "burst": 2},
        "routes": [
            {
                "name": "search",
                "match": {"path": {"prefix": "/search"}},
                "rateLimit": {"rps": 0.001, "burst": 4},
            }
        ],
    }
    router.push_config(
        with_policies(
            snapshot(1, route(HOST, [backends["a1"].entry()], app=APP)), shop__dev__orders=policy(traffic)
        )
    )
    with proxy_client(router) as client:
        searches = [client.get("/search?q=tea", headers={"Host": HOST}) for _ in range(6)]
        others = [client.get("/", headers={"Host": HOST}) for _ in range(4)]
    assert [r.status_code for r in searches] == [200, 200, 200, 200, 429, 429]  # the route's burst of 4
    assert [r.status_code for r in others] == [
        200,
        200,
        429,
        429,
    ]  # the app's burst of 2, untouched by /search
    assert searches[-1].json()["error"]["policy"] == f"{APP} traffic.routes.search.rateLimit"
    assert others[-1].json()["error"]["policy"] == f"{APP} traffic.rateLimit"
    assert searches[-1].headers["retry-after"]
    metrics = router.metrics_text()
    limited = Counter(
        {
            policy_path: metric_value(
                metrics, "yunzhou_router_rate_limited_total", app=APP, policy=policy_path
            )
            for policy_path in ("routes.search.rateLimit", "rateLimit")
        }
    )
    assert limited == {"routes.search.rateLimit": 2, "rateLimit": 2}, limited
