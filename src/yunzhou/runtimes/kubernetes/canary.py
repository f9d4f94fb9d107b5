"""Canary rollouts on a Kubernetes target: the step driver behind ``KubernetesRuntime.apply``.

When the intent's settings say ``rollout.strategy: canary`` and an older release of the app runs (the
intent this runtime last applied plainly), a :class:`KubeCanaryRun` is kept per app: each pass applies the
stable release's objects plus ``<app>-canary`` with the current step's weight in the route object
(VirtualService or HTTPRoute), and the step advances once its pause has elapsed or its analysis passed.
A step's clock starts when the canary's pods for that step are Ready. Promotion applies the new release
plainly (the ``-canary`` objects are pruned); an abort applies the stable release plainly and reports the
rollout failed with the reason.

Analysis on a cluster: there is no Yunzhou router in front of the pods, so the router's per-release
counters (``maxErrorRate``, ``maxP99Ms``) do not exist. A run whose steps ask for them is aborted before any
traffic moves, with a reason naming the field; a custom ``query`` + ``maxValue`` (evaluated by the injected
``metric_query``, e.g. on the Prometheus that scrapes the mesh) is judged as on the local target.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from yunzhou.domain.canary import CanaryRun, MetricQuery, judge
from yunzhou.runtimes.protocol import AppIntent, AppObservation

log = logging.getLogger("yunzhou.runtimes.kubernetes.canary")

ROUTER_THRESHOLDS = ("maxErrorRate", "maxP99Ms")  # need the local router's per-release counters


@dataclass
class KubeCanaryRun:
    state: CanaryRun
    stable: AppIntent  # the release that ran before: rendered as the app's main objects
    canary_ready: bool = False  # the canary's pods for the current step were Ready at the last pass
    logged: str = ""  # the abort reason already logged


@dataclass(frozen=True)
class CanaryPass:
    """What one pass applies: ``stable`` with ``canary`` at ``weight`` %, or ``stable`` alone (aborted)."""

    stable: AppIntent
    canary: AppIntent | None
    weight: int
    waiting_for: str
    failure: str = ""


def unsupported_analysis(steps: Sequence[Mapping[str, Any]]) -> str:
    """Why a step's analysis cannot be judged on a cluster ('' when every step can)."""
    for i, step in enumerate(steps):
        analysis = step.get("analysis") or {}
        for key in ROUTER_THRESHOLDS:
            if key in analysis:
                return (
                    f"rollout.steps[{i}].analysis.{key} needs the local router's per-release counters, which"
                    " a Kubernetes target does not have; judge the step with a query and maxValue instead"
                )
    return ""


@dataclass
class CanaryDriver:
    clock: Callable[[], float] = time.time
    metric_query: MetricQuery | None = None
    _runs: dict[int, KubeCanaryRun] = field(default_factory=dict)  # app id → its canary run
    _running: dict[int, AppIntent] = field(default_factory=dict)  # app id → intent last applied plainly

    def applied(self, intent: AppIntent) -> None:
        """``intent`` was applied plainly: its release is the one running."""
        self._running[intent.app_id] = intent

    def forget(self, app_id: int) -> None:
        self._runs.pop(app_id, None)
        self._running.pop(app_id, None)

    def plan(self, intent: AppIntent) -> CanaryPass | None:
        """This pass of a canary rollout; None when ``intent`` is to be applied plainly (no canary
        strategy, nothing older known to run, or the canary was promoted)."""
        rollout = intent.settings.get("rollout") or {}
        if rollout.get("strategy") != "canary" or intent.removing:
            self._runs.pop(intent.app_id, None)
            return None
        steps = list(rollout.get("steps") or [])
        now = self.clock()
        run = self._runs.get(intent.app_id)
        if run is None or run.state.canary != intent.release:
            stable = run.stable if run is not None else self._running.get(intent.app_id)
            if stable is None or stable.release == intent.release:
                if stable is None:  # a first release, or this process never applied the one running
                    log.info("%s: no older release known to run; release %d applied plainly",
                             intent.address, intent.release)  # fmt: skip
                self._runs.pop(intent.app_id, None)
                return None
            run = KubeCanaryRun(CanaryRun(stable.release, intent.release, step_started=now), stable)
            run.state.aborted = unsupported_analysis(steps)
            if run.state.aborted:
                run.state.aborted = f"canary aborted before any traffic moved: {run.state.aborted}"
            self._runs[intent.app_id] = run
        state = run.state
        command = rollout.get("command")  # from `yunzhou rollout promote|abort`
        if command == "promote" and not state.aborted:
            state.step = len(steps)
        elif command == "abort" and not state.aborted:
            state.aborted = f"rollout aborted by a user at step {min(state.step + 1, len(steps))}"
        if not state.aborted and state.step < len(steps) and run.canary_ready:
            weight = state.weight(steps)
            verdict, reason = judge(steps[state.step], state, now, None, self.metric_query)
            if verdict == "next":
                state.step += 1
                state.step_started = now
                run.canary_ready = False  # the next step may need more canary pods
            elif verdict == "abort":
                state.aborted = f"canary aborted at step {state.step + 1} ({weight}%): {reason}"
        if state.aborted and state.aborted != run.logged:
            log.warning("%s: %s; traffic back to release %d", intent.address, state.aborted, state.stable)
            run.logged = state.aborted
        if state.step >= len(steps) and not state.aborted:
            self._runs.pop(intent.app_id, None)
            return None  # promoted: the new release applied plainly prunes <app>-canary
        where = f"canary step {min(state.step + 1, len(steps))}/{len(steps)}: {state.weight(steps)}%"
        where += f" to release {state.canary}"
        if state.aborted:
            return CanaryPass(run.stable, None, 0, where, state.aborted)
        return CanaryPass(run.stable, intent, state.weight(steps), where)

    def observed(self, intent: AppIntent, step: CanaryPass, obs: AppObservation) -> AppObservation:
        """Note whether the step's canary pods are Ready (the step's clock starts then) and report the
        pass as the rollout's progress: never converged while the run lasts."""
        run = self._runs.get(intent.app_id)
        if run is not None and step.canary is not None:
            want = max(1, math.ceil(run.stable.replicas * step.weight / 100))
            ready = sum(1 for i in obs.instances if i.ready and i.release == run.state.canary)
            run.canary_ready = ready >= want
            if not run.canary_ready:
                run.state.step_started = self.clock()
            crashing = [
                i
                for i in obs.instances
                if i.release == run.state.canary and i.state == "crashloop" and i.restarts >= 3
            ]
            if crashing and not run.state.aborted:  # the next pass applies the stable release alone
                run.state.aborted = (
                    f"canary aborted at step {run.state.step + 1} ({step.weight}%): CrashLoopBackOff: pod"
                    f" {crashing[0].instance_id} keeps exiting ({crashing[0].last_exit})"
                )
        return replace(
            obs,
            ready_current=sum(1 for i in obs.instances if i.ready and i.release == intent.release),
            converged=False,
            waiting_for=step.waiting_for,
            failure=step.failure or obs.failure,
        )
