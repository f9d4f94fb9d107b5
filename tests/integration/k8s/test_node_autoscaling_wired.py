"""Node autoscaling in the running platform: a real `yunzhou server` process with
YUNZHOU_NODE_AUTOSCALING=kwok=kwok, the real test control plane registered as cluster ``kwok``. An app whose
pods fit no node is deployed; the server's node autoscaler adds kwok nodes, the pods become Ready and the
app is running; every action is an event (`yunzhou cluster node-events kwok -o json`); once the app is
removed, the empty nodes go after the cool-down."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from lightkube import ApiError as KubeApiError
from lightkube.resources.core_v1 import Namespace, Node, Pod

from tests.integration.k8s.conftest import lightkube_client
from tests.integration.k8s.test_node_autoscaler import until as wait_until
from yunzhou.cli.clusters import flatten_kubeconfig
from yunzhou.client import ApiError, YunzhouClient
from yunzhou.reconcile.nodes import node_autoscaling_settings
from yunzhou.runtimes.kubernetes.nodes import POOL_LABEL
from yunzhou.testing import ControlPlaneProcess
from yunzhou.testing.k8s import K8sTestEnv, binaries_available

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300 if binaries_available() else 3600)]


def until(what: str, condition: Callable[[], bool], timeout: float = 90.0) -> None:
    wait_until(what, condition, step=lambda: None, timeout=timeout)


@pytest.fixture
def pool() -> str:
    return f"w{uuid.uuid4().hex[:6]}"


@pytest.fixture
def server(tmp_path: Path, pool: str) -> Iterator[ControlPlaneProcess]:
    env = {
        "YUNZHOU_NODE_AUTOSCALING": "kwok=kwok",
        "YUNZHOU_NODE_POOL": pool,
        "YUNZHOU_NODE_SHAPE": "cpu=64,memory=256Gi,pods=110",
        "YUNZHOU_NODE_UNSCHEDULABLE_AFTER": "1",
        "YUNZHOU_NODE_SCALE_DOWN_AFTER": "3",
        "YUNZHOU_NODE_AUTOSCALE_INTERVAL": "0.3",
        "YUNZHOU_NODE_MAX": "4",
    }
    with ControlPlaneProcess(tmp_path / "data", env=env) as cp:
        yield cp


def cli(server: ControlPlaneProcess, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "yunzhou", *args],
        capture_output=True, text=True, timeout=60, env=server.client_env(), check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result.stdout


def big(name: str, cpu: str) -> dict[str, Any]:
    return {
        "apiVersion": "score.dev/v1b1",
        "metadata": {"name": name},
        # by digest: a server refuses a tag it cannot resolve (a release never refers to a moving tag)
        "containers": {
            "web": {"image": "registry.test/big@sha256:" + "b" * 64, "resources": {"requests": {"cpu": cpu}}}
        },
        "service": {"ports": {"http": {"port": 80, "targetPort": 8080}}},
    }


def test_server_adds_nodes_for_pods_that_do_not_fit_and_removes_them_after_the_cool_down(
    k8s_env: K8sTestEnv, server: ControlPlaneProcess, pool: str
) -> None:
    kube = lightkube_client(k8s_env)
    namespace = f"t-{uuid.uuid4().hex[:10]}"
    client = YunzhouClient(server.url, server.admin_token)
    try:
        flat, context = flatten_kubeconfig(k8s_env.kubeconfig, None)
        client.add_cluster("kwok", flat, context, None)
        client.create_project("shop")
        client.create_environment("shop", "big", target="cluster:kwok", namespace=namespace)
        # 40 cores per pod: the session's kwok nodes have 32 each, so these fit no node there is
        client.deploy("shop", "big", big("crunch", "40"), {"replicas": 2})

        def running() -> bool:
            app = client.get_app("shop", "big", "crunch")
            return bool(app["status"] == "running" and app["ready_replicas"] == 2)

        until("the app running with 2 ready pods on new nodes", running, timeout=120)
        events = client.node_events("kwok")
        added = [e for e in events if e["action"] == "add"]
        assert len(added) == 2, events  # one 40-core pod per 64-core node
        assert all(e["provider"] == "kwok" and "unschedulable" in e["reason"] for e in added)
        nodes = {e["node"] for e in added}
        pods = list(kube.list(Pod, namespace=namespace))
        assert {p.spec.nodeName for p in pods} == nodes
        for name in nodes:
            assert kube.get(Node, name).metadata.labels[POOL_LABEL] == pool

        # the operator's view: the CLI lists the same events
        listed = json.loads(cli(server, "cluster", "node-events", "kwok", "-o", "json"))
        assert [(e["action"], e["node"]) for e in listed] == [(e["action"], e["node"]) for e in events]
        table = cli(server, "cluster", "node-events", "kwok")
        assert all(name in table for name in nodes)
        audit = client._request("GET", "/audit", params={"actor": "system:node-autoscaler"})
        assert {e["action"] for e in audit["items"]} >= {"cluster.node.add"}

        # the app goes: the empty nodes are removed after the 3 s cool-down
        client.remove_app("shop", "big", "crunch")

        def pool_nodes() -> list[str]:
            return [n.metadata.name for n in kube.list(Node, labels={POOL_LABEL: pool})]

        until("the empty nodes removed", lambda: pool_nodes() == [], timeout=120)
        removed = [e for e in client.node_events("kwok") if e["action"] == "remove"]
        assert {e["node"] for e in removed} == nodes
        assert all("empty" in e["reason"] for e in removed)

        # a pod no new node could hold (100 cores > 64) is said once, as "blocked", and no node is added
        client.deploy("shop", "big", big("huge", "100"), {"replicas": 1})

        def blocked() -> list[dict[str, Any]]:
            return [e for e in client.node_events("kwok") if e["action"] == "blocked"]

        until("a blocked event", lambda: bool(blocked()))
        assert "do not fit a kwok node" in blocked()[0]["reason"]
        assert pool_nodes() == []
        client.remove_app("shop", "big", "huge")
        until("the huge pod gone", lambda: not list(kube.list(Pod, namespace=namespace)))
        assert len(blocked()) == 1
    finally:
        for name in [n.metadata.name for n in kube.list(Node, labels={POOL_LABEL: pool})]:
            kube.delete(Node, name)
        with contextlib.suppress(KubeApiError):  # not created when the test failed early
            kube.delete(Namespace, namespace)
        client.close()
        kube.close()


def test_node_events_of_an_unknown_cluster_are_not_found(server: ControlPlaneProcess) -> None:
    with YunzhouClient(server.url, server.admin_token) as client, pytest.raises(ApiError) as caught:
        client.node_events("nowhere")
    assert caught.value.status == 404
    assert "nowhere" in str(caught.value)


@pytest.mark.parametrize(
    ("env", "field"),
    [
        ({"YUNZHOU_NODE_AUTOSCALING": "kwok"}, "YUNZHOU_NODE_AUTOSCALING"),
        ({"YUNZHOU_NODE_AUTOSCALING": "kwok=aws"}, "YUNZHOU_NODE_AUTOSCALING"),
        ({"YUNZHOU_NODE_AUTOSCALING": "a=kwok,a=kwok"}, "YUNZHOU_NODE_AUTOSCALING"),
        ({"YUNZHOU_NODE_AUTOSCALING": "a=kwok", "YUNZHOU_NODE_SCALE_DOWN_AFTER": "-1"}, "SCALE_DOWN_AFTER"),
        ({"YUNZHOU_NODE_AUTOSCALING": "a=kwok", "YUNZHOU_NODE_SHAPE": "cpu=4"}, "YUNZHOU_NODE_SHAPE"),
        ({"YUNZHOU_NODE_AUTOSCALING": "a=kwok", "YUNZHOU_NODE_SHAPE": "gpu=1"}, "YUNZHOU_NODE_SHAPE"),
        ({"YUNZHOU_NODE_AUTOSCALING": "a=kwok", "YUNZHOU_NODE_MIN": "3", "YUNZHOU_NODE_MAX": "2"}, "MAX"),
    ],
)
def test_bad_settings_name_the_variable(env: dict[str, str], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        node_autoscaling_settings(env)


def test_settings_parse() -> None:
    assert node_autoscaling_settings({}) is None
    got = node_autoscaling_settings(
        {"YUNZHOU_NODE_AUTOSCALING": " kwok=kwok ,", "YUNZHOU_NODE_SHAPE": "cpu=8,memory=16Gi"}
    )
    assert got is not None
    assert got.clusters == (("kwok", "kwok"),)
    assert got.shape is not None
    assert (got.shape.cpu, got.shape.memory, got.shape.pods) == (8, 16 * 2**30, 110)
    assert (got.config.scale_down_after, got.config.max_nodes, got.interval) == (600, 10, 5)
