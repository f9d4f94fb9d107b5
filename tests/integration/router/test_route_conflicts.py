"""One bad route never stops a real router from taking the rest of a snapshot (security review, issue 14
item 2): a route whose host and path another route has, or that is invalid, is dropped with its reason
(PUT answer, ``GET /status``, metrics, log) and every other route is applied; correcting it heals it."""

from __future__ import annotations

from typing import Any

import pytest

from yunzhou.router import RouterProcess

from .conftest import HOST, Backend, admin_client, metric_value, proxy_client, route, snapshot

OTHER = "web.prod.third.localhost"


def served_by(router: RouterProcess, host: str) -> str:
    with proxy_client(router, headers={"Host": host}) as client:
        response = client.get("/")
        assert response.status_code == 200, response.text
        return str(response.json()["backend"])


def status(router: RouterProcess) -> dict[str, Any]:
    with admin_client(router) as admin:
        doc: dict[str, Any] = admin.get("/status").json()
    return doc


def test_a_snapshot_with_a_duplicate_host_is_applied_without_it_and_every_other_route_serves(
    router: RouterProcess, backends: dict[str, Backend]
) -> None:
    owner = route(HOST, [backends["a1"].entry()])
    router.push_config(snapshot(1, owner))
    # Another project claims the owner's host (listed first, as an attacker's earlier name would be) while a
    # third app is new in the same snapshot: the router used to refuse the whole snapshot ("already routed").
    claim = route(HOST, [backends["b1"].entry()], app="aaa/dev/evil")
    third = route(OTHER, [backends["a2"].entry()], app="third/prod/web")
    answer = router.push_config(snapshot(2, claim, owner, third))
    assert answer["applied"] is True
    assert [(d["index"], d["app"]) for d in answer["dropped"]] == [(0, "aaa/dev/evil")]
    assert "already routed by routes[1] (app shop/dev/orders)" in answer["dropped"][0]["reason"]
    assert served_by(router, HOST) == "a1"  # the app that served the host keeps it
    assert served_by(router, OTHER) == "a2"  # and the rest of the snapshot is applied
    assert status(router)["dropped"] == answer["dropped"]
    metrics = router.metrics_text()
    assert metric_value(metrics, "yunzhou_router_config_routes_dropped") == 1

    # later snapshots keep being taken while the claim is in them
    router.push_config(snapshot(3, claim, owner, third, route("new.localhost", [backends["a3"].entry()])))
    assert served_by(router, "new.localhost") == "a3"

    # reverting the claim heals: nothing dropped, every route served
    answer = router.push_config(snapshot(4, owner, third))
    assert answer["dropped"] == []
    assert status(router) == {"status": "ok", "config_version": 4, "routes": 2, "dropped": []}
    assert served_by(router, HOST) == "a1"
    assert served_by(router, OTHER) == "a2"
    assert router.log_file is not None
    assert "routes[0] (app aaa/dev/evil) not applied" in router.log_file.read_text()


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        ({"host": "bad host", "app": "x/y/z", "backends": []}, "routes[0].host"),
        ({"host": "x.localhost", "app": "orders", "backends": []}, "routes[0].app"),
        (
            {"host": "x.localhost", "app": "x/y/z", "path_prefix": "api", "backends": []},
            "routes[0].path_prefix",
        ),
        (
            {
                "host": "x.localhost",
                "app": "x/y/z",
                "backends": [{"id": "i", "address": "localhost", "release": 1}],
            },
            "routes[0].backends[0].address",
        ),
        (
            {
                "host": "x.localhost",
                "app": "x/y/z",
                "backends": [{"id": "i", "address": "127.0.0.1:1", "release": -1}],
            },
            "routes[0].backends[0].release",
        ),
    ],
)
def test_an_invalid_route_is_dropped_naming_the_field_and_the_others_are_applied(
    router: RouterProcess, backends: dict[str, Backend], bad: dict[str, Any], field: str
) -> None:
    answer = router.push_config(snapshot(5, bad, route(HOST, [backends["a1"].entry()])))
    (dropped,) = answer["dropped"]
    assert dropped["index"] == 0
    assert field in dropped["reason"]
    assert served_by(router, HOST) == "a1"
