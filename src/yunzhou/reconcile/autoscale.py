"""The local autoscaler: every interval, for each app on the local target with an ``autoscaling:`` policy,
read its metrics through the query engine, run the policy (``domain.autoscale.Autoscaler``, which keeps
the HPA's memory and the forecaster per app), and apply a new count through the services (desired
replicas + audit), so the reconciler does the work. Decisions are recorded when the count changes or
the mode or reason does.

Metrics read (the shared metrics contract), per app ``{project, env, app}``:

- rps: ``sum(rate(yunzhou_router_requests_total[30s]))`` (a total; no series = no traffic = 0)
- inflight: ``sum(yunzhou_router_requests_in_flight)``
- cpu: ``rate(yunzhou_instance_cpu_seconds_total[1m])`` per instance (cores), Utilization relative to
  ``yunzhou_instance_cpu_limit_cores``
- memory: ``yunzhou_instance_memory_bytes`` per instance, Utilization relative to
  ``yunzhou_instance_memory_limit_bytes``
- custom: ``query`` as given (summed), else the app's own series of that name per instance
- instances and readiness: ``yunzhou_instance_ready``

The local target's limits stand in for the requests: an instance without one makes a Utilization metric
invalid, as a pod without a request does for the HPA, and the decision's ``inputs.requests`` shows which.

On Kubernetes targets the real HPA does the reactive part; the loop keeps only the floor of a policy with
schedules and/or a predictive forecast (:meth:`AutoscaleLoop.floor`): the active window's minReplicas and
the forecast's instances, clamped like the HPA's minReplicas (``render_autoscale.hpa_min_replicas``). It
is stored as the app's desired replicas through AppService.scale — only when the floor changes, so a
steady floor makes no rollouts — and the renderer puts it in the HPA's ``minReplicas``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any, Protocol

from yunzhou.domain.autoscale import AutoscalingPolicy, MetricSpec
from yunzhou.domain.autoscale.controller import TUNNELS, Autoscaler
from yunzhou.domain.autoscale.hpa import MetricReading, Observation, PodState
from yunzhou.domain.autoscale.predictive import replicas_for_forecast
from yunzhou.domain.autoscale.schedule import bounds_at
from yunzhou.domain.errors import YunzhouError
from yunzhou.envnumbers import seconds_from_env
from yunzhou.runtimes.kubernetes.render_autoscale import has_floor, hpa_min_replicas
from yunzhou.services import ControlPlane
from yunzhou.services.autoscaling import AutoscaleTarget, AutoscalingService

log = logging.getLogger("yunzhou.reconcile.autoscale")
DEFAULT_INTERVAL = 15.0
# what stands in for an instance's request on the local target, per Utilization metric kind
REQUEST_SERIES = {"cpu": "yunzhou_instance_cpu_limit_cores", "memory": "yunzhou_instance_memory_limit_bytes"}


class InstantQuery(Protocol):
    def instant(self, expr: str, t: float) -> dict[str, Any]: ...


def autoscale_interval(environ: Mapping[str, str] | None = None) -> float:
    """``YUNZHOU_AUTOSCALE_INTERVAL`` seconds (default 15, HPA's sync period); 0.05-3600."""
    return seconds_from_env("YUNZHOU_AUTOSCALE_INTERVAL", DEFAULT_INTERVAL, environ)


def _utilization_kinds(policy: AutoscalingPolicy) -> list[str]:
    """The resource kinds (cpu, memory) the policy targets by Utilization, i.e. that need requests."""
    kinds = {m.kind for m in policy.metrics if m.target.type == "Utilization"}
    return sorted(kinds & REQUEST_SERIES.keys())


def _vector(result: dict[str, Any]) -> list[tuple[dict[str, str], float]]:
    if result.get("resultType") == "scalar":
        return [({}, float(result["result"][1]))]
    return [(item.get("metric", {}), float(item["value"][1])) for item in result.get("result", [])]


class AutoscaleLoop:
    def __init__(self, cp: ControlPlane, engine: InstantQuery, *, interval: float = DEFAULT_INTERVAL) -> None:
        self.cp = cp
        self.engine = engine
        self.interval = interval
        self.service = AutoscalingService(cp.ctx)
        self._scalers: dict[int, tuple[AutoscalingPolicy, Autoscaler]] = {}
        self._last: dict[int, tuple[str, str]] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()  # the loop's thread and the wake path (reconcile/wake.py) share memory
        # called after an app was scaled to zero (the wake path then looks at it at once, not in a second)
        self.scaled_to_zero: Callable[[], None] | None = None

    def now(self) -> float:
        return self.cp.ctx.clock().timestamp()

    def _scaler(self, target: AutoscaleTarget) -> Autoscaler:
        known = self._scalers.get(target.app_id)
        if known is None or known[0] != target.policy:
            known = (target.policy, Autoscaler(target.policy))  # a new policy starts a fresh memory
            self._scalers[target.app_id] = known
        return known[1]

    def _query(self, expr: str, now: float) -> list[tuple[dict[str, str], float]]:
        return _vector(self.engine.instant(expr, now))

    def observe(self, target: AutoscaleTarget, now: float) -> Observation:
        sel = f'project="{target.project}",env="{target.env}",app="{target.app}"'
        ready = self._query(f"yunzhou_instance_ready{{{sel}}}", now)
        pods = tuple(PodState(m.get("instance", str(i)), ready=v >= 1) for i, (m, v) in enumerate(ready))
        readings: dict[str, MetricReading] = {}
        for spec in target.policy.metrics:
            try:
                reading = self._reading(spec, sel, now)
            except YunzhouError as exc:
                log.warning(
                    "autoscaling %s/%s/%s: %s: %s", target.project, target.env, target.app, spec.label, exc
                )
                continue
            if reading is not None:
                readings[spec.label] = reading
        if target.policy.scale_to_zero.enabled:  # an open WebSocket keeps the app in use (controller.py)
            tunnels = self._query(f"sum(yunzhou_router_tunnels{{{sel}}})", now)
            readings[TUNNELS] = MetricReading(total=sum(v for _, v in tunnels), timestamp=now)
        limits = {
            kind: {m.get("instance", ""): v for m, v in self._query(f"{REQUEST_SERIES[kind]}{{{sel}}}", now)}
            for kind in _utilization_kinds(target.policy)
        }
        if limits:
            pods = tuple(
                replace(p, requests={kind: of[p.name] for kind, of in limits.items() if of.get(p.name)})
                for p in pods
            )
        return Observation(target.replicas, pods, readings)

    def _reading(self, spec: MetricSpec, sel: str, now: float) -> MetricReading | None:
        if spec.kind == "rps":
            rows = self._query(f"sum(rate(yunzhou_router_requests_total{{{sel}}}[30s]))", now)
            return MetricReading(total=sum(v for _, v in rows), timestamp=now)
        if spec.kind == "inflight":
            rows = self._query(f"sum(yunzhou_router_requests_in_flight{{{sel}}})", now)
            return MetricReading(total=sum(v for _, v in rows), timestamp=now)
        if spec.kind == "custom" and spec.query:
            rows = self._query(spec.query, now)
            return MetricReading(total=sum(v for _, v in rows), timestamp=now) if rows else None
        expr = {
            "cpu": f"rate(yunzhou_instance_cpu_seconds_total{{{sel}}}[1m])",
            "memory": f"yunzhou_instance_memory_bytes{{{sel}}}",
        }.get(spec.kind, f"{spec.name}{{{sel}}}")
        rows = self._query(expr, now)
        if not rows:
            return None
        per_pod: dict[str, float] = {}
        for metric, value in rows:
            name = metric.get("instance", "")
            per_pod[name] = per_pod.get(name, 0.0) + value
        return MetricReading(per_pod=per_pod, timestamp=now)

    def run_once(self, now: float | None = None) -> list[dict[str, Any]]:
        """One pass over every autoscaled app; returns the decisions made (recorded or not)."""
        now = self.now() if now is None else now
        made: list[dict[str, Any]] = []
        targets = self.service.targets()
        floors = [t for t in self.service.targets("cluster") if has_floor(t.policy)]
        for gone in set(self._scalers) - {t.app_id for t in [*targets, *floors]}:
            self._scalers.pop(gone, None)
            self._last.pop(gone, None)
        for target in [*targets, *floors]:
            try:
                decision = self._decide(target, now) if target in targets else self._floor(target, now)
            except Exception:  # one app's failure never stops the others
                log.exception("autoscaling %s/%s/%s failed", target.project, target.env, target.app)
                continue
            made.append(decision)
        return made

    def wake(
        self, target: AutoscaleTarget, held: Mapping[str, Any], now: float | None = None
    ) -> dict[str, Any]:
        """Scale an app at zero to one now because the router holds a request for it (scale from zero);
        the idle window starts again, so the next cycle does not send it straight back to zero."""
        now = self.now() if now is None else now
        with self._lock:
            self._scaler(target).last_request_at = now
            desired = max(1, target.policy.min_replicas)
            decision: dict[str, Any] = {
                "time": now,
                "current": target.replicas,
                "desired": desired,
                "mode": "wake",
                "reason": f"ScaleFromZero: request arrived while scaled to zero ({held.get('held', 0)} held)",
                "inputs": {"router": dict(held)},
            }
            self._last[target.app_id] = (decision["mode"], decision["reason"])
            decision["applied"] = self.service.record(target, decision, apply=True)
        return decision

    def floor(self, target: AutoscaleTarget, now: float) -> dict[str, Any]:
        """The floor under a Kubernetes app's HPA at ``now`` as a decision (not recorded): the active
        window's minReplicas and/or the forecast's instances, clamped as the HPA's minReplicas is."""
        policy = target.policy
        scaler = self._scaler(target)
        lo, _, window = bounds_at(policy.schedules, now, policy.min_replicas, policy.max_replicas)
        inputs: dict[str, Any] = {
            "policyMinReplicas": policy.min_replicas,
            "maxReplicas": policy.max_replicas,
        }
        floor, mode = policy.min_replicas, "reactive"
        reason = f"HpaMinReplicas: policy minReplicas {policy.min_replicas}, no window or forecast above it"
        if window:
            inputs["schedule"] = {"window": window, "minReplicas": lo}
            mode = f"scheduled:{window}"
            if lo > floor:
                floor = lo
                reason = f"ScheduledFloor: window {window!r} is active, minReplicas {lo}"
        if scaler.forecaster is not None:
            sel = f'project="{target.project}",env="{target.env}",app="{target.app}"'
            rows = self._query(f"sum(rate(yunzhou_router_requests_total{{{sel}}}[30s]))", now)
            if rows:  # on a cluster no series means not collected, not "no traffic": learn nothing
                scaler.observe_demand(now, sum(v for _, v in rows))
            fc = scaler.forecaster.forecast(now)
            inputs["forecast"] = {"mode": fc.mode, "value": fc.value, "error": fc.error, "reason": fc.reason}
            per_instance = scaler._forecast_target()  # the one definition of the forecast metric's target
            if fc.mode == "predictive" and fc.value is not None and per_instance:
                predicted = replicas_for_forecast(fc.value, per_instance * scaler.forecast_target_scale)
                inputs["forecast"]["replicas"] = predicted
                if predicted > floor:
                    floor = predicted
                    reason = f"PredictiveFloor: forecast demand {fc.value:.2f} needs {predicted} instances"
            if not window:
                mode = fc.mode
        desired = hpa_min_replicas(policy, floor)
        if desired < floor:
            reason = f"{reason} (capped at maxReplicas {policy.max_replicas})"
        return {
            "time": now,
            "current": target.replicas,
            "desired": desired,
            "mode": mode,
            "reason": reason,
            "minReplicas": desired,
            "maxReplicas": policy.max_replicas,
            "inputs": inputs,
        }

    def _floor(self, target: AutoscaleTarget, now: float) -> dict[str, Any]:
        """Store a new floor (desired replicas → the HPA's minReplicas) only when it changes."""
        with self._lock:
            return self._store(target, self.floor(target, now))

    def _store(self, target: AutoscaleTarget, decision: dict[str, Any]) -> dict[str, Any]:
        """Record a decision when the count, mode or reason changes; apply a new count."""
        changed = decision["desired"] != decision["current"]
        key = (decision["mode"], decision["reason"])
        if changed or self._last.get(target.app_id) != key:
            self._last[target.app_id] = key
            decision["applied"] = self.service.record(target, decision, apply=changed)
            if changed and decision["desired"] == 0 and self.scaled_to_zero is not None:
                self.scaled_to_zero()
        return decision

    def _decide(self, target: AutoscaleTarget, now: float) -> dict[str, Any]:
        with self._lock:
            return self._decide_locked(target, now)

    def _decide_locked(self, target: AutoscaleTarget, now: float) -> dict[str, Any]:
        return self._store(target, self.evaluate(target, now))

    def evaluate(self, target: AutoscaleTarget, now: float) -> dict[str, Any]:
        """This cycle's decision for a local app (neither recorded nor applied). For Utilization metrics
        ``inputs.requests`` holds each instance's request stand-in (its limit), None where it has none."""
        scaler = self._scaler(target)
        obs = self.observe(target, now)
        if "rps" in obs.readings and obs.readings["rps"].total is not None:
            scaler.observe_demand(now, obs.readings["rps"].total)
        decision = scaler.decide(now, obs).to_dict()
        kinds = _utilization_kinds(target.policy)
        if kinds:
            decision["inputs"]["requests"] = {
                kind: {p.name: p.requests.get(kind) for p in obs.pods} for kind in kinds
            }
        return decision

    # ---- the thread
    def start(self) -> AutoscaleLoop:
        self._thread = threading.Thread(target=self._run, name="yunzhou-autoscale", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.run_once()
            except Exception:
                log.exception("autoscaling pass failed")

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
