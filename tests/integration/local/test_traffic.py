"""Traffic policy on the local target: a real control plane, its router and real app processes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from yunzhou.client import YunzhouClient
from yunzhou.testing import ControlPlaneProcess

APPS = Path(__file__).parent / "apps"
DEADLINE = 60.0


def mesh_score(name: str, version: str, **variables: str) -> dict[str, Any]:
    return {
        "apiVersion": "score.dev/v1b1",
        "metadata": {"name": name},
        "containers": {
            "web": {
                "image": "python:3.11-slim",
                "command": ["python3", "app.py"],
                "variables": {"APP_VERSION": version, **variables},
                "readinessProbe": {"httpGet": {"path": "/healthz", "port": 8080}},
            }
        },
    }


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ControlPlaneProcess]:
    with ControlPlaneProcess(tmp_path / "data") as cp:
        yield cp


@pytest.fixture
def client(server: ControlPlaneProcess) -> Iterator[YunzhouClient]:
    with YunzhouClient(server.url, server.admin_token) as c:
        c.create_project("shop")
        c.create_environment("shop", "dev")
        yield c


def deploy(
    client: YunzhouClient, name: str, settings: dict[str, Any], version: str = "v1", **env: str
) -> None:
    result = client.deploy(
        "shop", "dev", mesh_score(name, version, **env), settings, client.upload_artifact(APPS / "mesh")
    )
    done = client.wait_for_rollout(
        "shop", "dev", name, result["rollout"]["id"], timeout=DEADLINE, interval=0.1
    )
    assert done["state"] == "succeeded", done


def call(server: ControlPlaneProcess, host: str, path: str = "/") -> httpx.Response:
    return httpx.get(f"http://127.0.0.1:{server.router_port}{path}", headers={"Host": host}, timeout=10)


def test_a_may_call_b_and_b_may_not_call_a(server: ControlPlaneProcess, client: YunzhouClient) -> None:
    deploy(client, "front", {"traffic": {"access": {"deny": ["back"]}}})
    deploy(client, "back", {"traffic": {"retries": {"attempts": 1}}})
    a_host, b_host = "front.dev.shop.localhost", "back.dev.shop.localhost"

    a_to_b = call(server, a_host, f"/call?host={b_host}").json()
    assert a_to_b["status"] == 200
    assert a_to_b["body"]["caller"] == "shop/dev/front"  # B learns who called, from the router

    b_to_a = call(server, b_host, f"/call?host={a_host}").json()
    assert b_to_a["status"] == 403
    assert b_to_a["body"]["error"]["policy"] == "shop/dev/front traffic.access.deny.0"

    # From outside: allowed (external: true), and a forged identity header never reaches the app.
    outside = httpx.get(
        f"http://127.0.0.1:{server.router_port}/",
        headers={"Host": a_host, "x-yunzhou-caller": "shop/dev/back"},
        timeout=10,
    )
    assert outside.status_code == 200
    assert outside.json()["caller"] is None
