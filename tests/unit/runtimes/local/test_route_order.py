"""How the local target orders a snapshot's routes and reads back the routes the router left out."""

from __future__ import annotations

from typing import Any

from yunzhou.runtimes.local.traffic import not_routed_by_app, route_rank


def entry(host: str, app: str, path: str = "/") -> dict[str, Any]:
    return {"host": host, "path_prefix": path, "app": app, "backends": []}


def test_every_default_route_comes_before_any_extra_route_then_older_apps_first() -> None:
    routes = [(7, 0), (7, 1), (3, 1), (3, 0), (9, 0), (3, 2)]  # (app id, position in the app's routes)
    ordered = sorted(routes, key=lambda r: route_rank(r[1], r[0]))
    assert ordered == [(3, 0), (7, 0), (9, 0), (3, 1), (3, 2), (7, 1)]


def test_a_left_out_route_names_the_holder_only_inside_its_own_project() -> None:
    routes = [
        entry("web.prod.shop.localhost", "shop/prod/web"),
        entry("shop.example.test", "shop/prod/web"),
        entry("shop.example.test", "evil/dev/grab"),
        entry("shop.example.test", "shop/prod/api"),
        entry("bad host", "shop/prod/api", "/x"),
    ]
    dropped = [
        {"index": 2, "reason": "host 'shop.example.test' … already routed by routes[1] (app shop/prod/web)"},
        {"index": 3, "reason": "host 'shop.example.test' … already routed by routes[1] (app shop/prod/web)"},
        {"index": 4, "reason": "routes[4].host: 'bad host' is not a host name"},
        {"index": 99, "reason": "not ours"},
        "junk",
    ]
    assert not_routed_by_app(routes, dropped) == {
        "evil/dev/grab": (
            "route shop.example.test/ is not served: an app of another project has this host and path",
        ),
        "shop/prod/api": (
            "route shop.example.test/ is not served: app shop/prod/web has this host and path",
            "route bad host/x is not served: routes[4].host: 'bad host' is not a host name",
        ),
    }
    assert not_routed_by_app(routes, None) == {}
