"""The environment's ``egress`` policy on the REAL local runtime: an instance of an environment with egress
off cannot reach an address outside the machine (a netns behind its own veth, as in
tests/integration/sandbox/test_network.py), while the same image in an environment with egress on can;
the change of policy applies at the next rollout."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.local.containers import busybox_image, image_score
from tests.integration.sandbox.test_network import outside  # noqa: F401 (the fixture)
from yunzhou.client import YunzhouClient
from yunzhou.sandbox import Network
from yunzhou.testing import ControlPlaneProcess

DEADLINE = 90.0


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[ControlPlaneProcess, str]]:
    image = busybox_image(tmp_path / "data", tmp_path)
    with ControlPlaneProcess(tmp_path / "data", startup_timeout=90) as cp:
        yield cp, image


def deploy(client: YunzhouClient, env: str, image: str, version: str = "v1") -> None:
    result = client.deploy("shop", env, image_score("web", image, version), None, None)
    done = client.wait_for_rollout(
        "shop", env, "web", result["rollout"]["id"], timeout=DEADLINE, interval=0.1
    )
    assert done["state"] == "succeeded", done["message"]


def call_from(server: ControlPlaneProcess, env: str, url: str) -> str:
    """What the instance of web in ``env`` got when it fetched ``url`` from inside its container."""
    host = f"web.{env}.shop.localhost"
    r = httpx.get(
        f"http://127.0.0.1:{server.router_port}/cgi-bin/call?{url}", headers={"Host": host}, timeout=30
    )
    return r.text


def egress_of(client: YunzhouClient, env: str) -> bool:
    (instance,) = client.list_instances("shop", env, "web")
    return Network().attachments()[instance["id"]].egress


def test_an_instance_reaches_the_outside_only_where_its_environment_allows_egress(
    server: tuple[ControlPlaneProcess, str],
    outside: str,  # noqa: F811 (the fixture)
) -> None:
    cp, image = server
    with YunzhouClient(cp.url, cp.admin_token) as client:
        client.create_project("shop")
        client.create_environment("shop", "open")
        closed = client.create_environment("shop", "closed", egress=False)
        assert closed["egress"] is False
        for env in ("open", "closed"):
            deploy(client, env, image)
        assert (egress_of(client, "open"), egress_of(client, "closed")) == (True, False)
        reached = call_from(cp, "open", outside)
        assert reached.startswith("CALL-OK outside"), reached
        refused = call_from(cp, "closed", outside)
        assert refused.startswith("CALL-FAILED"), refused
        # switched on: the next rollout's instances reach it
        client.update_environment("shop", "closed", egress=True)
        deploy(client, "closed", image, "v2")
        assert egress_of(client, "closed") is True
        reached = call_from(cp, "closed", outside)
        assert reached.startswith("CALL-OK outside"), reached
