"""The admin API, metrics and the access log of a real router process."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from yunzhou.domain.errors import Conflict, UserError
from yunzhou.router import RouterProcess

from .conftest import APP, HOST, Backend, admin_client, metric_value, proxy_client, route, snapshot, wait_for


def test_config_versions_stale_is_409_equal_is_idempotent(
    router: RouterProcess, backends: dict[str, Backend]
) -> None:
    first = snapshot(7, route(HOST, [backends["a1"].entry()]))
    assert router.push_config(first) == {"version": 7, "applied": True, "dropped": []}
    assert router.push_config(first) == {"version": 7, "applied": False, "dropped": []}
    assert router.get_config() == first

    with pytest.raises(Conflict, match="older than the active version 7"):
        router.push_config(snapshot(6, route(HOST, [backends["a2"].entry()])))
    with pytest.raises(Conflict, match="already active with different content"):
        router.push_config(snapshot(7, route(HOST, [backends["a2"].entry()])))
    assert router.get_config() == first

    with admin_client(router) as admin:
        raw = admin.put("/config", json=snapshot(3))
    assert raw.status_code == 409
    assert raw.json()["error"]["code"] == "conflict"


@pytest.mark.parametrize(
    ("doc", "field"),
    [
        ({"routes": []}, "version"),
        ({"version": "8", "routes": []}, "version"),
        ({"version": 8, "routes": {}}, "routes"),
        ({"version": 8, "routes": [], "extra": True}, "extra"),
    ],
)
def test_malformed_snapshot_is_422_naming_the_field_and_keeps_the_old_config(
    router: RouterProcess, backends: dict[str, Backend], doc: dict[str, object], field: str
) -> None:
    good = snapshot(5, route(HOST, [backends["a1"].entry()]))
    router.push_config(good)
    with pytest.raises(UserError) as caught:
        router.push_config(doc)
    assert field in [p.path for p in caught.value.problems], caught.value
    assert field in caught.value.message
    assert router.get_config() == good
    with proxy_client(router, headers={"Host": HOST}) as client:
        assert client.get("/").json()["backend"] == "a1"


def test_body_that_is_not_json_is_422(router: RouterProcess) -> None:
    with admin_client(router) as admin:
        response = admin.put("/config", content=b"{nope")
    assert response.status_code == 422
    assert "not valid JSON" in response.json()["error"]["message"]


def test_healthz_and_unknown_admin_paths(router: RouterProcess) -> None:
    with admin_client(router) as admin:
        health = admin.get("/healthz")
        assert health.status_code == 200
        assert health.json() == {"status": "ok", "config_version": 0}
        assert admin.get("/nope").status_code == 404
        assert admin.post("/config").status_code == 405


def test_metrics_and_access_log_follow_traffic(
    router_factory: Callable[..., RouterProcess], backends: dict[str, Backend], tmp_path: Path
) -> None:
    access_log = tmp_path / "metrics-access.log"
    router = router_factory(access_log=str(access_log))
    router.push_config(snapshot(11, route(HOST, [backends["a1"].entry(release=4)])))
    before = router.metrics_text()
    assert metric_value(before, "yunzhou_router_config_version") == 11
    labels = {"app": APP, "release": "4"}

    with proxy_client(router) as client:
        for _ in range(3):
            assert client.get("/orders?id=1", headers={"Host": HOST}).status_code == 200
        assert client.get("/status?code=404", headers={"Host": HOST}).status_code == 404
        assert client.get("/status?code=503", headers={"Host": HOST}).status_code == 503
        assert client.get("/", headers={"Host": "unknown.localhost"}).status_code == 404

    after = router.metrics_text()
    count = "yunzhou_router_requests_total"
    assert (
        metric_value(after, count, **labels, code="2xx") - metric_value(before, count, **labels, code="2xx")
        == 3
    )
    assert metric_value(after, count, **labels, code="4xx") == 1
    assert metric_value(after, count, **labels, code="5xx") == 1
    assert metric_value(after, "yunzhou_router_request_duration_seconds_count", **labels) == 5
    assert metric_value(after, "yunzhou_router_request_duration_seconds_bucket", **labels, le="+Inf") == 5
    assert metric_value(after, "yunzhou_router_requests_in_flight", app=APP) == 0
    assert metric_value(after, "yunzhou_router_unrouted_requests_total") == 1
    assert "# TYPE yunzhou_router_request_duration_seconds histogram" in after

    lines = wait_for(
        lambda: (text := access_log.read_text()).count("\n") >= 6 and text.splitlines(), "6 access log lines"
    )
    entries = [json.loads(line) for line in lines]
    first = entries[0]
    assert first["app"] == APP
    assert first["backend"] == "a1"
    assert first["release"] == 4
    assert first["method"] == "GET"
    assert first["path"] == "/orders"
    assert first["status"] == 200
    assert first["bytes"] > 0
    assert first["duration_ms"] >= 0
    assert len(first["request_id"]) == 32
    assert first["time"].endswith("Z")
    assert [e["status"] for e in entries] == [200, 200, 200, 404, 503, 404]
    assert entries[-1]["app"] is None
    assert entries[-1]["host"] == "unknown.localhost"


def test_start_with_a_config_file(
    router_factory: Callable[..., RouterProcess], backends: dict[str, Backend]
) -> None:
    router = router_factory(config=snapshot(2, route(HOST, [backends["a2"].entry()])))
    assert router.get_config()["version"] == 2
    with proxy_client(router, headers={"Host": HOST}) as client:
        assert client.get("/").json()["backend"] == "a2"
