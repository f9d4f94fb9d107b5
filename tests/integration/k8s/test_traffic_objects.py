"""The traffic policy on the real API server, in both per-cluster renderings: Istio (VirtualService,
DestinationRule, PeerAuthentication STRICT, AuthorizationPolicy ALLOW + DENY, per-app ServiceAccount) and
Gateway API (HTTPRoute on the Service, GAMMA), each with a NetworkPolicy for directional access — applied
with server-side apply, validated by the CRDs' schemas and read back. A canary runs as a second
Deployment whose pods become Ready on kwok, with the 80/20 weights in the route object."""

from __future__ import annotations

import time
from typing import Any

import pytest
from lightkube import codecs as lk_codecs
from lightkube.resources.apps_v1 import Deployment
from lightkube.resources.networking_v1 import NetworkPolicy

from tests.integration.k8s.conftest import make_intent
from yunzhou.domain.traffic import parse_traffic
from yunzhou.runtimes.kubernetes.render import render_canary
from yunzhou.runtimes.kubernetes.runtime import OPTIONAL_KINDS, KubernetesRuntime
from yunzhou.testing.k8s import binaries_available

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300 if binaries_available() else 3600)]

TRAFFIC: dict[str, Any] = {
    "routes": [
        {"name": "pinned-preview",
         "match": {"path": {"prefix": "/api"}, "headers": {"x-canary": {"exact": "always"}}},
         "to": [{"release": "canary", "weight": 100}], "timeouts": {"perTry": "500ms", "overall": "2s"}},
        {"name": "mobile", "match": {"headers": {"user-agent": {"prefix": "Mobile"}}}},
    ],
    "timeouts": {"perTry": "1s", "overall": "5s"},
    "retries": {"attempts": 2, "retryOn": ["connect-failure", "5xx"]},
    "connectionPool": {"maxConnections": 100, "maxPending": 50, "maxRequestsPerConnection": 1000},
    "outlierDetection": {"consecutive5xx": 5, "interval": "10s", "baseEjectionTime": "30s",
                         "maxEjectionPercent": 50},
    "loadBalancer": {"policy": "consistent-hash", "hashOn": {"header": "x-user"}},
    "access": {"default": "deny", "allow": ["frontend", "shop/staging/*"], "deny": ["billing"],
               "external": True},
    "mtls": True,
}  # fmt: skip


def apply_all(kube: Any, objects: list[dict[str, Any]]) -> None:
    for o in objects:
        kube.apply(lk_codecs.from_dict(o), field_manager="yunzhou", force=False)


def read_back(kube: Any, o: dict[str, Any]) -> dict[str, Any]:
    kind = (
        OPTIONAL_KINDS.get(o["kind"]) or {"NetworkPolicy": NetworkPolicy, "Deployment": Deployment}[o["kind"]]
    )
    got: dict[str, Any] = kube.get(
        kind, o["metadata"]["name"], namespace=o["metadata"]["namespace"]
    ).to_dict()
    return got


def test_istio_rendering_applied_and_read_back(runtime: KubernetesRuntime, kube: Any, namespace: str) -> None:
    parse_traffic(TRAFFIC)  # the traffic engineer's parser accepts the document as written
    intent = make_intent(namespace, settings={"traffic": TRAFFIC})
    rendered = runtime.render(intent)
    kinds = [o["kind"] for o in rendered]
    for kind in (
        "ServiceAccount",
        "VirtualService",
        "DestinationRule",
        "NetworkPolicy",
        "PeerAuthentication",
    ):
        assert kind in kinds
    assert kinds.count("AuthorizationPolicy") == 2
    runtime.apply(intent)
    for o in rendered:
        if o["kind"] in ("VirtualService", "DestinationRule", "AuthorizationPolicy", "PeerAuthentication",
                         "NetworkPolicy"):  # fmt: skip
            assert read_back(kube, o)["spec"] == o["spec"], o["kind"]
    vs = next(o for o in rendered if o["kind"] == "VirtualService")["spec"]["http"]
    assert [r["name"] for r in vs] == ["pinned-preview", "mobile", "default"]
    host = f"orders.{namespace}.svc.cluster.local"
    # no canary running: "to canary" means the stable release
    assert vs[0]["route"] == [{"destination": {"host": host, "subset": "stable"}, "weight": 100}]
    allow = next(
        o for o in rendered if o["metadata"]["name"] == "orders" and o["kind"] == "AuthorizationPolicy"
    )
    sources = [r["from"][0]["source"] for r in allow["spec"]["rules"]]
    # "frontend" is an app of the same environment (this namespace); shop/staging's is shop-staging
    assert {"principals": [f"cluster.local/ns/{namespace}/sa/frontend"]} in sources
    assert {"namespaces": ["shop-staging"]} in sources
    deployment = kube.get(Deployment, "orders", namespace=namespace)
    assert deployment.spec.template.spec.serviceAccountName == "orders"


def ready_pods(deployment: Any) -> int:
    return (deployment.status.readyReplicas or 0) if deployment.status else 0


def test_canary_runs_as_a_second_deployment_with_weights_in_the_route(
    runtime: KubernetesRuntime, kube: Any, namespace: str
) -> None:
    settings = {"traffic": {"timeouts": {"overall": "3s"}}}
    stable = make_intent(namespace, settings=settings, replicas=4, release=1)
    v2 = {"web": {"image": "registry.test/web:2", "variables": {"V": "2"}}}
    canary = make_intent(namespace, settings=settings, replicas=4, release=2,
                         score={**make_intent(namespace).score, "containers": v2})  # fmt: skip
    runtime.apply(stable)
    runtime.apply(stable, canary=canary, canary_weight=20)
    objects = runtime._objects[stable.app_id]
    assert ("Deployment", "orders-canary") in objects
    assert ("ConfigMap", "orders-web-env-canary") in objects
    vs = kube.get(OPTIONAL_KINDS["VirtualService"], "orders", namespace=namespace).to_dict()
    default = vs["spec"]["http"][-1]["route"]
    assert [(r["destination"]["subset"], r["weight"]) for r in default] == [("stable", 80), ("canary", 20)]
    dr = kube.get(OPTIONAL_KINDS["DestinationRule"], "orders", namespace=namespace).to_dict()
    assert dr["spec"]["subsets"] == [{"name": "stable", "labels": {"yunzhou.io/release": "1"}},
                                     {"name": "canary", "labels": {"yunzhou.io/release": "2"}}]  # fmt: skip
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        stable_dep = kube.get(Deployment, "orders", namespace=namespace)
        canary_dep = kube.get(Deployment, "orders-canary", namespace=namespace)
        if ready_pods(stable_dep) == 4 and ready_pods(canary_dep) == 1:
            break
        time.sleep(0.2)
    else:
        raise AssertionError("stable 4 and canary 1 pods did not become Ready")
    c = canary_dep.spec.template.spec.containers[0]
    assert c.image == "registry.test/web:2"
    assert c.envFrom[0].configMapRef.name == "orders-web-env-canary"

    # promotion: the canary's release becomes the intent; its -canary objects are pruned
    promoted = make_intent(namespace, settings=settings, replicas=4, release=2,
                           score={**make_intent(namespace).score, "containers": v2})  # fmt: skip
    runtime.apply(promoted)
    names = {d.metadata.name for d in kube.list(Deployment, namespace=namespace)}
    assert names == {"orders"}
    dr = kube.get(OPTIONAL_KINDS["DestinationRule"], "orders", namespace=namespace).to_dict()
    assert dr["spec"]["subsets"] == [{"name": "stable", "labels": {"yunzhou.io/release": "2"}}]


def test_gateway_rendering_chosen_for_the_cluster(kube: Any, namespace: str) -> None:
    runtime = KubernetesRuntime(lambda cluster: (kube, "apps.test"), traffic_modes={"kwok": "gateway"})
    intent = make_intent(namespace, settings={"traffic": TRAFFIC})
    rendered = runtime.render(intent)
    kinds = [o["kind"] for o in rendered]
    assert "HTTPRoute" in kinds
    assert "NetworkPolicy" in kinds
    assert not {"VirtualService", "DestinationRule", "AuthorizationPolicy", "ServiceAccount"} & set(kinds)
    runtime.apply(intent)
    route = next(o for o in rendered if o["kind"] == "HTTPRoute")
    assert read_back(kube, route)["spec"] == route["spec"] | {
        "rules": read_back(kube, route)["spec"]["rules"]
    }
    rules = read_back(kube, route)["spec"]["rules"]
    assert rules[0]["timeouts"] == {"request": "2s", "backendRequest": "500ms"}
    assert rules[1]["matches"][0]["headers"] == [
        {"type": "RegularExpression", "name": "user-agent", "value": "^Mobile.*"}
    ]
    note = kube.get(Deployment, "orders", namespace=namespace).metadata.annotations["yunzhou.io/not-rendered"]
    assert "retries, connectionPool, outlierDetection, loadBalancer, mtls not rendered" in note

    # a canary on Gateway API: per-release Services as the weighted backends
    target = runtime._target("kwok", kube, namespace, "apps.test")
    canary = make_intent(namespace, settings={"traffic": TRAFFIC}, release=2)
    objects = render_canary(intent, canary, 25, target)
    apply_all(kube, objects)
    got = read_back(kube, next(o for o in objects if o["kind"] == "HTTPRoute"))
    assert [(b["name"], b["weight"]) for b in got["spec"]["rules"][-1]["backendRefs"]] == [
        ("orders-stable", 75), ("orders-canary", 25)]  # fmt: skip
