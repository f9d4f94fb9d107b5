"""The forecast floor: the marginal rule, the previous-peak forecast and the hold that learns whether
holding it pays."""

from __future__ import annotations

import numpy as np
import pytest

from yunzhou.domain.autoscale import AutoscalingPolicy, MetricSpec, MetricTarget, PredictiveSpec
from yunzhou.domain.autoscale.controller import Autoscaler
from yunzhou.domain.autoscale.hpa import MetricReading, Observation, PodState
from yunzhou.domain.autoscale.predictive import Forecaster, PeakHold, Spread, replicas_worth_running


def tail(width: float) -> Spread:
    """Point 100; 90 % of outcomes exactly at the point, 10 % spread evenly over [100, 100 + width]."""
    ratios = np.sort(np.concatenate([np.ones(900), 1 + width / 100 * (np.arange(100) + 1) / 100]))
    return Spread(100.0, ratios)


def test_marginal_rule_pays_for_a_thin_tail_not_a_fat_one() -> None:
    # Instances of 10: the median outcome (100) needs 10. A narrow tail (10 % of outcomes in
    # (100, 110]) makes the 11th instance the one demand needs 10 % of the time ≥ 3.5 %: added; the
    # 12th covers nothing. A wide tail (10 % over (100, 300]) gives each further instance 0.5 %: none
    # is worth it, where the 0.95 quantile (200) would have asked for 20.
    assert replicas_worth_running(tail(10), 10, 0.035) == 11
    assert replicas_worth_running(tail(200), 10, 0.035) == 10
    # a low bar (each further slice holds 0.5 % ≥ 0.4 %) buys up to the 0.995 quantile, 290: 29
    assert replicas_worth_running(tail(200), 10, 0.004) == 29


def test_marginal_rule_never_passes_the_high_quantile_and_handles_nothing() -> None:
    flat = Spread(95.0, np.ones(50))
    assert replicas_worth_running(flat, 10, 0.0) == 10  # 95 → 10 instances, and no further
    assert replicas_worth_running(Spread(0.0, np.ones(50)), 10, 0.035) == 0
    assert replicas_worth_running(Spread(100.0, np.ones(0)), 10, 0.035) == 0


def spec() -> PredictiveSpec:
    return PredictiveSpec(model="seasonal-quantile", seasonality=("daily",), min_history_seconds=0)


def run(f: Forecaster, start: int, end: int, demand: dict[int, float], base: float = 10.0) -> None:
    for t in range(start, end, 5):
        f.forecast(t)
        f.observe(t, demand.get(t, base))


def test_previous_peak_is_the_burst_of_five_to_ten_minutes_ago() -> None:
    f = Forecaster(spec())
    run(f, 0, 1800, {})
    run(f, 1800, 1805, {1800: 50.0})  # a 5 s burst at t = 1800
    run(f, 1805, 1900, {})
    peak = f.forecast(1900).peak
    assert peak is not None
    assert peak.point == 10.0  # 100 s later it is not the previous window's yet
    run(f, 1905, 2200, {})
    peak = f.forecast(2200).peak
    assert peak is not None
    assert peak.point == 50.0  # 400 s later it is
    run(f, 2205, 2405, {})
    peak = f.forecast(2405).peak
    assert peak is not None
    assert peak.point == 10.0  # more than 600 s later it is gone
    assert float(np.median(peak.ratios)) == pytest.approx(1.0)  # a flat 10 came of a flat 10


def test_peak_hold_is_used_only_while_it_pays() -> None:
    peak = Spread(20.0, np.ones(100))  # the previous peak: 20 rps, instances of 1 → the hold asks 20
    recurring, one_off = PeakHold(), PeakHold()
    for k in range(200):
        due = 10.0 * k + 60
        assert recurring.replicas(due, peak, 1.0, without=17) in (0, 20)
        assert one_off.replicas(due, peak, 1.0, without=17) in (0, 20)
        recurring.observe(due, 19.0)  # the burst came back: the hold's instances were needed
        one_off.observe(due, 12.0)  # it did not
    assert recurring.worth_it()
    assert recurring.replicas(9999.0, peak, 1.0, without=17) == 20
    assert not one_off.worth_it()
    assert one_off.replicas(9999.0, peak, 1.0, without=17) == 0
    assert recurring.replicas(9999.0, peak, 1.0, without=25) == 0  # asks for nothing it already has


def test_autoscaler_floor_follows_the_marginal_rule_with_min_chance() -> None:
    policy = AutoscalingPolicy(
        min_replicas=1,
        max_replicas=50,
        metrics=(MetricSpec("rps", MetricTarget("AverageValue", 10)),),
        predictive=PredictiveSpec(
            model="seasonal-quantile", seasonality=("daily",), min_history_seconds=86400, quantile=0.5
        ),
    )
    observation = Observation(2, (PodState("a"), PodState("b")), {"rps": MetricReading(total=20)})
    floors = {}
    for chance in (None, 0.035):
        scaler = Autoscaler(policy, min_chance=chance)
        for t in range(0, 2 * 86400, 60):
            scaler.decide(t, observation)
            # 100 rps, every 10th minute 104: the median forecast is 100 (10 instances at 10 each)
            scaler.observe_demand(t, 104.0 if t % 600 == 0 else 100.0)
        decision = scaler.decide(2 * 86400, observation)
        assert decision.mode == "predictive"
        floors[chance] = decision.min_replicas
    # The quantile (0.5) sizes the floor for 100: 10 instances. The marginal rule sees the 11th
    # instance needed one time in ten (≥ 3.5 %) and adds it.
    assert floors == {None: 10, 0.035: 11}
