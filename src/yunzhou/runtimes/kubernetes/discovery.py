"""Which optional APIs a cluster serves (prometheus-operator, Istio, Gateway API, KEDA, cert-manager, HPA v2),
found by API discovery and cached per cluster, so the renderer only produces objects the cluster can hold.

Discovery reads ``/apis`` once and ``/apis/<group>/<version>`` for the groups Yunzhou can render to; the
answer is reused for ``ttl`` seconds (a CRD installed later is seen after that, or at once after
:meth:`Discovery.forget`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from yunzhou.domain.errors import PermanentError, TemporaryError
from yunzhou.runtimes.kubernetes.cluster import translated

# apiVersion → the kinds of it Yunzhou renders. The key of each entry is what Target.apis holds.
OPTIONAL_APIS: dict[str, tuple[str, ...]] = {
    "autoscaling/v2": ("HorizontalPodAutoscaler",),
    "monitoring.coreos.com/v1": ("ServiceMonitor", "PrometheusRule"),
    "networking.istio.io/v1": ("VirtualService", "DestinationRule"),
    "security.istio.io/v1": ("AuthorizationPolicy", "PeerAuthentication"),
    "gateway.networking.k8s.io/v1": ("HTTPRoute",),
    "keda.sh/v1alpha1": ("ScaledObject",),
    "cert-manager.io/v1": ("Certificate", "Issuer"),
}
# Where each CRD kind comes from, for the "not rendered because…" notes.
PROVIDERS = {
    "monitoring.coreos.com/v1": "the prometheus-operator CRDs",
    "networking.istio.io/v1": "Istio's CRDs",
    "security.istio.io/v1": "Istio's CRDs",
    "gateway.networking.k8s.io/v1": "the Gateway API CRDs",
    "keda.sh/v1alpha1": "KEDA's CRDs",
    "cert-manager.io/v1": "cert-manager",
    "autoscaling/v2": "Kubernetes ≥ 1.23",
}
DISCOVERY_TTL = 300.0


def api_key(api_version: str, kind: str) -> str:
    return f"{api_version}/{kind}"


@dataclass(frozen=True)
class ResourceInfo:
    api_version: str
    kind: str
    plural: str
    namespaced: bool


def parse_group_resources(api_version: str, body: dict[str, Any]) -> list[ResourceInfo]:
    """The kinds of an APIResourceList (``GET /apis/<group>/<version>``), without subresources."""
    return [
        ResourceInfo(api_version, r["kind"], r["name"], bool(r.get("namespaced")))
        for r in body.get("resources", [])
        if "/" not in r["name"]
    ]


def served_versions(groups: dict[str, Any]) -> set[str]:
    """Every ``group/version`` an APIGroupList (``GET /apis``) names."""
    return {v["groupVersion"] for g in groups.get("groups", []) for v in g.get("versions", [])}


class Discovery:
    """Per-cluster cache of the optional kinds a cluster serves: ``{"monitoring.coreos.com/v1/ServiceMonitor":
    ResourceInfo, …}``. Thread-safe; the clock is injectable for tests."""

    def __init__(self, *, ttl: float = DISCOVERY_TTL, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self.clock = clock
        self._cache: dict[str, tuple[float, dict[str, ResourceInfo]]] = {}
        self._lock = threading.Lock()
        self._cluster_locks: dict[str, threading.Lock] = {}

    def resources(self, cluster: str, client: Any) -> dict[str, ResourceInfo]:
        now = self.clock()
        with self._lock:  # held briefly; a slow or unreachable cluster only holds up its own passes
            cached = self._cache.get(cluster)
            if cached is not None and now - cached[0] < self.ttl:
                return cached[1]
            lock = self._cluster_locks.setdefault(cluster, threading.Lock())
        with lock:
            cached = self._cache.get(cluster)
            if cached is not None and now - cached[0] < self.ttl:  # another pass just discovered it
                return cached[1]
            found = _discover(cluster, client, OPTIONAL_APIS)
            with self._lock:
                self._cache[cluster] = (now, found)
            return found

    def apis(self, cluster: str, client: Any) -> frozenset[str]:
        return frozenset(self.resources(cluster, client))

    def forget(self, cluster: str | None = None) -> None:
        with self._lock:
            if cluster is None:
                self._cache.clear()
            else:
                self._cache.pop(cluster, None)


def _discover(cluster: str, client: Any, wanted: Mapping[str, Iterable[str]]) -> dict[str, ResourceInfo]:
    # lightkube has no discovery call; its httpx transport (base URL + credentials) does the GETs.
    http = client._client._client
    found: dict[str, ResourceInfo] = {}
    with translated(cluster, "discovering the cluster's APIs"):
        served = served_versions(_ok(cluster, http.get("/apis")))
        for api_version, kinds in wanted.items():
            if api_version not in served:
                continue
            response = http.get(f"/apis/{api_version}")
            if response.status_code == 404:  # removed between the two reads
                continue
            for info in parse_group_resources(api_version, _ok(cluster, response)):
                if info.kind in kinds:
                    found[api_key(api_version, info.kind)] = info
    return found


def _ok(cluster: str, response: Any) -> dict[str, Any]:
    if response.status_code == 200:
        body: dict[str, Any] = response.json()
        return body
    what = f"cluster {cluster}: API discovery ({response.request.url.path}) answered {response.status_code}"
    if response.status_code >= 500 or response.status_code == 429:
        raise TemporaryError(what, retry_after=5.0)
    raise PermanentError(what)
