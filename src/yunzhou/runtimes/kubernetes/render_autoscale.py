"""The autoscaling policy (``settings.autoscaling``, domain/autoscale) as Kubernetes objects. Pure.

- A HorizontalPodAutoscaler (autoscaling/v2) with the policy's min/max, metrics and behaviour, exactly as
  the API defines them: cpu/memory → ``Resource``; rps/inflight and custom metrics scraped from the app →
  ``Pods`` (AverageValue, per pod) or ``Object`` on the app's Service (Value); custom metrics with a
  PromQL query → ``External``. Pods/Object/External metrics are served by a metrics adapter (e.g.
  prometheus-adapter) under the names in :data:`METRIC_NAMES` / the custom metric's own name.
- With ``scaleToZero.enabled`` and KEDA in the cluster: a KEDA ScaledObject instead (KEDA then owns the
  HPA and wakes the app from zero): ``minReplicaCount: 0``, ``cooldownPeriod`` = ``idleSeconds``, the same
  behaviour under ``advanced.horizontalPodAutoscalerConfig``, and one trigger per metric (cpu/memory
  triggers; the others as ``prometheus`` triggers querying the cluster's Prometheus).

The Deployment then carries no ``replicas`` of its own (the autoscaler's number stands; re-applying the
Deployment never resets it).

A policy with schedules or a predictive forecast has a floor kept by Yunzhou's autoscale loop
(reconcile/autoscale.py) as the app's desired replicas (``intent.replicas``): the HPA's ``minReplicas``
becomes ``clamp(max(policy.minReplicas, floor), 1, maxReplicas)`` (:func:`hpa_min_replicas`), so the HPA
is raised ahead of demand instead of being fought, and still scales above the floor on its own metrics.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from yunzhou.domain.autoscale import AutoscalingPolicy, MetricSpec, parse_autoscaling
from yunzhou.domain.errors import PermanentError, UserError
from yunzhou.runtimes.kubernetes.shape import AppShape, Manifest

HPA = "autoscaling/v2/HorizontalPodAutoscaler"
SCALED_OBJECT = "keda.sh/v1alpha1/ScaledObject"
# The custom-metrics names a metrics adapter serves for Yunzhou's built-in per-instance metrics.
METRIC_NAMES = {"rps": "yunzhou_requests_per_second", "inflight": "yunzhou_requests_in_flight"}
DEFAULT_PROMETHEUS = "http://prometheus-operated.monitoring.svc:9090"


def policy_of(settings: Mapping[str, Any]) -> AutoscalingPolicy | None:
    raw = settings.get("autoscaling")
    if raw is None:
        return None
    try:
        return parse_autoscaling(raw)
    except UserError as exc:  # settings were validated when the release was made; say so if not
        raise PermanentError(f"settings.autoscaling: {exc.message}", problems=exc.problems) from exc


def quantity(value: float) -> str:
    """A number as a Kubernetes quantity: whole numbers as is, fractions in milli-units."""
    if float(value).is_integer():
        return str(int(value))
    return f"{round(value * 1000)}m"


def _q(value: str) -> str:
    return json.dumps(value)


def _metric_name(m: MetricSpec) -> str:
    return m.name if m.kind == "custom" and m.name else METRIC_NAMES[m.kind]


def hpa_metric(m: MetricSpec, t: AppShape) -> dict[str, Any]:
    target: dict[str, Any] = {"type": m.target.type}
    if m.target.type == "Utilization":
        target["averageUtilization"] = int(m.target.value)
    elif m.target.type == "AverageValue":
        target["averageValue"] = quantity(m.target.value)
    else:
        target["value"] = quantity(m.target.value)
    source = m.hpa_source()
    if source == "Resource":
        return {"type": "Resource", "resource": {"name": m.kind, "target": target}}
    metric: dict[str, Any] = {"name": _metric_name(m)}
    if source == "Pods":
        return {"type": "Pods", "pods": {"metric": metric, "target": target}}
    if source == "Object":
        described = {"apiVersion": "v1", "kind": "Service", "name": t.app}
        return {
            "type": "Object",
            "object": {"describedObject": described, "metric": metric, "target": target},
        }
    metric["selector"] = {"matchLabels": {"yunzhou.io/app": t.key}}
    return {"type": "External", "external": {"metric": metric, "target": target}}


def _behavior(policy: AutoscalingPolicy) -> dict[str, Any]:
    out = policy.behavior.to_dict()
    for rules in out.values():
        if not rules["policies"]:
            del rules["policies"]
    return out


def has_floor(policy: AutoscalingPolicy) -> bool:
    """Whether Yunzhou keeps a floor under the HPA (schedules or an enabled forecast; not scale to zero)."""
    predictive = policy.predictive is not None and policy.predictive.enabled
    return (predictive or bool(policy.schedules)) and not policy.scale_to_zero.enabled


def hpa_min_replicas(policy: AutoscalingPolicy, floor: int | None = None) -> int:
    """``clamp(max(policy.minReplicas, floor), 1, maxReplicas)``; ``floor`` None: the policy's min."""
    wanted = max(policy.min_replicas, floor or 0)
    return max(1, min(wanted, policy.max_replicas))


def render_hpa(policy: AutoscalingPolicy, t: AppShape, floor: int | None = None) -> Manifest:
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": dict(t.metadata),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": t.kind, "name": t.app},
            "minReplicas": hpa_min_replicas(policy, floor if has_floor(policy) else None),
            "maxReplicas": policy.max_replicas,
            "metrics": [hpa_metric(m, t) for m in policy.metrics],
            "behavior": _behavior(policy),
        },
    }


def prometheus_query(m: MetricSpec, t: AppShape) -> str:
    """The PromQL a KEDA prometheus trigger asks: the app's total for this metric."""
    if m.kind == "custom" and m.query:
        return m.query
    sel = f"namespace={_q(t.namespace)},app={_q(t.app)}"
    if m.kind == "rps":
        return (
            f'sum(rate(istio_requests_total{{reporter="destination",destination_workload_namespace={_q(t.namespace)},'
            f"destination_app={_q(t.app)}}}[1m]))"
        )
    if m.kind == "inflight":
        return f"sum(yunzhou_router_requests_in_flight{{{sel}}})"
    return f"sum({m.name}{{{sel}}})"


def keda_trigger(m: MetricSpec, t: AppShape, prometheus_url: str) -> dict[str, Any]:
    if m.kind in ("cpu", "memory"):
        metric_type = "Utilization" if m.target.type == "Utilization" else "AverageValue"
        return {"type": m.kind, "metricType": metric_type, "metadata": {"value": quantity(m.target.value)}}
    metric_type = "Value" if m.target.type == "Value" else "AverageValue"
    return {
        "type": "prometheus",
        "metricType": metric_type,
        "metadata": {
            "serverAddress": prometheus_url,
            "query": prometheus_query(m, t),
            "threshold": quantity(m.target.value),
            "activationThreshold": "0",  # any demand wakes the app from zero
        },
    }


def render_scaled_object(policy: AutoscalingPolicy, t: AppShape, prometheus_url: str) -> Manifest:
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": dict(t.metadata),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": t.kind, "name": t.app},
            "minReplicaCount": 0,
            "maxReplicaCount": policy.max_replicas,
            "cooldownPeriod": policy.scale_to_zero.idle_seconds,
            "pollingInterval": 15,
            "advanced": {"horizontalPodAutoscalerConfig": {"behavior": _behavior(policy)}},
            "triggers": [keda_trigger(m, t, prometheus_url) for m in policy.metrics],
        },
    }


def render_autoscale(
    t: AppShape,
    settings: Mapping[str, Any],
    apis: frozenset[str],
    prometheus_url: str = DEFAULT_PROMETHEUS,
    floor: int | None = None,
) -> tuple[list[Manifest], list[str]]:
    """(objects, notes). An empty object list with no notes means the app is not autoscaled. ``floor``:
    the app's desired replicas, the HPA's minReplicas floor when the policy has schedules/predictive."""
    policy = policy_of(settings)
    if policy is None:
        return [], []
    if policy.scale_to_zero.enabled:
        if SCALED_OBJECT in apis:
            return [render_scaled_object(policy, t, prometheus_url)], []
        note = (
            "ScaledObject not rendered: scale to zero needs KEDA (the cluster does not serve "
            "keda.sh/v1alpha1 ScaledObject); an HPA with minReplicas 1 scales instead"
        )
    else:
        note = ""
    if HPA not in apis:
        return [], [*([note] if note else []), "HorizontalPodAutoscaler not rendered: the cluster does not "
                    "serve autoscaling/v2"]  # fmt: skip
    return [render_hpa(policy, t, floor)], [note] if note else []
