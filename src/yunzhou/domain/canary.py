"""Canary step arithmetic and judgement, shared by the runtimes' step drivers (pure: no I/O).

A canary run moves traffic weight to a new release step by step (``rollout.steps``). A step with a pause
waits; a step with an analysis is judged on what the target can measure: per-release request counters
(the local router's) and/or a custom query on the metrics engine (``query`` + ``maxValue``), and decides
continue / next step / abort. See docs/traffic.md.

No traffic is not a failure: when the router's counters show no request to the canary (or fewer than
``minRequests``) once the window ended, the step keeps waiting with the reason "no traffic to analyse"
while the stable release serves, until the progress deadline aborts it with that reason; with
``rollout.allowNoTraffic`` an analysis without any data promotes instead.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from yunzhou.domain.errors import UserError
from yunzhou.domain.settings import DEFAULT_PROGRESS_DEADLINE_S, progress_deadline
from yunzhou.domain.traffic import parse_duration

log = logging.getLogger("yunzhou.canary")
NO_TRAFFIC = "no traffic to analyse"


@dataclass
class ReleaseCounts:
    total: float = 0.0
    errors: float = 0.0  # 5xx
    buckets: dict[float, float] = field(default_factory=dict)  # le → cumulative count


def p99_ms(before: ReleaseCounts, after: ReleaseCounts) -> float | None:
    """The 99th percentile latency (bucket upper bound) of the requests between two readings."""
    bounds = sorted(after.buckets)
    if not bounds:
        return None
    total = after.buckets[bounds[-1]] - before.buckets.get(bounds[-1], 0.0)
    if total <= 0:
        return None
    for le in bounds:
        if after.buckets[le] - before.buckets.get(le, 0.0) >= 0.99 * total:
            return le * 1000.0
    return math.inf


@dataclass
class CanaryRun:
    stable: int  # release
    canary: int  # release
    step: int = 0
    step_started: float = 0.0
    baseline: ReleaseCounts = field(default_factory=ReleaseCounts)  # canary counters at the step's start
    aborted: str = ""
    note: str = ""  # why the current step is waiting (e.g. "no traffic to analyse …"), shown in status

    def weight(self, steps: list[Mapping[str, Any]]) -> int:
        if self.aborted or self.step >= len(steps):
            return 0
        return int(steps[self.step]["weight"])

    def noted(self, where: str) -> str:
        """``where`` the run is, with why its step waits (if it says)."""
        return f"{where} — {self.note}" if self.note else where

    def judged(self, verdict: str, reason: str) -> None:
        """Keep a waiting step's reason for status; a passed step's own reason (no data) is logged."""
        self.note = reason if verdict == "continue" else ""
        if verdict == "next" and reason:
            log.info("canary of release %d, step %d: %s", self.canary, self.step + 1, reason)


MetricQuery = Callable[[str], float | None]  # PromQL → its value now (highest sample); None: no data


def analysis_options(settings: Mapping[str, Any]) -> dict[str, Any]:
    """``judge``'s keyword options from a release's effective settings (``rollout.allowNoTraffic``,
    ``rollout.progressDeadlineSeconds``)."""
    rollout = settings.get("rollout")
    allow = isinstance(rollout, Mapping) and rollout.get("allowNoTraffic") is True
    return {"allow_no_traffic": allow, "deadline": progress_deadline(settings)}


def judge(
    step: Mapping[str, Any],
    run: CanaryRun,
    now: float,
    counts: ReleaseCounts | None,
    query: MetricQuery | None = None,
    *,
    allow_no_traffic: bool = False,
    deadline: float = DEFAULT_PROGRESS_DEADLINE_S,
) -> tuple[str, str]:
    """("continue" | "next" | "abort", reason) for the current step. ``counts``: the canary's router
    counters now (zeros when the router answered without any for it; None when it could not be read).
    A "continue" with a reason says why the step waits; a "next" with one says why it passed without
    data. ``deadline`` (seconds since the step started) bounds a wait for traffic."""
    elapsed = now - run.step_started
    analysis = step.get("analysis")
    if analysis is None:
        if "pause" not in step:
            return "continue", ""  # neither pause nor analysis: wait for `yunzhou rollout promote`
        return ("next", "") if elapsed >= _seconds(step["pause"]) else ("continue", "")
    window = _seconds(analysis.get("window", "1m"))
    verdict = _judge_query(analysis, elapsed >= window, query, allow_no_traffic)
    if verdict[0] != "next":
        return verdict
    passed = verdict[1]  # why a query without data passed (allowNoTraffic), else ""
    max_rate = analysis.get("maxErrorRate")
    max_p99 = analysis.get("maxP99Ms")
    if max_rate is None and max_p99 is None:  # a query alone: the router's counters are not needed
        return ("continue", "") if elapsed < window else ("next", passed)
    if counts is None:
        return ("continue", "") if elapsed < window else ("abort", "analysis: no router metrics")
    total = counts.total - run.baseline.total
    errors = counts.errors - run.baseline.errors
    minimum = int(analysis.get("minRequests", 20))
    if max_rate is not None and total >= minimum and errors / total > float(max_rate):
        return "abort", f"error rate {errors / total:.3f} > {float(max_rate):g} over {int(total)} requests"
    if elapsed < window:
        return "continue", ""
    if total < minimum:
        return _too_little_traffic(total, minimum, elapsed, allow_no_traffic, deadline)
    if max_p99 is not None:
        p99 = p99_ms(run.baseline, counts)
        if p99 is not None and p99 > float(max_p99):
            return "abort", f"p99 latency {p99:g} ms > {float(max_p99):g} ms over {int(total)} requests"
    return "next", passed


def _too_little_traffic(
    total: float, minimum: int, elapsed: float, allow_no_traffic: bool, deadline: float
) -> tuple[str, str]:
    """The window ended with fewer than ``minRequests`` requests: wait (the stable release serves) until
    ``deadline``, then abort; with no request at all and allowNoTraffic, promote."""
    what = NO_TRAFFIC if total <= 0 else f"too little traffic to analyse ({int(total)} of {minimum} requests)"
    if total <= 0 and allow_no_traffic:
        return "next", f"{what}; promoted without analysis (allowNoTraffic)"
    if elapsed >= deadline:
        return "abort", f"{what} within the progress deadline ({deadline:g} s)"
    return "continue", f"{what}; waiting for requests (up to the progress deadline, {deadline:g} s)"


def _judge_query(
    analysis: Mapping[str, Any], window_over: bool, query: MetricQuery | None, allow_no_traffic: bool = False
) -> tuple[str, str]:
    """The analysis' custom query: above ``maxValue`` aborts at once; no data is inconclusive until the
    window ends, then aborts (never promote blindly: a query without data may be a wrong query) unless
    allowNoTraffic says an analysis without data promotes. ("next", why) when it passes or is absent."""
    expr = analysis.get("query")
    if not expr:
        return "next", ""
    limit = float(analysis.get("maxValue", 0.0))
    value: float | None = None
    if query is not None:
        try:
            value = query(str(expr))
        except UserError as exc:  # the engine refused the expression: waiting will not fix it
            return "abort", f"query {expr!r}: " + ("; ".join(p.message for p in exc.problems) or exc.message)
        except Exception:  # the engine not answering counts as no data
            log.warning("evaluating the canary query %r failed", expr, exc_info=True)
    if value is not None and value > limit:
        return "abort", f"query {expr!r} = {value:g} > maxValue {limit:g}"
    if value is None:
        if not window_over:
            return "continue", ""
        if allow_no_traffic:
            return "next", f"no data for query {expr!r}; promoted without analysis (allowNoTraffic)"
        return "abort", f"no data for query {expr!r}"
    return "next", ""


def query_value(data: Mapping[str, Any]) -> float | None:
    """One number from a Prometheus query result (``data``): a scalar, or the highest sample of a vector;
    None for an empty result or NaN."""
    kind = data.get("resultType")
    result = data.get("result")
    if kind == "scalar" and isinstance(result, list) and len(result) == 2:
        values = [float(result[1])]
    elif kind == "vector" and isinstance(result, list):
        values = [float(item["value"][1]) for item in result]
    else:
        return None
    values = [v for v in values if not math.isnan(v)]
    return max(values) if values else None


def _seconds(text: object) -> float:
    return parse_duration(text, "", []) or 0.0


def engine_query(engine: Any, clock: Callable[[], float] = time.time) -> MetricQuery:
    """A MetricQuery over a metrics engine (anything with ``instant(expr, t) -> data``, e.g.
    ``yunzhou.observe.metrics.QueryEngine``), evaluated at the current wall-clock time."""

    def evaluate(expr: str) -> float | None:
        return query_value(engine.instant(expr, clock()))

    return evaluate
