"""Issue 15, "The local target runs images": a release with an image runs each instance as a runc container
on the platform's bridge — a real server, its router and real containers of a busybox image made here."""

from __future__ import annotations

import os
import signal
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.local.containers import busybox_image, image_score
from tests.integration.local.test_local_runtime import Load
from yunzhou.client import YunzhouClient
from yunzhou.sandbox import Network, Runc
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
    # what a container writes is captured as the app's log, as for a process
    started = wait_until(
        "the container's start-up line in the logs",
        lambda: client.get_logs("shop", "dev", "web", grep="listening on 8080 version v2")["items"],
    )
    assert started[0]["stream"] == "stdout"


def test_a_crash_restarts_with_backoff_and_shows_its_last_lines_and_an_oom_kill_is_reported(
    server: ControlPlaneProcess, client: YunzhouClient, image: str
) -> None:
    crash = client.deploy("shop", "dev", image_score("crash", image, CRASH="1"), None, None)
    hog_doc = image_score("hog", image, HOG="1")
    hog_doc["containers"]["web"]["resources"] = {"limits": {"memory": "32Mi"}}
    client.deploy("shop", "dev", hog_doc, None, None)
    failed = client.wait_for_rollout("shop", "dev", "crash", crash["rollout"]["id"], timeout=DEADLINE)
    assert failed["state"] == "failed"
    assert "CrashLoopBackOff" in failed["message"]
    assert "exit 3" in failed["message"]
    assert "boom: the database is gone" in failed["message"]  # its stderr, read through runc's pipes
    (crashing,) = client.list_instances("shop", "dev", "crash")
    assert crashing["restarts"] >= 3
    assert crashing["state"] in ("crashloop", "starting", "running")
    oom = wait_until(
        "an OOMKilled report",
        lambda: [i for i in client.list_instances("shop", "dev", "hog") if i["last_exit"] == "OOMKilled"],
    )
    assert oom[0]["restarts"] >= 1


def call_from(server: ControlPlaneProcess, app: str, url: str) -> str:
    """What app's instance got when it fetched ``url`` from inside its container."""
    return get(server, f"{app}.dev.shop.localhost", f"/cgi-bin/call?{url}").text


def test_an_instance_reaches_other_apps_only_through_the_router_which_applies_their_access_policy(
    server: ControlPlaneProcess, client: YunzhouClient, image: str
) -> None:
    """The bypass from the issue: dialling another app's instance address directly fails (isolated bridge
    ports); the same call through the router works, and the router refuses a caller the policy denies."""
    assert deploy(client, image_score("api", image), {"traffic": {"access": {"deny": ["web"]}}})["state"] == (
        "succeeded"
    )
    for name in ("web", "client"):
        assert deploy(client, image_score(name, image))["state"] == "succeeded"
    (api,) = client.list_instances("shop", "dev", "api")
    through_router = f"http://api.dev.shop.localhost:{server.router_port}/"  # the name resolves to the router
    allowed = call_from(server, "client", through_router)
    assert allowed.startswith("CALL-OK v1"), allowed
    denied = call_from(server, "web", through_router)
    assert denied.startswith("CALL-FAILED"), denied
    assert "403" in denied, denied
    address = Network().attachments()[api["id"]].ip  # the instance's own address on the bridge
    direct = f"http://{address}:{api['port']}/"
    assert get(server, "api.dev.shop.localhost").text.startswith("v1")  # it serves there (to the router)
    for caller in ("client", "web"):
        bypass = call_from(server, caller, direct)
        assert bypass.startswith("CALL-FAILED"), bypass
    # the control plane's API on the host is out of reach too (only the router's port is open to instances)
    api_port = server.url.rsplit(":", 1)[1]
    to_api = call_from(server, "client", f"http://10.213.0.1:{api_port}/api/v1/healthz")
    assert to_api.startswith("CALL-FAILED"), to_api


def test_an_instance_sees_nothing_of_the_platform(
    server: ControlPlaneProcess, client: YunzhouClient, image: str
) -> None:
    client.set_secret("shop", "dev", "DB_PASSWORD", "s3cret-value")
    assert deploy(client, image_score("web", image))["state"] == "succeeded"
    assert deploy(client, image_score("other", image))["state"] == "succeeded"
    data = server.data_dir
    for path in (data / "admin-token", data / "secret-keys", data / "yunzhou.db", Path("/etc/shadow")):
        seen = get(server, HOST, f"/cgi-bin/look?{path}").text
        assert "READ-FAILED" in seen, (path, seen)
    pids = {int(p) for p in get(server, HOST, "/cgi-bin/look?proc").text.split() if p.isdigit()}
    (other,) = client.list_instances("shop", "dev", "other")
    assert server.process is not None
    assert server.process.pid not in pids
    assert other["pid"] not in pids
    assert len(pids) < 10  # its own pid namespace: tini, httpd, the CGI script and its ls
    whoami = get(server, HOST, "/cgi-bin/look?/proc/self/status").text
    uid = next(line.split()[1] for line in whoami.splitlines() if line.startswith("Uid:"))
    assert 2_000_000_000 <= int(uid) < 2**31  # the app's own user, not root
    caps = next(line.split()[1] for line in whoami.splitlines() if line.startswith("CapEff:"))
    assert int(caps, 16) == 0


def test_files_volumes_exec_probes_and_self_healing(
    server: ControlPlaneProcess, client: YunzhouClient, image: str
) -> None:
    doc = image_score("web", image)
    web = doc["containers"]["web"]
    web["files"] = {"/etc/app/greeting": {"content": "hello from ${metadata.name}\n", "mode": "0440"}}
    web["volumes"] = {"/data": {"source": "${resources.data}"}}
    web["readinessProbe"] = {"exec": {"command": ["test", "-f", "/tmp/www/healthz"]}}  # runs via runc exec
    doc["resources"] = {"data": {"type": "volume"}}
    done = deploy(client, doc)
    assert done["state"] == "succeeded", done["message"]
    assert get(server, HOST, "/cgi-bin/look?/etc/app/greeting").text.strip() == "hello from web"
    (before,) = client.list_instances("shop", "dev", "web")
    assert len(get(server, HOST, "/cgi-bin/look?/data/starts").text.split("\n")) == 2  # one line + ""

    # its app process dies (kill -9 of the container's init): the instance restarts, its volume stays
    state = Runc(next(Path("/run/yunzhou/runc").glob("*/" + before["id"])).parent).state(before["id"])
    assert state is not None
    os.kill(state.pid, signal.SIGKILL)
    wait_until(
        "the killed instance to be back",
        lambda: any(
            i["id"] == before["id"] and i["ready"] and i["restarts"] >= 1
            for i in client.list_instances("shop", "dev", "web")
        ),
    )
    starts = get(server, HOST, "/cgi-bin/look?/data/starts").text.split()
    assert starts.count("start") == 2  # the second run appended to what the first wrote
    assert get(server, HOST).text.startswith("v1")
