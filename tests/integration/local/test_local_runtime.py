"""The local runtime for real: a `yunzhou server` process, its router, and real app processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from yunzhou.client import YunzhouClient
from yunzhou.runtimes.local.isolation import Isolation
from yunzhou.testing import ControlPlaneProcess, polling

APPS = Path(__file__).parent / "apps"
DEADLINE = 60.0


def score(name: str, version: str, **variables: str) -> dict[str, Any]:
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


def wait_until(what: str, check: Callable[[], Any], timeout: float = DEADLINE) -> Any:
    return polling.wait_until(what, check, timeout)


class Load:
    """A steady stream of requests through the router, recording every outcome."""

    def __init__(
        self, router: str, host: str, parse: Callable[[httpx.Response], str] = lambda r: r.json()["version"]
    ) -> None:
        self.router, self.host, self.parse = router, host, parse
        self.results: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(base_url=f"http://{self.router}", headers={"Host": self.host}, timeout=10) as c:
            while not self._stop.is_set():
                try:
                    r = c.get("/")
                    self.results.append(self.parse(r) if r.status_code == 200 else f"HTTP {r.status_code}")
                except (httpx.HTTPError, ValueError) as exc:
                    self.results.append(f"error {type(exc).__name__}")

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)


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
    client: YunzhouClient, doc: dict[str, Any], source: Path, replicas: int | None = None
) -> dict[str, Any]:
    settings = {"replicas": replicas} if replicas is not None else None
    return client.deploy("shop", "dev", doc, settings, client.upload_artifact(source))


def settle(client: YunzhouClient, result: dict[str, Any]) -> dict[str, Any]:
    app = result["app"]
    return client.wait_for_rollout(
        "shop", "dev", app["name"], result["rollout"]["id"], timeout=DEADLINE, interval=0.1
    )


def get(server: ControlPlaneProcess, host: str) -> httpx.Response:
    return httpx.get(f"http://127.0.0.1:{server.router_port}/", headers={"Host": host}, timeout=10)


def test_replicas_rolling_update_rollback_and_self_healing(
    server: ControlPlaneProcess, client: YunzhouClient
) -> None:
    host = "web.dev.shop.localhost"
    assert (
        settle(client, deploy(client, score("web", "v1"), APPS / "web", replicas=3))["state"] == "succeeded"
    )
    app = client.get_app("shop", "dev", "web")
    assert (app["ready_replicas"], app["status"], app["current_release"]) == (3, "running", 1)
    instances = client.list_instances("shop", "dev", "web")
    assert len(instances) == 3
    assert all(i["ready"] and i["pid"] for i in instances)
    assert len({get(server, host).json()["pid"] for _ in range(12)}) == 3  # round-robin over all three

    # v1 → v2 under a continuous stream: every request succeeds, and v2 ends up serving
    with Load(f"127.0.0.1:{server.router_port}", host) as load:
        wait_until("some traffic", lambda: len(load.results) > 20)
        assert settle(client, deploy(client, score("web", "v2"), APPS / "web"))["state"] == "succeeded"
        seen = len(load.results)
        wait_until("traffic after the rollout", lambda: len(load.results) > seen + 20)
    outcomes = Counter(load.results)
    assert set(outcomes) <= {"v1", "v2"}, outcomes
    assert load.results[-1] == "v2"
    assert {i["release"] for i in client.list_instances("shop", "dev", "web")} == {2}

    # kill -9 of an instance: it is restarted and traffic keeps flowing
    victim = client.list_instances("shop", "dev", "web")[0]
    os.kill(victim["pid"], signal.SIGKILL)
    wait_until(
        "the killed instance to be back",
        lambda: any(
            i["id"] == victim["id"] and i["ready"] and i["restarts"] >= 1 and i["pid"] != victim["pid"]
            for i in client.list_instances("shop", "dev", "web")
        ),
    )
    assert all(get(server, host).status_code == 200 for _ in range(10))

    # the apps' output and the router's access log are both searchable
    started = wait_until(
        "the app's start-up line in the logs",
        lambda: client.get_logs("shop", "dev", "web", grep="listening")["items"],
    )
    assert started[0]["stream"] == "stdout"
    assert started[0]["fields"]["version"] in ("v1", "v2")
    access = wait_until(
        "access records", lambda: client.get_logs("shop", "dev", "web", stream="access", limit=5)["items"]
    )
    assert access[-1]["fields"]["status"] == 200

    # rollback restores v1's responses
    rollback = client.rollback("shop", "dev", "web")
    assert rollback["release"]["cause"] == "rollback to 1"
    assert settle(client, rollback)["state"] == "succeeded"
    assert {get(server, host).json()["version"] for _ in range(6)} == {"v1"}


def test_crash_looping_release_keeps_the_old_instances_serving(
    server: ControlPlaneProcess, client: YunzhouClient
) -> None:
    host = "web.dev.shop.localhost"
    settle(client, deploy(client, score("web", "v1"), APPS / "web", replicas=2))
    with Load(f"127.0.0.1:{server.router_port}", host) as load:
        bad = deploy(client, score("web", "v2", CRASH="1"), APPS / "web")
        rollout = settle(client, bad)
        assert rollout["state"] == "failed"
        assert "CrashLoopBackOff" in rollout["message"]
    assert set(load.results) == {"v1"}
    app = client.get_app("shop", "dev", "web")
    progressing = next(c for c in app["conditions"] if c["type"] == "Progressing")
    assert (progressing["status"], progressing["reason"]) == ("False", "CrashLoopBackOff")
    assert app["ready_replicas"] == 2
    states = Counter((i["release"], i["state"]) for i in client.list_instances("shop", "dev", "web"))
    assert states[(1, "ready")] == 2
    assert states[(2, "crashloop")] + states[(2, "starting")] + states[(2, "running")] >= 1


def test_memory_hog_is_oom_killed_and_reported(server: ControlPlaneProcess, client: YunzhouClient) -> None:
    doc = score("hog", "v1")
    doc["containers"]["web"]["resources"] = {"limits": {"memory": "64Mi"}}
    del doc["containers"]["web"]["readinessProbe"]
    settle(client, deploy(client, doc, APPS / "hog"))
    hogged = httpx.get(
        f"http://127.0.0.1:{server.router_port}/hog", headers={"Host": "hog.dev.shop.localhost"}, timeout=20
    )
    assert hogged.status_code == 502  # the backend died mid-request, and the router says so
    reported = wait_until(
        "an OOMKilled report",
        lambda: [i for i in client.list_instances("shop", "dev", "hog") if i["last_exit"] == "OOMKilled"],
    )
    assert reported[0]["restarts"] >= 1


def test_control_plane_kill_9_converges_without_orphans(tmp_path: Path) -> None:
    data = tmp_path / "data"
    first = ControlPlaneProcess(data, host_processes=True).start()
    try:
        with YunzhouClient(first.url, first.admin_token) as c:
            c.create_project("shop")
            c.create_environment("shop", "dev")
            settle(c, deploy(c, score("web", "v1"), APPS / "web", replicas=2))
            old_pids = {i["pid"] for i in c.list_instances("shop", "dev", "web")}
        assert first.process is not None
        router_pid = int((data / "router.pid").read_text())
        first.process.kill()
        first.process.wait(10)
        wait_until(
            "instances to die with their control plane", lambda: not any(_alive(p) for p in old_pids), 15
        )
        wait_until("the router to die with its control plane", lambda: not _alive(router_pid), 15)
    finally:
        first.stop()
    second = ControlPlaneProcess(data, host_processes=True)
    second.api_port, second.router_port = first.api_port, first.router_port
    with second:
        with YunzhouClient(second.url, second.admin_token) as c:
            wait_until(  # the store still lists the dead run's instances until the first pass replaces them
                "convergence after restart",
                lambda: (
                    c.get_app("shop", "dev", "web")["ready_replicas"] == 2
                    and len(now := c.list_instances("shop", "dev", "web")) == 2
                    and not {i["pid"] for i in now} & old_pids
                ),
            )
            pids = {i["pid"] for i in c.list_instances("shop", "dev", "web")}
        assert not pids & old_pids
        assert get(second, "web.dev.shop.localhost").json()["version"] == "v1"
        assert _count_app_processes(data) == 2  # no duplicates, no orphans


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _count_app_processes(data: Path) -> int:
    """Live processes working in this data dir's releases (under the instance root when isolated)."""
    root = Isolation.from_env(data, {}).root  # as the test server sees it: no YUNZHOU_* variables
    places = (str(data), str(root)) if root is not None else (str(data),)
    count = 0
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cwd = os.readlink(proc / "cwd")
            stat = (proc / "stat").read_text()
        except OSError:
            continue
        if cwd.startswith(places) and ") Z" not in stat:
            count += 1
    return count


PROCESS_MODE = os.environ | {"YUNZHOU_INSTANCE_MODE": "process"}


def test_a_separate_worker_runs_the_local_target_and_only_one_may(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with ControlPlaneProcess(data, extra_args=("--no-runtime",), host_processes=True) as api:
        worker_log = (tmp_path / "worker.log").open("wb")
        argv = [
            sys.executable,
            "-m",
            "yunzhou",
            "worker",
            "--data-dir",
            str(data),
            "--router-port",
            str(api.router_port),
        ]
        # the worker, like the API server, runs host processes (development mode: the test app has no image)
        worker = subprocess.Popen(argv, stdout=worker_log, stderr=subprocess.STDOUT, env=PROCESS_MODE)
        try:
            with YunzhouClient(api.url, api.admin_token) as c:
                c.create_project("shop")
                c.create_environment("shop", "dev")
                assert settle(c, deploy(c, score("web", "v1"), APPS / "web"))["state"] == "succeeded"
            assert get(api, "web.dev.shop.localhost").json()["version"] == "v1"
            second = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
            assert second.returncode != 0
            assert "already runs the local target" in second.stdout + second.stderr
        finally:
            worker.send_signal(signal.SIGTERM)
            assert worker.wait(30) == 0
            worker_log.close()
