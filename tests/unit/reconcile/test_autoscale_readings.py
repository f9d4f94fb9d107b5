"""What the local autoscaler reads for each metric kind, against a fake query engine: the queries it asks,
how the answers become HPA readings and requests, and the decision they lead to (not recorded)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

from yunzhou.domain.autoscale import parse_autoscaling
from yunzhou.reconcile.autoscale import AutoscaleLoop
from yunzhou.services import ControlPlane
from yunzhou.services.autoscaling import AutoscaleTarget

NOW = 1_800_000_000.0
SEL = 'project="shop",env="dev",app="orders"'
READY = f"yunzhou_instance_ready{{{SEL}}}"
CPU = f"rate(yunzhou_instance_cpu_seconds_total{{{SEL}}}[1m])"
CPU_LIMIT = f"yunzhou_instance_cpu_limit_cores{{{SEL}}}"
MEMORY = f"yunzhou_instance_memory_bytes{{{SEL}}}"
MEMORY_LIMIT = f"yunzhou_instance_memory_limit_bytes{{{SEL}}}"
INFLIGHT = f"sum(yunzhou_router_requests_in_flight{{{SEL}}})"
NO_WINDOWS = {"scaleDown": {"stabilizationWindowSeconds": 0}}


class FakeQuery:
    """Answers instant queries from a table (expression → {instance or "": value}); remembers the asks."""

    def __init__(self, table: dict[str, dict[str, float]]) -> None:
        self.table = table
        self.asked: list[str] = []

    def instant(self, expr: str, t: float) -> dict[str, Any]:
        self.asked.append(expr)
        rows = self.table.get(expr, {})
        return {
            "resultType": "vector",
            "result": [
                {"metric": {"instance": name} if name else {}, "value": [t, str(value)]}
                for name, value in rows.items()
            ],
        }


def target(metrics: list[dict[str, Any]], replicas: int = 2) -> AutoscaleTarget:
    policy = parse_autoscaling(
        {"minReplicas": 1, "maxReplicas": 10, "metrics": metrics, "behavior": NO_WINDOWS}
    )
    return AutoscaleTarget(1, "shop", "dev", "orders", replicas, 1, 1, policy)


def loop(table: dict[str, dict[str, float]]) -> tuple[AutoscaleLoop, FakeQuery]:
    engine = FakeQuery({READY: {"orders-a": 1, "orders-b": 1}, **table})
    return AutoscaleLoop(cast(ControlPlane, SimpleNamespace(ctx=None)), engine), engine


def test_cpu_utilization_is_relative_to_each_instance_cpu_limit() -> None:
    # 0.4 + 0.5 cores used of 0.5 + 0.5 → 90 % vs target 60 % → ratio 1.5 → ceil(1.5 × 2) = 3
    scaler, engine = loop(
        {CPU: {"orders-a": 0.4, "orders-b": 0.5}, CPU_LIMIT: {"orders-a": 0.5, "orders-b": 0.5}}
    )
    spec = [{"type": "cpu", "target": {"type": "Utilization", "averageUtilization": 60}}]
    decision = scaler.evaluate(target(spec), NOW)
    assert CPU_LIMIT in engine.asked
    assert MEMORY_LIMIT not in engine.asked  # no memory Utilization metric: its limits are not read
    assert decision["inputs"]["proposals"] == {"cpu": 3}
    assert decision["desired"] == 3
    assert decision["inputs"]["cpu"] == {"orders-a": 0.4, "orders-b": 0.5}
    assert decision["inputs"]["requests"] == {"cpu": {"orders-a": 0.5, "orders-b": 0.5}}


def test_an_instance_without_a_cpu_limit_makes_cpu_utilization_invalid_and_says_so() -> None:
    scaler, _ = loop({CPU: {"orders-a": 0.4, "orders-b": 0.5}, CPU_LIMIT: {"orders-a": 0.5}})
    spec = [{"type": "cpu", "target": {"type": "Utilization", "averageUtilization": 60}}]
    decision = scaler.evaluate(target(spec), NOW)
    assert decision["desired"] == 2  # the HPA keeps the count when its only metric is invalid
    assert decision["inputs"]["proposals"] == {"cpu": "invalid: missing request for cpu on instance orders-b"}
    assert decision["reason"] == (
        "FailedGetMetrics: keeping the count (cpu: missing request for cpu on instance orders-b)"
    )
    assert decision["inputs"]["requests"] == {"cpu": {"orders-a": 0.5, "orders-b": None}}


def test_cpu_average_value_needs_no_limit() -> None:
    scaler, engine = loop({CPU: {"orders-a": 0.4, "orders-b": 0.6}})
    spec = [{"type": "cpu", "target": {"type": "AverageValue", "averageValue": 0.25}}]
    decision = scaler.evaluate(target(spec), NOW)
    assert CPU_LIMIT not in engine.asked
    assert "requests" not in decision["inputs"]
    assert decision["desired"] == 4  # average 0.5 cores vs 0.25 → ratio 2 → ceil(2 × 2)


def test_memory_utilization_is_relative_to_each_instance_memory_limit() -> None:
    mib = 1 << 20
    scaler, _ = loop(
        {
            MEMORY: {"orders-a": 200 * mib, "orders-b": 100 * mib},
            MEMORY_LIMIT: {"orders-a": 256 * mib, "orders-b": 256 * mib},
        }
    )
    spec = [{"type": "memory", "target": {"type": "Utilization", "averageUtilization": 40}}]
    decision = scaler.evaluate(target(spec), NOW)
    # 300 of 512 MiB = 58 % (truncated) vs 40 % → ratio 1.45 → ceil(1.45 × 2) = 3
    assert decision["inputs"]["proposals"] == {"memory": 3}
    assert decision["inputs"]["requests"] == {"memory": {"orders-a": 256 * mib, "orders-b": 256 * mib}}


def test_inflight_is_the_router_total() -> None:
    scaler, _ = loop({INFLIGHT: {"": 9}})
    spec = [{"type": "inflight", "target": {"type": "AverageValue", "averageValue": 2}}]
    decision = scaler.evaluate(target(spec), NOW)
    assert decision["inputs"]["inflight"] == 9
    assert decision["desired"] == 5  # ceil(9 / 2)


def test_custom_metrics_per_instance_and_by_query() -> None:
    query = 'sum(queue_len{app="orders"})'
    scaler, engine = loop({f"queue_depth{{{SEL}}}": {"orders-a": 12, "orders-b": 4}, query: {"": 45}})
    spec = [
        {"type": "custom", "name": "queue_depth", "target": {"type": "AverageValue", "averageValue": 4}},
        {"type": "custom", "name": "backlog", "query": query, "target": {"type": "Value", "value": 30}},
    ]
    decision = scaler.evaluate(target(spec), NOW)
    assert decision["inputs"]["custom:queue_depth"] == {"orders-a": 12, "orders-b": 4}
    assert decision["inputs"]["custom:backlog"] == 45
    # per instance: average 8 vs 4 → ratio 2 → 4; the query's total 45 vs 30 → ratio 1.5 → ceil(1.5 × 2) = 3
    assert decision["inputs"]["proposals"] == {"custom:queue_depth": 4, "custom:backlog": 3}
    assert decision["desired"] == 4
    assert query in engine.asked


def test_a_custom_query_without_series_is_invalid() -> None:
    scaler, _ = loop({})
    spec = [
        {
            "type": "custom",
            "name": "backlog",
            "query": "sum(nothing)",
            "target": {"type": "Value", "value": 3},
        }
    ]
    decision = scaler.evaluate(target(spec), NOW)
    assert decision["desired"] == 2
    assert decision["inputs"]["proposals"] == {"custom:backlog": "invalid: no reading for custom:backlog"}
