"""A real node in the test cluster: containerd + a kubelet and kube-proxy built from the control plane's
Kubernetes modules register a Ready node; a pod placed there really runs (its log comes from the kubelet
through the API server; it answers HTTP on its pod IP and on its Service's ClusterIP from the host);
stopping leaves nothing on the host.

Needs root, containerd, runc and containernetworking-plugins (`.ci/run` installs them) and the node's
binaries (`make k8s-build`; the first run builds them, hence the raised timeout).
"""

from __future__ import annotations

import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from yunzhou.testing.k8s import K8sTestEnv, binaries_available, binary_versions
from yunzhou.testing.k8s_node import (
    REAL_NODE_LABEL,
    REAL_NODE_TAINT,
    REAL_NODE_TOLERATION,
    node_binaries_dir,
    sandbox_netns,
)
from yunzhou.testing.polling import wait_until

_BUILT = binaries_available() and (node_binaries_dir() / "kubelet").is_file()
pytestmark = [pytest.mark.slow, pytest.mark.timeout(300 if _BUILT else 3600)]
_WAIT = 90.0
_BUSYBOX = Path("/bin/busybox")  # Debian's busybox-static: the whole userland of the test image


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[K8sTestEnv]:
    workdir = tmp_path_factory.mktemp("k8s-real")
    with K8sTestEnv(workdir, nodes=1, crds=False, real_node=True) as env:
        node = env.real_node
        bridge, cgroup = node.bridge, (node.workdir / "cgroup").read_text()
        yield env
        netns = sandbox_netns(node.socket)  # of the pods the tests left running
    # Stopped: no shim, container, bridge, cgroup, mount or network namespace of the node is left.
    assert netns
    assert not [path for path in netns if Path(path).exists()]
    assert not [p for p in Path("/proc").glob("[0-9]*/cmdline") if _mentions(p, str(workdir))]
    links = subprocess.run(["ip", "-br", "link"], capture_output=True, text=True, check=True).stdout
    assert bridge not in links
    assert not list(Path("/sys/fs/cgroup").glob(f"*/{cgroup.lstrip('/')}"))
    assert str(workdir) not in Path("/proc/self/mountinfo").read_text()
    tables = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True, check=True).stdout
    assert "kube-proxy" not in tables


def _mentions(cmdline: Path, text: str) -> bool:
    try:
        return text.encode() in cmdline.read_bytes()
    except OSError:
        return False


def _get(api: httpx.Client, path: str) -> Any:
    response = api.get(path)
    response.raise_for_status()
    return response.json()


def test_real_node_is_ready_tainted_and_runs_the_built_kubelet(env: K8sTestEnv) -> None:
    with env.client(timeout=10) as api:
        node = _get(api, f"/api/v1/nodes/{env.real_node.name}")
        key, value = REAL_NODE_LABEL
        assert node["metadata"]["labels"][key] == value
        assert REAL_NODE_TAINT in node["spec"]["taints"]
        info = node["status"]["nodeInfo"]
        assert info["kubeletVersion"] == binary_versions(env.bin_dir or Path())["kubernetes"]
        assert info["containerRuntimeVersion"].startswith("containerd://1.")
        addresses = {a["type"]: a["address"] for a in node["status"]["addresses"]}
        assert addresses["InternalIP"] == env.real_node.gateway
        ready = {c["type"]: c["status"] for c in node["status"]["conditions"]}
        assert ready["Ready"] == "True"


def test_a_pod_runs_on_the_real_node_logs_and_answers_http(env: K8sTestEnv, tmp_path: Path) -> None:
    token = secrets.token_hex(8)
    (tmp_path / "index.html").write_text(f"hello {token}\n")
    image = f"localhost/yunzhou/busybox-httpd:{token}"
    env.real_node.import_image(image, {"/bin/busybox": _BUSYBOX, "/www/index.html": tmp_path / "index.html"})
    key, value = REAL_NODE_LABEL
    name = f"real-{token}"
    script = f"echo started {token}; exec /bin/busybox httpd -f -p 8080 -h /www"
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "nodeSelector": {key: value},
            "tolerations": [REAL_NODE_TOLERATION],
            "automountServiceAccountToken": False,
            "terminationGracePeriodSeconds": 1,
            "containers": [
                {
                    "name": "web",
                    "image": image,
                    "imagePullPolicy": "Never",
                    "command": ["/bin/busybox", "sh", "-c", script],
                    "ports": [{"containerPort": 8080}],
                    "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1},
                }
            ],
        },
    }
    path = f"/api/v1/namespaces/default/pods/{name}"
    with env.client(timeout=10) as api:
        assert api.post("/api/v1/namespaces/default/pods", json=pod).status_code == 201

        def ready() -> dict[str, Any] | None:
            status = _get(api, path)["status"]
            statuses = status.get("containerStatuses") or [{}]
            return status if status.get("phase") == "Running" and statuses[0].get("ready") else None

        status = wait_until(f"pod {name} Running and Ready", ready, timeout=_WAIT, interval=0.2)
        assert _get(api, path)["spec"]["nodeName"] == env.real_node.name
        # The container's output, read by the API server from the kubelet (as `kubectl logs`).
        logs = wait_until(
            "the container's log", lambda: token in (t := api.get(f"{path}/log").text) and t, timeout=_WAIT
        )
        assert f"started {token}" in logs
        pod_ip = status["podIP"]
        assert pod_ip.startswith(env.real_node.subnet.rsplit(".", 1)[0] + ".")
        answer = httpx.get(f"http://{pod_ip}:8080/index.html", timeout=5)
        assert answer.status_code == 200
        assert answer.text == f"hello {token}\n"

        # … and through a Service: kube-proxy (nftables mode) sends its ClusterIP to the pod.
        service = {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name},
            "spec": {"selector": {"app": name}, "ports": [{"port": 80, "targetPort": 8080}]},
        }
        created = api.post("/api/v1/namespaces/default/services", json=service)
        assert created.status_code == 201, created.text
        cluster_ip = created.json()["spec"]["clusterIP"]

        def through_service() -> str | None:
            try:
                return httpx.get(f"http://{cluster_ip}/index.html", timeout=2).text
            except httpx.TransportError:
                return None

        assert wait_until(f"Service {cluster_ip}", through_service, timeout=_WAIT) == f"hello {token}\n"
    # The pod is left running: stopping the environment must clean it up (see the fixture).


def test_untolerating_pods_stay_off_the_real_node(env: K8sTestEnv) -> None:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "plain"},
        "spec": {"containers": [{"name": "c", "image": "example.invalid/none"}]},
    }
    with env.client(timeout=10) as api:
        assert api.post("/api/v1/namespaces/default/pods", json=pod).status_code == 201
        path = "/api/v1/namespaces/default/pods/plain"
        node = wait_until(
            "pod plain scheduled", lambda: _get(api, path)["spec"].get("nodeName"), timeout=_WAIT
        )
        assert node == env.node_names[0]
        api.delete(path, params={"gracePeriodSeconds": "0"})
