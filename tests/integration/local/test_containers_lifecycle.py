"""Container instances across the platform's own lifecycle: scale to zero and wake (the router holds the
requests while a container starts), and a control plane killed with -9 whose containers are removed (not
adopted: their output went to the dead supervisor) and replaced by fresh ones at the next start."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest

from tests.integration.local.containers import busybox_image, image_score
from tests.integration.local.test_containers import deploy, get, wait_until
from tests.integration.local.test_scale_to_zero import IDLE_SECONDS, at_zero, policy
from yunzhou.build.oci import ImageStore
from yunzhou.client import YunzhouClient
from yunzhou.registry.client import RegistryClient
from yunzhou.runtimes.local.containers import RUNC_STATE
from yunzhou.runtimes.local.isolation import Isolation
from yunzhou.sandbox import Runc
from yunzhou.testing import ControlPlaneProcess


@pytest.fixture
def image(tmp_path: Path) -> str:
    return busybox_image(tmp_path / "data", tmp_path)


def containers_of(data: Path) -> set[str]:
    """The ids of the containers runc knows under this server's state root (one per data dir)."""
    root = Isolation.from_env(data, {}).root
    assert root is not None
    return {s.id for s in Runc(RUNC_STATE / root.name).list()}


def test_a_scaled_to_zero_container_app_wakes_on_a_request(tmp_path: Path, image: str) -> None:
    env = {"YUNZHOU_AUTOSCALE_INTERVAL": "0.5", "YUNZHOU_SCRAPE_INTERVAL": "1"}
    with (
        ControlPlaneProcess(tmp_path / "data", env=env, startup_timeout=90) as server,
        YunzhouClient(server.url, server.admin_token) as client,
    ):
        client.create_project("shop")
        client.create_environment("shop", "dev")
        assert deploy(client, image_score("orders", image), policy(30))["state"] == "succeeded"
        host = "orders.dev.shop.localhost"
        assert get(server, host).text.startswith("v1")
        wait_until("orders to scale to zero", lambda: at_zero(client, "orders"), IDLE_SECONDS + 60)
        started = time.monotonic()
        woke = httpx.get(
            f"http://127.0.0.1:{server.router_port}/", headers={"Host": host}, timeout=60, trust_env=False
        )
        cold = time.monotonic() - started
        assert woke.status_code == 200
        assert woke.text.startswith("v1")
        print(f"container cold start from zero: {cold:.3f} s")


def test_a_control_plane_killed_with_9_leaves_no_container_behind(tmp_path: Path, image: str) -> None:
    data = tmp_path / "data"
    first = ControlPlaneProcess(data, startup_timeout=90).start()
    try:
        with YunzhouClient(first.url, first.admin_token) as c:
            c.create_project("shop")
            c.create_environment("shop", "dev")
            assert deploy(c, image_score("web", image), {"replicas": 2})["state"] == "succeeded"
            old = {i["id"] for i in c.list_instances("shop", "dev", "web")}
        assert first.process is not None
        first.process.kill()
        first.process.wait(10)
    finally:
        first.stop()
    second = ControlPlaneProcess(data, startup_timeout=90)
    second.api_port, second.router_port = first.api_port, first.router_port
    with second, YunzhouClient(second.url, second.admin_token) as c:
        wait_until(
            "convergence after restart",
            lambda: (
                c.get_app("shop", "dev", "web")["ready_replicas"] == 2
                and len(now := c.list_instances("shop", "dev", "web")) == 2
                and not {i["id"] for i in now} & old
            ),
        )
        now = {i["id"] for i in c.list_instances("shop", "dev", "web")}
        assert not containers_of(data) & old  # the dead run's containers are gone from runc
        assert now <= containers_of(data)
        assert get(second, "web.dev.shop.localhost").text.startswith("v1")


def test_a_canary_of_container_releases_is_served_then_promoted(tmp_path: Path, image: str) -> None:
    settings = {"replicas": 1, "rollout": {"strategy": "canary", "steps": [{"weight": 50, "pause": "10m"}]}}
    with (
        ControlPlaneProcess(tmp_path / "data", startup_timeout=90) as server,
        YunzhouClient(server.url, server.admin_token) as client,
    ):
        client.create_project("shop")
        client.create_environment("shop", "dev")
        assert deploy(client, image_score("kiosk", image), settings)["state"] == "succeeded"
        host = "kiosk.dev.shop.localhost"

        def canary_serves(version: str) -> bool:
            r = httpx.get(
                f"http://127.0.0.1:{server.router_port}/",
                headers={"Host": host, "x-canary": "always"},
                timeout=10,
            )
            return r.status_code == 200 and r.text.startswith(version)

        v2 = client.deploy("shop", "dev", image_score("kiosk", image, "v2"), settings, None)
        wait_until("the canary container to serve", lambda: canary_serves("v2"))
        assert {get(server, host).text.split()[0] for _ in range(20)} == {"v1", "v2"}  # 50% each way
        client.rollout_command("shop", "dev", "kiosk", "promote")
        done = client.wait_for_rollout("shop", "dev", "kiosk", v2["rollout"]["id"], timeout=90, interval=0.1)
        assert done["state"] == "succeeded", done["message"]
        assert {get(server, host).text.split()[0] for _ in range(10)} == {"v2"}


def test_an_image_only_in_the_platform_registry_is_pulled_before_it_runs(tmp_path: Path) -> None:
    """A pinned image the server's store lacks (pushed to the registry from elsewhere) is pulled first."""
    elsewhere = tmp_path / "elsewhere"
    image = busybox_image(elsewhere, tmp_path)  # in another store, not the server's
    repository, _, digest = image.partition("@")
    with (
        ControlPlaneProcess(tmp_path / "data", startup_timeout=90) as server,
        YunzhouClient(server.url, server.admin_token) as client,
    ):
        address = json.loads((tmp_path / "data" / "registry" / "address.json").read_text())
        with RegistryClient(address["url"], username="admin", password=server.admin_token) as admin:
            admin.push(ImageStore(elsewhere / "images"), repository, digest, tag="v1")
        assert not ImageStore(tmp_path / "data" / "images").has(digest)
        client.create_project("shop")
        client.create_environment("shop", "dev")
        assert deploy(client, image_score("web", image))["state"] == "succeeded"
        assert ImageStore(tmp_path / "data" / "images").has(digest)
        assert get(server, "web.dev.shop.localhost").text.startswith("v1")
