"""Snapshot validation, routing-table matching and version rules: pure, no sockets."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Iterator
from typing import Any

import pytest

from yunzhou.domain.errors import Conflict, UserError
from yunzhou.router import parse_snapshot
from yunzhou.router.config import RoutingTable, host_from_header, parse_address
from yunzhou.router.server import Router, Settings

GOOD: dict[str, Any] = {
    "version": 7,
    "routes": [
        {
            "host": "orders.dev.shop.localhost",
            "path_prefix": "/",
            "app": "shop/dev/orders",
            "backends": [
                {"id": "i-3f2a", "address": "127.0.0.1:41001", "release": 3},
                {"id": "i-9c1d", "address": "[::1]:41002", "release": 3},
            ],
        }
    ],
}


def problems_of(doc: object) -> list[str]:
    with pytest.raises(UserError) as caught:
        parse_snapshot(doc)
    return [p.path for p in caught.value.problems]


def test_a_good_snapshot_round_trips() -> None:
    snapshot = parse_snapshot(GOOD)
    assert snapshot.to_json() == GOOD
    backend = snapshot.routes[0].backends[1]
    assert (backend.host, backend.port) == ("::1", 41002)
    assert snapshot.backend_addresses() == {("127.0.0.1", 41001), ("::1", 41002)}


def test_path_prefix_defaults_to_root_and_hosts_are_lowercased() -> None:
    doc = {"version": 1, "routes": [{"host": "Shop.Example.", "app": "shop/prod/web", "backends": []}]}
    route = parse_snapshot(doc).routes[0]
    assert (route.host, route.path_prefix) == ("shop.example", "/")


def test_every_problem_of_the_document_is_named_at_once() -> None:
    doc = {**copy.deepcopy(GOOD), "version": -1, "routes": {}, "callers": {"nope": "a/b/c"}, "extra": 1}
    assert problems_of(doc) == ["extra", "version", "routes", "callers"]


def test_an_invalid_route_is_dropped_naming_every_problem_and_the_others_are_kept() -> None:
    doc = copy.deepcopy(GOOD)
    bad = copy.deepcopy(GOOD["routes"][0])
    bad["app"] = "orders"
    bad["backends"][0]["address"] = "orders:80"
    bad["backends"][1]["release"] = True
    bad["weight"] = 3
    doc["routes"].insert(0, bad)
    snapshot = parse_snapshot(doc)
    assert [r.to_json() for r in snapshot.routes] == GOOD["routes"]
    (dropped,) = snapshot.dropped
    assert (dropped.index, dropped.host, dropped.app) == (0, "orders.dev.shop.localhost", "orders")
    for path in (
        "routes[0].weight",
        "routes[0].app",
        "routes[0].backends[0].address",
        "routes[0].backends[1].release",
    ):
        assert path in dropped.reason


@pytest.mark.parametrize(
    ("doc", "path"),
    [
        ([], ""),
        ({"version": 1}, "routes"),
        ({"version": 1.5, "routes": []}, "version"),
    ],
)
def test_malformed_documents_name_the_field(doc: object, path: str) -> None:
    assert path in problems_of(doc)


@pytest.mark.parametrize(
    ("doc", "path"),
    [
        ({"version": 1, "routes": [None]}, "routes[0]"),
        (
            {"version": 1, "routes": [{"host": "-bad.localhost", "app": "a/b/c", "backends": []}]},
            "routes[0].host",
        ),
        (
            {"version": 1, "routes": [{"host": "x.localhost", "app": "a/b/c", "backends": None}]},
            "routes[0].backends",
        ),
        (
            {
                "version": 1,
                "routes": [{"host": "x.localhost", "path_prefix": "/a?b", "app": "a/b/c", "backends": []}],
            },
            "routes[0].path_prefix",
        ),
    ],
)
def test_malformed_routes_are_dropped_naming_the_field(doc: dict[str, Any], path: str) -> None:
    good = copy.deepcopy(GOOD["routes"][0])
    snapshot = parse_snapshot({**doc, "routes": [*doc["routes"], good]})
    assert [r.app for r in snapshot.routes] == ["shop/dev/orders"]
    assert [d.index for d in snapshot.dropped] == [0]
    assert path in snapshot.dropped[0].reason


def test_a_route_with_a_duplicate_backend_id_is_dropped() -> None:
    doc = copy.deepcopy(GOOD)
    doc["routes"][0]["backends"][1]["id"] = "i-3f2a"
    snapshot = parse_snapshot(doc)
    assert snapshot.routes == ()
    assert "routes[0].backends[1].id: duplicate backend id" in snapshot.dropped[0].reason


def test_a_duplicate_host_and_path_is_dropped_the_first_listed_keeps_it() -> None:
    doc = copy.deepcopy(GOOD)
    doc["routes"].append(
        {**copy.deepcopy(GOOD["routes"][0]), "app": "evil/x/y", "path_prefix": "/", "backends": []}
    )
    doc["routes"].append({"host": "other.localhost", "app": "evil/x/y", "backends": []})
    snapshot = parse_snapshot(doc)
    assert [(r.host, r.app) for r in snapshot.routes] == [
        ("orders.dev.shop.localhost", "shop/dev/orders"),
        ("other.localhost", "evil/x/y"),
    ]
    (dropped,) = snapshot.dropped
    assert dropped.index == 1
    assert "already routed by routes[0] (app shop/dev/orders)" in dropped.reason


def test_the_app_that_already_serves_a_host_keeps_it_against_a_newcomer_listed_first() -> None:
    active = parse_snapshot(GOOD)
    newcomer = {"host": "orders.dev.shop.localhost", "path_prefix": "/", "app": "aaa/x/y", "backends": []}
    doc = {**copy.deepcopy(GOOD), "version": 8, "routes": [newcomer, copy.deepcopy(GOOD["routes"][0])]}
    snapshot = parse_snapshot(doc, active)
    assert [r.app for r in snapshot.routes] == ["shop/dev/orders"]
    assert [(d.index, d.app) for d in snapshot.dropped] == [(0, "aaa/x/y")]


def test_an_app_whose_policy_is_invalid_is_not_routed_and_the_others_are() -> None:
    doc = copy.deepcopy(GOOD)
    doc["routes"].append({"host": "b.localhost", "app": "shop/dev/b", "backends": []})
    doc["policies"] = {"shop/dev/b": {"traffic": {}, "split": {"stable": 50}}}
    snapshot = parse_snapshot(doc)
    assert [r.app for r in snapshot.routes] == ["shop/dev/orders"]
    assert "policies.shop/dev/b" in snapshot.dropped[0].reason
    assert snapshot.policies == {}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:80", ("127.0.0.1", 80)),
        ("[::1]:8080", ("::1", 8080)),
        ("127.0.0.1:0", None),
        ("127.0.0.1:65536", None),
        ("::1:80", None),
        ("[127.0.0.1]:80", None),
        ("localhost:80", None),
        ("127.0.0.1", None),
        (8080, None),
    ],
)
def test_backend_addresses_are_ip_literals(text: object, expected: tuple[str, int] | None) -> None:
    assert parse_address(text) == expected


@pytest.mark.parametrize(
    ("header", "host"),
    [
        (b"Orders.Dev.Shop.Localhost:8080", "orders.dev.shop.localhost"),
        (b"shop.example.", "shop.example"),
        (b"[::1]:8080", "[::1]"),
        (b" x.localhost ", "x.localhost"),
    ],
)
def test_host_header_matching_ignores_case_port_and_trailing_dot(header: bytes, host: str) -> None:
    assert host_from_header(header) == host


def test_longest_prefix_wins_and_prefixes_match_whole_segments() -> None:
    def route(prefix: str, app: str) -> dict[str, Any]:
        return {"host": "h.localhost", "path_prefix": prefix, "app": app, "backends": []}

    table = RoutingTable(
        parse_snapshot(
            {
                "version": 1,
                "routes": [route("/", "p/e/root"), route("/api/", "p/e/api"), route("/api/v2", "p/e/v2")],
            }
        )
    )

    def app(path: str) -> str | None:
        matched = table.match("h.localhost", path)
        return matched.app if matched else None

    assert app("/") == "p/e/root"
    assert app("/apix") == "p/e/root"
    assert app("/api") == "p/e/api"
    assert app("/api/") == "p/e/api"
    assert app("/api/v2") == "p/e/v2"
    assert app("/api/v2/x") == "p/e/v2"
    assert app("/api/v20") == "p/e/api"
    assert table.match("other.localhost", "/") is None
    assert table.has_host("h.localhost")


def test_without_a_root_route_unmatched_paths_have_no_route() -> None:
    doc = {
        "version": 1,
        "routes": [{"host": "h.localhost", "path_prefix": "/api", "app": "p/e/a", "backends": []}],
    }
    table = RoutingTable(parse_snapshot(doc))
    assert table.match("h.localhost", "/other") is None


def test_round_robin_order_rotates_and_lists_the_others_for_fall_through() -> None:
    doc = copy.deepcopy(GOOD)
    doc["routes"][0]["backends"].append({"id": "i-3", "address": "127.0.0.1:41003", "release": 3})
    route = parse_snapshot(doc).routes[0]
    orders = [[b.id for b in route.pick_order()] for _ in range(4)]
    assert orders == [
        ["i-3f2a", "i-9c1d", "i-3"],
        ["i-9c1d", "i-3", "i-3f2a"],
        ["i-3", "i-3f2a", "i-9c1d"],
        ["i-3f2a", "i-9c1d", "i-3"],
    ]


@pytest.fixture
def router() -> Iterator[Router]:
    loop = asyncio.new_event_loop()
    yield Router(Settings(), loop)
    loop.close()


def test_version_rules(router: Router) -> None:
    assert router.apply_config(GOOD) is True
    assert router.apply_config(copy.deepcopy(GOOD)) is False  # same version, same content: idempotent
    with pytest.raises(Conflict):
        router.apply_config({**GOOD, "version": 6})
    with pytest.raises(Conflict):
        router.apply_config({**GOOD, "routes": []})  # same version, different content
    with pytest.raises(UserError):
        router.apply_config({"version": 8, "routes": "nope"})
    bad_route = {"host": "-bad", "app": "a/b/c", "backends": []}
    with pytest.raises(Conflict):  # a dropped route does not make a changed snapshot the same one
        router.apply_config({**GOOD, "routes": [*GOOD["routes"], bad_route]})
    assert router.table.snapshot.to_json() == GOOD
    assert router.apply_config({"version": 8, "routes": []}) is True
    assert router.metrics.config_version == 8
    assert router.pools.by_address == {}


def test_the_first_snapshot_may_have_any_version(router: Router) -> None:
    assert router.apply_config({"version": 0, "routes": []}) is True
    assert router.table.snapshot.version == 0


def test_backends_that_failed_to_connect_are_tried_last_for_a_while(router: Router) -> None:
    doc = copy.deepcopy(GOOD)
    doc["routes"][0]["backends"].append({"id": "i-3", "address": "127.0.0.1:41003", "release": 3})
    backends = list(parse_snapshot(doc).routes[0].backends)
    pools = router.pools
    assert pools.healthy_first(backends) is backends
    pools.mark_down("127.0.0.1", 41001)
    assert [b.id for b in pools.healthy_first(backends)] == ["i-9c1d", "i-3", "i-3f2a"]
    pools.mark_up("127.0.0.1", 41001)
    assert [b.id for b in pools.healthy_first(backends)] == ["i-3f2a", "i-9c1d", "i-3"]
    pools.down_until[("127.0.0.1", 41001)] = router.loop.time() - 1  # expired
    assert pools.healthy_first(backends) is backends
    assert pools.down_until == {}
