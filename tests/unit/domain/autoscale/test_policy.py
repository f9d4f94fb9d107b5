"""The ``autoscaling:`` settings key: defaults, round trip, and every problem named by its path."""

from __future__ import annotations

import pytest

from yunzhou.domain.autoscale import DEFAULT_SCALE_DOWN, DEFAULT_SCALE_UP, parse_autoscaling
from yunzhou.domain.errors import UserError
from yunzhou.domain.settings import parse_settings

RPS = {"type": "rps", "target": {"type": "AverageValue", "averageValue": 50}}


def test_defaults_are_the_hpa_v2_defaults() -> None:
    policy = parse_autoscaling({"maxReplicas": 5, "metrics": [RPS]})
    assert policy.min_replicas == 1
    assert policy.tolerance == 0.1
    assert policy.behavior.scale_up == DEFAULT_SCALE_UP
    assert policy.behavior.scale_down == DEFAULT_SCALE_DOWN
    assert DEFAULT_SCALE_UP.stabilization_window_seconds == 0
    assert DEFAULT_SCALE_DOWN.stabilization_window_seconds == 300
    assert [(p.type, p.value, p.period_seconds) for p in DEFAULT_SCALE_UP.policies] == [
        ("Percent", 100, 15),
        ("Pods", 4, 15),
    ]
    assert policy.predictive is None
    assert not policy.scale_to_zero.enabled


def test_round_trip_through_to_dict() -> None:
    doc = {
        "minReplicas": 2,
        "maxReplicas": 20,
        "metrics": [
            {"type": "cpu", "target": {"type": "Utilization", "averageUtilization": 60}},
            RPS,
            {
                "type": "custom",
                "name": "queue_depth",
                "query": "sum(q)",
                "target": {"type": "Value", "value": 30},
            },
        ],
        "behavior": {"scaleDown": {"stabilizationWindowSeconds": 60, "selectPolicy": "Min",
                                   "policies": [{"type": "Pods", "value": 1, "periodSeconds": 60}]}},
        "predictive": {"model": "seasonal-quantile", "seasonality": ["daily", "weekly"]},
        "schedules": [{"name": "day", "cron": "0 8 * * 1-5", "durationSeconds": 36000,
                       "timezone": "Asia/Shanghai", "minReplicas": 4}],
        "scaleToZero": {"enabled": False},
    }  # fmt: skip
    policy = parse_autoscaling(doc)
    assert parse_autoscaling(policy.to_dict()) == policy
    assert [m.hpa_source() for m in policy.metrics] == ["Resource", "Pods", "External"]
    assert policy.predictive is not None
    assert policy.predictive.horizon_seconds == 60


def test_every_problem_is_reported_with_its_path() -> None:
    with pytest.raises(UserError) as err:
        parse_autoscaling(
            {
                "minReplicas": 0,
                "maxReplicas": 2000,
                "metrics": [{"type": "cpu", "target": {"type": "Value", "value": 1}}, {"type": "gpu"}],
                "behavior": {"scaleUp": {"selectPolicy": "Most"}},
                "schedules": [{"name": "x", "cron": "* * *", "durationSeconds": 60, "timezone": "Nowhere/X"}],
                "bogus": 1,
            }
        )
    paths = {p.path for p in err.value.problems}
    assert paths >= {
        "settings.autoscaling.minReplicas",
        "settings.autoscaling.maxReplicas",
        "settings.autoscaling.metrics.0.target.type",
        "settings.autoscaling.metrics.1.type",
        "settings.autoscaling.behavior.scaleUp.selectPolicy",
        "settings.autoscaling.schedules.0.cron",
        "settings.autoscaling.schedules.0.timezone",
        "settings.autoscaling.schedules.0",
        "settings.autoscaling.bogus",
    }


def test_min_zero_needs_scale_to_zero_and_predictive_needs_an_average_metric() -> None:
    policy = parse_autoscaling({"minReplicas": 0, "maxReplicas": 3, "metrics": [RPS], "scaleToZero": {}})
    assert policy.min_replicas == 0
    assert policy.scale_to_zero.enabled
    with pytest.raises(UserError) as err:
        parse_autoscaling({"maxReplicas": 3, "metrics": [RPS], "predictive": {"metric": "cpu"}})
    assert [p.path for p in err.value.problems] == ["settings.autoscaling.predictive.metric"]


def test_settings_key_is_parsed_per_environment() -> None:
    settings = parse_settings(
        {
            "autoscaling": {"maxReplicas": 3, "metrics": [RPS]},
            "environments": {"prod": {"autoscaling": {"maxReplicas": 30}}},
        },
        "prod",
    )
    assert settings.autoscaling is not None
    assert settings.autoscaling.max_replicas == 30
    assert settings.to_dict()["autoscaling"]["maxReplicas"] == 30
    assert parse_settings({}).autoscaling is None
    with pytest.raises(UserError) as err:
        parse_settings({"autoscaling": {"maxReplicas": 3}})
    assert [p.path for p in err.value.problems] == ["settings.autoscaling.metrics"]
