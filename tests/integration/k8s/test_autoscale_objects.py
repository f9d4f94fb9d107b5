"""HorizontalPodAutoscaler (autoscaling/v2) and KEDA ScaledObject on the real API server: rendered from
settings.autoscaling, applied with server-side apply, read back equal; the real HPA controller then owns the
replica count (minReplicas 2 scales the Deployment to 2 Ready pods on kwok); scale to zero switches the HPA
for a ScaledObject (KEDA's CRD validates it)."""

from __future__ import annotations

import time
from typing import Any

import pytest
from lightkube.resources.apps_v1 import Deployment
from lightkube.resources.autoscaling_v2 import HorizontalPodAutoscaler

from tests.integration.k8s.conftest import make_intent
from yunzhou.runtimes.kubernetes.runtime import OPTIONAL_KINDS, KubernetesRuntime
from yunzhou.testing.k8s import binaries_available

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300 if binaries_available() else 3600)]

AUTOSCALING = {
    "minReplicas": 2,
    "maxReplicas": 6,
    "metrics": [
        {"type": "cpu", "target": {"type": "Utilization", "averageUtilization": 60}},
        {"type": "memory", "target": {"type": "AverageValue", "averageValue": 268435456}},
        {"type": "rps", "target": {"type": "AverageValue", "averageValue": 50}},
        {"type": "inflight", "target": {"type": "Value", "value": 40}},
        {"type": "custom", "name": "orders_per_second",
         "target": {"type": "AverageValue", "averageValue": 2.5}},
        {"type": "custom", "name": "queue_depth", "query": 'sum(queue_len{app="orders"})',
         "target": {"type": "Value", "value": 30}},
    ],
    "behavior": {
        "scaleUp": {"stabilizationWindowSeconds": 0, "selectPolicy": "Max",
                    "policies": [{"type": "Pods", "value": 4, "periodSeconds": 15}]},
        "scaleDown": {"stabilizationWindowSeconds": 300, "selectPolicy": "Min",
                      "policies": [{"type": "Percent", "value": 50, "periodSeconds": 60}]},
    },
}  # fmt: skip


def test_hpa_then_scaled_object_applied_and_read_back(
    runtime: KubernetesRuntime, kube: Any, namespace: str
) -> None:
    intent = make_intent(namespace, settings={"autoscaling": AUTOSCALING}, replicas=1)
    rendered = {m["kind"]: m for m in runtime.render(intent)}
    assert "replicas" not in rendered["Deployment"]["spec"]
    runtime.apply(intent)
    hpa = kube.get(HorizontalPodAutoscaler, "orders", namespace=namespace).to_dict()
    assert hpa["spec"] == rendered["HorizontalPodAutoscaler"]["spec"]
    kinds = [m["type"] for m in hpa["spec"]["metrics"]]
    assert kinds == ["Resource", "Resource", "Pods", "Object", "Pods", "External"]
    assert hpa["spec"]["behavior"]["scaleDown"]["selectPolicy"] == "Min"

    # the real HPA controller brings the Deployment up to minReplicas; the runtime converges on its number
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        obs = runtime.apply(intent)
        if obs.converged and obs.ready == 2:
            break
        time.sleep(0.2)  # the reconciler's requeue while progressing
    else:
        raise AssertionError(f"HPA did not scale to 2: {obs}")
    assert kube.get(Deployment, "orders", namespace=namespace).spec.replicas == 2

    # scale to zero: a ScaledObject replaces the HPA (KEDA would own its own HPA)
    zero = {**AUTOSCALING, "minReplicas": 0, "scaleToZero": {"enabled": True, "idleSeconds": 120}}
    intent0 = make_intent(namespace, settings={"autoscaling": zero}, release=2)
    rendered0 = {m["kind"]: m for m in runtime.render(intent0)}
    runtime.apply(intent0)
    scaled = kube.get(OPTIONAL_KINDS["ScaledObject"], "orders", namespace=namespace).to_dict()
    assert scaled["spec"] == rendered0["ScaledObject"]["spec"]
    assert (scaled["spec"]["minReplicaCount"], scaled["spec"]["cooldownPeriod"]) == (0, 120)
    triggers = [t["type"] for t in scaled["spec"]["triggers"]]
    assert triggers == ["cpu", "memory", "prometheus", "prometheus", "prometheus", "prometheus"]
    assert list(kube.list(HorizontalPodAutoscaler, namespace=namespace)) == []  # pruned
