"""The shipped Kubernetes test environment: a real control plane whose Deployments get ReplicaSets and
Pods that are scheduled onto kwok nodes and become Ready, and that leaves no process behind.

The slow tests need the binaries from tools/k8s-testenv (`make k8s-build`); when they are missing the
first test builds them, so the timeout is raised for that run.
"""

from __future__ import annotations

import json
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from yunzhou.testing.k8s import (
    BINARIES,
    KWOK_ANNOTATION,
    K8sTestEnv,
    binaries_available,
    binaries_dir,
    binary_versions,
)

# Building the binaries (first run on a machine) takes far longer than a test may otherwise take.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(300 if binaries_available() else 3600)]
_WAIT = 90.0  # seconds for the cluster to converge on what a test asked for


def _eventually(what: str, check: Callable[[], Any]) -> Any:
    """Poll ``check`` until it returns something truthy; fail after _WAIT seconds."""
    deadline = time.monotonic() + _WAIT
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {_WAIT:.0f}s waiting for {what}")
        time.sleep(0.2)  # polling interval, bounded by the deadline


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _processes_under(path: Path) -> list[int]:
    """Pids whose command line mentions ``path`` (the env passes its workdir to every component)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:  # exited while we looked
                continue
            if str(path).encode() in cmdline and _running(int(entry.name)):
                found.append(int(entry.name))
    return found


def _deployment(name: str, replicas: int) -> dict[str, Any]:
    labels = {"app": name}
    container = {"name": "web", "image": "registry.invalid/web:1", "ports": [{"containerPort": 8080}]}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": {"containers": [container]}},
        },
    }


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[K8sTestEnv]:
    with K8sTestEnv(tmp_path_factory.mktemp("k8s")) as started:
        yield started


@pytest.fixture
def api(env: K8sTestEnv) -> Iterator[httpx.Client]:
    with env.client(timeout=10) as client:
        yield client


def test_api_server_is_ready_and_reports_the_built_version(env: K8sTestEnv, api: httpx.Client) -> None:
    assert api.get("/readyz").text == "ok"
    version = api.get("/version").json()
    built = binary_versions(binaries_dir())
    assert version["gitVersion"] == built["kubernetes"]
    assert (version["major"], version["minor"]) == ("1", built["kubernetes"].split(".")[1])
    config = yaml.safe_load(env.kubeconfig.read_text())
    assert config["clusters"][0]["cluster"]["server"] == env.server
    assert env.server.startswith("https://127.0.0.1:")
    # TLS is real: without the admin certificate the server does not know who we are.
    ca_only = ssl.create_default_context(cafile=str(env.workdir / "pki" / "ca.crt"))
    anonymous = httpx.get(f"{env.server}/api/v1/nodes", verify=ca_only)
    assert anonymous.status_code in (401, 403)


def test_kwok_nodes_are_ready(env: K8sTestEnv, api: httpx.Client) -> None:
    nodes = api.get("/api/v1/nodes").json()["items"]
    assert (
        sorted(n["metadata"]["name"] for n in nodes) == env.node_names == [f"kwok-node-{i}" for i in range(3)]
    )
    key, value = KWOK_ANNOTATION
    for node in nodes:
        assert node["metadata"]["annotations"][key] == value
        ready = [c for c in node["status"]["conditions"] if c["type"] == "Ready"]
        assert ready[0]["status"] == "True"
        # kwok keeps the node alive through its lease, as a kubelet would.
        lease = api.get(
            f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{node['metadata']['name']}"
        )
        assert lease.status_code == 200


def test_deployment_gets_a_replicaset_and_ready_pods_on_kwok_nodes(
    env: K8sTestEnv, api: httpx.Client
) -> None:
    base = "/apis/apps/v1/namespaces/default"
    created = api.post(f"{base}/deployments", json=_deployment("web", 3))
    assert created.status_code == 201, created.text

    def replica_sets() -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = api.get(
            f"{base}/replicasets", params={"labelSelector": "app=web"}
        ).json()["items"]
        return items

    (rs,) = _eventually("a ReplicaSet", replica_sets)
    assert rs["metadata"]["ownerReferences"][0]["name"] == "web"

    def ready_pods() -> list[dict[str, Any]]:
        pods = api.get("/api/v1/namespaces/default/pods", params={"labelSelector": "app=web"}).json()["items"]
        ready = [
            p
            for p in pods
            if any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions", []))
        ]
        return ready if len(ready) == 3 else []

    pods = _eventually("3 Ready pods", ready_pods)
    for pod in pods:
        assert pod["spec"]["nodeName"] in env.node_names
        assert pod["status"]["phase"] == "Running"
        assert pod["status"]["podIP"]
        assert pod["metadata"]["ownerReferences"][0]["name"] == rs["metadata"]["name"]

    def available() -> bool:
        status = api.get(f"{base}/deployments/web").json()["status"]
        return status.get("availableReplicas") == 3 and status.get("readyReplicas") == 3

    _eventually("the Deployment to report 3 available replicas", available)


def test_kubectl_works_with_the_kubeconfig(env: K8sTestEnv) -> None:
    kubectl = env.workdir / "bin" / "kubectl"  # the launcher links the bin directory into its workdir
    result = subprocess.run(
        [kubectl, "--kubeconfig", env.kubeconfig, "get", "nodes,pods", "-A", "-o", "json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    items = json.loads(result.stdout)["items"]
    assert sorted(i["metadata"]["name"] for i in items if i["kind"] == "Node") == env.node_names


def test_stop_leaves_no_process(tmp_path: Path) -> None:
    env = K8sTestEnv(tmp_path / "k8s", nodes=1).start()
    pids = env.pids
    assert sorted(pids) == sorted(set(BINARIES) - {"kubectl"})
    assert all(_running(pid) for pid in pids.values())
    env.stop()
    assert not any(_running(pid) for pid in pids.values())
    assert _processes_under(tmp_path) == []
    assert list((tmp_path / "k8s" / "run").iterdir()) == []


_CHILD = """
import json, sys
from pathlib import Path
from yunzhou.testing.k8s import K8sTestEnv
env = K8sTestEnv(Path(sys.argv[1]), nodes=1).start()
print(json.dumps(env.pids), flush=True)
sys.stdin.read()
"""


def test_processes_die_with_a_killed_test_run(tmp_path: Path) -> None:
    """If pytest itself is killed (no teardown, no atexit), the kernel still ends every component."""
    argv = [sys.executable, "-c", _CHILD, tmp_path / "k8s"]
    with subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) as child:
        try:
            assert child.stdout is not None
            pids: dict[str, int] = json.loads(child.stdout.readline())
            assert all(_running(pid) for pid in pids.values())
        finally:
            child.kill()
    _eventually("every component to die", lambda: not any(_running(pid) for pid in pids.values()))
    assert _processes_under(tmp_path) == []


def test_command_line_up_and_down_as_make_uses_them(tmp_path: Path) -> None:
    workdir = tmp_path / "state"
    cli = [sys.executable, "-m", "yunzhou.testing.k8s"]
    up = subprocess.run(
        [*cli, "up", "--dir", workdir, "--nodes", "1"], capture_output=True, text=True, timeout=240
    )
    try:
        assert up.returncode == 0, up.stderr
        state = json.loads((workdir / "env.json").read_text())
        # The processes outlived the command that started them (detached), and the kubeconfig works.
        assert all(_running(pid) for pid in state["pids"].values())
        ca = workdir / "pki" / "ca.crt"
        cert = (workdir / "pki" / "admin.crt", workdir / "pki" / "admin.key")
        context = ssl.create_default_context(cafile=str(ca))
        context.load_cert_chain(*cert)
        assert httpx.get(f"{state['server']}/readyz", verify=context).text == "ok"
        status = subprocess.run(
            [*cli, "status", "--dir", workdir], capture_output=True, text=True, check=True
        )
        assert "NOT RUNNING" not in status.stdout
    finally:
        down = subprocess.run([*cli, "down", "--dir", workdir], capture_output=True, text=True, timeout=60)
    assert down.returncode == 0, down.stderr
    assert "kube-apiserver" in down.stdout
    assert _processes_under(workdir) == []
    assert not (workdir / "env.json").exists()
    again = subprocess.run([*cli, "down", "--dir", workdir], capture_output=True, text=True, check=True)
    assert "nothing" in again.stdout
