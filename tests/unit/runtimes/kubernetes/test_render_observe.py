"""ServiceMonitor / PrometheusRule rendering and API discovery parsing: pure, no cluster."""

from __future__ import annotations

from typing import Any

from yunzhou.runtimes.kubernetes.discovery import (
    Discovery,
    parse_group_resources,
    served_versions,
)
from yunzhou.runtimes.kubernetes.render import NOT_RENDERED, Target, render
from yunzhou.runtimes.kubernetes.render_observe import (
    PROMETHEUS_RULE,
    SERVICE_MONITOR,
    default_rules,
    prometheus_rule,
    service_monitor,
)
from yunzhou.runtimes.kubernetes.shape import AppShape
from yunzhou.runtimes.protocol import AppIntent, RouteSpec

OPERATOR = frozenset({SERVICE_MONITOR, PROMETHEUS_RULE})
W = AppShape("shop", "dev", "orders", "shop.dev.orders", "shop-dev", "Deployment",
             {"http": 80, "admin": 9090}, {"name": "orders", "namespace": "shop-dev"})  # fmt: skip


def intent(settings: dict[str, Any]) -> AppIntent:
    score = {
        "apiVersion": "score.dev/v1b1",
        "metadata": {"name": "orders"},
        "containers": {"web": {"image": "registry.test/orders:1"}},
        "service": {"ports": {"http": {"port": 80, "targetPort": 8080}}},
    }
    return AppIntent(1, "shop/dev/orders", 3, score, settings, None, None, 2, False,
                     (RouteSpec("orders.dev.shop.localhost"),), "cluster:c", "shop-dev")  # fmt: skip


def kinds(objects: list[dict[str, Any]]) -> list[str]:
    return [o["kind"] for o in objects]


def test_service_monitor_port_by_name_number_or_default() -> None:
    by_name, _ = service_monitor(W, {"port": "admin", "path": "/m"})
    assert by_name is not None
    assert by_name["spec"]["endpoints"][0]["port"] == "admin"
    assert by_name["spec"]["endpoints"][0]["path"] == "/m"
    by_number, _ = service_monitor(W, {"port": 9090})
    assert by_number is not None
    assert by_number["spec"]["endpoints"][0]["port"] == "admin"
    unpublished, _ = service_monitor(W, {"port": 7000})
    assert unpublished is not None
    assert unpublished["spec"]["endpoints"][0]["targetPort"] == 7000
    default, _ = service_monitor(W, {})
    assert default is not None
    assert default["spec"]["endpoints"][0] | {"relabelings": None} == {
        "port": "admin", "path": "/metrics", "interval": "10s", "relabelings": None,
    }  # fmt: skip
    assert default["spec"]["selector"] == {"matchLabels": {"yunzhou.io/app": "shop.dev.orders"}}
    targets = {r["targetLabel"] for r in default["spec"]["endpoints"][0]["relabelings"]}
    assert targets == {"project", "env", "app", "release", "instance"}


def test_service_monitor_refuses_an_unknown_port_name_with_the_field() -> None:
    monitor, why = service_monitor(W, {"port": "grpc"})
    assert monitor is None
    assert why.startswith("settings.metrics.port: 'grpc' is not a service port (have admin, http)")
    no_ports = AppShape(**{**W.__dict__, "ports": {}})
    assert service_monitor(no_ports, {})[0] is None


def test_default_rules_use_kubernetes_metrics_and_the_mesh_only_with_istio() -> None:
    plain = {r["alert"]: r for r in default_rules(W, mesh=False)}
    assert set(plain) == {"AppCrashLooping", "AppInstanceDown", "AppMemoryNearLimit"}
    assert (
        'kube_deployment_spec_replicas{namespace="shop-dev",deployment="orders"}'
        in plain["AppInstanceDown"]["expr"]
    )
    assert plain["AppInstanceDown"]["labels"] == {
        "severity": "warning", "project": "shop", "env": "dev", "app": "orders",
    }  # fmt: skip
    meshed = {r["alert"] for r in default_rules(W, mesh=True)}
    assert {"AppErrorRateHigh", "AppLatencyHigh"} <= meshed
    sts = AppShape(**{**W.__dict__, "kind": "StatefulSet"})
    assert "kube_statefulset_status_replicas_ready" in default_rules(sts, mesh=False)[1]["expr"]


def test_prometheus_rule_drops_empty_fields_and_is_none_without_rules() -> None:
    assert prometheus_rule(W, []) is None
    rule = prometheus_rule(W, [{"alert": "X", "expr": "up == 0", "for": "", "labels": {}}])
    assert rule is not None
    assert rule["spec"]["groups"] == [
        {"name": "yunzhou.shop.dev.orders", "rules": [{"alert": "X", "expr": "up == 0"}]}
    ]


def test_render_includes_the_objects_only_when_the_cluster_serves_them() -> None:
    settings = {"metrics": {"port": "http", "path": "/metrics"}}
    bare = render(intent(settings), Target("shop-dev"))
    assert "ServiceMonitor" not in kinds(bare)
    assert "PrometheusRule" not in kinds(bare)
    note = next(o for o in bare if o["kind"] == "Deployment")["metadata"]["annotations"][NOT_RENDERED]
    assert "ServiceMonitor not rendered" in note
    assert "prometheus-operator" in note
    full = render(intent(settings), Target("shop-dev", apis=OPERATOR))
    assert kinds(full)[-2:] == ["ServiceMonitor", "PrometheusRule"]
    deployment = next(o for o in full if o["kind"] == "Deployment")
    assert "annotations" not in deployment["metadata"]
    # the pod template (what rolls pods) does not depend on which CRDs the cluster has
    assert (
        deployment["spec"]["template"]
        == next(o for o in bare if o["kind"] == "Deployment")["spec"]["template"]
    )
    without_metrics = render(intent({}), Target("shop-dev", apis=OPERATOR))
    assert "ServiceMonitor" not in kinds(without_metrics)
    assert "PrometheusRule" in kinds(without_metrics)


def test_discovery_parsing_and_cache_expiry() -> None:
    groups = {"groups": [{"name": "keda.sh", "versions": [{"groupVersion": "keda.sh/v1alpha1"}]}]}
    assert served_versions(groups) == {"keda.sh/v1alpha1"}
    body = {"resources": [
        {"name": "scaledobjects", "kind": "ScaledObject", "namespaced": True},
        {"name": "scaledobjects/status", "kind": "ScaledObject", "namespaced": True},
    ]}  # fmt: skip
    [info] = parse_group_resources("keda.sh/v1alpha1", body)
    assert (info.kind, info.plural, info.namespaced) == ("ScaledObject", "scaledobjects", True)

    now = [0.0]
    calls: list[str] = []

    class Http:
        def get(self, path: str) -> Any:
            calls.append(path)

            class R:
                status_code = 200

                @staticmethod
                def json() -> Any:
                    return groups if path == "/apis" else body

            return R()

    class Client:
        class _client:
            _client = Http()

    d = Discovery(ttl=10, clock=lambda: now[0])
    assert d.apis("c", Client()) == frozenset({"keda.sh/v1alpha1/ScaledObject"})
    d.apis("c", Client())
    assert calls == ["/apis", "/apis/keda.sh/v1alpha1"]  # cached
    now[0] = 11
    d.apis("c", Client())
    assert len(calls) == 4  # expired, asked again
