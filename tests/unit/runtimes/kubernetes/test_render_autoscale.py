"""settings.autoscaling → HPA autoscaling/v2 / KEDA ScaledObject: pure rendering."""

from __future__ import annotations

from typing import Any

import pytest

from yunzhou.domain.errors import PermanentError
from yunzhou.runtimes.kubernetes.render import NOT_RENDERED, Target, render
from yunzhou.runtimes.kubernetes.render_autoscale import HPA, SCALED_OBJECT, quantity
from yunzhou.runtimes.protocol import AppIntent, RouteSpec

CPU = {"type": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}}


def intent(autoscaling: dict[str, Any] | None) -> AppIntent:
    score = {
        "apiVersion": "score.dev/v1b1",
        "metadata": {"name": "orders"},
        "containers": {"web": {"image": "registry.test/orders:1"}},
        "service": {"ports": {"http": {"port": 80, "targetPort": 8080}}},
    }
    settings = {"autoscaling": autoscaling} if autoscaling else {}
    return AppIntent(1, "shop/dev/orders", 3, score, settings, None, None, 2, False,
                     (RouteSpec("orders.dev.shop.localhost"),), "cluster:c", "ns")  # fmt: skip


def by_kind(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {o["kind"]: o for o in objects}


def test_quantities() -> None:
    assert quantity(50) == "50"
    assert quantity(2.5) == "2500m"
    assert quantity(0.25) == "250m"


def test_hpa_with_defaults_and_no_replicas_on_the_deployment() -> None:
    out = by_kind(
        render(
            intent({"minReplicas": 2, "maxReplicas": 5, "metrics": [CPU]}),
            Target("ns", apis=frozenset({HPA})),
        )
    )
    hpa = out["HorizontalPodAutoscaler"]["spec"]
    assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "orders"}
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (2, 5)
    assert hpa["metrics"] == [
        {
            "type": "Resource",
            "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}},
        }
    ]
    assert hpa["behavior"]["scaleDown"] == {
        "stabilizationWindowSeconds": 300, "selectPolicy": "Max",
        "policies": [{"type": "Percent", "value": 100, "periodSeconds": 15}],
    }  # fmt: skip
    assert "replicas" not in out["Deployment"]["spec"]
    plain = by_kind(render(intent(None), Target("ns", apis=frozenset({HPA}))))
    assert plain["Deployment"]["spec"]["replicas"] == 2
    assert "HorizontalPodAutoscaler" not in plain


def test_custom_metrics_map_to_pods_object_and_external() -> None:
    metrics = [
        {"type": "rps", "target": {"type": "AverageValue", "averageValue": 50}},
        {"type": "custom", "name": "backlog", "target": {"type": "Value", "value": 10}},
        {
            "type": "custom",
            "name": "q",
            "query": "sum(q)",
            "target": {"type": "AverageValue", "averageValue": 3},
        },
    ]
    hpa = by_kind(render(intent({"maxReplicas": 4, "metrics": metrics}), Target("ns", apis=frozenset({HPA}))))
    rendered = hpa["HorizontalPodAutoscaler"]["spec"]["metrics"]
    target = {"type": "AverageValue", "averageValue": "50"}
    assert rendered[0] == {
        "type": "Pods",
        "pods": {"metric": {"name": "yunzhou_requests_per_second"}, "target": target},
    }
    assert rendered[1]["object"]["describedObject"] == {
        "apiVersion": "v1",
        "kind": "Service",
        "name": "orders",
    }
    assert rendered[1]["object"]["target"] == {"type": "Value", "value": "10"}
    assert rendered[2]["external"]["metric"] == {
        "name": "q", "selector": {"matchLabels": {"yunzhou.io/app": "shop.dev.orders"}},
    }  # fmt: skip


def test_scale_to_zero_needs_keda_and_says_so() -> None:
    doc = {
        "minReplicas": 0,
        "maxReplicas": 3,
        "metrics": [CPU],
        "scaleToZero": {"enabled": True, "idleSeconds": 90},
    }
    with_keda = by_kind(render(intent(doc), Target("ns", apis=frozenset({HPA, SCALED_OBJECT}))))
    so = with_keda["ScaledObject"]["spec"]
    assert (so["minReplicaCount"], so["maxReplicaCount"], so["cooldownPeriod"]) == (0, 3, 90)
    assert so["triggers"] == [{"type": "cpu", "metricType": "Utilization", "metadata": {"value": "70"}}]
    assert "HorizontalPodAutoscaler" not in with_keda
    without = by_kind(render(intent(doc), Target("ns", apis=frozenset({HPA}))))
    assert without["HorizontalPodAutoscaler"]["spec"]["minReplicas"] == 1
    assert "scale to zero needs KEDA" in without["Deployment"]["metadata"]["annotations"][NOT_RENDERED]


def test_a_bad_stored_policy_is_a_permanent_error_naming_the_field() -> None:
    with pytest.raises(PermanentError) as err:
        render(intent({"maxReplicas": 0, "metrics": [CPU]}), Target("ns", apis=frozenset({HPA})))
    assert [p.path for p in err.value.problems] == ["settings.autoscaling.maxReplicas"]
