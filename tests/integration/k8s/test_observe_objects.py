"""ServiceMonitor and PrometheusRule on the real API server: rendered only when the cluster serves the
prometheus-operator CRDs, applied with server-side apply (the API server validates them against the CRDs'
OpenAPI schemas) and read back; on a cluster without the CRDs they are left out and the workload says why."""

from __future__ import annotations

from typing import Any

import pytest
from lightkube import ApiError
from lightkube import codecs as lk_codecs
from lightkube.resources.apps_v1 import Deployment

from tests.integration.k8s.conftest import lightkube_client, make_intent
from yunzhou.runtimes.kubernetes.render import NOT_RENDERED
from yunzhou.runtimes.kubernetes.runtime import OPTIONAL_KINDS, KubernetesRuntime
from yunzhou.testing.k8s import K8sTestEnv, binaries_available

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300 if binaries_available() else 3600)]
METRICS = {"metrics": {"port": "http", "path": "/stats"}}


def test_service_monitor_and_rule_are_applied_and_read_back(
    runtime: KubernetesRuntime, kube: Any, namespace: str
) -> None:
    intent = make_intent(namespace, settings=METRICS)
    rendered = {m["kind"]: m for m in runtime.render(intent)}
    obs = runtime.apply(intent)
    assert obs.actions >= 4
    monitor = kube.get(OPTIONAL_KINDS["ServiceMonitor"], "orders", namespace=namespace).to_dict()
    assert monitor["spec"] == rendered["ServiceMonitor"]["spec"]
    endpoint = monitor["spec"]["endpoints"][0]
    assert (endpoint["port"], endpoint["path"], endpoint["interval"]) == ("http", "/stats", "10s")
    assert monitor["spec"]["selector"] == {"matchLabels": {"yunzhou.io/app": "shop.dev.orders"}}
    rule = kube.get(OPTIONAL_KINDS["PrometheusRule"], "orders", namespace=namespace).to_dict()
    assert rule["spec"] == rendered["PrometheusRule"]["spec"]
    alerts = {r["alert"] for r in rule["spec"]["groups"][0]["rules"]}
    assert alerts >= {"AppCrashLooping", "AppInstanceDown", "AppMemoryNearLimit"}
    # the session cluster also serves Istio, so the mesh's request metrics give the two request rules
    assert {"AppErrorRateHigh", "AppLatencyHigh"} <= alerts
    managers = {f["manager"] for f in monitor["metadata"]["managedFields"]}
    assert managers == {"yunzhou"}  # server-side apply, not a create
    deployment = kube.get(Deployment, "orders", namespace=namespace)
    assert NOT_RENDERED not in (deployment.metadata.annotations or {})

    # The API server really validates against the CRD's schema: a wrong type is refused.
    bad = dict(rendered["ServiceMonitor"])
    bad["spec"] = {**bad["spec"], "endpoints": [{"port": "http", "interval": "ten seconds"}]}
    with pytest.raises(ApiError) as refused:
        kube.apply(lk_codecs.from_dict(bad), field_manager="test", force=True)
    assert refused.value.status.code == 422

    # Dropping the metrics declaration prunes the ServiceMonitor; the rule stays (every app has one).
    runtime.apply(make_intent(namespace, settings={}, release=2))
    assert [m.metadata.name for m in kube.list(OPTIONAL_KINDS["ServiceMonitor"], namespace=namespace)] == []
    assert [m.metadata.name for m in kube.list(OPTIONAL_KINDS["PrometheusRule"], namespace=namespace)] == [
        "orders"
    ]


def test_without_the_crds_nothing_is_rendered_and_the_workload_says_why(
    bare_k8s_env: K8sTestEnv, namespace: str
) -> None:
    client = lightkube_client(bare_k8s_env)
    try:
        runtime = KubernetesRuntime(lambda cluster: (client, "apps.test"))
        zero = {
            "minReplicas": 0,
            "maxReplicas": 3,
            "scaleToZero": {"enabled": True},
            "metrics": [{"type": "cpu", "target": {"type": "Utilization", "averageUtilization": 60}}],
        }
        access = {"access": {"default": "deny", "allow": ["frontend"]}}
        intent = make_intent(namespace, settings={**METRICS, "autoscaling": zero, "traffic": access})
        kinds = {m["kind"] for m in runtime.render(intent)}
        assert not kinds & {"ServiceMonitor", "PrometheusRule", "ScaledObject", "VirtualService", "HTTPRoute"}
        assert {"HorizontalPodAutoscaler", "NetworkPolicy"} <= kinds  # core kinds every cluster serves
        runtime.apply(intent)
        note = client.get(Deployment, "orders", namespace=namespace).metadata.annotations[NOT_RENDERED]
        assert "ServiceMonitor not rendered: the cluster does not serve monitoring.coreos.com/v1" in note
        assert "install the prometheus-operator CRDs" in note
        assert "PrometheusRule not rendered" in note
        assert "ScaledObject not rendered: scale to zero needs KEDA" in note
        assert (
            "traffic policy not rendered: the cluster does not serve Istio's or the Gateway API CRDs" in note
        )
    finally:
        client.close()
