"""The HPA algorithm against the documented autoscaling/v2 semantics; every expectation computed by hand."""

from __future__ import annotations

from dataclasses import replace

import pytest

from yunzhou.domain.autoscale import (
    AutoscalingPolicy,
    Behavior,
    MetricSpec,
    MetricTarget,
    ScalingPolicy,
    ScalingRules,
)
from yunzhou.domain.autoscale.hpa import (
    HpaController,
    MetricReading,
    Observation,
    PodState,
    replicas_for_metric,
)

CPU50 = MetricSpec("cpu", MetricTarget("Utilization", 50))
RPS10 = MetricSpec("rps", MetricTarget("AverageValue", 10))
NOW = 10_000.0


def pods(n: int, **kw: object) -> tuple[PodState, ...]:
    return tuple(PodState(f"p{i}", requests={"cpu": 1.0}, **kw) for i in range(n))  # type: ignore[arg-type]


def per_pod(values: dict[str, float]) -> MetricReading:
    return MetricReading(per_pod=values, timestamp=NOW)


def proposal(spec: MetricSpec, reading: MetricReading, obs_pods: tuple[PodState, ...], current: int) -> int:
    obs = Observation(current, obs_pods, {spec.label: reading})
    return replicas_for_metric(spec, reading, obs, 0.1)


# --- tolerance and the basic formula ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("usage", "expected"),
    [
        (0.50, 4),  # 50 % of request vs target 50 %: ratio 1.0
        (0.54, 4),  # ratio 1.08: within tolerance 0.1
        (0.55, 5),  # ratio 1.10: in float64 |1-1.1| = 0.10000000000000009 > 0.1, so Kubernetes scales too
        (0.56, 5),  # ratio 1.12: ceil(1.12 * 4) = ceil(4.48) = 5
        (0.45, 4),  # ratio 0.90: |1-0.9| = 0.09999999999999998, within tolerance
        (0.44, 4),  # ratio 0.88: ceil(0.88 * 4) = ceil(3.52) = 4
        (0.30, 3),  # ratio 0.60: ceil(2.4) = 3
    ],
)
def test_cpu_utilization_and_tolerance(usage: float, expected: int) -> None:
    four = pods(4)
    assert proposal(CPU50, per_pod({p.name: usage for p in four}), four, 4) == expected


def test_utilization_is_truncated_to_a_whole_percent() -> None:
    # 0.549 of 1 core → 54.9 % → 54 % → ratio 1.08: within tolerance
    four = pods(4)
    assert proposal(CPU50, per_pod({p.name: 0.549 for p in four}), four, 4) == 4
    eight = pods(8)
    # 8 pods at 0.3149: 31 % (not 31.49 %) → ratio 0.62 → ceil(4.96) = 5; untruncated ceil(5.0384) = 6
    assert proposal(CPU50, per_pod({p.name: 0.3149 for p in eight}), eight, 8) == 5


def test_average_value_per_instance() -> None:
    three = pods(3)
    # average (10+20+30)/3 = 20 vs 10: ratio 2 → ceil(2 * 3) = 6
    assert proposal(RPS10, per_pod({"p0": 10, "p1": 20, "p2": 30}), three, 3) == 6


def test_total_reading_with_average_value_target() -> None:
    ten = pods(10)
    # Object/External AverageValue: 95 / (10 * 10) = 0.95 within tolerance → status replicas
    assert proposal(RPS10, MetricReading(total=95), ten, 10) == 10
    # 120 / 100 = 1.2 → ceil(120 / 10) = 12
    assert proposal(RPS10, MetricReading(total=120), ten, 10) == 12


def test_total_reading_with_value_target_uses_ready_pods() -> None:
    spec = MetricSpec("custom", MetricTarget("Value", 50), name="queue_depth", query="sum(q)")
    two = (PodState("a"), PodState("b"), PodState("c", ready=False))
    # ratio 150 / 50 = 3 → ceil(3 * ready pods 2) = 6
    assert proposal(spec, MetricReading(total=150), two, 3) == 6
    # from zero replicas: ceil(ratio) = 3
    assert replicas_for_metric(spec, MetricReading(total=150), Observation(0, (), {}), 0.1) == 3


# --- missing metrics ----------------------------------------------------------------------------------


def test_missing_pods_count_as_target_on_scale_down() -> None:
    four = pods(4)
    # p0-p2 at 5 (ratio 0.5), p3 missing → counted at the target 10: (15 + 10) / 4 = 6.25
    # → ratio 0.625 → ceil(0.625 * 4) = ceil(2.5) = 3 (not ceil(0.5 * 3) = 2)
    assert proposal(RPS10, per_pod({"p0": 5, "p1": 5, "p2": 5}), four, 4) == 3


def test_missing_pods_count_as_zero_on_scale_up_and_can_cancel_it() -> None:
    four = pods(4)
    # p0-p2 at 12 (ratio 1.2), p3 missing → 0: 36 / 4 = 9 → ratio 0.9, within tolerance → keep 4
    assert proposal(RPS10, per_pod({"p0": 12, "p1": 12, "p2": 12}), four, 4) == 4
    # p0-p2 at 20 (ratio 2), p3 → 0: 60 / 4 = 15 → ratio 1.5 → ceil(1.5 * 4) = 6
    assert proposal(RPS10, per_pod({"p0": 20, "p1": 20, "p2": 20}), four, 4) == 6


def test_missing_cpu_pods_count_as_their_full_request_on_scale_down() -> None:
    four = pods(4)
    # p0-p2 at 0.1 of 1 core (10 %, ratio 0.2); p3 missing → 100 % of its request (target 50 % < 100 %):
    # (0.3 + 1.0) / 4 = 32 % → ratio 0.64 → ceil(0.64 * 4) = ceil(2.56) = 3
    assert proposal(CPU50, per_pod({"p0": 0.1, "p1": 0.1, "p2": 0.1}), four, 4) == 3


# --- readiness ----------------------------------------------------------------------------------------


def test_unready_pods_count_as_zero_on_scale_up() -> None:
    started = NOW - 60
    three = (
        PodState("a", requests={"cpu": 1.0}),
        PodState("b", ready=False, started_at=started, ready_changed_at=started, requests={"cpu": 1.0}),
        PodState("c", phase="Pending", ready=False, started_at=None, requests={"cpu": 1.0}),
    )
    # a at 100 % (ratio 2, scale up); b, c unready → 0: 100 / 3 = 33 % → ratio 0.66 flips direction → keep 3
    assert proposal(CPU50, per_pod({"a": 1.0, "b": 0.9}), three, 3) == 3
    # a at 200 %: ratio 4; with b, c at 0: 200 / 3 = 66 % → ratio 1.32 → ceil(1.32 * 3) = ceil(3.96) = 4
    assert proposal(CPU50, per_pod({"a": 2.0, "b": 0.9}), three, 3) == 4


def test_unready_pods_are_ignored_on_scale_down() -> None:
    started = NOW - 60
    three = (
        *pods(2),
        PodState("p2", ready=False, started_at=started, ready_changed_at=started, requests={"cpu": 1.0}),
    )
    # ready p0, p1 at 20 % → ratio 0.4 → ceil(0.4 * 2) = 1; the unready pod's 90 % is not counted
    assert proposal(CPU50, per_pod({"p0": 0.2, "p1": 0.2, "p2": 0.9}), three, 3) == 1


def test_cpu_samples_taken_before_readiness_are_unready_but_other_metrics_count_them() -> None:
    # started 60 s ago (inside the 5 min CPU initialisation period), Ready 20 s ago: the 30 s sample window
    # began before it was Ready, so its CPU sample is dropped; for rps the same pod counts as ready.
    fresh = PodState("new", started_at=NOW - 60, ready_changed_at=NOW - 20, requests={"cpu": 1.0})
    two = (PodState("old", requests={"cpu": 1.0}), fresh)
    # cpu: old at 40 % (ratio 0.8) alone → ceil(0.8 * 1) = 1
    assert proposal(CPU50, per_pod({"old": 0.4, "new": 1.0}), two, 2) == 1
    # rps: both count: (4 + 10) / 2 = 7 → ratio 0.7 → ceil(1.4) = 2
    assert proposal(RPS10, per_pod({"old": 4, "new": 10}), two, 2) == 2


# --- across metrics, invalid metrics, min/max -----------------------------------------------------------


def policy(**kw: object) -> AutoscalingPolicy:
    base = AutoscalingPolicy(min_replicas=1, max_replicas=100, metrics=(RPS10,))
    return replace(base, **kw)  # type: ignore[arg-type]


def obs(current: int, rps_total: float | None, cpu: float | None = None) -> Observation:
    readings: dict[str, MetricReading] = {}
    the_pods = pods(current)
    if rps_total is not None:
        readings["rps"] = MetricReading(total=rps_total)
    if cpu is not None:
        readings["cpu"] = per_pod({p.name: cpu for p in the_pods})
    return Observation(current, the_pods, readings)


NO_WINDOWS = Behavior(
    scale_up=ScalingRules(0, "Max", (ScalingPolicy("Percent", 1000, 15),)),
    scale_down=ScalingRules(0, "Max", (ScalingPolicy("Percent", 100, 15),)),
)


def test_highest_metric_wins_and_invalid_metrics_block_scale_down() -> None:
    hpa = HpaController(policy(metrics=(RPS10, CPU50), behavior=NO_WINDOWS))
    # rps 40 / 10 = 4 instances; cpu 100 % of target 50 → ratio 2 → ceil(2 * 4) = 8
    assert hpa.decide(NOW, obs(4, 40, cpu=1.0)).desired == 8
    # cpu missing entirely: rps alone says 2 < 8 → a scale-down with an invalid metric: keep 8
    result = hpa.decide(NOW + 15, obs(8, 20))
    assert result.desired == 8
    assert result.reason.startswith("FailedGetMetrics")
    # … but a scale-up still happens: rps 120 / 10 = 12
    assert hpa.decide(NOW + 30, obs(8, 120)).desired == 12
    # no metric at all: keep
    assert hpa.decide(NOW + 45, obs(12, None)).desired == 12


def test_an_instance_without_a_request_invalidates_utilization() -> None:
    # calculatePodRequests: one pod without a request makes the whole Resource metric unavailable
    mixed = (*pods(2), PodState("p2"), PodState("p3"))
    reading = per_pod({p.name: 1.0 for p in mixed})
    hpa = HpaController(policy(metrics=(CPU50,), behavior=NO_WINDOWS))
    result = hpa.decide(NOW, Observation(4, mixed, {"cpu": reading}))
    assert result.desired == 4
    assert result.per_metric == {"cpu": "invalid: missing request for cpu on instance p2 (and 1 more)"}
    assert result.reason == (
        "FailedGetMetrics: keeping the count (cpu: missing request for cpu on instance p2 (and 1 more))"
    )
    # a pod being deleted needs none; the rest have theirs: 100 % of target 50 % → ceil(2 × 2) = 4
    leaving = (*pods(2), PodState("p2", deleting=True))
    assert proposal(CPU50, per_pod({"p0": 1.0, "p1": 1.0}), leaving, 2) == 4


def test_out_of_range_counts_are_brought_into_range_first() -> None:
    hpa = HpaController(policy(min_replicas=2, max_replicas=10))
    assert hpa.decide(NOW, obs(12, 500)).desired == 10
    assert hpa.decide(NOW, obs(1, 0)).desired == 2
    assert HpaController(policy()).decide(NOW, obs(0, 500)).desired == 0  # scaled to 0 by hand: disabled


# --- stabilization windows ------------------------------------------------------------------------------


def test_scale_down_window_keeps_the_highest_recommendation_of_300_s() -> None:
    hpa = HpaController(policy())  # defaults: down window 300 s, seeded with the current count
    for t in range(0, 300, 15):
        assert hpa.decide(t, obs(5, 20)).desired == 5  # rps says 2
    # at 300 s the seed (t=0) and the first proposal (t=0) leave the window (it is open at its start)
    assert hpa.decide(300, obs(5, 20)).desired == 2


def test_scale_down_window_follows_the_highest_recent_recommendation() -> None:
    behavior = Behavior(scale_down=ScalingRules(60, "Max", (ScalingPolicy("Percent", 100, 15),)))
    hpa = HpaController(policy(behavior=behavior))
    assert hpa.decide(0, obs(8, 80)).desired == 8
    assert hpa.decide(15, obs(8, 60)).desired == 8  # recs 8, 8, 6 → 8
    assert hpa.decide(30, obs(8, 30)).desired == 8
    assert hpa.decide(60, obs(8, 30)).desired == 6  # t=0 entries gone; highest in (0, 60] is 6 (t=15)
    assert hpa.decide(75, obs(6, 30)).desired == 3


def test_scale_up_window_keeps_the_lowest_recommendation() -> None:
    behavior = Behavior(scale_up=ScalingRules(60, "Max", (ScalingPolicy("Percent", 1000, 15),)))
    hpa = HpaController(policy(behavior=behavior))
    assert hpa.decide(0, obs(2, 50)).desired == 2  # seed 2 in the window
    assert hpa.decide(45, obs(2, 50)).desired == 2
    assert hpa.decide(60, obs(2, 50)).desired == 5  # lowest in (0, 60] is 5


# --- rate policies -------------------------------------------------------------------------------------


def up_policy(select: str) -> AutoscalingPolicy:
    rules = ScalingRules(0, select, (ScalingPolicy("Pods", 4, 60), ScalingPolicy("Percent", 100, 60)))  # type: ignore[arg-type]
    return policy(behavior=Behavior(scale_up=rules, scale_down=NO_WINDOWS.scale_down))


@pytest.mark.parametrize(("select", "expected"), [("Max", 20), ("Min", 14), ("Disabled", 10)])
def test_scale_up_policies_and_select_policy(select: str, expected: int) -> None:
    # current 10, wants 50: Pods → 10 + 4 = 14, Percent 100 % → 20
    assert HpaController(up_policy(select)).decide(NOW, obs(10, 500)).desired == expected


def test_scale_up_limit_counts_from_the_start_of_the_period() -> None:
    hpa = HpaController(up_policy("Max"))
    assert hpa.decide(0, obs(10, 500)).desired == 20
    # 30 s later: 10 were added within the 60 s period → start 10 → limit max(14, 20) = 20: no more
    result = hpa.decide(30, obs(20, 500))
    assert (result.desired, result.reason) == (20, "ScaleUpLimit")
    # 61 s: the event left the period → start 20 → limit max(24, 40) = 40
    assert hpa.decide(61, obs(20, 500)).desired == 40


@pytest.mark.parametrize(("select", "expected"), [("Max", 5), ("Min", 7), ("Disabled", 10)])
def test_scale_down_policies_and_select_policy(select: str, expected: int) -> None:
    rules = ScalingRules(0, select, (ScalingPolicy("Percent", 50, 60), ScalingPolicy("Pods", 3, 60)))  # type: ignore[arg-type]
    hpa = HpaController(policy(behavior=Behavior(scale_down=rules)))
    # current 10, wants 1: Percent → floor(10 * 0.5) = 5, Pods → 7; Max = the larger change
    assert hpa.decide(NOW, obs(10, 5)).desired == expected


def test_scale_down_limit_counts_removed_replicas_back_into_the_period_start() -> None:
    rules = ScalingRules(0, "Max", (ScalingPolicy("Pods", 2, 60),))
    hpa = HpaController(policy(behavior=Behavior(scale_down=rules)))
    assert hpa.decide(0, obs(10, 5)).desired == 8
    assert hpa.decide(15, obs(8, 5)).desired == 8  # start of period = 8 + 2 removed = 10 → limit 8
    assert hpa.decide(61, obs(8, 5)).desired == 6


def test_scale_down_never_goes_below_min() -> None:
    hpa = HpaController(policy(min_replicas=3, behavior=NO_WINDOWS))
    result = hpa.decide(NOW, obs(10, 5))
    assert (result.desired, result.reason) == (3, "TooFewReplicas")
