"""Replay a demand trace through the same autoscaling code in simulated time.

The model of the world (documented in docs/autoscaling.md):

- ``demand[i]`` is the request rate in second ``i`` (requests/s). One ready instance serves
  ``capacity`` requests/s; a second is **under-provisioned** when demand > ready × capacity.
- The controller runs every ``sync_seconds`` (15 s, HPA's default) and reads the rate averaged over
  the last ``metric_window`` seconds (30 s, like ``rate(...[30s])``) as the app's total ``rps``.
- A new instance counts towards cost at once and becomes ready ``startup_seconds`` later. Scale-in
  removes starting instances first, then ready ones, at once.
- ``instance_seconds`` sums instances (ready or starting) over every second; ``actions`` counts the
  cycles that changed the desired count.
"""

from __future__ import annotations

import csv
import io
import itertools
import math
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import numpy as np

from yunzhou.domain.autoscale.controller import Autoscaler
from yunzhou.domain.autoscale.hpa import MetricReading, Observation, PodState
from yunzhou.domain.autoscale.policy import (
    AutoscalingPolicy,
    Behavior,
    MetricSpec,
    MetricTarget,
    PredictiveSpec,
    ScalingRules,
)
from yunzhou.domain.errors import FieldProblem, UserError

BUILTIN_POLICIES = ("hpa", "hpa-fast", "hpa-5s", "predictive", "predictive-hw")


def builtin_policy(
    name: str, *, target: float, max_replicas: int, startup_seconds: int, min_replicas: int = 1
) -> AutoscalingPolicy:
    """The policies the simulator and the benchmark compare (all on ``rps`` AverageValue ``target``):

    - ``hpa``: Kubernetes defaults (scale-down stabilization 300 s).
    - ``hpa-fast``: as hpa with a 30 s scale-down window (what the predictive ones use; isolates the
      forecast's effect from the shorter window's).
    - ``hpa-5s``: Kubernetes defaults, but run as the predictive ones are (see
      :func:`builtin_run_options`: every 5 s on a 10 s rate). Not Kubernetes: it isolates what the
      faster sampling alone buys.
    - ``predictive``: seasonal-quantile forecast (hourly + daily + weekly) + short-term trend as a
      floor sized at full capacity by the marginal rule, with the previous peak held while that pays
      (see :func:`builtin_run_options`), 30 s scale-down window, run every 5 s on a 10 s rate.
    - ``predictive-hw``: the same with Holt-Winters.
    """
    if name not in BUILTIN_POLICIES:
        raise UserError(
            "unknown policy",
            problems=[FieldProblem("policy", f"{name!r}; allowed: {', '.join(BUILTIN_POLICIES)}")],
        )
    base = AutoscalingPolicy(
        min_replicas=min_replicas,
        max_replicas=max_replicas,
        metrics=(MetricSpec("rps", MetricTarget("AverageValue", target)),),
    )
    if name in ("hpa", "hpa-5s"):
        return base
    fast = Behavior(scale_down=replace(base.behavior.scale_down, stabilization_window_seconds=30))
    if name == "hpa-fast":
        return replace(base, behavior=fast)
    predictive = PredictiveSpec(
        model="seasonal-quantile" if name == "predictive" else "holt-winters",
        seasonality=("hourly", "daily", "weekly"),
        startup_seconds=startup_seconds,
        margin_seconds=30,
        min_history_seconds=86400,
        max_error=0.5,
        quantile=0.9,
        metric="rps",
    )
    return replace(base, behavior=fast, predictive=predictive)


def builtin_run_options(name: str) -> dict[str, Any]:
    """How :func:`simulate` runs a built-in policy: ``hpa`` and ``hpa-fast`` as the Kubernetes HPA
    controller does (every 15 s on a 30 s rate); ``hpa-5s`` and the predictive ones every 5 s on a 10 s
    rate (our controller, not Kubernetes', so it may sample faster), the predictive ones with the
    forecast floor at full capacity (``forecast_target_scale`` 1.25 over the target of 0.8 × capacity
    that every built-in policy uses) and sized by the marginal rule: an instance joins the floor while
    the chance it is the one demand needs is at least 3.5 % (``min_chance``)."""
    if name in ("hpa", "hpa-fast"):
        return {"sync_seconds": 15, "metric_window": 30}
    if name == "hpa-5s":
        return {"sync_seconds": 5, "metric_window": 10}
    return {"sync_seconds": 5, "metric_window": 10, "forecast_target_scale": 1.25, "min_chance": 0.035}


@dataclass
class SimResult:
    instance_seconds: float
    underprovisioned_seconds: int
    actions: int
    seconds: int
    times: list[float] = field(default_factory=list)
    demand: list[float] = field(default_factory=list)
    desired: list[int] = field(default_factory=list)
    ready: list[int] = field(default_factory=list)
    modes: dict[str, int] = field(default_factory=dict)

    def to_dict(self, timeline: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {
            "seconds": self.seconds,
            "instance_seconds": self.instance_seconds,
            "underprovisioned_seconds": self.underprovisioned_seconds,
            "actions": self.actions,
            "modes": self.modes,
        }
        if timeline:
            out["timeline"] = [
                {"t": t, "demand": round(d, 3), "desired": n, "ready": r}
                for t, d, n, r in zip(self.times, self.demand, self.desired, self.ready, strict=True)
            ]
        return out


def simulate(
    demand: np.ndarray,
    policy: AutoscalingPolicy,
    *,
    capacity: float,
    startup_seconds: int,
    start_time: float = 0.0,
    sync_seconds: int = 15,
    metric_window: int = 30,
    timeline_every: int = 1,
    initial_replicas: int | None = None,
    score_from: int = 0,
    forecast_target_scale: float = 1.0,
    min_chance: float | None = None,
) -> SimResult:
    """Run ``policy`` over per-second ``demand`` (see the module docstring); ``timeline_every`` keeps
    every n-th controller cycle in the timeline (0: none). Seconds before ``score_from`` run (the
    policies learn from them) but are not counted in the totals. ``forecast_target_scale`` and
    ``min_chance``: see :class:`~yunzhou.domain.autoscale.controller.Autoscaler`."""
    d = np.asarray(demand, dtype=float)
    n = len(d)
    prefix = np.concatenate(([0.0], np.cumsum(d)))
    scaler = Autoscaler(policy, forecast_target_scale=forecast_target_scale, min_chance=min_chance)
    label = policy.metrics[0].label
    first = float(d[:metric_window].mean()) if n else 0.0
    target = policy.metrics[0].target.value
    start = initial_replicas
    if start is None:
        start = min(policy.max_replicas, max(policy.min_replicas, math.ceil(first / target)))
    ready_at: list[float] = [0.0] * start  # instance → second it is ready
    desired = start
    result = SimResult(0.0, 0, 0, n - min(n, score_from))
    ready_pod = PodState("p")
    starting_pod = PodState("p", ready=False, phase="Running")
    for cycle, t0 in enumerate(range(0, n, sync_seconds)):
        t1 = min(n, t0 + sync_seconds)
        if t0 > 0:
            a = max(0, t0 - metric_window)
            rate = (prefix[t0] - prefix[a]) / (t0 - a)
            pods = tuple(ready_pod if r <= t0 else starting_pod for r in ready_at)
            obs = Observation(desired, pods, {label: MetricReading(total=rate, timestamp=start_time + t0)})
            decision = scaler.decide(start_time + t0, obs)
            if t0 >= score_from:
                result.modes[decision.mode] = result.modes.get(decision.mode, 0) + 1
                result.actions += decision.desired != desired
            if decision.desired != desired:
                if decision.desired > len(ready_at):
                    ready_at.extend([float(t0 + startup_seconds)] * (decision.desired - len(ready_at)))
                else:
                    ready_at.sort()
                    del ready_at[decision.desired :]
                desired = decision.desired
        # account the seconds [t0, t1): the ready count steps up as starting instances become ready
        if t1 > score_from:
            s0 = max(t0, score_from)
            result.instance_seconds += len(ready_at) * (t1 - s0)
            edges = sorted({s0, t1, *(math.ceil(r) for r in ready_at if s0 < r < t1)})
        else:
            edges = []
        for a, b in itertools.pairwise(edges):
            ready = sum(1 for r in ready_at if r <= a)
            result.underprovisioned_seconds += int(np.count_nonzero(d[a:b] > ready * capacity))
        if scaler.forecaster is not None:
            chunk = d[t0:t1]
            scaler.observe_demand(
                start_time + t0, float(chunk.mean()), peak=float(chunk.max()), count=t1 - t0
            )
        if timeline_every and cycle % timeline_every == 0:
            result.times.append(float(t0))
            result.demand.append(float(d[t0:t1].mean()))
            result.desired.append(desired)
            result.ready.append(sum(1 for r in ready_at if r <= t0))
    return result


def parse_trace_csv(text: str) -> tuple[float, np.ndarray]:
    """A ``timestamp,demand`` CSV (header optional; timestamps in unix seconds or ISO 8601, rows in time
    order, any spacing) → (start time, per-second demand, each value held until the next row)."""
    rows: list[tuple[float, float]] = []
    for i, row in enumerate(csv.reader(io.StringIO(text))):
        if not row or not "".join(row).strip():
            continue
        if len(row) < 2:
            raise _trace_error(i, "needs two columns: timestamp, demand")
        stamp, value = row[0].strip(), row[1].strip()
        try:
            t = float(stamp)
        except ValueError:
            try:
                t = datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
            except ValueError:
                if i == 0:
                    continue  # a header
                raise _trace_error(i, f"timestamp {stamp!r} is neither unix seconds nor ISO 8601") from None
        try:
            v = float(value)
        except ValueError:
            raise _trace_error(i, f"demand {value!r} is not a number") from None
        if not math.isfinite(v) or v < 0:
            raise _trace_error(i, "demand must be a finite number >= 0")
        if rows and t <= rows[-1][0]:
            raise _trace_error(i, "timestamps must increase")
        rows.append((t, v))
    if not rows:
        raise UserError("trace is empty", problems=[FieldProblem("trace", "no timestamp,demand rows")])
    t0 = rows[0][0]
    length = int(rows[-1][0] - t0) + 1
    out = np.zeros(length)
    for (t, v), nxt in zip(rows, [*rows[1:], (rows[-1][0] + 1, 0.0)], strict=True):
        out[int(t - t0) : int(nxt[0] - t0)] = v
    return t0, out


def _trace_error(row: int, message: str) -> UserError:
    return UserError("trace is invalid", problems=[FieldProblem(f"trace.row.{row + 1}", message)])


__all__ = [
    "BUILTIN_POLICIES",
    "ScalingRules",
    "SimResult",
    "builtin_policy",
    "builtin_run_options",
    "parse_trace_csv",
    "simulate",
]
