"""Observability objects for clusters that run the prometheus-operator: a ServiceMonitor for an app that
declares its own metrics endpoint (``settings.metrics: {port: web, path: /metrics}``) and a PrometheusRule
with the app's alert rules. Pure: plain data in, plain data out.

On a Kubernetes target there is no Yunzhou router, so the default rules are written against what such a
cluster measures: kube-state-metrics (replicas, restarts), cAdvisor (memory) and — when Istio is there —
the mesh's request metrics (error rate, p95 latency). Thresholds, windows and ``for`` match the local
target's default rules (domain/alerts.py), taken from there.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from yunzhou.domain.alerts import DEFAULTS_BY_NAME, format_duration
from yunzhou.runtimes.kubernetes.shape import AppShape, Manifest

SERVICE_MONITOR = "monitoring.coreos.com/v1/ServiceMonitor"
PROMETHEUS_RULE = "monitoring.coreos.com/v1/PrometheusRule"
ISTIO = "networking.istio.io/v1/VirtualService"
SCRAPE_INTERVAL = "10s"


def _q(value: str) -> str:
    return json.dumps(value)  # a JSON string literal is a valid PromQL string


def service_monitor(w: AppShape, metrics: Mapping[str, Any]) -> tuple[Manifest | None, str]:
    """(ServiceMonitor, "") — or (None, why not) when the declared endpoint is not on a Service port."""
    port = metrics.get("port")
    endpoint: dict[str, Any] = {"path": str(metrics.get("path") or "/metrics"), "interval": SCRAPE_INTERVAL}
    if not w.ports:
        return None, "settings.metrics: the app has no service port, so there is no Service to scrape"
    if port is None:
        endpoint["port"] = sorted(w.ports)[0]
    elif isinstance(port, str):
        if port not in w.ports:
            return (
                None,
                f"settings.metrics.port: {port!r} is not a service port (have {', '.join(sorted(w.ports))})",
            )
        endpoint["port"] = port
    else:
        names = [n for n, p in sorted(w.ports.items()) if p == port]
        if names:
            endpoint["port"] = names[0]
        else:  # a container port the Service does not publish: scrape it on the pods behind the Service
            endpoint["targetPort"] = int(port)
    # Same labels as the metrics the local target collects: project, env, app, release, instance.
    endpoint["relabelings"] = [
        {"action": "replace", "targetLabel": "project", "replacement": w.project},
        {"action": "replace", "targetLabel": "env", "replacement": w.env},
        {"action": "replace", "targetLabel": "app", "replacement": w.app},
        {
            "action": "replace",
            "sourceLabels": ["__meta_kubernetes_pod_label_yunzhou_io_release"],
            "targetLabel": "release",
        },
        {"action": "replace", "sourceLabels": ["__meta_kubernetes_pod_name"], "targetLabel": "instance"},
    ]
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": dict(w.metadata),
        "spec": {
            "selector": {"matchLabels": {"yunzhou.io/app": w.key}},
            "namespaceSelector": {"matchNames": [w.namespace]},
            "endpoints": [endpoint],
        },
    }, ""


def default_rules(w: AppShape, *, mesh: bool) -> list[dict[str, Any]]:
    """The default app rules in Prometheus' alerting-rule format, on Kubernetes' own metrics; threshold,
    window, ``for`` and severity are the local target's defaults (domain/alerts.py DEFAULT_RULES)."""
    ns, app = _q(w.namespace), _q(w.app)
    pods = f"kube_pod_labels{{namespace={ns},label_yunzhou_io_app={_q(w.key)}}}"
    workload = "deployment" if w.kind == "Deployment" else "statefulset"
    available = "status_replicas_available" if w.kind == "Deployment" else "status_replicas_ready"
    who = f"{w.project}/{w.env}/{w.app}"
    pod = "{{ $labels.pod }}"
    # name → (expression with $THRESHOLD and $WINDOW, summary)
    exprs: dict[str, tuple[str, str]] = {
        "AppCrashLooping": (
            "sum by (namespace, pod) (increase(kube_pod_container_status_restarts_total"
            f"{{namespace={ns}}}[$WINDOW]) * on (namespace, pod) group_left() {pods}) > $THRESHOLD",
            f"{who}: pod {pod} restarted {{{{ $value }}}} times",
        ),
        "AppInstanceDown": (
            f"kube_{workload}_spec_replicas{{namespace={ns},{workload}={app}}}"
            f" - kube_{workload}_{available}{{namespace={ns},{workload}={app}}} > $THRESHOLD",
            f"{who}: {{{{ $value }}}} instance(s) not ready",
        ),
        "AppMemoryNearLimit": (
            "max by (namespace, pod, container) (container_memory_working_set_bytes"
            f'{{namespace={ns},container!=""}} / on (namespace, pod, container) '
            f'kube_pod_container_resource_limits{{namespace={ns},resource="memory"}}'
            f" * on (namespace, pod) group_left() {pods}) > $THRESHOLD",
            f"{who}: pod {pod} uses {{{{ $value | humanizePercentage }}}} of its memory limit",
        ),
    }
    if mesh:
        dest = f'reporter="destination",destination_workload_namespace={ns},destination_app={app}'
        exprs["AppErrorRateHigh"] = (
            f'sum(rate(istio_requests_total{{{dest},response_code=~"5.."}}[$WINDOW]))'
            f" / sum(rate(istio_requests_total{{{dest}}}[$WINDOW])) > $THRESHOLD",
            f"{who}: {{{{ $value | humanizePercentage }}}} of requests fail",
        )
        exprs["AppLatencyHigh"] = (  # Istio measures milliseconds; the threshold is in seconds
            "histogram_quantile(0.95, sum by (le) (rate(istio_request_duration_milliseconds_bucket"
            f"{{{dest}}}[$WINDOW]))) > $THRESHOLD * 1000",
            f"{who}: p95 latency {{{{ $value }}}} ms",
        )
    rules = []
    for name, (expr, summary) in exprs.items():
        d = DEFAULTS_BY_NAME[name]
        rules.append({
            "alert": name,
            "expr": expr.replace("$THRESHOLD", f"{d.threshold:g}").replace("$WINDOW", d.window),
            "for": format_duration(d.for_s),
            "labels": {"severity": d.severity, "project": w.project, "env": w.env, "app": w.app},
            "annotations": {"summary": summary, "description": d.description},
        })  # fmt: skip
    return rules


def prometheus_rule(w: AppShape, rules: Sequence[Mapping[str, Any]]) -> Manifest | None:
    """A PrometheusRule with one group for the app; rules are dicts in Prometheus' alerting-rule format
    (alert, expr, for, keep_firing_for, labels, annotations). None when there are no rules."""
    if not rules:
        return None
    keys = ("alert", "expr", "for", "keep_firing_for", "labels", "annotations")
    out = [{k: r[k] for k in keys if r.get(k) not in (None, "", {})} for r in rules]
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": dict(w.metadata),
        "spec": {"groups": [{"name": f"yunzhou.{w.key}", "rules": out}]},
    }


def render_observe(
    w: AppShape, settings: Mapping[str, Any], apis: frozenset[str]
) -> tuple[list[Manifest], list[str]]:
    """(objects, notes): the notes say what was not rendered and why (e.g. no prometheus-operator)."""
    objects: list[Manifest] = []
    notes: list[str] = []
    metrics = settings.get("metrics")
    if isinstance(metrics, Mapping):
        if SERVICE_MONITOR not in apis:
            notes.append(
                "ServiceMonitor not rendered: the cluster does not serve monitoring.coreos.com/v1 "
                "ServiceMonitor (install the prometheus-operator CRDs)"
            )
        else:
            monitor, why = service_monitor(w, metrics)
            if monitor is not None:
                objects.append(monitor)
            else:
                notes.append(f"ServiceMonitor not rendered: {why}")
    if PROMETHEUS_RULE not in apis:
        notes.append(
            "PrometheusRule not rendered: the cluster does not serve monitoring.coreos.com/v1 "
            "PrometheusRule (install the prometheus-operator CRDs)"
        )
    else:
        rule = prometheus_rule(w, default_rules(w, mesh=ISTIO in apis))
        if rule is not None:
            objects.append(rule)
    return objects, notes
