"""The simulator on a hand-computed step, the trace CSV reader, and scale to zero."""

from __future__ import annotations

import numpy as np
import pytest

from yunzhou.domain.autoscale import AutoscalingPolicy, MetricSpec, MetricTarget, ScaleToZero
from yunzhou.domain.autoscale.controller import Autoscaler
from yunzhou.domain.autoscale.hpa import MetricReading, Observation, PodState
from yunzhou.domain.autoscale.simulate import (
    builtin_policy,
    builtin_run_options,
    parse_trace_csv,
    simulate,
)
from yunzhou.domain.errors import UserError


def test_a_step_in_demand_by_hand() -> None:
    demand = np.array([10.0] * 300 + [40.0] * 300)
    policy = builtin_policy("hpa", target=10, max_replicas=10, startup_seconds=30)
    result = simulate(demand, policy, capacity=10, startup_seconds=30)
    # starts with ceil(10/10) = 1. t=315: the 30 s rate is (15·10 + 15·40)/30 = 25 → ceil(25/10) = 3
    # (limit: max(1·2, 1+4) = 5), ready at 345. t=330: rate 40 → 4 (limit from 3: 6), ready at 360.
    # Under-provisioned: 300-344 (1 ready, 10 < 40) and 345-359 (3 ready, 30 < 40) = 60 s.
    assert result.underprovisioned_seconds == 60
    assert result.instance_seconds == 315 * 1 + 15 * 3 + 270 * 4
    assert result.actions == 2
    at = {t: (d, r) for t, d, r in zip(result.times, result.desired, result.ready, strict=True)}
    assert at[315.0] == (3, 1)
    assert at[345.0] == (4, 3)
    assert at[360.0] == (4, 4)
    timeline = result.to_dict()["timeline"]
    assert timeline[0] == {"t": 0.0, "demand": 10.0, "desired": 1, "ready": 1}


def test_score_from_leaves_the_warm_up_out() -> None:
    demand = np.array([10.0] * 300 + [40.0] * 300)
    policy = builtin_policy("hpa", target=10, max_replicas=10, startup_seconds=30)
    result = simulate(demand, policy, capacity=10, startup_seconds=30, score_from=345)
    assert result.underprovisioned_seconds == 15
    assert result.seconds == 255


def test_trace_csv() -> None:
    t0, demand = parse_trace_csv("timestamp,demand\n100,5\n103,7\n104,0\n")
    assert t0 == 100
    assert demand.tolist() == [5, 5, 5, 7, 0]
    t0, demand = parse_trace_csv("2026-01-01T00:00:00Z,1\n2026-01-01T00:00:02Z,2\n")
    assert demand.tolist() == [1, 1, 2]
    with pytest.raises(UserError) as err:
        parse_trace_csv("1,5\n1,6\n")
    assert err.value.problems[0].path == "trace.row.2"
    with pytest.raises(UserError):
        parse_trace_csv("1,-5\n")


def test_scale_to_zero_after_the_idle_window_and_back_on_a_request() -> None:
    policy = AutoscalingPolicy(
        min_replicas=0,
        max_replicas=5,
        metrics=(MetricSpec("rps", MetricTarget("AverageValue", 10)),),
        scale_to_zero=ScaleToZero(enabled=True, idle_seconds=600),
    )
    scaler = Autoscaler(policy)

    def cycle(t: float, replicas: int, rps: float) -> tuple[int, str]:
        pods = tuple(PodState(f"p{i}") for i in range(replicas))
        decision = scaler.decide(t, Observation(replicas, pods, {"rps": MetricReading(total=rps)}))
        return decision.desired, decision.mode

    assert cycle(0, 1, 3)[0] == 1  # busy
    assert cycle(300, 1, 0)[0] == 1  # idle 300 s < 600 s
    assert cycle(600, 1, 0) == (0, "idle")  # 600 s without requests
    assert cycle(615, 0, 0) == (0, "idle")
    assert cycle(630, 0, 0.1)[0] == 1  # a held request wakes it


def test_builtin_run_options_keep_kubernetes_sampling_for_hpa() -> None:
    assert builtin_run_options("hpa") == {"sync_seconds": 15, "metric_window": 30}
    assert builtin_run_options("hpa-fast") == {"sync_seconds": 15, "metric_window": 30}
    assert builtin_run_options("hpa-5s") == {"sync_seconds": 5, "metric_window": 10}
    assert builtin_run_options("predictive") == {
        "sync_seconds": 5,
        "metric_window": 10,
        "forecast_target_scale": 1.25,
        "min_chance": 0.035,
    }
    # hpa-5s is the Kubernetes-default policy, only sampled faster
    hpa = builtin_policy("hpa", target=10, max_replicas=10, startup_seconds=30)
    assert builtin_policy("hpa-5s", target=10, max_replicas=10, startup_seconds=30) == hpa


def test_faster_sampling_reacts_sooner_to_a_step() -> None:
    # 100 s at 5 rps (1 instance at target 10), then 25 rps (3 instances); instances serve 10 rps and
    # start in 10 s. Every 15 s on a 30 s rate: at t=105 the rate is (25·5 + 5·25)/30 = 8.33 → stays
    # at 1; at t=120 it is (25·20 + 5·10)/30 = 18.3 → ceil(1 × 18.3/10) = 2 instances, ready at 130;
    # at t=135, (25·30)/30 = 25 → 3 (ready at 145). Under-provisioned: [100, 130) 30 s + [130, 145)
    # 15 s = 45 s. Every 5 s on a 10 s rate: at t=105 the rate is (25·5 + 5·5)/10 = 15 → 2 (ready at
    # 115); at t=110 it is 25 → ceil(2 × 25 / 20) = 3, ready at 120. Under-provisioned: [100, 120) =
    # 20 s.
    demand = np.array([5.0] * 100 + [25.0] * 100)
    policy = builtin_policy("hpa", target=10, max_replicas=10, startup_seconds=10)
    slow = simulate(demand, policy, capacity=10, startup_seconds=10, sync_seconds=15, metric_window=30)
    fast = simulate(demand, policy, capacity=10, startup_seconds=10, sync_seconds=5, metric_window=10)
    assert slow.underprovisioned_seconds == 45
    assert fast.underprovisioned_seconds == 20
