"""Security (issue 14, item 1): an app shares the host's loopback network with the router, so it can reach
the router's admin port; without the admin token it can neither read the routes and metrics nor reroute
another project's host to itself. A real server, router and app processes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from yunzhou.client import YunzhouClient
from yunzhou.testing import ControlPlaneProcess, polling

APPS = Path(__file__).parent / "apps"
DEADLINE = 90.0
VICTIM_HOST = "vault.dev.bank.localhost"


def score(name: str, variables: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "score.dev/v1b1",
        "metadata": {"name": name},
        "containers": {"main": {"image": "python:3.11-slim", "command": ["python3", "app.py"],
                                "variables": variables}},
    }  # fmt: skip


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ControlPlaneProcess]:
    with ControlPlaneProcess(tmp_path / "data") as cp:
        yield cp


def deploy(client: YunzhouClient, project: str, doc: dict[str, Any], source: Path) -> None:
    result = client.deploy(project, "dev", doc, None, client.upload_artifact(source))
    rollout = client.wait_for_rollout(
        project, "dev", doc["metadata"]["name"], result["rollout"]["id"], timeout=DEADLINE, interval=0.2
    )
    assert rollout["state"] == "succeeded", rollout


def victim_route(admin: httpx.Client) -> dict[str, Any]:
    (found,) = [r for r in admin.get("/config").json()["routes"] if r["host"] == VICTIM_HOST]
    return dict(found)


def served(server: ControlPlaneProcess) -> bytes:
    url = f"http://127.0.0.1:{server.router_port}/"
    return httpx.get(url, headers={"Host": VICTIM_HOST}, timeout=10, trust_env=False).content


def test_an_app_that_reaches_the_router_admin_port_cannot_reroute_or_read_it(
    server: ControlPlaneProcess,
) -> None:
    with YunzhouClient(server.url, server.admin_token) as client, server.router_admin() as admin:
        for project in ("bank", "mallory"):
            client.create_project(project)
            client.create_environment(project, "dev")
        deploy(client, "bank", score("vault", {"APP_VERSION": "v1"}), APPS / "web")
        before = victim_route(admin)
        assert b'"version": "v1"' in served(server)

        attacker = score("rerouter", {"ADMIN_PORT": str(admin.base_url.port), "VICTIM_HOST": VICTIM_HOST})
        deploy(client, "mallory", attacker, APPS / "rerouter")

        def report() -> list[str]:
            lines = [r["line"] for r in client.get_logs("mallory", "dev", "rerouter", limit=500)["items"]]
            return lines if "DONE" in lines else []

        lines = polling.wait_until("the rerouter's report in its logs", report, DEADLINE)
        attempts = [line for line in lines if line.startswith("ADMIN ")]
        assert len(attempts) == 5, lines
        for line in attempts:  # every try, the token-less and the guessed one, got 401 and nothing else
            assert ": 401 " in line, line
            assert "unauthenticated" in line, line
        assert victim_route(admin) == before  # the routes are intact...
        assert admin.get("/config").json()["version"] < 2**52
        assert b'"version": "v1"' in served(server)  # ...and the victim's host still reaches the victim
        refused = [
            line
            for line in admin.get("/metrics").text.splitlines()
            if line.startswith("yunzhou_router_admin_")
        ]
        assert refused == ["yunzhou_router_admin_unauthorized_total 5"]
