"""The autoscaler for one app: schedules, forecast and scale-to-zero around the exact HPA.

Each cycle (:meth:`Autoscaler.decide`, clock injected as ``now``):

1. **Schedules** — the active cron window (if any) replaces minReplicas/maxReplicas.
2. **Scale to zero** — with ``scaleToZero.enabled``, an app whose request metrics (rps, in-flight)
   and open upgraded connections (WebSockets, reading ``tunnels``) were all zero for ``idleSeconds``
   goes to 0; at 0, any request (the router holds it) or a positive forecast brings it to
   ``max(1, min)``. Otherwise an app at 0 stays there.
3. **Forecast** — in ``predictive`` mode the forecast becomes a floor in instances of the forecast
   metric's per-instance target × ``forecast_target_scale``: the forecast value over that, or, with
   ``min_chance``, the marginal rule over the forecast's spread and, while it pays for this app, the
   previous peak held (:class:`~yunzhou.domain.autoscale.predictive.PeakHold`). The floor raises
   minReplicas (capped at maxReplicas), as the Kubernetes runtime raises the HPA's minReplicas, so
   the HPA itself never fights it.
4. **HPA** — :class:`~yunzhou.domain.autoscale.hpa.HpaController` with those bounds.

The :class:`Decision` records time, inputs, current and desired counts, the reason and the mode
(``reactive``, ``predictive``, ``learning``, ``scheduled:<window>``, ``idle``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from yunzhou.domain.autoscale.hpa import HpaController, Observation
from yunzhou.domain.autoscale.policy import AutoscalingPolicy
from yunzhou.domain.autoscale.predictive import (
    Forecast,
    Forecaster,
    PeakHold,
    replicas_for_forecast,
    replicas_worth_running,
)
from yunzhou.domain.autoscale.schedule import bounds_at

# readings that mean "in use": requests per second, requests in flight, and open upgraded connections
# (WebSockets: a chat app whose one user keeps a socket open sends no requests, yet must not go to zero)
TUNNELS = "tunnels"
_REQUEST_METRICS = ("rps", "inflight", TUNNELS)


@dataclass(frozen=True)
class Decision:
    time: float
    current: int
    desired: int
    reason: str
    mode: str
    min_replicas: int
    max_replicas: int
    inputs: dict[str, Any]

    @property
    def changed(self) -> bool:
        return self.desired != self.current

    def to_dict(self) -> dict[str, Any]:
        return {
            "time": self.time,
            "current": self.current,
            "desired": self.desired,
            "reason": self.reason,
            "mode": self.mode,
            "minReplicas": self.min_replicas,
            "maxReplicas": self.max_replicas,
            "inputs": self.inputs,
        }


@dataclass
class Autoscaler:
    policy: AutoscalingPolicy
    hpa: HpaController = field(init=False)
    forecaster: Forecaster | None = field(init=False)
    last_request_at: float | None = None
    # The forecast floor sizes instances at target × this. The forecast value is already an upper
    # bound (the point forecast times a quantile of recent actual/forecast ratios), so it needs none of
    # the headroom the target keeps for what the HPA cannot foresee: with the usual target of 0.8 × an
    # instance's capacity, 1.25 sizes the floor at full capacity. 1 sizes it at the target.
    forecast_target_scale: float = 1.0
    # The marginal rule for the floor (predictive.replicas_worth_running): an instance joins the floor
    # while the chance that it is the one demand needs is at least this. None: the floor is the
    # forecast value (point × the spec's quantile of recent ratios), rounded up.
    min_chance: float | None = None
    peak_hold: PeakHold | None = field(init=False)

    def __post_init__(self) -> None:
        self.hpa = HpaController(self.policy)
        spec = self.policy.predictive
        self.forecaster = Forecaster(spec) if spec is not None and spec.enabled else None
        self.peak_hold = PeakHold() if self.forecaster is not None and self.min_chance is not None else None

    def observe_demand(self, t: float, value: float, *, peak: float | None = None, count: int = 1) -> None:
        """Feed the forecaster one sample (or an aggregate of ``count`` samples) of the forecast metric."""
        if self.forecaster is not None:
            self.forecaster.observe(t, value, peak=peak, count=count)
        target = self._forecast_target()
        if self.peak_hold is not None and target:
            demand = value if peak is None else peak
            self.peak_hold.observe(t, demand / (target * self.forecast_target_scale))

    def _forecast_target(self) -> float | None:
        spec = self.policy.predictive
        if spec is None:
            return None
        for metric in self.policy.metrics:
            if metric.label == spec.metric and metric.target.type == "AverageValue":
                return metric.target.value
        return None

    def decide(self, now: float, obs: Observation) -> Decision:
        lo, hi, window = bounds_at(
            self.policy.schedules, now, self.policy.min_replicas, self.policy.max_replicas
        )
        mode = f"scheduled:{window}" if window else "reactive"
        inputs: dict[str, Any] = {}
        for label, reading in obs.readings.items():
            if reading.total is not None:
                inputs[label] = reading.total
            elif reading.per_pod is not None:
                inputs[label] = dict(reading.per_pod)
        predicted = 0
        if self.forecaster is not None:
            fc = self.forecaster.forecast(now)
            target = self._forecast_target()
            inputs["forecast"] = {"mode": fc.mode, "value": fc.value, "error": fc.error, "reason": fc.reason}
            if fc.mode == "predictive" and fc.value is not None and target:
                predicted = min(hi, self._floor(now, fc, target, obs))
                inputs["forecast"]["replicas"] = predicted
                lo = max(lo, predicted)
            if not window:
                mode = fc.mode
        current = obs.spec_replicas
        stz = self.policy.scale_to_zero
        busy = self._requests_seen(obs)
        if busy or self.last_request_at is None:
            self.last_request_at = now
        if stz.enabled:
            if current == 0:
                if busy or predicted > 0 or lo > 0:
                    wake = max(1, lo)
                    return Decision(now, 0, wake, "ScaleFromZero: a request arrived", mode, lo, hi, inputs)
                return Decision(now, 0, 0, "ScaledToZero: idle", "idle", lo, hi, inputs)
            idle_for = now - self.last_request_at
            if lo == 0 and not busy and idle_for >= stz.idle_seconds:
                # idle_for counts from the last pass that still saw requests, so it is at least
                # idleSeconds and can exceed it by up to one interval: say both numbers.
                reason = f"ScaleToZero: no requests for {idle_for:.0f}s (idleSeconds {stz.idle_seconds})"
                return Decision(now, current, 0, reason, "idle", lo, hi, inputs)
            lo = max(lo, 1)
        result = self.hpa.decide(now, obs, min_replicas=lo, max_replicas=hi)
        inputs["proposals"] = result.per_metric
        reason = result.reason
        if predicted and result.desired == predicted and result.desired > (result.proposal or 0):
            reason = f"PredictiveFloor: forecast needs {predicted}"
        return Decision(now, current, result.desired, reason, mode, lo, hi, inputs)

    def _floor(self, now: float, fc: Forecast, target: float, obs: Observation) -> int:
        """The forecast floor in instances (see the module docstring)."""
        unit = target * self.forecast_target_scale
        assert fc.value is not None
        if self.min_chance is None or fc.spread is None:
            return replicas_for_forecast(fc.value, unit)
        floor = replicas_worth_running(fc.spread, unit, self.min_chance)
        spec = self.policy.predictive
        if self.peak_hold is None or spec is None:
            return floor
        reading = obs.readings.get(spec.metric)
        total = None
        if reading is not None:
            total = reading.total if reading.total is not None else sum((reading.per_pod or {}).values())
        reactive = math.ceil(total / target - 1e-9) if total else 0
        due = now + spec.horizon_seconds
        return max(floor, self.peak_hold.replicas(due, fc.peak, unit, max(floor, reactive)))

    @staticmethod
    def _requests_seen(obs: Observation) -> bool:
        for label in _REQUEST_METRICS:
            reading = obs.readings.get(label)
            if reading is None:
                continue
            if reading.total is not None and reading.total > 0:
                return True
            if reading.per_pod and any(v > 0 for v in reading.per_pod.values()):
                return True
        return False
