"""Scheduled windows (cron in a time zone, across DST) and the predictive forecaster's modes."""

from __future__ import annotations

import math
import random
from datetime import datetime

import pytest

from yunzhou.domain.autoscale import (
    AutoscalingPolicy,
    MetricSpec,
    MetricTarget,
    PredictiveSpec,
    ScaleToZero,
    ScheduleWindow,
)
from yunzhou.domain.autoscale.controller import Autoscaler
from yunzhou.domain.autoscale.cron import CronError, parse_cron
from yunzhou.domain.autoscale.hpa import MetricReading, Observation, PodState
from yunzhou.domain.autoscale.predictive import Forecaster
from yunzhou.domain.autoscale.schedule import active_window, bounds_at


def ts(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def started(windows: list[ScheduleWindow], at: str) -> str | None:
    found = active_window(windows, ts(at))
    return None if found is None else found[1].isoformat()


def test_weekday_window_in_a_time_zone() -> None:
    day = ScheduleWindow("day", "0 8 * * 1-5", 10 * 3600, "Asia/Shanghai", min_replicas=4)
    # Monday 2026-11-23 08:00 in Shanghai (UTC+8) is 00:00 UTC
    assert started([day], "2026-11-22T23:59:59+00:00") is None
    assert started([day], "2026-11-23T00:00:00+00:00") == "2026-11-23T00:00:00+00:00"
    assert started([day], "2026-11-23T09:59:59+00:00") == "2026-11-23T00:00:00+00:00"
    assert started([day], "2026-11-23T10:00:00+00:00") is None  # duration ends the window
    assert started([day], "2026-11-22T03:00:00+00:00") is None  # Sunday
    assert bounds_at([day], ts("2026-11-23T01:00:00+00:00"), 1, 3) == (4, 4, "day")  # max raised to min
    assert bounds_at([day], ts("2026-11-22T01:00:00+00:00"), 1, 3) == (1, 3, None)


def test_spring_forward_skipped_time_fires_at_the_jump() -> None:
    # Europe/Berlin 2026-03-29: 02:00 CET jumps to 03:00 CEST (01:00 UTC); 02:30 does not exist
    w = ScheduleWindow("night", "30 2 * * *", 3600, "Europe/Berlin", max_replicas=2)
    assert started([w], "2026-03-29T00:59:59+00:00") is None
    assert started([w], "2026-03-29T01:00:00+00:00") == "2026-03-29T01:00:00+00:00"
    assert started([w], "2026-03-29T02:00:00+00:00") is None  # one hour after the jump
    assert started([w], "2026-03-28T01:30:00+00:00") == "2026-03-28T01:30:00+00:00"  # the day before, CET


def test_fall_back_repeated_time_fires_once() -> None:
    # 2026-10-25: 03:00 CEST falls back to 02:00 CET; 02:30 happens at 00:30 UTC and again at 01:30 UTC
    w = ScheduleWindow("night", "30 2 * * *", 1800, "Europe/Berlin", max_replicas=2)
    assert started([w], "2026-10-25T00:45:00+00:00") == "2026-10-25T00:30:00+00:00"
    assert started([w], "2026-10-25T01:45:00+00:00") is None  # the second 02:30 does not fire again


def test_latest_started_window_wins() -> None:
    a = ScheduleWindow("a", "0 * * * *", 3600, "UTC", min_replicas=2)
    b = ScheduleWindow("b", "30 * * * *", 600, "UTC", min_replicas=9)
    assert bounds_at([a, b], ts("2026-01-01T10:35:00+00:00"), 1, 10)[2] == "b"
    assert bounds_at([a, b], ts("2026-01-01T10:45:00+00:00"), 1, 10)[2] == "a"


def test_cron_fields() -> None:
    c = parse_cron("*/15 9-17 * jan,jul mon-fri")
    assert sorted(c.minutes) == [0, 15, 30, 45]
    assert sorted(c.hours) == list(range(9, 18))
    assert sorted(c.months) == [1, 7]
    assert sorted(c.weekdays) == [1, 2, 3, 4, 5]
    assert parse_cron("0 0 * * 7").weekdays == frozenset({0})
    assert parse_cron("@daily") == parse_cron("0 0 * * *")
    for bad in ("* * * *", "60 * * * *", "5-1 * * * *", "*/0 * * * *"):
        with pytest.raises(CronError):
            parse_cron(bad)


# --- predictive -----------------------------------------------------------------------------------------


def daily_wave(t: float) -> float:
    return 100 + 80 * math.sin(2 * math.pi * t / 86400)


def spec(**kw: object) -> PredictiveSpec:
    base = {"model": "seasonal-quantile", "seasonality": ("daily",), "min_history_seconds": 86400,
            "startup_seconds": 30, "margin_seconds": 30, "max_error": 0.3, "quantile": 0.5}  # fmt: skip
    base.update(kw)
    return PredictiveSpec(**base)  # type: ignore[arg-type]


def feed(f: Forecaster, seconds: int, demand: object, step: int = 60) -> None:
    for t in range(0, seconds, step):
        f.observe(t, demand(t))  # type: ignore[operator]


@pytest.mark.parametrize("model", ["seasonal-quantile", "holt-winters"])
def test_short_history_means_learning_mode(model: str) -> None:
    f = Forecaster(spec(model=model))
    feed(f, 6 * 3600, daily_wave)
    fc = f.forecast(6 * 3600)
    assert fc.mode == "learning"
    assert "history" in fc.reason


@pytest.mark.parametrize("model", ["seasonal-quantile", "holt-winters"])
def test_a_learned_daily_pattern_is_predictive_and_close(model: str) -> None:
    f = Forecaster(spec(model=model))
    now = 3 * 86400
    feed(f, now, daily_wave)
    fc = f.forecast(now)
    assert fc.mode == "predictive"
    assert fc.value is not None
    assert fc.value == pytest.approx(daily_wave(now + 60), rel=0.1)


def test_high_forecast_error_falls_back_to_reactive() -> None:
    f = Forecaster(spec(max_error=0.05, quantile=0.9))
    # no pattern: each 10-minute block is 10 or 200 at random, so yesterday says nothing about today
    rng = random.Random(7)
    blocks = [rng.choice((10.0, 200.0)) for _ in range(3 * 144)]
    now = 3 * 86400
    for t in range(0, now, 60):
        f.observe(t, blocks[t // 600])
    fc = f.forecast(now)
    assert fc.mode == "reactive"
    assert "error" in fc.reason


def test_predictive_floor_raises_min_replicas_and_says_so() -> None:
    policy = AutoscalingPolicy(
        min_replicas=1,
        max_replicas=50,
        metrics=(MetricSpec("rps", MetricTarget("AverageValue", 10)),),
        predictive=spec(),
    )
    scaler = Autoscaler(policy)
    now = 3 * 86400
    for t in range(0, now, 60):
        scaler.observe_demand(t, daily_wave(t))
    # demand now is ~100 rps; the wave rises to ~100 + 80 sin(2π·60/86400) in the next minute
    observation = Observation(2, (PodState("a"), PodState("b")), {"rps": MetricReading(total=20)})
    decision = scaler.decide(now, observation)
    assert decision.mode == "predictive"
    expected = math.ceil(decision.inputs["forecast"]["value"] / 10)
    assert decision.min_replicas == expected
    assert decision.desired == expected  # below min: raised at once, as an HPA's raised minReplicas does
    assert decision.reason.startswith(("PredictiveFloor", "TooFewReplicas"))


def test_a_scheduled_window_raises_min_replicas_in_the_autoscaler() -> None:
    window = ScheduleWindow("launch", "0 9 * * *", 3600, "Asia/Shanghai", min_replicas=5)
    policy = AutoscalingPolicy(
        min_replicas=1,
        max_replicas=10,
        metrics=(MetricSpec("rps", MetricTarget("AverageValue", 10)),),
        schedules=(window,),
    )
    scaler = Autoscaler(policy)
    observation = Observation(1, (PodState("a"),), {"rps": MetricReading(total=5)})
    before = scaler.decide(ts("2026-11-25T00:59:00+00:00"), observation)  # 08:59 in Shanghai
    assert (before.desired, before.mode) == (1, "reactive")
    during = scaler.decide(ts("2026-11-25T01:00:00+00:00"), observation)  # 09:00
    assert (during.desired, during.mode, during.min_replicas) == (5, "scheduled:launch", 5)
    assert during.reason.startswith("TooFewReplicas")


@pytest.mark.parametrize(("scale", "floor"), [(1.0, 10), (1.25, 8)])
def test_forecast_target_scale_sizes_the_floor(scale: float, floor: int) -> None:
    policy = AutoscalingPolicy(
        min_replicas=1,
        max_replicas=50,
        metrics=(MetricSpec("rps", MetricTarget("AverageValue", 10)),),
        predictive=spec(),
    )
    scaler = Autoscaler(policy, forecast_target_scale=scale)
    now = 3 * 86400
    for t in range(0, now, 60):
        scaler.observe_demand(t, 100.0)
    observation = Observation(2, (PodState("a"), PodState("b")), {"rps": MetricReading(total=20)})
    decision = scaler.decide(now, observation)
    # a flat 100 rps: the forecast is 100 (every actual/forecast ratio is 1); the floor sizes it at
    # 10 rps per instance (ceil(100 / 10) = 10) or, at scale 1.25, at 12.5 (ceil(100 / 12.5) = 8)
    assert decision.mode == "predictive"
    assert decision.inputs["forecast"]["value"] == pytest.approx(100.0)
    assert (decision.min_replicas, decision.desired) == (floor, floor)


def test_scale_to_zero_waits_idle_seconds_at_15_s_passes_and_names_both_numbers() -> None:
    """idleSeconds 20 at the default 15 s interval: the pass at +15 s is too early, the one at +30 s
    scales to zero, and its reason says the 30 s it measured next to the 20 s asked for."""
    policy = AutoscalingPolicy(
        min_replicas=0,
        max_replicas=3,
        metrics=(MetricSpec("rps", MetricTarget("AverageValue", 10)),),
        scale_to_zero=ScaleToZero(enabled=True, idle_seconds=20),
    )
    scaler = Autoscaler(policy)
    pod = (PodState("a"),)
    assert scaler.decide(0, Observation(1, pod, {"rps": MetricReading(total=3)})).desired == 1
    quiet = Observation(1, pod, {"rps": MetricReading(total=0)})
    assert scaler.decide(15, quiet).desired == 1
    decision = scaler.decide(30, quiet)
    assert (decision.desired, decision.mode) == (0, "idle")
    assert decision.reason == "ScaleToZero: no requests for 30s (idleSeconds 20)"


def test_an_open_websocket_keeps_an_rps_scaled_app_from_going_to_zero() -> None:
    """No requests for longer than idleSeconds, but an upgraded connection (``tunnels``) is open: the app
    is in use and stays; once the socket closes, the idle window runs from the last pass that saw it."""
    policy = AutoscalingPolicy(
        min_replicas=0,
        max_replicas=3,
        metrics=(MetricSpec("rps", MetricTarget("AverageValue", 10)),),
        scale_to_zero=ScaleToZero(enabled=True, idle_seconds=20),
    )
    scaler = Autoscaler(policy)
    pod = (PodState("a"),)
    socket_open = Observation(1, pod, {"rps": MetricReading(total=0), "tunnels": MetricReading(total=1)})
    for t in (0, 15, 30, 45, 60):
        assert scaler.decide(t, socket_open).desired == 1
    closed = Observation(1, pod, {"rps": MetricReading(total=0), "tunnels": MetricReading(total=0)})
    assert scaler.decide(75, closed).desired == 1  # 15 s since the socket was last seen
    assert scaler.decide(90, closed).desired == 0
