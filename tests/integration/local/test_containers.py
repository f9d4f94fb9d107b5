"""Issue 15, "The local target runs images": a release with an image runs each instance as a runc container
on the platform's bridge — a real server, its router and real containers of a busybox image made here."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.local.containers import busybox_image, image_score
from tests.integration.local.test_local_runtime import Load
from yunzhou.client import YunzhouClient
from yunzhou.testing import ControlPlaneProcess, polling

DEADLINE = 90.0
HOST = "web.dev.shop.localhost"


@pytest.fixture
def image(tmp_path: Path) -> str:
    return busybox_image(tmp_path / "data", tmp_path)


@pytest.fixture
def server(tmp_path: Path, image: str) -> Iterator[ControlPlaneProcess]:
    with ControlPlaneProcess(tmp_path / "data", startup_timeout=90) as cp:
        yield cp


@pytest.fixture
def client(server: ControlPlaneProcess) -> Iterator[YunzhouClient]:
    with YunzhouClient(server.url, server.admin_token) as c:
        c.create_project("shop")
        c.create_environment("shop", "dev")
        yield c


def deploy(
    client: YunzhouClient, doc: dict[str, Any], settings: dict[str, Any] | None = None
) -> dict[str, Any]:
    result = client.deploy("shop", "dev", doc, settings, None)
    return client.wait_for_rollout(
        "shop", "dev", doc["metadata"]["name"], result["rollout"]["id"], timeout=DEADLINE, interval=0.1
    )


def get(server: ControlPlaneProcess, host: str, path: str = "/") -> httpx.Response:
    return httpx.get(f"http://127.0.0.1:{server.router_port}{path}", headers={"Host": host}, timeout=15)


def wait_until(what: str, check: Any, timeout: float = DEADLINE) -> Any:
    return polling.wait_until(what, check, timeout)


def test_an_image_runs_as_containers_behind_the_router_and_rolls_without_dropping_requests(
    server: ControlPlaneProcess, client: YunzhouClient, image: str
) -> None:
    result = client.deploy("shop", "dev", image_score("web", image), {"replicas": 2}, None)
    assert not [w for w in result["warnings"] if "host process" in w["message"]]
    done = client.wait_for_rollout("shop", "dev", "web", result["rollout"]["id"], timeout=DEADLINE)
    assert done["state"] == "succeeded", done["message"]
    instances = client.list_instances("shop", "dev", "web")
    assert len(instances) == 2
    # each instance is a container with an address of its own on the bridge (the router's upstream)
    answers = {get(server, HOST).text.strip() for _ in range(8)}
    assert {a.split()[0] for a in answers} == {"v1"}
    assert len(answers) == 2  # round-robin over both containers (their hostnames differ)

    with Load(f"127.0.0.1:{server.router_port}", HOST, parse=lambda r: r.text.split()[0]) as load:
        wait_until("some traffic", lambda: len(load.results) > 20)
        assert deploy(client, image_score("web", image, "v2"))["state"] == "succeeded"
        seen = len(load.results)
        wait_until("traffic after the rollout", lambda: len(load.results) > seen + 20)
    outcomes = Counter(load.results)
    assert set(outcomes) <= {"v1", "v2"}, outcomes
    assert load.results[-1] == "v2"
