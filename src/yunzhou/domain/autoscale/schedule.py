"""Scheduled windows: which window (if any) is active at an instant, and the min/max it imposes."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from yunzhou.domain.autoscale.cron import last_fire, parse_cron
from yunzhou.domain.autoscale.policy import ScheduleWindow


def active_window(windows: Sequence[ScheduleWindow], now: float) -> tuple[ScheduleWindow, datetime] | None:
    """The window whose cron fired most recently within its duration before ``now`` (unix seconds),
    with the instant it started; None when no window is active. The latest start wins."""
    at = datetime.fromtimestamp(now, UTC)
    best: tuple[ScheduleWindow, datetime] | None = None
    for window in windows:
        # A window is active on [start, start + duration): the start must lie in (now - duration, now].
        earliest = at - timedelta(seconds=window.duration_seconds) + timedelta(microseconds=1)
        start = last_fire(parse_cron(window.cron), window.timezone, at, earliest)
        if start is not None and (best is None or start > best[1]):
            best = (window, start)
    return best


def bounds_at(
    windows: Sequence[ScheduleWindow], now: float, min_replicas: int, max_replicas: int
) -> tuple[int, int, str | None]:
    """(min, max, active window name) at ``now``. A window's minReplicas above the max raises the max."""
    found = active_window(windows, now)
    if found is None:
        return min_replicas, max_replicas, None
    window = found[0]
    lo = window.min_replicas if window.min_replicas is not None else min_replicas
    hi = window.max_replicas if window.max_replicas is not None else max_replicas
    return lo, max(lo, hi), window.name
