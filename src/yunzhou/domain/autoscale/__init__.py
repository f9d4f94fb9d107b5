"""Autoscaling, pure and clock-injected: the policy model (``policy``), the exact Kubernetes HPA
autoscaling/v2 algorithm (``hpa``), predictive and scheduled scaling, and a simulator.

What other packages use is imported from here, not from the inner modules.
"""

from yunzhou.domain.autoscale.policy import (
    DEFAULT_SCALE_DOWN,
    DEFAULT_SCALE_UP,
    AutoscalingPolicy,
    Behavior,
    MetricSpec,
    MetricTarget,
    PredictiveSpec,
    ScaleToZero,
    ScalingPolicy,
    ScalingRules,
    ScheduleWindow,
    collect_autoscaling,
    parse_autoscaling,
)

__all__ = [
    "DEFAULT_SCALE_DOWN",
    "DEFAULT_SCALE_UP",
    "AutoscalingPolicy",
    "Behavior",
    "MetricSpec",
    "MetricTarget",
    "PredictiveSpec",
    "ScaleToZero",
    "ScalingPolicy",
    "ScalingRules",
    "ScheduleWindow",
    "collect_autoscaling",
    "parse_autoscaling",
]
