"""Canary rollouts on the local target: step state, and analysis of the router's per-release counters.

A canary run keeps the stable release's instances, starts instances of the new release beside them, and
moves traffic weight step by step (``rollout.steps``). A step with a pause waits; a step with an analysis
compares the canary's requests in the step's window (read from the router's ``/metrics``, counters
differenced against the step's start) with the thresholds and decides continue / promote / abort. The
analysis also runs while the window is open, so a clearly failing canary is aborted early. The step
state and the judge live in ``yunzhou.domain.canary`` (shared with the Kubernetes step driver); what is
here reads the router's counters.
"""

from __future__ import annotations

import math
import re

from yunzhou.domain.canary import ReleaseCounts

_SAMPLE_RE = re.compile(
    r"^(yunzhou_router_requests_total|yunzhou_router_request_duration_seconds_bucket)\{([^}]*)\} (\S+)$"
)
_LABEL_RE = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def release_counts(metrics_text: str, app: str) -> dict[int, ReleaseCounts]:
    """Per-release request counters of one app from the router's Prometheus text."""
    out: dict[int, ReleaseCounts] = {}
    for line in metrics_text.splitlines():
        m = _SAMPLE_RE.match(line)
        if m is None:
            continue
        labels = dict(_LABEL_RE.findall(m.group(2)))
        if labels.get("app") != app or not labels.get("release", "").isdigit():
            continue
        counts = out.setdefault(int(labels["release"]), ReleaseCounts())
        value = float(m.group(3))
        if m.group(1) == "yunzhou_router_requests_total":
            counts.total += value
            if labels.get("code") == "5xx":
                counts.errors += value
        else:
            le = math.inf if labels.get("le") == "+Inf" else float(labels.get("le", "inf"))
            counts.buckets[le] = value
    return out
