"""The Kubernetes HorizontalPodAutoscaler (autoscaling/v2) algorithm, step for step, with an injected clock.

It follows the controller in ``pkg/controller/podautoscaler`` (``replica_calculator.go`` and
``horizontal.go``):

1. **Per metric** (``replicas_for_metric``):
   - per-instance readings (Resource and Pods metrics): pods being deleted or Failed are ignored;
     Pending pods are *unready*; pods without a sample are *missing*; for **CPU only** a pod is also
     unready while it has no Ready condition, or within ``cpu_initialization_period`` (5 min) of its
     start when it is not Ready or its sample's window began before it became Ready, or (after that
     period) when it is not Ready and never was (its last transition is within
     ``initial_readiness_delay``, 30 s, of its start). Unready pods' samples are dropped.
     ``ratio = average / target`` (Utilization: ``floor(100·Σusage/Σrequests) / target%``).
     With no unready-on-scale-up and no missing pods: within ``tolerance`` keep the current count,
     else ``ceil(ratio × ready)``. Otherwise the ratio is recomputed with missing pods counted at the
     target (100 % of the request, or the target if higher, for Utilization) when scaling down and at 0
     when scaling up, and unready pods at 0 when scaling up; the current count is kept if the new
     ratio is within tolerance or points the other way, or if ``ceil(new ratio × counted pods)`` would
     move against the direction; else that is the proposal.
   - a total reading with ``Value`` target (Object/External): within tolerance keep the count, else
     ``ceil(ratio × ready pods)`` (``ceil(ratio)`` from zero replicas).
   - a total reading with ``AverageValue`` target: ``ceil(total / target)`` unless
     ``total / (target × status replicas)`` is within tolerance.
2. **Across metrics** the highest proposal wins. A metric without data is invalid: if every metric is
   invalid, or some are and the rest would scale down, nothing changes this cycle.
3. Outside ``[min, max]`` the count is first brought into range (no behavior applies).
4. **Stabilization**: every unstabilized recommendation is kept with its time; the result is
   clamped between the lowest recommendation of the scale-up window and the highest of the scale-down
   window (windows are open at their start). The current count is seeded as a recommendation the first
   time an app is seen, so a restart never scales down at once.
5. **Rate policies**: for each policy, the count at the start of its period is the current count minus
   the replicas added plus those removed within the period; Pods adds/removes ``value``, Percent
   multiplies by ``1 ± value/100`` (rounded up when adding, down when removing). selectPolicy Max
   takes the largest change, Min the smallest, Disabled none. The limit never goes past the current
   count the wrong way, and is combined with max/min replicas.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from yunzhou.domain.autoscale.policy import AutoscalingPolicy, MetricSpec, ScalingRules

CPU_INITIALIZATION_PERIOD = 300.0
INITIAL_READINESS_DELAY = 30.0
SYNC_PERIOD = 15.0

Phase = Literal["Pending", "Running", "Succeeded", "Failed"]


@dataclass(frozen=True)
class PodState:
    """One instance as the HPA sees it. Times are seconds on the injected clock."""

    name: str
    phase: Phase = "Running"
    ready: bool | None = True  # None: no Ready condition yet
    started_at: float | None = 0.0  # None: no start time yet
    ready_changed_at: float = 0.0  # last transition of the Ready condition
    deleting: bool = False
    requests: Mapping[str, float] = field(default_factory=dict)  # {"cpu": cores, "memory": bytes}


@dataclass(frozen=True)
class MetricReading:
    """What the metrics pipeline returned for one metric: per-instance samples, or one total."""

    per_pod: Mapping[str, float] | None = None
    total: float | None = None
    timestamp: float = 0.0
    window: float = 30.0  # the span the samples average over (metrics-server's window)


@dataclass(frozen=True)
class Observation:
    """Everything one HPA cycle reads: the desired (spec) count, the pods, and a reading per metric label."""

    spec_replicas: int
    pods: tuple[PodState, ...]
    readings: Mapping[str, MetricReading]

    @property
    def status_replicas(self) -> int:
        return sum(1 for p in self.pods if not p.deleting)

    def ready_count(self) -> int:
        return sum(1 for p in self.pods if p.phase == "Running" and p.ready is True and not p.deleting)


class MetricUnavailable(Exception):
    """A metric could not be evaluated this cycle (no data, no pods, no requests)."""


def _unready_for_cpu(pod: PodState, reading: MetricReading) -> bool:
    if pod.ready is None or pod.started_at is None:
        return True
    if pod.started_at + CPU_INITIALIZATION_PERIOD > reading.timestamp:
        return pod.ready is False or reading.timestamp - reading.window < pod.ready_changed_at
    return pod.ready is False and pod.started_at + INITIAL_READINESS_DELAY > pod.ready_changed_at


def group_pods(
    pods: Sequence[PodState], samples: Mapping[str, float], reading: MetricReading, kind: str
) -> tuple[int, set[str], set[str], set[str]]:
    """HPA's groupPods: (ready count, unready, missing, ignored)."""
    ready = 0
    unready: set[str] = set()
    missing: set[str] = set()
    ignored: set[str] = set()
    for pod in pods:
        if pod.deleting or pod.phase == "Failed":
            ignored.add(pod.name)
        elif pod.phase == "Pending":
            unready.add(pod.name)
        elif pod.name not in samples:
            missing.add(pod.name)
        elif kind == "cpu" and _unready_for_cpu(pod, reading):
            unready.add(pod.name)
        else:
            ready += 1
    return ready, unready, missing, ignored


def _utilization_ratio(
    samples: Mapping[str, float], requests: Mapping[str, float], target_percent: float
) -> float:
    used = sum(v for name, v in samples.items() if name in requests)
    requested = sum(requests[name] for name in samples if name in requests)
    if requested <= 0:
        raise MetricUnavailable("no metrics matched pods with a request")
    utilization = math.floor(used * 100 / requested + 1e-9)  # Kubernetes truncates to a whole percent
    return utilization / target_percent


def _average_ratio(samples: Mapping[str, float], target: float) -> float:
    return sum(samples.values()) / len(samples) / target


def _per_pod_replicas(
    spec: MetricSpec, reading: MetricReading, obs: Observation, current: int, tolerance: float
) -> int:
    assert reading.per_pod is not None
    pods = list(obs.pods)
    if not pods:
        raise MetricUnavailable("no instances to measure")
    samples = dict(reading.per_pod)
    ready, unready, missing, ignored = group_pods(pods, samples, reading, spec.kind)
    for name in ignored | unready:
        samples.pop(name, None)
    known = {p.name for p in pods}
    samples = {n: v for n, v in samples.items() if n in known}
    if not samples:
        raise MetricUnavailable("no samples for ready instances")
    utilization = spec.target.type == "Utilization"
    requests: dict[str, float] = {}
    if utilization:
        requests = {p.name: p.requests[spec.kind] for p in pods if p.requests.get(spec.kind)}
        lacking = sorted(
            p.name for p in pods if not (p.deleting or p.phase == "Failed") and p.name not in requests
        )
        if lacking:  # as calculatePodRequests: one pod without a request invalidates the metric
            more = f" (and {len(lacking) - 1} more)" if len(lacking) > 1 else ""
            raise MetricUnavailable(f"missing request for {spec.kind} on instance {lacking[0]}{more}")

    def ratio_of(values: Mapping[str, float]) -> float:
        if utilization:
            return _utilization_ratio(values, requests, spec.target.value)
        return _average_ratio(values, spec.target.value)

    ratio = ratio_of(samples)
    scale_up_with_unready = bool(unready) and ratio > 1.0
    if not scale_up_with_unready and not missing:
        if abs(1.0 - ratio) <= tolerance:
            return current
        return math.ceil(ratio * ready)
    if missing:
        if ratio < 1.0:
            for name in missing:
                if utilization:
                    samples[name] = requests[name] * max(100.0, spec.target.value) / 100
                else:
                    samples[name] = spec.target.value
        elif ratio > 1.0 or not utilization:
            for name in missing:
                samples[name] = 0.0
    if scale_up_with_unready:
        for name in unready:
            samples[name] = 0.0
    new_ratio = ratio_of(samples)
    if (
        abs(1.0 - new_ratio) <= tolerance
        or (ratio < 1.0 and new_ratio > 1.0)
        or (ratio > 1.0 and new_ratio < 1.0)
    ):
        return current
    proposal = math.ceil(new_ratio * len(samples))
    if (new_ratio < 1.0 and proposal > current) or (new_ratio > 1.0 and proposal < current):
        return current
    return proposal


def replicas_for_metric(
    spec: MetricSpec, reading: MetricReading | None, obs: Observation, tolerance: float
) -> int:
    """One metric's proposal (step 1 of the module docstring); raises MetricUnavailable."""
    if reading is None:
        raise MetricUnavailable(f"no reading for {spec.label}")
    if reading.per_pod is not None and (spec.target.type != "Value" or reading.total is None):
        if spec.target.type == "Value":
            reading = MetricReading(None, sum(reading.per_pod.values()), reading.timestamp, reading.window)
        else:
            return _per_pod_replicas(spec, reading, obs, obs.spec_replicas, tolerance)
    if reading.total is None:
        raise MetricUnavailable(f"no value for {spec.label}")
    target = spec.target.value
    if spec.target.type == "AverageValue":
        status = obs.status_replicas
        if status == 0:
            return math.ceil(reading.total / target)
        if abs(1.0 - reading.total / (target * status)) > tolerance:
            return math.ceil(reading.total / target)
        return status
    ratio = reading.total / target
    if obs.spec_replicas == 0:
        return math.ceil(ratio)
    if abs(1.0 - ratio) <= tolerance:
        return obs.spec_replicas
    return math.ceil(ratio * obs.ready_count())


@dataclass(frozen=True)
class HpaResult:
    desired: int  # what the controller sets (== current when nothing changes)
    proposal: int | None  # the highest metric proposal (None: metrics invalid)
    per_metric: dict[str, int | str]  # label → proposal, or the reason it is invalid
    reason: str


def _scale_up_limit(
    current: int, up: list[tuple[float, int]], down: list[tuple[float, int]], rules: ScalingRules, now: float
) -> int:
    if rules.select_policy == "Disabled":
        return current
    pick = min if rules.select_policy == "Min" else max
    result: int | None = None
    for policy in rules.policies:
        start = (
            current - _changed(up, policy.period_seconds, now) + _changed(down, policy.period_seconds, now)
        )
        if policy.type == "Pods":
            proposed = start + policy.value
        else:
            proposed = math.ceil(start * (1 + policy.value / 100) - 1e-9)
        result = proposed if result is None else pick(result, proposed)
    return current if result is None else result


def _scale_down_limit(
    current: int, up: list[tuple[float, int]], down: list[tuple[float, int]], rules: ScalingRules, now: float
) -> int:
    if rules.select_policy == "Disabled":
        return current
    pick = max if rules.select_policy == "Min" else min
    result: int | None = None
    for policy in rules.policies:
        start = (
            current - _changed(up, policy.period_seconds, now) + _changed(down, policy.period_seconds, now)
        )
        if policy.type == "Pods":
            proposed = start - policy.value
        else:
            proposed = math.floor(start * (1 - policy.value / 100) + 1e-9)
        result = proposed if result is None else pick(result, proposed)
    return current if result is None else result


def _changed(events: list[tuple[float, int]], period: int, now: float) -> int:
    cutoff = now - period
    return sum(change for at, change in events if at > cutoff)


@dataclass
class HpaController:
    """The HPA's memory for one app (recommendations and scale events) and its decision function."""

    policy: AutoscalingPolicy
    recommendations: list[tuple[float, int]] = field(default_factory=list)
    up_events: list[tuple[float, int]] = field(default_factory=list)
    down_events: list[tuple[float, int]] = field(default_factory=list)
    seeded: bool = False

    def decide(
        self,
        now: float,
        obs: Observation,
        *,
        min_replicas: int | None = None,
        max_replicas: int | None = None,
    ) -> HpaResult:
        """One reconcile cycle at ``now``. ``min_replicas``/``max_replicas`` override the policy's
        (scheduled windows and the predictive floor use this, as they raise an HPA's minReplicas)."""
        lo = self.policy.min_replicas if min_replicas is None else min_replicas
        hi = self.policy.max_replicas if max_replicas is None else max_replicas
        lo = min(lo, hi)
        current = obs.spec_replicas
        if not self.seeded:
            self.recommendations.append((now, current))
            self.seeded = True
        if current == 0 and lo != 0:
            return HpaResult(0, None, {}, "ScalingDisabled: the app is scaled to zero by hand")
        if current > hi:
            return self._apply(now, current, hi, None, {}, f"TooManyReplicas: above maxReplicas {hi}")
        if current < lo:
            return self._apply(now, current, lo, None, {}, f"TooFewReplicas: below minReplicas {lo}")
        per_metric: dict[str, int | str] = {}
        proposal = 0
        invalid: list[str] = []
        for spec in self.policy.metrics:
            try:
                value = replicas_for_metric(spec, obs.readings.get(spec.label), obs, self.policy.tolerance)
            except MetricUnavailable as exc:
                per_metric[spec.label] = f"invalid: {exc}"
                invalid.append(f"{spec.label}: {exc}")
                continue
            per_metric[spec.label] = value
            proposal = max(proposal, value)
        if len(invalid) >= len(self.policy.metrics) or (invalid and proposal < current):
            why = "; ".join(invalid)
            return HpaResult(current, None, per_metric, f"FailedGetMetrics: keeping the count ({why})")
        stabilized, why = self._stabilize(now, current, proposal)
        desired, limit = self._rate_limit(now, current, stabilized, lo, hi)
        reason = limit or why or "DesiredWithinRange"
        return self._apply(now, current, desired, proposal, per_metric, reason)

    def _stabilize(self, now: float, current: int, desired: int) -> tuple[int, str]:
        up_cut = now - self.policy.behavior.scale_up.stabilization_window_seconds
        down_cut = now - self.policy.behavior.scale_down.stabilization_window_seconds
        up_rec = desired
        down_rec = desired
        for at, rec in self.recommendations:
            if at > up_cut:
                up_rec = min(up_rec, rec)
            if at > down_cut:
                down_rec = max(down_rec, rec)
        result = min(max(current, up_rec), down_rec)
        longest = max(
            self.policy.behavior.scale_up.stabilization_window_seconds,
            self.policy.behavior.scale_down.stabilization_window_seconds,
        )
        self.recommendations = [(at, r) for at, r in self.recommendations if at > now - longest]
        self.recommendations.append((now, desired))
        why = ""
        if result != desired:
            why = "ScaleUpStabilized" if result < desired else "ScaleDownStabilized"
        return result, why

    def _rate_limit(self, now: float, current: int, desired: int, lo: int, hi: int) -> tuple[int, str]:
        b = self.policy.behavior
        if desired > current:
            limit = max(_scale_up_limit(current, self.up_events, self.down_events, b.scale_up, now), current)
            allowed, reason = (limit, "ScaleUpLimit") if hi > limit else (hi, "TooManyReplicas")
            return (allowed, reason) if desired > allowed else (desired, "")
        if desired < current:
            limit = min(
                _scale_down_limit(current, self.up_events, self.down_events, b.scale_down, now), current
            )
            allowed, reason = (limit, "ScaleDownLimit") if lo < limit else (lo, "TooFewReplicas")
            return (allowed, reason) if desired < allowed else (desired, "")
        return desired, ""

    def _apply(
        self,
        now: float,
        current: int,
        desired: int,
        proposal: int | None,
        per_metric: dict[str, int | str],
        reason: str,
    ) -> HpaResult:
        if desired != current:
            b = self.policy.behavior
            longest = max(
                (p.period_seconds for p in (*b.scale_up.policies, *b.scale_down.policies)), default=0
            )
            self.up_events = [(t, c) for t, c in self.up_events if t > now - longest]
            self.down_events = [(t, c) for t, c in self.down_events if t > now - longest]
            if desired > current:
                self.up_events.append((now, desired - current))
            else:
                self.down_events.append((now, current - desired))
        return HpaResult(desired, proposal, per_metric, reason)
