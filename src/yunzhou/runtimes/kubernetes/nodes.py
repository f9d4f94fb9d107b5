"""Node autoscaling: when pods stay unschedulable, ask the cluster's node provider for more nodes; remove the
provider's empty nodes after a cool-down.

A *node provider* is the cloud-specific part, a small interface (see docs/kubernetes.md for writing one)::

    class NodeProvider(Protocol):
        name: str
        shape: NodeShape                      # allocatable cpu / memory / pods of one new node
        def nodes(self) -> list[ProvidedNode]: ...   # the nodes it runs for this cluster
        def add_node(self) -> str: ...              # start one; returns the Node name it will register
        def remove_node(self, name: str) -> None: ...  # stop it (and delete its Node object)

``KwokNodeProvider`` is the one for kwok clusters (the test control plane): a node is a Node object kwok
manages. The decisions are made by :class:`NodeAutoscaler`, whose ``step()`` is one pass with an injected
clock: pods that have been ``PodScheduled=False/Unschedulable`` for ``unschedulable_after`` seconds are
packed (first fit, decreasing) onto new nodes of the provider's shape, and that many nodes are added (at
most ``max_nodes`` in all); while added nodes are still joining nothing more is added. A provider node
that runs no pods (DaemonSet and mirror pods aside) for ``scale_down_after`` seconds, and was not added in
that time, is removed, never going below ``min_nodes``.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from yunzhou.runtimes.kubernetes.cluster import translated

log = logging.getLogger(__name__)
POOL_LABEL = "yunzhou.io/node-pool"
KWOK_ANNOTATION = ("kwok.x-k8s.io/node", "fake")
CONTROL_PLANE_LABELS = ("node-role.kubernetes.io/control-plane", "node-role.kubernetes.io/master")


@dataclass(frozen=True)
class NodeShape:
    """What one new node offers to pods (its allocatable resources): cpu in cores, memory in bytes."""

    cpu: float
    memory: int
    pods: int = 110
    labels: Mapping[str, str] = field(default_factory=dict)  # a new node's labels (for nodeSelector)


@dataclass(frozen=True)
class ProvidedNode:
    name: str
    created: float  # unix seconds


class NodeProvider(Protocol):
    name: str
    shape: NodeShape

    def nodes(self) -> list[ProvidedNode]: ...

    def add_node(self) -> str: ...

    def remove_node(self, name: str) -> None: ...


@dataclass(frozen=True)
class NodeAutoscalerConfig:
    unschedulable_after: float = 10.0  # seconds a pod must stay unschedulable before nodes are added
    scale_down_after: float = 600.0  # seconds a provider node must be empty (and not new) before removal
    min_nodes: int = 0  # provider nodes never go below this
    max_nodes: int = 10  # nor above this
    join_timeout: float = 300.0  # an added node not Ready after this no longer blocks adding others


@dataclass(frozen=True)
class NodeAction:
    action: str  # "add" | "remove" | "blocked"
    node: str
    reason: str
    at: float


@dataclass
class _State:
    unschedulable_since: dict[str, float] = field(default_factory=dict)  # pod uid → first seen
    empty_since: dict[str, float] = field(default_factory=dict)  # node → first seen empty
    joining: dict[str, float] = field(default_factory=dict)  # node → when we added it
    settled: float = float("-inf")  # when the last added node joined


# ---- quantities ("500m", "2", "1Gi", "512M")
_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {"k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18, "m": 10**-3}


def quantity(value: object) -> float:
    """A Kubernetes resource quantity as a number (cores for cpu, bytes for memory)."""
    text = str(value).strip()
    for suffixes in (_BINARY, _DECIMAL):
        for suffix, factor in suffixes.items():
            if text.endswith(suffix):
                return float(text[: -len(suffix)]) * factor
    return float(text)


@dataclass(frozen=True)
class PodRequest:
    cpu: float
    memory: float


def pod_request(pod: Mapping[str, Any]) -> PodRequest:
    """What the scheduler reserves for a pod: the sum over containers, or the largest init container."""
    spec = pod.get("spec") or {}

    def total(containers: Iterable[Mapping[str, Any]], key: str) -> float:
        return sum(
            quantity(((c.get("resources") or {}).get("requests") or {}).get(key, 0)) for c in containers
        )

    init = spec.get("initContainers") or []
    cpu = max([total(spec.get("containers") or [], "cpu"), *(total([c], "cpu") for c in init)])
    memory = max([total(spec.get("containers") or [], "memory"), *(total([c], "memory") for c in init)])
    return PodRequest(cpu, memory)


def nodes_needed(
    requests: Iterable[PodRequest], shape: NodeShape, free: Iterable[tuple[float, float, int]] = ()
) -> tuple[int, int]:
    """(new nodes of ``shape`` that hold these pods, pods no such node can hold) — first fit, decreasing.

    ``free`` is the room (cpu, memory, pods) left on nodes already there: pods that fit it need no new
    node (the scheduler has not placed them there yet)."""
    room = [[float(c), float(m), float(n)] for c, m, n in free]
    bins: list[list[float]] = []  # free cpu, memory, pods per new node
    too_big = 0
    for r in sorted(requests, key=lambda r: (r.cpu / max(shape.cpu, 1e-9), r.memory), reverse=True):
        for b in room + bins:
            if b[0] >= r.cpu and b[1] >= r.memory and b[2] >= 1:
                b[0], b[1], b[2] = b[0] - r.cpu, b[1] - r.memory, b[2] - 1
                break
        else:
            if r.cpu > shape.cpu or r.memory > shape.memory:
                too_big += 1
            else:
                bins.append([shape.cpu - r.cpu, shape.memory - r.memory, shape.pods - 1])
    return len(bins), too_big


def free_room(node: Mapping[str, Any], pods: Iterable[Mapping[str, Any]]) -> tuple[float, float, int]:
    """What ``node`` can still take: allocatable minus the requests of the pods bound to it."""
    allocatable = (node.get("status") or {}).get("allocatable") or {}
    name = node["metadata"]["name"]
    bound = [
        pod_request(p) for p in pods if (p.get("spec") or {}).get("nodeName") == name and _counts_on_node(p)
    ]
    return (
        quantity(allocatable.get("cpu", 0)) - sum(r.cpu for r in bound),
        quantity(allocatable.get("memory", 0)) - sum(r.memory for r in bound),
        int(quantity(allocatable.get("pods", 0))) - len(bound),
    )


def selects(pod: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """Whether the pod's nodeSelector allows a node with these labels."""
    wanted = (pod.get("spec") or {}).get("nodeSelector") or {}
    return all(labels.get(k) == v for k, v in wanted.items())


def unschedulable(pod: Mapping[str, Any]) -> bool:
    status = pod.get("status") or {}
    if status.get("phase") != "Pending" or (pod.get("spec") or {}).get("nodeName"):
        return False
    return any(
        c.get("type") == "PodScheduled" and c.get("status") == "False" and c.get("reason") == "Unschedulable"
        for c in status.get("conditions") or []
    )


def _counts_on_node(pod: Mapping[str, Any]) -> bool:
    """A pod that keeps a node busy: not finished, not a DaemonSet's or a mirror pod."""
    meta = pod.get("metadata") or {}
    if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
        return False
    if "kubernetes.io/config.mirror" in (meta.get("annotations") or {}):
        return False
    return not any(o.get("kind") == "DaemonSet" for o in meta.get("ownerReferences") or [])


class NodeAutoscaler:
    """One cluster, one provider. ``list_pods()`` and ``list_nodes()`` return plain dicts (API objects)."""

    def __init__(
        self,
        provider: NodeProvider,
        list_pods: Callable[[], list[dict[str, Any]]],
        list_nodes: Callable[[], list[dict[str, Any]]],
        config: NodeAutoscalerConfig | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.provider = provider
        self.list_pods = list_pods
        self.list_nodes = list_nodes
        self.config = config or NodeAutoscalerConfig()
        self.clock = clock
        self.history: list[NodeAction] = []
        self._state = _State()

    def step(self) -> list[NodeAction]:
        now = self.clock()
        pods = self.list_pods()
        nodes = {n["metadata"]["name"]: n for n in self.list_nodes()}
        provided = {n.name: n for n in self.provider.nodes()}
        actions = self._scale_up(now, pods, nodes, provided)
        if not actions:
            actions = self._scale_down(now, pods, nodes, provided)
        self.history += actions
        return actions

    def _scale_up(
        self, now: float, pods: list[dict[str, Any]], nodes: dict[str, Any], provided: dict[str, ProvidedNode]
    ) -> list[NodeAction]:
        cfg, state = self.config, self._state
        waiting = {p["metadata"]["uid"]: p for p in pods if unschedulable(p)}
        state.unschedulable_since = {
            uid: state.unschedulable_since.get(uid, now) for uid in waiting
        }  # pods that got scheduled (or went away) are forgotten
        for name, added in list(state.joining.items()):
            if _ready(nodes.get(name)) or now - added >= cfg.join_timeout or name not in provided:
                del state.joining[name]
                state.settled = now  # the scheduler gets unschedulable_after to use the new room
        due = [
            p
            for uid, p in waiting.items()
            if now - max(state.unschedulable_since[uid], state.settled) >= cfg.unschedulable_after
        ]
        if not due or state.joining:
            return []
        shape = self.provider.shape
        elsewhere = [p for p in due if not selects(p, shape.labels)]  # a new node would not take them
        due = [p for p in due if selects(p, shape.labels)]
        free = [free_room(nodes[n], pods) for n in provided if _ready(nodes.get(n))]
        count, too_big = nodes_needed((pod_request(p) for p in due), shape, free)
        too_big += len(elsewhere)
        room = cfg.max_nodes - len(provided)
        if count == 0 and too_big == 0:  # they fit where there is room already: the scheduler's turn
            return []
        if count == 0 or room <= 0:
            why = (
                f"{too_big} unschedulable pod(s) do not fit a {self.provider.name} node "
                "(too big, or their nodeSelector does not match its labels)"
                if count == 0
                else f"{len(due)} pod(s) unschedulable; {self.provider.name} is at max_nodes={cfg.max_nodes}"
            )
            blocked = NodeAction("blocked", "", why, now)
            if not self.history or self.history[-1].reason != why:
                return [blocked]
            return []
        actions = []
        for _ in range(min(count, room)):
            name = self.provider.add_node()
            state.joining[name] = now
            reason = f"{len(due)} pod(s) unschedulable for ≥ {cfg.unschedulable_after:g}s"
            actions.append(NodeAction("add", name, reason, now))
            log.info("node autoscaler: added %s (%s)", name, reason)
        return actions

    def _scale_down(
        self, now: float, pods: list[dict[str, Any]], nodes: dict[str, Any], provided: dict[str, ProvidedNode]
    ) -> list[NodeAction]:
        cfg, state = self.config, self._state
        busy = {(p.get("spec") or {}).get("nodeName") for p in pods if _counts_on_node(p)}
        empty = {
            name
            for name in provided
            if name in nodes and name not in busy and not _control_plane(nodes[name])
        }
        state.empty_since = {name: state.empty_since.get(name, now) for name in empty}
        if state.joining:
            return []
        candidates = sorted(
            (n for n in empty if now - state.empty_since[n] >= cfg.scale_down_after
             and now - provided[n].created >= cfg.scale_down_after),
            key=lambda n: provided[n].created, reverse=True,
        )  # fmt: skip
        actions = []
        left = len(provided)
        for name in candidates:
            if left <= cfg.min_nodes:
                break
            self.provider.remove_node(name)
            left -= 1
            state.empty_since.pop(name, None)
            reason = f"empty for ≥ {cfg.scale_down_after:g}s"
            actions.append(NodeAction("remove", name, reason, now))
            log.info("node autoscaler: removed %s (%s)", name, reason)
        return actions


def _ready(node: Mapping[str, Any] | None) -> bool:
    if node is None:
        return False
    conditions = (node.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def _control_plane(node: Mapping[str, Any]) -> bool:
    labels = (node.get("metadata") or {}).get("labels") or {}
    return any(key in labels for key in CONTROL_PLANE_LABELS)


# ---- the kwok provider ------------------------------------------------------------------------------------


class KwokNodeProvider:
    """Nodes of a kwok cluster: each is a Node object annotated for kwok (which then makes it Ready and runs
    its pods), labelled ``yunzhou.io/node-pool: <pool>``. Removing deletes the Node; the pod garbage
    collector removes what was bound to it."""

    name = "kwok"

    def __init__(
        self, client: Any, cluster: str, *, pool: str = "autoscaled", shape: NodeShape | None = None
    ) -> None:
        self.client = client
        self.cluster = cluster
        self.pool = pool
        base = shape or NodeShape(cpu=32, memory=256 * 2**30, pods=110)
        labels = {
            "kubernetes.io/os": "linux",
            "kubernetes.io/arch": "amd64",
            "type": "kwok",
            POOL_LABEL: pool,
        }
        self.shape = NodeShape(base.cpu, base.memory, base.pods, {**labels, **base.labels})
        self._seq = itertools.count()

    def nodes(self) -> list[ProvidedNode]:
        from lightkube.resources.core_v1 import Node

        with translated(self.cluster, "listing provider nodes"):
            items = list(self.client.list(Node, labels={POOL_LABEL: self.pool}))
        return [ProvidedNode(n.metadata.name, n.metadata.creationTimestamp.timestamp()) for n in items]

    def add_node(self) -> str:
        from lightkube.resources.core_v1 import Node

        existing = {n.name for n in self.nodes()}
        name = next(n for n in (f"kwok-{self.pool}-{i}" for i in self._seq) if n not in existing)
        with translated(self.cluster, f"creating node {name}"):
            self.client.create(Node.from_dict(self.node_object(name)))
        return name

    def remove_node(self, name: str) -> None:
        from lightkube import ApiError
        from lightkube.resources.core_v1 import Node

        with translated(self.cluster, f"deleting node {name}"):
            try:
                self.client.delete(Node, name)
            except ApiError as exc:
                if exc.status.code != 404:  # already gone is what we wanted
                    raise

    def node_object(self, name: str) -> dict[str, Any]:
        key, value = KWOK_ANNOTATION
        resources = {
            "cpu": f"{self.shape.cpu:g}",
            "memory": str(int(self.shape.memory)),
            "pods": str(self.shape.pods),
        }
        labels = {**self.shape.labels, "kubernetes.io/hostname": name}
        return {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": name, "labels": labels, "annotations": {key: value}},
            "status": {
                "allocatable": resources,
                "capacity": resources,
                "nodeInfo": {
                    "architecture": "amd64",
                    "operatingSystem": "linux",
                    "kubeletVersion": "fake",
                    "bootID": "",
                    "containerRuntimeVersion": "",
                    "kernelVersion": "",
                    "kubeProxyVersion": "",
                    "machineID": "",
                    "osImage": "",
                    "systemUUID": "",
                },
            },
        }


def cluster_lists(
    client: Any, cluster: str
) -> tuple[Callable[[], list[dict[str, Any]]], Callable[[], list[dict[str, Any]]]]:
    """(list_pods, list_nodes) over a lightkube client, as plain dicts."""
    from lightkube.resources.core_v1 import Node, Pod

    def pods() -> list[dict[str, Any]]:
        with translated(cluster, "listing pods"):
            return [p.to_dict() for p in client.list(Pod, namespace="*")]

    def nodes() -> list[dict[str, Any]]:
        with translated(cluster, "listing nodes"):
            return [n.to_dict() for n in client.list(Node)]

    return pods, nodes


class NodeAutoscalerLoop:
    """Runs ``autoscaler.step()`` every ``interval`` seconds in a daemon thread until :meth:`stop`."""

    def __init__(self, autoscaler: NodeAutoscaler, *, interval: float = 5.0) -> None:
        self.autoscaler = autoscaler
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last_error = ""

    def start(self) -> NodeAutoscalerLoop:
        self._thread = threading.Thread(target=self._run, name="node-autoscaler", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.autoscaler.step()
                self.last_error = ""
            except Exception as exc:  # a pass that failed is retried on the next tick, and said why
                self.last_error = str(exc)
                log.warning("node autoscaler: %s", exc)
            self._stop.wait(self.interval)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()


PROVIDERS: dict[str, Callable[[Any, str], NodeProvider]] = {
    "kwok": lambda client, cluster: KwokNodeProvider(client, cluster),
}


def node_autoscalers(
    spec: str, connect: Callable[[str], tuple[Any, str]], config: NodeAutoscalerConfig | None = None
) -> list[NodeAutoscalerLoop]:
    """Loops (not started) for ``spec`` = ``"CLUSTER=PROVIDER,…"`` (``YUNZHOU_NODE_AUTOSCALING=kwok=kwok``);
    ``connect`` is the cluster directory's (cluster name → (lightkube client, base domain))."""
    loops = []
    for item in filter(None, (part.strip() for part in spec.split(","))):
        cluster, _, kind = item.partition("=")
        if kind not in PROVIDERS:
            raise ValueError(f"node autoscaling {item!r}: provider must be one of {', '.join(PROVIDERS)}")
        client, _ = connect(cluster)
        pods, nodes = cluster_lists(client, cluster)
        loops.append(
            NodeAutoscalerLoop(NodeAutoscaler(PROVIDERS[kind](client, cluster), pods, nodes, config))
        )
    return loops
