"""Node autoscaling in the running platform: for each cluster configured in ``YUNZHOU_NODE_AUTOSCALING``
(``CLUSTER=PROVIDER,…``), a pass every interval runs that cluster's ``NodeAutoscaler`` (runtimes/kubernetes/
nodes.py) and records what it did through the services (``NodeEventService``: audit rows an operator reads
with `yunzhou cluster node-events NAME`).

A cluster is connected on the first pass that finds it registered, so the setting may name a cluster that
is added later; a pass that fails (cluster unreachable, not registered yet) is logged and retried.

Settings (environment, read when the server or worker starts; a bad value stops the start with its name):

- ``YUNZHOU_NODE_AUTOSCALING``: ``CLUSTER=PROVIDER`` pairs, comma separated (providers: ``kwok``)
- ``YUNZHOU_NODE_AUTOSCALE_INTERVAL``: seconds between passes (default 5)
- ``YUNZHOU_NODE_UNSCHEDULABLE_AFTER``: seconds a pod stays unschedulable before nodes are added (10)
- ``YUNZHOU_NODE_SCALE_DOWN_AFTER``: seconds a provider node stays empty before removal, the cool-down (600)
- ``YUNZHOU_NODE_MIN`` / ``YUNZHOU_NODE_MAX``: provider nodes per cluster (0 / 10)
- ``YUNZHOU_NODE_SHAPE``: a new kwok node's allocatable resources, ``cpu=32,memory=256Gi,pods=110``
- ``YUNZHOU_NODE_POOL``: the kwok provider's pool label value (default ``autoscaled``)
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from yunzhou.envnumbers import number_from_env
from yunzhou.runtimes.kubernetes.nodes import (
    PROVIDERS,
    KwokNodeProvider,
    NodeAutoscaler,
    NodeAutoscalerConfig,
    NodeProvider,
    NodeShape,
    cluster_lists,
    quantity,
)
from yunzhou.services import ControlPlane
from yunzhou.services.nodes import NodeEventService

log = logging.getLogger("yunzhou.reconcile.nodes")
Connect = Callable[[str], tuple[Any, str]]


@dataclass(frozen=True)
class NodeAutoscalingSettings:
    clusters: tuple[tuple[str, str], ...]  # (cluster, provider)
    config: NodeAutoscalerConfig = field(default_factory=NodeAutoscalerConfig)
    interval: float = 5.0
    shape: NodeShape | None = None
    pool: str = "autoscaled"


def _number(env: Mapping[str, str], name: str, default: float, low: float, high: float) -> float:
    return number_from_env(name, default, low, high, environ=env)


def _shape(raw: str) -> NodeShape | None:
    if not raw:
        return None
    values: dict[str, float] = {}
    for item in filter(None, (p.strip() for p in raw.split(","))):
        key, _, value = item.partition("=")
        if key not in ("cpu", "memory", "pods"):
            raise ValueError(f"YUNZHOU_NODE_SHAPE: {key!r} is not one of cpu, memory, pods")
        try:
            values[key] = quantity(value)
        except ValueError:
            raise ValueError(
                f"YUNZHOU_NODE_SHAPE: {key}={value!r} is not a quantity (e.g. 32, 256Gi)"
            ) from None
        if values[key] <= 0:
            raise ValueError(f"YUNZHOU_NODE_SHAPE: {key} must be positive")
    if "cpu" not in values or "memory" not in values:
        raise ValueError("YUNZHOU_NODE_SHAPE: must give cpu and memory, e.g. cpu=32,memory=256Gi")
    return NodeShape(values["cpu"], int(values["memory"]), int(values.get("pods", 110)))


def node_autoscaling_settings(env: Mapping[str, str]) -> NodeAutoscalingSettings | None:
    """The settings from the environment; None when ``YUNZHOU_NODE_AUTOSCALING`` is unset or empty."""
    spec = env.get("YUNZHOU_NODE_AUTOSCALING", "").strip()
    if not spec:
        return None
    clusters: list[tuple[str, str]] = []
    for item in filter(None, (p.strip() for p in spec.split(","))):
        cluster, _, kind = item.partition("=")
        if not cluster or kind not in PROVIDERS:
            raise ValueError(
                f"YUNZHOU_NODE_AUTOSCALING: {item!r} must be CLUSTER=PROVIDER, provider one of "
                + ", ".join(PROVIDERS)
            )
        if any(c == cluster for c, _ in clusters):
            raise ValueError(f"YUNZHOU_NODE_AUTOSCALING: cluster {cluster!r} is named twice")
        clusters.append((cluster, kind))
    low = int(_number(env, "YUNZHOU_NODE_MIN", 0, 0, 1000))
    config = NodeAutoscalerConfig(
        unschedulable_after=_number(env, "YUNZHOU_NODE_UNSCHEDULABLE_AFTER", 10, 0, 86400),
        scale_down_after=_number(env, "YUNZHOU_NODE_SCALE_DOWN_AFTER", 600, 0, 7 * 86400),
        min_nodes=low,
        max_nodes=int(_number(env, "YUNZHOU_NODE_MAX", max(10, low), low, 1000)),
    )
    return NodeAutoscalingSettings(
        tuple(clusters),
        config,
        interval=_number(env, "YUNZHOU_NODE_AUTOSCALE_INTERVAL", 5, 0.05, 3600),
        shape=_shape(env.get("YUNZHOU_NODE_SHAPE", "").strip()),
        pool=env.get("YUNZHOU_NODE_POOL", "").strip() or "autoscaled",
    )


class NodeAutoscaling:
    """The node autoscalers of every configured cluster, stepped by one daemon thread."""

    def __init__(self, cp: ControlPlane, connect: Connect, settings: NodeAutoscalingSettings) -> None:
        self.events = NodeEventService(cp.ctx)
        self.connect = connect
        self.settings = settings
        self.scalers: dict[str, NodeAutoscaler] = {}
        self.last_error: dict[str, str] = {}  # cluster → why its last pass failed ("" when it did not)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _provider(self, kind: str, client: Any, cluster: str) -> NodeProvider:
        if kind == "kwok":
            return KwokNodeProvider(client, cluster, pool=self.settings.pool, shape=self.settings.shape)
        return PROVIDERS[kind](client, cluster)

    def _scaler(self, cluster: str, kind: str) -> NodeAutoscaler:
        scaler = self.scalers.get(cluster)
        if scaler is None:
            client, _ = self.connect(cluster)
            pods, nodes = cluster_lists(client, cluster)
            provider = self._provider(kind, client, cluster)
            scaler = self.scalers[cluster] = NodeAutoscaler(provider, pods, nodes, self.settings.config)
        return scaler

    def step(self) -> int:
        """One pass over every cluster; returns how many node actions were recorded."""
        recorded = 0
        for cluster, kind in self.settings.clusters:
            try:
                actions = self._scaler(cluster, kind).step()
                if actions:
                    recorded += self.events.record(cluster, kind, actions)
                self.last_error[cluster] = ""
            except Exception as exc:  # one cluster's failure must not stop the others; said, then retried
                if self.last_error.get(cluster) != str(exc):
                    log.warning("node autoscaling on %s: %s", cluster, exc)
                self.last_error[cluster] = str(exc)
        return recorded

    def start(self) -> NodeAutoscaling:
        self._thread = threading.Thread(target=self._run, name="node-autoscaling", daemon=True)
        self._thread.start()
        names = ", ".join(f"{c}={k}" for c, k in self.settings.clusters)
        log.info("node autoscaling: %s every %gs", names, self.settings.interval)
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            self.step()
            self._stop.wait(self.settings.interval)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
