"""The issue's reproduction end to end (issue 14, security item 2): a real control plane, its router and
real app processes. A project's claim on another project's host is refused at the API; and should two
apps still route one host (a store written before hosts were owned), the router keeps serving the owner,
every other project keeps deploying and being routed, the claimant's ``Routed`` condition says why without
naming the owner, and reverting the route heals it. Before, the router refused every later snapshot."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from yunzhou.client import YunzhouClient
from yunzhou.client.errors import ApiError
from yunzhou.testing import ControlPlaneProcess, polling

from .test_traffic import APPS, mesh_score

DEADLINE = 60.0
HOST = "shop.example.test"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ControlPlaneProcess]:
    with ControlPlaneProcess(tmp_path / "data", host_processes=True) as cp:
        yield cp


@pytest.fixture
def client(server: ControlPlaneProcess) -> Iterator[YunzhouClient]:
    with YunzhouClient(server.url, server.admin_token) as c:
        for project in ("shop", "evil", "third"):
            c.create_project(project)
            c.create_environment(project, "dev")
        yield c


def wait_rollout(client: YunzhouClient, project: str, app: str, result: dict[str, Any]) -> None:
    done = client.wait_for_rollout(
        project, "dev", app, result["rollout"]["id"], timeout=DEADLINE, interval=0.1
    )
    assert done["state"] == "succeeded", done


def deploy(client: YunzhouClient, project: str, app: str, version: str, **settings: Any) -> None:
    artifact = client.upload_artifact(APPS / "mesh")
    wait_rollout(
        client, project, app, client.deploy(project, "dev", mesh_score(app, version), settings, artifact)
    )


def version_at(server: ControlPlaneProcess, host: str) -> str:
    response = httpx.get(f"http://127.0.0.1:{server.router_port}/", headers={"Host": host}, timeout=10)
    assert response.status_code == 200, response.text
    return str(response.json()["version"])


def routed(client: YunzhouClient, project: str, app: str) -> dict[str, Any] | None:
    conditions = client.get_app(project, "dev", app)["conditions"]
    return next((c for c in conditions if c["type"] == "Routed"), None)


def test_a_claimed_host_never_stalls_the_router_and_reverting_the_claim_heals_it(
    server: ControlPlaneProcess, client: YunzhouClient
) -> None:
    deploy(client, "shop", "web", "shop-v1", routes=[{"host": HOST}])
    assert version_at(server, HOST) == "shop-v1"

    with pytest.raises(ApiError) as refused:  # the claim is refused at the API
        client.deploy("evil", "dev", mesh_score("grab", "evil-v1"), {"routes": [{"host": HOST}]})
    assert refused.value.status == 409

    # A store from before hosts were owned: the owner's claim is not recorded, so the claim gets through.
    deploy(client, "evil", "grab", "evil-v1", routes=[{"host": "grab.example.test"}])
    with sqlite3.connect(server.data_dir / "state.db") as db:
        db.execute("DELETE FROM route_claims WHERE host = ?", (HOST,))
    wait_rollout(
        client, "evil", "grab", client.update_settings("evil", "dev", "grab", {"routes": [{"host": HOST}]})
    )

    # the router keeps serving the owner and takes every later snapshot: a third project deploys and is routed
    assert version_at(server, HOST) == "shop-v1"
    deploy(client, "third", "site", "third-v1")
    assert version_at(server, "site.dev.third.localhost") == "third-v1"
    assert version_at(server, "grab.dev.evil.localhost") == "evil-v1"  # the claimant's other routes serve
    condition = polling.wait_until(
        "evil/dev/grab's Routed condition",
        lambda: (c := routed(client, "evil", "grab")) and c["status"] == "False" and c,
        DEADLINE,
    )
    assert condition["reason"] == "RouteNotServed"
    assert f"route {HOST}/ is not served: an app of another project" in condition["message"]
    assert "shop/dev/web" not in condition["message"]
    assert routed(client, "shop", "web") is None  # the owner has nothing to report

    # reverting the route heals it
    wait_rollout(client, "evil", "grab", client.update_settings("evil", "dev", "grab", {"routes": None}))
    polling.wait_until(
        "evil/dev/grab Routed again",
        lambda: (c := routed(client, "evil", "grab")) and c["status"] == "True",
        DEADLINE,
    )
    deploy(client, "third", "site", "third-v2")
    assert version_at(server, "site.dev.third.localhost") == "third-v2"
    assert version_at(server, HOST) == "shop-v1"
