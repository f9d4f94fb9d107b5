"""Node autoscaling on the real control plane: pods that fit no kwok node stay Pending/Unschedulable, the
autoscaler asks the kwok provider for nodes (real Node objects kwok makes Ready), the scheduler places the
pods there and they become Ready; once the workload is gone, the empty nodes go after the cool-down."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from lightkube import codecs as lk_codecs
from lightkube.resources.apps_v1 import Deployment
from lightkube.resources.core_v1 import Node, Pod

from yunzhou.runtimes.kubernetes.nodes import (
    POOL_LABEL,
    KwokNodeProvider,
    NodeAutoscaler,
    NodeAutoscalerConfig,
    NodeShape,
    cluster_lists,
)
from yunzhou.testing.k8s import binaries_available

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300 if binaries_available() else 3600)]


def until(
    what: str, condition: Callable[[], bool], *, step: Callable[[], Any], timeout: float = 90.0
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        step()
        if condition():
            return
        time.sleep(0.2)  # the autoscaler's tick in this test
    raise AssertionError(f"timed out waiting for {what}")


def big_deployment(namespace: str, replicas: int, cpu: str) -> dict[str, Any]:
    labels = {"app": "big"}
    container = {"name": "c", "image": "registry.test/big:1", "resources": {"requests": {"cpu": cpu}}}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "big", "namespace": namespace},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": {"containers": [container]}},
        },
    }


def test_unschedulable_pods_get_a_kwok_node_and_empty_nodes_go(kube: Any, namespace: str) -> None:
    from lightkube.resources.core_v1 import Namespace

    pool = f"p{uuid.uuid4().hex[:6]}"
    provider = KwokNodeProvider(kube, "kwok", pool=pool, shape=NodeShape(cpu=64, memory=256 * 2**30))
    pods, nodes = cluster_lists(kube, "kwok")
    config = NodeAutoscalerConfig(unschedulable_after=1.0, scale_down_after=3.0, max_nodes=4)
    scaler = NodeAutoscaler(provider, pods, nodes, config)
    kube.create(
        Namespace.from_dict({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    )
    try:
        # 40 cores per pod: the session's kwok nodes have 32 each, so these cannot be placed
        kube.create(lk_codecs.from_dict(big_deployment(namespace, 2, "40")))

        def our_pods() -> list[Any]:
            return list(kube.list(Pod, namespace=namespace, labels={"app": "big"}))

        def all_unschedulable() -> bool:
            ps = our_pods()
            return len(ps) == 2 and all(
                any(
                    c.type == "PodScheduled" and c.reason == "Unschedulable"
                    for c in p.status.conditions or []
                )
                for p in ps
            )

        until("2 Unschedulable pods", all_unschedulable, step=lambda: None)
        assert scaler.step() == []  # not yet: they must stay unschedulable for a second first

        def ready() -> bool:
            ps = our_pods()
            return len(ps) == 2 and all(
                any(c.type == "Ready" and c.status == "True" for c in p.status.conditions or []) for p in ps
            )

        until("the pods Running and Ready on new nodes", ready, step=scaler.step)
        added = [a for a in scaler.history if a.action == "add"]
        assert len(added) == 2, scaler.history  # one 40-core pod per 64-core node
        assert "unschedulable" in added[0].reason
        placed = {p.spec.nodeName for p in our_pods()}
        assert placed == {a.node for a in added}
        for name in placed:
            node = kube.get(Node, name)
            assert node.metadata.labels[POOL_LABEL] == pool
            assert node.status.allocatable["cpu"] == "64"

        # the workload goes: after the cool-down the provider's empty nodes are removed
        kube.delete(Deployment, "big", namespace=namespace)
        until("the empty nodes removed", lambda: provider.nodes() == [], step=scaler.step)
        removed = {a.node for a in scaler.history if a.action == "remove"}
        assert removed == placed
        assert all(n.metadata.name not in placed for n in kube.list(Node))
    finally:
        for n in provider.nodes():
            provider.remove_node(n.name)
