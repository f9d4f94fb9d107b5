"""Node autoscaling decisions with an injected clock and an in-memory provider: when to add, how many,
when to remove, and the limits."""

from __future__ import annotations

from typing import Any

from yunzhou.runtimes.kubernetes.nodes import (
    NodeAutoscaler,
    NodeAutoscalerConfig,
    NodeShape,
    PodRequest,
    ProvidedNode,
    nodes_needed,
    pod_request,
    quantity,
)

SHAPE = NodeShape(cpu=4, memory=8 * 2**30, pods=10)


class Provider:
    name = "memory"
    shape = SHAPE

    def __init__(self, clock: list[float]) -> None:
        self.clock = clock
        self.made: dict[str, ProvidedNode] = {}

    def nodes(self) -> list[ProvidedNode]:
        return list(self.made.values())

    def add_node(self) -> str:
        name = f"n{len(self.made)}-{int(self.clock[0])}"
        self.made[name] = ProvidedNode(name, self.clock[0])
        return name

    def remove_node(self, name: str) -> None:
        del self.made[name]


def pod(uid: str, cpu: str = "1", *, node: str | None = None, phase: str = "Pending") -> dict[str, Any]:
    status: dict[str, Any] = {"phase": phase}
    if node is None:
        status["conditions"] = [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}]
    spec: dict[str, Any] = {"containers": [{"name": "c", "resources": {"requests": {"cpu": cpu}}}]}
    if node:
        spec["nodeName"] = node
    return {"metadata": {"uid": uid, "name": uid}, "spec": spec, "status": status}


def node(name: str, ready: bool = True) -> dict[str, Any]:
    conditions = [{"type": "Ready", "status": "True" if ready else "False"}]
    allocatable = {"cpu": "4", "memory": "8Gi", "pods": "10"}
    return {
        "metadata": {"name": name, "labels": {}},
        "status": {"conditions": conditions, "allocatable": allocatable},
    }


class World:
    def __init__(self, **config: Any) -> None:
        self.now = [1000.0]
        self.provider = Provider(self.now)
        self.pods: list[dict[str, Any]] = []
        self.ready_nodes = True
        defaults = {"unschedulable_after": 10.0, "scale_down_after": 60.0, "max_nodes": 5}
        self.scaler = NodeAutoscaler(
            self.provider, lambda: self.pods, self.nodes, NodeAutoscalerConfig(**(defaults | config)),
            clock=lambda: self.now[0],
        )  # fmt: skip

    def nodes(self) -> list[dict[str, Any]]:
        return [node(n, self.ready_nodes) for n in self.provider.made]

    def at(self, t: float) -> list[tuple[str, str]]:
        self.now[0] = 1000.0 + t
        return [(a.action, a.node) for a in self.scaler.step()]


def test_quantities_and_requests() -> None:
    assert quantity("500m") == 0.5
    assert quantity("2") == 2
    assert quantity("1Gi") == 2**30
    assert quantity("1G") == 10**9
    init = {"spec": {"containers": [{"resources": {"requests": {"cpu": "1", "memory": "1Gi"}}}],
                     "initContainers": [{"resources": {"requests": {"cpu": "3"}}}]}}  # fmt: skip
    assert pod_request(init) == PodRequest(3, 2**30)


def test_packing_first_fit_decreasing() -> None:
    assert nodes_needed([PodRequest(3, 0)] * 3, SHAPE) == (3, 0)
    assert nodes_needed([PodRequest(2, 0)] * 4, SHAPE) == (2, 0)
    assert nodes_needed([PodRequest(3, 0), PodRequest(1, 0), PodRequest(1, 0)], SHAPE) == (2, 0)
    assert nodes_needed([PodRequest(5, 0), PodRequest(1, 0)], SHAPE) == (1, 1)
    assert nodes_needed([PodRequest(0, 0)] * 11, SHAPE) == (2, 0)  # the pods limit counts too


def test_adds_only_after_pods_stay_unschedulable_and_waits_for_joining_nodes() -> None:
    w = World()
    w.pods = [pod("a", "3"), pod("b", "3")]
    assert w.at(0) == []
    assert w.at(9.9) == []
    added = w.at(10)
    assert [a for a, _ in added] == ["add", "add"]  # 3+3 cores need two 4-core nodes
    w.ready_nodes = False
    assert w.at(30) == []  # nodes still joining: do not add again
    w.ready_nodes = True
    assert w.at(31) == []  # joined now: the scheduler gets 10 s to use them
    assert w.at(40.9) == []
    assert w.at(41) == []  # still unschedulable, but they fit the new nodes' room: the scheduler's turn


def test_scheduled_pods_are_forgotten_and_max_nodes_holds() -> None:
    w = World(max_nodes=1)
    w.pods = [pod("a", "3"), pod("b", "3")]
    w.at(0)
    assert [a for a, _ in w.at(10)] == ["add"]  # room for one only
    w.at(11)
    blocked = w.at(21)
    assert blocked == [("blocked", "")]
    assert "max_nodes=1" in w.scaler.history[-1].reason
    assert w.at(22) == []  # said once, not on every pass
    w.pods = []
    assert w.at(23) == []


def test_a_pod_bigger_than_any_node_is_reported_not_chased() -> None:
    w = World()
    w.pods = [pod("huge", "16")]
    w.at(0)
    assert w.at(10) == [("blocked", "")]
    assert "do not fit a memory node" in w.scaler.history[-1].reason
    assert w.provider.made == {}


def test_removes_empty_nodes_after_the_cool_down_never_below_min() -> None:
    w = World(min_nodes=1, scale_down_after=60)
    w.pods = [pod("a", "3"), pod("b", "3")]
    w.at(0)
    names = [n for _, n in w.at(10)]
    w.pods = [pod("a", "3", node=names[0], phase="Running"), pod("b", "3", node=names[1], phase="Running")]
    assert w.at(20) == []
    w.pods = [pod("a", "3", node=names[0], phase="Running")]  # b's node is empty from t=30
    assert w.at(30) == []
    assert w.at(89) == []  # empty for 59 s
    assert w.at(90) == [("remove", names[1])]
    w.pods = [pod("a", "3", node=names[0], phase="Succeeded")]  # finished pods do not keep a node
    w.at(100)
    assert w.at(200) == []  # min_nodes=1 keeps the last one
    assert list(w.provider.made) == [names[0]]


def test_node_autoscalers_spec_names_the_allowed_providers() -> None:
    import pytest

    from yunzhou.runtimes.kubernetes.nodes import node_autoscalers

    assert node_autoscalers("", lambda c: (None, "")) == []
    with pytest.raises(ValueError, match="provider must be one of kwok"):
        node_autoscalers("prod=aws", lambda c: (None, ""))


def test_pods_that_fit_the_room_on_provider_nodes_add_nothing() -> None:
    w = World(unschedulable_after=0)
    w.pods = [pod("a", "1")]
    assert [a for a, _ in w.at(0)] == ["add"]  # one 4-core node
    name = next(iter(w.provider.made))
    # the node joined with 3 cores left after a; three more 1-core pods fit there: no new node
    w.pods = [pod("a", "1", node=name, phase="Running"), pod("b", "1"), pod("c", "1"), pod("d", "1")]
    assert w.at(1) == []
    assert w.at(2) == []
    w.pods.append(pod("e", "1"))  # the fifth does not fit: one more node
    assert [a for a, _ in w.at(3)] == ["add"]


def test_a_pod_whose_node_selector_a_new_node_would_not_match_is_reported() -> None:
    w = World(unschedulable_after=0)
    picky = pod("gpu", "1")
    picky["spec"]["nodeSelector"] = {"accelerator": "gpu"}
    w.pods = [picky]
    assert w.at(0) == [("blocked", "")]
    assert "nodeSelector" in w.scaler.history[-1].reason
    assert w.provider.made == {}
