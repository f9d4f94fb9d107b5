"""Canary rollouts on a Kubernetes target: the step driver behind ``KubernetesRuntime.apply``.

When the intent's settings say ``rollout.strategy: canary`` and an older release of the app runs (the
intent this runtime last applied plainly), a :class:`KubeCanaryRun` is kept per app: each pass applies the
stable release's objects plus ``<app>-canary`` with the current step's weight in the route object
(VirtualService or HTTPRoute), and the step advances once its pause has elapsed or its analysis passed.
A step's clock starts when the canary's pods for that step are Ready. Promotion applies the new release
plainly (the ``-canary`` objects are pruned); an abort applies the stable release plainly and reports the
rollout failed with the reason.

Blue-green is the same run with one step at 0 %: the new release runs at full size as ``<app>-canary``
beside the old one, reachable only with the ``x-canary: always`` header (the preview); once its pods are
Ready and its ``analysis`` (if any) passed, or on ``promote``, the new release is applied plainly — all
traffic switches in one apply of the route object and the old pods go.

Analysis on a cluster: there is no Yunzhou router in front of the pods, so the router's per-release
counters (``maxErrorRate``, ``maxP99Ms``) do not exist. A run whose steps ask for them is aborted before any
traffic moves, with a reason naming the field; a custom ``query`` + ``maxValue`` (evaluated by the injected
``metric_query``, e.g. on the Prometheus that scrapes the mesh) is judged as on the local target.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from yunzhou.domain.canary import CanaryRun, MetricQuery, analysis_options, judge
from yunzhou.runtimes.kubernetes.render_traffic import canary_replicas
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


def unsupported_analysis(steps: Sequence[Mapping[str, Any]], blue_green: bool = False) -> str:
    """Why a step's analysis cannot be judged on a cluster ('' when every step can)."""
    for i, step in enumerate(steps):
        analysis = step.get("analysis") or {}
        for key in ROUTER_THRESHOLDS:
            if key in analysis:
                where = "rollout.analysis" if blue_green else f"rollout.steps[{i}].analysis"
                return (
                    f"{where}.{key} needs the local router's per-release counters, which a Kubernetes"
                    " target does not have; judge the step with a query and maxValue instead"
                )
    return ""


def rollout_steps(rollout: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The steps a run goes through: a canary's own, or blue-green's one step at 0 % that ends when the
    new release is Ready (and its analysis, if any, passed)."""
    if rollout.get("strategy") == "blue-green":
        analysis = rollout.get("analysis")
        return [{"weight": 0, "analysis": analysis} if analysis else {"weight": 0, "pause": "0s"}]
    return list(rollout.get("steps") or [])


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
        kind = rollout.get("strategy")
        if kind not in ("canary", "blue-green") or intent.removing:
            self._runs.pop(intent.app_id, None)
            return None
        blue_green = kind == "blue-green"
        steps = rollout_steps(rollout)
        now = self.clock()
        run = self._runs.get(intent.app_id)
        if run is None or run.state.canary != intent.release:
            stable = run.stable if run is not None else self._running.get(intent.app_id)
            if stable is None and intent.previous is not None:  # e.g. this process restarted mid-rollout
                stable = intent.previous
                log.info("%s: %s of release %d against release %d (from the store) starts again",
                         intent.address, kind, intent.release, stable.release)  # fmt: skip
            if stable is None or stable.release == intent.release:
                if stable is None:  # a first release
                    log.info("%s: no older release known to run; release %d applied plainly",
                             intent.address, intent.release)  # fmt: skip
                self._runs.pop(intent.app_id, None)
                return None
            run = KubeCanaryRun(CanaryRun(stable.release, intent.release, step_started=now), stable)
            run.state.aborted = unsupported_analysis(steps, blue_green)
            if run.state.aborted:
                run.state.aborted = f"{kind} aborted before any traffic moved: {run.state.aborted}"
            self._runs[intent.app_id] = run
        state = run.state
        command = rollout.get("command")  # from `yunzhou rollout promote|abort`
        if command == "promote" and not state.aborted:
            state.step = len(steps)
        elif command == "abort" and not state.aborted:
            state.aborted = "rollout aborted by a user " + (
                "before the switch" if blue_green else f"at step {min(state.step + 1, len(steps))}"
            )
        if not state.aborted and state.step < len(steps) and run.canary_ready:
            weight = state.weight(steps)
            options = analysis_options(intent.settings)
            verdict, reason = judge(steps[state.step], state, now, None, self.metric_query, **options)
            state.judged(verdict, reason)
            if verdict == "next":
                state.step += 1
                state.step_started = now
                run.canary_ready = False  # the next step may need more canary pods
            elif verdict == "abort":
                at = "before the switch" if blue_green else f"at step {state.step + 1} ({weight}%)"
                state.aborted = f"{kind} aborted {at}: {reason}"
        if state.aborted and state.aborted != run.logged:
            log.warning("%s: %s; traffic back to release %d", intent.address, state.aborted, state.stable)
            run.logged = state.aborted
        if state.step >= len(steps) and not state.aborted:
            self._runs.pop(intent.app_id, None)
            return None  # promoted: the new release applied plainly prunes <app>-canary
        if blue_green:
            where = f"blue-green: release {state.canary} beside release {state.stable}, preview only"
        else:
            where = f"canary step {min(state.step + 1, len(steps))}/{len(steps)}: {state.weight(steps)}%"
            where += f" to release {state.canary}"
        if state.aborted:
            return CanaryPass(run.stable, None, 0, where, state.aborted)
        return CanaryPass(run.stable, intent, state.weight(steps), state.noted(where))

    def observed(self, intent: AppIntent, step: CanaryPass, obs: AppObservation) -> AppObservation:
        """Note whether the step's canary pods are Ready (the step's clock starts then) and report the
        pass as the rollout's progress: never converged while the run lasts."""
        run = self._runs.get(intent.app_id)
        if run is not None and step.canary is not None:
            want = canary_replicas(step.canary, run.stable.replicas, step.weight)
            ready = sum(1 for i in obs.instances if i.ready and i.release == run.state.canary)
            run.canary_ready = ready >= want
            if not run.canary_ready:
                run.state.step_started = self.clock()
                run.state.note = ""
            crashing = [
                i
                for i in obs.instances
                if i.release == run.state.canary and i.state == "crashloop" and i.restarts >= 3
            ]
            if crashing and not run.state.aborted:  # the next pass applies the stable release alone
                blue_green = (step.canary.settings.get("rollout") or {}).get("strategy") == "blue-green"
                at = (
                    "blue-green aborted before the switch"
                    if blue_green
                    else (f"canary aborted at step {run.state.step + 1} ({step.weight}%)")
                )
                run.state.aborted = (
                    f"{at}: CrashLoopBackOff: pod {crashing[0].instance_id} keeps exiting"
                    f" ({crashing[0].last_exit})"
                )
        return replace(
            obs,
            ready_current=sum(1 for i in obs.instances if i.ready and i.release == intent.release),
            converged=False,
            waiting_for=step.waiting_for,
            failure=step.failure or obs.failure,
        )
