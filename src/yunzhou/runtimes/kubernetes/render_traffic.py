"""The traffic policy (``settings.traffic``, domain/traffic.py) as Kubernetes objects. Pure.

Two renderings, chosen per cluster (``mode``):

- ``istio``: a VirtualService (routes with host/path/header matches, weights between the stable and canary
  releases, timeouts, retries), a DestinationRule (subsets per release, connection pool, outlier
  detection, load balancing, ISTIO_MUTUAL with mTLS), a PeerAuthentication STRICT when ``mtls`` is on, and
  for directional access an AuthorizationPolicy (ALLOW, plus a DENY one for ``deny``) on per-app
  ServiceAccount identities.
- ``gateway``: a Gateway API HTTPRoute attached to the app's Service (the GAMMA mesh pattern: no Gateway
  needed) with the same matches, weighted backendRefs and timeouts.

Both render directional access as a NetworkPolicy too (podSelector/namespaceSelector peers). What a
rendering cannot express is left out and said in the notes (e.g. rate limits, or retries on Gateway API's
standard channel).

Canary on Kubernetes: the canary release runs as its own Deployment ``<app>-canary`` (selector adds the
release label) beside the stable one; the route object carries the weights (:func:`canary_objects`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from yunzhou.domain.errors import PermanentError, UserError
from yunzhou.domain.traffic import (
    CANARY_HEADER,
    AccessPolicy,
    CallerRef,
    Destination,
    HeaderMatch,
    Retries,
    RouteMatch,
    Timeouts,
    TrafficPolicy,
    TrafficRoute,
    parse_traffic,
)
from yunzhou.runtimes.kubernetes.shape import AppShape, Manifest
from yunzhou.runtimes.protocol import AppIntent

VIRTUAL_SERVICE = "networking.istio.io/v1/VirtualService"
DESTINATION_RULE = "networking.istio.io/v1/DestinationRule"
AUTHORIZATION_POLICY = "security.istio.io/v1/AuthorizationPolicy"
PEER_AUTHENTICATION = "security.istio.io/v1/PeerAuthentication"
HTTP_ROUTE = "gateway.networking.k8s.io/v1/HTTPRoute"
MODES = ("istio", "gateway")
RELEASE_LABEL = "yunzhou.io/release"
# Outside traffic: through the ingress gateway (Istio identity) / from namespaces carrying this label.
INGRESS_PRINCIPAL = "cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account"
INGRESS_NAMESPACE_LABEL = "yunzhou.io/ingress"
MAX_HTTPROUTE_RULES = 16  # the Gateway API schema's limit
_LB = {"round-robin": "ROUND_ROBIN", "least-requests": "LEAST_REQUEST"}
# While a canary or blue-green release runs, ``x-canary: always`` reaches only it (as on the local router),
# after the app's own routes (a route with destinations of its own wins, as there) and before the split.
PREVIEW_ROUTE = TrafficRoute(
    name="preview",
    match=RouteMatch(headers=(HeaderMatch(CANARY_HEADER, "exact", "always"),)),
    to=(Destination("canary", 100),),
)


@dataclass(frozen=True)
class Split:
    """A canary in progress: ``weight`` percent of requests to ``canary`` (a release number)."""

    stable: int
    canary: int
    weight: int


def choose_mode(apis: frozenset[str], preferred: str | None = None) -> str | None:
    """The cluster's rendering: ``preferred`` when it serves it, else Istio, else Gateway API, else None."""
    has = {"istio": VIRTUAL_SERVICE in apis, "gateway": HTTP_ROUTE in apis}
    if preferred in has:
        return preferred if has[preferred] else None
    return next((m for m in MODES if has[m]), None)


def policy_of(settings: Mapping[str, Any]) -> TrafficPolicy:
    try:
        return parse_traffic(settings.get("traffic") or {})
    except UserError as exc:
        raise PermanentError(f"settings.traffic: {exc.message}", problems=exc.problems) from exc


def default_namespace(project: str, env: str) -> str:
    return f"{project}-{env}"


def _fqdn(name: str, namespace: str) -> str:
    return f"{name}.{namespace}.svc.cluster.local"


def seconds(value: float) -> str:
    """A duration both Istio (protobuf JSON) and CEL accept: ``2s``, ``0.5s``."""
    return f"{value:g}s"


def gateway_duration(value: float) -> str:
    """Gateway API's duration syntax: ``500ms``, ``2s`` (whole units only)."""
    ms = round(value * 1000)
    return f"{ms // 1000}s" if ms % 1000 == 0 else f"{ms}ms"


def _weights(to: tuple[Destination, ...], split: Split | None) -> list[tuple[str, int]]:
    """[(track, weight)] for a route: its own destinations, else the rollout's split; canary → stable when
    no canary runs."""
    if not to:
        return [("stable", 100 - split.weight), ("canary", split.weight)] if split else [("stable", 100)]
    if split is None:
        return [("stable", 100)]
    return [(d.release, d.weight) for d in to]


# --- Istio ---------------------------------------------------------------------------------------------


def _istio_retries(r: Retries, t: Timeouts | None) -> dict[str, Any]:
    out: dict[str, Any] = {"attempts": r.attempts, "retryOn": ",".join(r.on)}
    if t and t.per_try is not None:
        out["perTryTimeout"] = seconds(t.per_try)
    return out


def _istio_http_route(
    name: str, w: AppShape, route: TrafficRoute | None, policy: TrafficPolicy, split: Split | None
) -> dict[str, Any]:
    out: dict[str, Any] = {"name": name}
    if route is not None:
        m = route.match
        match: dict[str, Any] = {}
        if m.host:
            match["authority"] = {"exact": m.host}
        if m.path_kind:
            match["uri"] = {m.path_kind: m.path}
        if m.headers:
            match["headers"] = {h.name: {h.kind: h.value} for h in m.headers}
        if match:
            out["match"] = [match]
    host = _fqdn(w.app, w.namespace)
    out["route"] = [
        {"destination": {"host": host, "subset": track}, "weight": weight}
        for track, weight in _weights(route.to if route else (), split)
    ]
    timeouts = (route.timeouts if route else None) or policy.timeouts
    retries = (route.retries if route else None) or policy.retries
    if timeouts and timeouts.overall is not None:
        out["timeout"] = seconds(timeouts.overall)
    if retries:
        out["retries"] = _istio_retries(retries, timeouts)
    return out


def virtual_service(w: AppShape, policy: TrafficPolicy, split: Split | None) -> Manifest:
    routes = (*policy.routes, PREVIEW_ROUTE) if split else policy.routes
    http = [_istio_http_route(r.name, w, r, policy, split) for r in routes]
    http.append(_istio_http_route("default", w, None, policy, split))
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": dict(w.metadata),
        "spec": {"hosts": [w.app, _fqdn(w.app, w.namespace)], "http": http},
    }


def destination_rule(w: AppShape, policy: TrafficPolicy, release: int, split: Split | None) -> Manifest:
    traffic: dict[str, Any] = {}
    if policy.connection_pool:
        cp = policy.connection_pool
        if cp.max_connections is not None:
            traffic.setdefault("connectionPool", {})["tcp"] = {"maxConnections": cp.max_connections}
        http = {
            k: v
            for k, v in (("http1MaxPendingRequests", cp.max_pending),
                         ("maxRequestsPerConnection", cp.max_requests_per_connection))
            if v is not None
        }  # fmt: skip
        if http:
            traffic.setdefault("connectionPool", {})["http"] = http
    if policy.outlier_detection:
        od = policy.outlier_detection
        outlier: dict[str, Any] = {
            "interval": seconds(od.interval),
            "baseEjectionTime": seconds(od.base_ejection_time),
            "maxEjectionPercent": od.max_ejection_percent,
        }
        if od.consecutive_5xx:
            outlier["consecutive5xxErrors"] = od.consecutive_5xx
        if od.consecutive_gateway_errors:
            outlier["consecutiveGatewayErrors"] = od.consecutive_gateway_errors
        traffic["outlierDetection"] = outlier
    lb = policy.load_balancer
    if lb.policy == "consistent-hash":
        if lb.hash_on == "header":
            traffic["loadBalancer"] = {"consistentHash": {"httpHeaderName": lb.hash_key}}
        elif lb.hash_on == "cookie":
            traffic["loadBalancer"] = {"consistentHash": {"httpCookie": {"name": lb.hash_key, "ttl": "0s"}}}
        else:
            traffic["loadBalancer"] = {"consistentHash": {"useSourceIp": True}}
    else:
        traffic["loadBalancer"] = {"simple": _LB[lb.policy]}
    if policy.mtls:
        traffic["tls"] = {"mode": "ISTIO_MUTUAL"}
    subsets = [{"name": "stable", "labels": {RELEASE_LABEL: str(split.stable if split else release)}}]
    if split:
        subsets.append({"name": "canary", "labels": {RELEASE_LABEL: str(split.canary)}})
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "DestinationRule",
        "metadata": dict(w.metadata),
        "spec": {"host": _fqdn(w.app, w.namespace), "trafficPolicy": traffic, "subsets": subsets},
    }


def peer_authentication(w: AppShape) -> Manifest:
    return {
        "apiVersion": "security.istio.io/v1",
        "kind": "PeerAuthentication",
        "metadata": dict(w.metadata),
        "spec": {"selector": {"matchLabels": {"yunzhou.io/app": w.key}}, "mtls": {"mode": "STRICT"}},
    }


NamespaceOf = Callable[[str, str], str]


def _namespace(ref: CallerRef, w: AppShape, namespace_of: NamespaceOf) -> str:
    """The caller's namespace: the app's own for its environment, else the other environment's."""
    project, env = ref.project or w.project, ref.env or w.env
    return w.namespace if (project, env) == (w.project, w.env) else namespace_of(project, env)


def _sources(refs: tuple[CallerRef, ...], w: AppShape, namespace_of: NamespaceOf) -> list[dict[str, Any]]:
    """Istio rule sources: a principal per named app (its ServiceAccount), a namespace for ``env/*``."""
    principals, namespaces = [], []
    for ref in refs:
        ns = _namespace(ref, w, namespace_of)
        if ref.app == "*":
            namespaces.append(ns)
        else:
            principals.append(f"cluster.local/ns/{ns}/sa/{ref.app}")
    out: list[dict[str, Any]] = []
    if principals:
        out.append({"source": {"principals": sorted(set(principals))}})
    if namespaces:
        out.append({"source": {"namespaces": sorted(set(namespaces))}})
    return out


def authorization_policies(w: AppShape, access: AccessPolicy, namespace_of: NamespaceOf) -> list[Manifest]:
    selector = {"matchLabels": {"yunzhou.io/app": w.key}}
    allow = _sources(access.allow, w, namespace_of)
    if access.default == "allow-environment":
        allow.append({"source": {"namespaces": [w.namespace]}})
    if access.external:
        allow.append({"source": {"principals": [INGRESS_PRINCIPAL]}})
    # An ALLOW policy with no rules denies everything: exactly "default deny, nobody allowed".
    spec: dict[str, Any] = {"selector": selector, "action": "ALLOW"}
    if allow:
        spec["rules"] = [{"from": [r]} for r in allow]
    out = [{"apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy",
            "metadata": dict(w.metadata), "spec": spec}]  # fmt: skip
    deny = _sources(access.deny, w, namespace_of)
    if deny:
        meta = {**w.metadata, "name": f"{w.app}-deny"}
        rules = [{"from": [r]} for r in deny]
        out.append({"apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy", "metadata": meta,
                    "spec": {"selector": selector, "action": "DENY", "rules": rules}})  # fmt: skip
    return out


# --- Gateway API -----------------------------------------------------------------------------------------


def _gateway_headers(route: TrafficRoute) -> list[dict[str, Any]]:
    out = []
    for h in route.match.headers:
        if h.kind == "exact":
            out.append({"type": "Exact", "name": h.name, "value": h.value})
        else:  # prefix has no Gateway API form: an anchored regular expression says the same
            value = h.value if h.kind == "regex" else f"^{re.escape(h.value)}.*"
            out.append({"type": "RegularExpression", "name": h.name, "value": value})
    return out


def http_route(w: AppShape, policy: TrafficPolicy, split: Split | None) -> Manifest:
    port = w.ports[sorted(w.ports)[0]]

    def backends(route: TrafficRoute | None) -> list[dict[str, Any]]:
        weights = _weights(route.to if route else (), split)
        if split is None:
            return [{"name": w.app, "port": port, "weight": 100}]
        return [{"name": f"{w.app}-{track}", "port": port, "weight": weight} for track, weight in weights]

    def rule(route: TrafficRoute | None) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if route is not None:
            match: dict[str, Any] = {}
            if route.match.path_kind:
                kind = "PathPrefix" if route.match.path_kind == "prefix" else "Exact"
                match["path"] = {"type": kind, "value": route.match.path}
            if route.match.headers:
                match["headers"] = _gateway_headers(route)
            if match:
                out["matches"] = [match]
        out["backendRefs"] = backends(route)
        timeouts = (route.timeouts if route else None) or policy.timeouts
        if timeouts and timeouts.overall is not None:
            out["timeouts"] = {"request": gateway_duration(timeouts.overall)}
            if timeouts.per_try is not None:
                out["timeouts"]["backendRequest"] = gateway_duration(timeouts.per_try)
        return out

    room = MAX_HTTPROUTE_RULES - (2 if split else 1)  # the default rule and, in a rollout, the preview
    own = list(policy.routes[:room]) + ([PREVIEW_ROUTE] if split else [])
    rules = [rule(r) for r in own] + [rule(None)]
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": dict(w.metadata),
        "spec": {"parentRefs": [{"group": "", "kind": "Service", "name": w.app}], "rules": rules},
    }


def track_services(w: AppShape, split: Split) -> list[Manifest]:
    """``<app>-stable`` and ``<app>-canary`` Services (by release label), the HTTPRoute's backends."""
    out = []
    for track, release in (("stable", split.stable), ("canary", split.canary)):
        out.append({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {**w.metadata, "name": f"{w.app}-{track}"},
            "spec": {
                "selector": {"yunzhou.io/app": w.key, RELEASE_LABEL: str(release)},
                "ports": [{"name": n, "port": p, "targetPort": p} for n, p in sorted(w.ports.items())],
            },
        })  # fmt: skip
    return out


# --- both: NetworkPolicy ----------------------------------------------------------------------------------


def network_policy(w: AppShape, access: AccessPolicy, namespace_of: NamespaceOf) -> Manifest:
    """Who may open connections to the app's pods. NetworkPolicy has no deny rules: ``deny`` entries in the
    app's own namespace become a NotIn on the same-namespace peer; further ones are left to Istio."""
    peers: list[dict[str, Any]] = []
    if access.default == "allow-environment":
        denied = sorted(
            f"{w.project}.{w.env}.{ref.app}"
            for ref in access.deny
            if (ref.project or w.project, ref.env or w.env) == (w.project, w.env) and ref.app != "*"
        )
        selector: dict[str, Any] = {}
        if denied:
            selector = {
                "matchExpressions": [{"key": "yunzhou.io/app", "operator": "NotIn", "values": denied}]
            }
        peers.append({"podSelector": selector})
    for ref in access.allow:
        project, env = ref.project or w.project, ref.env or w.env
        ns = {"matchLabels": {"kubernetes.io/metadata.name": _namespace(ref, w, namespace_of)}}
        pods = {} if ref.app == "*" else {"matchLabels": {"yunzhou.io/app": f"{project}.{env}.{ref.app}"}}
        peers.append({"namespaceSelector": ns, "podSelector": pods})
    if access.external:
        peers.append({"namespaceSelector": {"matchLabels": {INGRESS_NAMESPACE_LABEL: "true"}}})
    spec: dict[str, Any] = {
        "podSelector": {"matchLabels": {"yunzhou.io/app": w.key}},
        "policyTypes": ["Ingress"],
    }
    if peers:
        spec["ingress"] = [{"from": peers}]
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": dict(w.metadata),
            "spec": spec}  # fmt: skip


# --- the whole rendering ---------------------------------------------------------------------------------


def render_traffic(
    w: AppShape,
    settings: Mapping[str, Any],
    apis: frozenset[str],
    release: int,
    *,
    mode: str | None = None,
    split: Split | None = None,
    namespace_of: NamespaceOf = default_namespace,
) -> tuple[list[Manifest], list[str]]:
    """(objects, notes) for the app's traffic policy (and a canary split, when one runs)."""
    policy = policy_of(settings)
    if policy.is_empty() and split is None:
        return [], []
    objects: list[Manifest] = []
    notes: list[str] = []
    access_set = policy.access != AccessPolicy()
    if access_set:
        objects.append(network_policy(w, policy.access, namespace_of))
    chosen = choose_mode(apis, mode)
    if chosen is None:
        wanted = {"istio": "Istio's", "gateway": "the Gateway API"}.get(
            mode or "", "Istio's or the Gateway API"
        )
        return objects, [f"traffic policy not rendered: the cluster does not serve {wanted} CRDs"]
    if not w.ports:
        return objects, ["traffic policy not rendered: the app has no service port"]
    if policy.rate_limit or any(r.rate_limit for r in policy.routes):
        notes.append("rateLimit not rendered on Kubernetes (enforced by the local router only)")
    if chosen == "istio":
        objects += [virtual_service(w, policy, split), destination_rule(w, policy, release, split)]
        if policy.mtls:
            objects.append(peer_authentication(w))
        if access_set:
            objects += authorization_policies(w, policy.access, namespace_of)
        if policy.retries and policy.retries.budget:
            notes.append("retries.budget not rendered: Istio has no retry budget (attempts and perTry apply)")
        return objects, notes
    objects.append(http_route(w, policy, split))
    if split:
        objects += track_services(w, split)
    left_out = [
        name
        for name, present in (
            ("retries", bool(policy.retries or any(r.retries for r in policy.routes))),
            ("connectionPool", policy.connection_pool is not None),
            ("outlierDetection", policy.outlier_detection is not None),
            ("loadBalancer", policy.load_balancer.policy != "round-robin"),
            ("mtls", policy.mtls),
        )
        if present
    ]
    if left_out:
        notes.append(f"{', '.join(left_out)} not rendered: Gateway API's standard channel has no such field")
    room = MAX_HTTPROUTE_RULES - (2 if split else 1)
    if len(policy.routes) > room:
        notes.append(f"only the first {room} traffic routes rendered (HTTPRoute limit)")
    return objects, notes


def canary_replicas(canary: AppIntent, stable_replicas: int, weight: int) -> int:
    """Pods of ``<app>-canary``: its share of the stable size, or the full size for blue-green."""
    if (canary.settings.get("rollout") or {}).get("strategy") == "blue-green":
        return max(1, canary.replicas)
    return max(1, -(-stable_replicas * weight // 100))


def canary_objects(canary_release_objects: list[Manifest], app: str, release: int) -> list[Manifest]:
    """The canary release's own objects, renamed so they sit beside the stable ones: its Deployment becomes
    ``<app>-canary`` (selector + release label, so the two never share pods) and so do its ConfigMaps and
    Secrets (references in the pod template follow). Services, routes and the rest stay the stable's."""
    renamed: dict[str, str] = {}
    out: list[Manifest] = []
    for o in canary_release_objects:
        if o["kind"] in ("ConfigMap", "Secret"):
            new = f"{o['metadata']['name']}-canary"
            renamed[o["metadata"]["name"]] = new
            out.append({**o, "metadata": {**o["metadata"], "name": new}})
    for o in canary_release_objects:
        if o["kind"] != "Deployment":
            continue
        spec = dict(o["spec"])
        selector = {**spec["selector"]["matchLabels"], RELEASE_LABEL: str(release)}
        spec["selector"] = {"matchLabels": selector}
        pod = spec["template"]
        pod_spec = dict(pod["spec"])
        pod_spec["containers"] = [_rename_refs(c, renamed) for c in pod_spec["containers"]]
        if "volumes" in pod_spec:
            pod_spec["volumes"] = [_rename_volume(v, renamed) for v in pod_spec["volumes"]]
        spec["template"] = {**pod, "spec": pod_spec}
        meta = {**o["metadata"], "name": f"{app}-canary"}
        meta.pop("annotations", None)
        out.append({**o, "metadata": meta, "spec": spec})
    return out


def _rename_refs(container: Mapping[str, Any], renamed: Mapping[str, str]) -> dict[str, Any]:
    c = dict(container)
    if "envFrom" in c:
        c["envFrom"] = [
            {k: {**ref, "name": renamed.get(ref["name"], ref["name"])} for k, ref in item.items()}
            for item in c["envFrom"]
        ]
    return c


def _rename_volume(volume: Mapping[str, Any], renamed: Mapping[str, str]) -> dict[str, Any]:
    v = dict(volume)
    if "configMap" in v:
        v["configMap"] = {
            **v["configMap"],
            "name": renamed.get(v["configMap"]["name"], v["configMap"]["name"]),
        }
    if "secret" in v:
        name = v["secret"]["secretName"]
        v["secret"] = {**v["secret"], "secretName": renamed.get(name, name)}
    return v
