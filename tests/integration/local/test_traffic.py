"""Traffic policy on the local target: a real control plane, its router and real app processes."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from yunzhou.client import YunzhouClient
from yunzhou.client.errors import ApiError
from yunzhou.testing import ControlPlaneProcess, polling

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
    with ControlPlaneProcess(tmp_path / "data", host_processes=True) as cp:
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


class Load:
    """A steady stream of requests through the router, recording (status, version) of every answer."""

    def __init__(self, router_port: int, host: str) -> None:
        self.url, self.host = f"http://127.0.0.1:{router_port}/", host
        self.results: list[tuple[int, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(headers={"Host": self.host}, timeout=10, trust_env=False) as c:
            while not self._stop.is_set():
                try:
                    r = c.get(self.url)
                    self.results.append((r.status_code, r.json().get("version", "?")))
                except (httpx.HTTPError, ValueError) as exc:
                    self.results.append((0, f"error {type(exc).__name__}"))

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)


def test_a_failing_canary_is_aborted_and_a_healthy_one_promoted(
    server: ControlPlaneProcess, client: YunzhouClient
) -> None:
    canary = {
        "replicas": 2,
        "rollout": {
            "strategy": "canary",
            "steps": [
                {"weight": 20, "analysis": {"window": "2s", "maxErrorRate": 0.05, "minRequests": 20}},
                {"weight": 50, "pause": "1s"},
            ],
        },
    }
    deploy(client, "shopfront", canary, "v1")  # the first release has nothing to compare with: rolling
    host = "shopfront.dev.shop.localhost"
    with Load(server.router_port, host) as load:
        bad = client.deploy(
            "shop",
            "dev",
            mesh_score("shopfront", "v2", ERROR_RATE="0.5"),
            canary,
            client.upload_artifact(APPS / "mesh"),
        )
        done = client.wait_for_rollout(
            "shop", "dev", "shopfront", bad["rollout"]["id"], timeout=DEADLINE, interval=0.1
        )
        assert done["state"] == "failed", done
        assert "canary aborted at step 1 (20%): error rate" in done["message"], done
        mark = len(load.results)

        def only_stable() -> bool:
            recent = load.results[mark:]
            return len(recent) > 50 and all(r == (200, "v1") for r in recent[-50:])

        wait_until("all traffic back on the stable release", only_stable)
        during = list(load.results)
    served = Counter(during)
    assert served[(500, "v2")] > 0  # the canary really got traffic and failed
    assert all(status == 200 for status, version in during if version == "v1"), served  # stable never failed
    assert {version for _, version in during} <= {"v1", "v2"}, served  # no connection errors, no 502/503

    with Load(server.router_port, host) as load:
        good = client.deploy(
            "shop", "dev", mesh_score("shopfront", "v3"), canary, client.upload_artifact(APPS / "mesh")
        )
        done = client.wait_for_rollout(
            "shop", "dev", "shopfront", good["rollout"]["id"], timeout=DEADLINE, interval=0.1
        )
        assert done["state"] == "succeeded", done
        mark = len(load.results)
        wait_until("requests after the promotion", lambda: len(load.results) > mark + 50)
    assert Counter(load.results[mark:]) == {(200, "v3"): len(load.results) - mark}
    assert (200, "v3") in load.results[:mark]
    assert (200, "v1") in load.results[:mark]
    assert all(status == 200 for status, _ in load.results)


def wait_until(what: str, check: Any, timeout: float = DEADLINE) -> Any:
    return polling.wait_until(what, check, timeout, interval=0.05)


def test_blue_green_serves_the_new_release_only_on_the_preview_host_then_switches_at_once(
    server: ControlPlaneProcess, client: YunzhouClient
) -> None:
    host, preview = "tills.dev.shop.localhost", "preview.tills.dev.shop.localhost"
    settings = {
        "replicas": 2,
        "rollout": {
            "strategy": "blue-green",
            "previewHost": preview,
            "analysis": {"window": "1s", "maxErrorRate": 0.01, "minRequests": 10},
        },
    }
    deploy(client, "tills", settings, "v1")
    with Load(server.router_port, host) as load:
        green = client.deploy(
            "shop", "dev", mesh_score("tills", "v2"), settings, client.upload_artifact(APPS / "mesh")
        )
        wait_until("the preview host to serve the new release", lambda: _version(server, preview) == "v2")
        assert {_version(server, host) for _ in range(20)} == {"v1"}  # everyone else still gets blue
        smoke = [_version(server, preview) for _ in range(12)]  # the smoke test the analysis waits for
        assert smoke[:9] == ["v2"] * 9, smoke  # (after 10 requests and 1 s it may switch: then 404 → None)
        assert set(smoke) <= {"v2", None}, smoke
        done = client.wait_for_rollout(
            "shop", "dev", "tills", green["rollout"]["id"], timeout=DEADLINE, interval=0.1
        )
        assert done["state"] == "succeeded", done
        mark = len(load.results)
        wait_until("requests after the switch", lambda: len(load.results) > mark + 30)
    assert all(status == 200 for status, _ in load.results), Counter(load.results)
    assert set(load.results[mark:]) == {(200, "v2")}
    assert call(server, preview).status_code == 404  # the preview host is gone with the switch


def _version(server: ControlPlaneProcess, host: str) -> str | None:
    response = call(server, host)
    return response.json().get("version") if response.status_code == 200 else None


def test_manual_promote_and_abort(server: ControlPlaneProcess, client: YunzhouClient) -> None:

    settings = {"replicas": 1, "rollout": {"strategy": "canary", "steps": [{"weight": 50, "pause": "10m"}]}}
    deploy(client, "kiosk", settings, "v1")
    host = "kiosk.dev.shop.localhost"
    with pytest.raises(ApiError) as info:
        client.rollout_command("shop", "dev", "kiosk", "promote")
    assert info.value.status == 409

    def canary_serves(version: str) -> bool:
        r = httpx.get(
            f"http://127.0.0.1:{server.router_port}/",
            headers={"Host": host, "x-canary": "always"},
            timeout=10,
        )
        return r.status_code == 200 and r.json()["version"] == version

    v2 = client.deploy(
        "shop", "dev", mesh_score("kiosk", "v2"), settings, client.upload_artifact(APPS / "mesh")
    )
    wait_until("the canary to serve", lambda: canary_serves("v2"))
    client.rollout_command("shop", "dev", "kiosk", "promote")
    done = client.wait_for_rollout(
        "shop", "dev", "kiosk", v2["rollout"]["id"], timeout=DEADLINE, interval=0.1
    )
    assert done["state"] == "succeeded", done
    assert {call(server, host).json()["version"] for _ in range(10)} == {"v2"}

    v3 = client.deploy(
        "shop", "dev", mesh_score("kiosk", "v3"), settings, client.upload_artifact(APPS / "mesh")
    )
    wait_until("the canary to serve", lambda: canary_serves("v3"))
    client.rollout_command("shop", "dev", "kiosk", "abort")
    done = client.wait_for_rollout(
        "shop", "dev", "kiosk", v3["rollout"]["id"], timeout=DEADLINE, interval=0.1
    )
    assert done["state"] == "failed", done
    assert "aborted by a user" in done["message"]
    wait_until(
        "traffic back on v2", lambda: all(call(server, host).json()["version"] == "v2" for _ in range(10))
    )
    assert any(e["action"] == "rollout.abort" for e in client.list_audit(project="shop"))


def test_rollout_promote_and_abort_through_the_cli(
    server: ControlPlaneProcess, client: YunzhouClient
) -> None:
    """`yunzhou rollout promote|abort shop/dev/kiosk` (the real CLI, a subprocess) steers a canary held at
    a 10-minute pause: promote moves all traffic to it at once, abort sends it back to the stable release;
    with no canary in progress the command fails and says why."""

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "yunzhou", *args], env=server.client_env() | {"COLUMNS": "200"},
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip

    settings = {"replicas": 1, "rollout": {"strategy": "canary", "steps": [{"weight": 50, "pause": "10m"}]}}
    deploy(client, "kiosk", settings, "v1")
    host = "kiosk.dev.shop.localhost"
    idle = cli("rollout", "promote", "shop/dev/kiosk")
    assert idle.returncode != 0
    assert "no rollout in progress" in idle.stdout + idle.stderr

    def canary_serves(version: str) -> bool:
        r = httpx.get(
            f"http://127.0.0.1:{server.router_port}/",
            headers={"Host": host, "x-canary": "always"},
            timeout=10,
        )
        return r.status_code == 200 and r.json()["version"] == version

    artifact = client.upload_artifact(APPS / "mesh")
    v2 = client.deploy("shop", "dev", mesh_score("kiosk", "v2"), settings, artifact)
    wait_until("the v2 canary to serve", lambda: canary_serves("v2"))
    assert client.get_rollout("shop", "dev", "kiosk", v2["rollout"]["id"])["state"] == "progressing"
    promoted = cli("rollout", "promote", "shop/dev/kiosk")
    assert promoted.returncode == 0, promoted.stderr
    assert f"Asked rollout {v2['rollout']['id']} of shop/dev/kiosk to promote" in promoted.stdout
    done = client.wait_for_rollout(
        "shop", "dev", "kiosk", v2["rollout"]["id"], timeout=DEADLINE, interval=0.1
    )
    assert done["state"] == "succeeded", done  # long before the 10-minute pause would have ended
    assert {call(server, host).json()["version"] for _ in range(10)} == {"v2"}

    v3 = client.deploy("shop", "dev", mesh_score("kiosk", "v3"), settings, artifact)
    wait_until("the v3 canary to serve", lambda: canary_serves("v3"))
    aborted = cli("rollout", "abort", "shop/dev/kiosk")
    assert aborted.returncode == 0, aborted.stderr
    assert f"Asked rollout {v3['rollout']['id']} of shop/dev/kiosk to abort" in aborted.stdout
    done = client.wait_for_rollout(
        "shop", "dev", "kiosk", v3["rollout"]["id"], timeout=DEADLINE, interval=0.1
    )
    assert done["state"] == "failed", done
    assert "aborted by a user" in done["message"]
    wait_until(
        "traffic back on v2", lambda: all(call(server, host).json()["version"] == "v2" for _ in range(10))
    )
    actions = [e["action"] for e in client.list_audit(project="shop")]
    assert "rollout.promote" in actions
    assert "rollout.abort" in actions
