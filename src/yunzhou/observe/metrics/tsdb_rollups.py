"""Downsampling: raw samples → per-bucket rollups, and the samples a selector sees over rollups."""

from __future__ import annotations

import math
from array import array

from yunzhou.observe.metrics.chunks import Rollups
from yunzhou.observe.metrics.tsdb_stale import is_stale


def is_counter_name(name: str) -> bool:
    """Counters by naming convention; only they get reset-preserving samples from rollups."""
    return name.endswith(("_total", "_count", "_sum", "_bucket"))


def rollup_slice(r: Rollups, lo: int, hi: int) -> Rollups:
    return Rollups(
        r.t[lo:hi],
        r.last[lo:hi],
        r.min[lo:hi],
        r.max[lo:hi],
        r.sum[lo:hi],
        r.count[lo:hi],
        r.reset_t[lo:hi],
        r.reset_pre[lo:hi],
    )


def build_rollups(ts: array[int], vs: array[float], step: int, prev: float | None) -> Rollups:
    """Aggregate samples into buckets of ``step`` ms; ``prev`` is the value before the first sample."""
    r = Rollups.empty()
    bucket = None
    last = mn = mx = sm = 0.0
    cnt = 0
    t_last = 0
    reset_t = -1
    reset_pre = math.nan

    def emit() -> None:
        r.t.append(t_last)
        r.last.append(last)
        r.min.append(mn)
        r.max.append(mx)
        r.sum.append(sm)
        r.count.append(float(cnt))
        r.reset_t.append(reset_t)
        r.reset_pre.append(reset_pre)

    for t, v in zip(ts, vs, strict=True):
        if is_stale(v):
            continue
        b = t // step
        if b != bucket:
            if bucket is not None:
                emit()
            bucket, mn, mx, sm, cnt, reset_t, reset_pre = b, v, v, 0.0, 0, -1, math.nan
        if prev is not None and v < prev:
            if reset_t < 0:
                reset_t, reset_pre = t, 0.0
            reset_pre += prev
        mn, mx = min(mn, v), max(mx, v)
        sm += v
        cnt += 1
        last, t_last, prev = v, t, v
    if bucket is not None:
        emit()
    return r


def expand_rollups(r: Rollups, counter: bool) -> tuple[array[int], array[float]]:
    """The samples a selector sees over rollups: each bucket's last value; for counters, a bucket with
    resets first shows the summed pre-reset value and a drop to 0, so rate() counts the same increase."""
    ts, vs = array("q"), array("d")
    for i in range(len(r.t)):
        if counter and r.reset_t[i] >= 0:
            ts.append(r.reset_t[i] - 1)
            vs.append(r.reset_pre[i])
            if r.reset_t[i] < r.t[i]:
                ts.append(r.reset_t[i])
                vs.append(0.0)
        ts.append(r.t[i])
        vs.append(r.last[i])
    return ts, vs
