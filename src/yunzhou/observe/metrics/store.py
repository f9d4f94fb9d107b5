"""MetricStore: the embedded time-series store (series → append-only samples, persisted in SQLite).

Layout: a series' newest samples live in memory (the *head*) and are written, every ``flush_interval``
seconds, as rows of the ``head`` table; every ``chunk_samples`` samples the head is sealed into one
compressed chunk (``chunks`` table) and its rows are deleted, in the same transaction. A crash therefore
loses at most the samples appended since the last flush; SQLite (WAL) keeps the file consistent.
``compact()`` applies retention and replaces raw chunks older than ``raw_retention`` by rollups (one
entry per ``rollup_interval``); it runs on its own from the append path every ``compact_interval``.
"""

from __future__ import annotations

import json
import logging
import math
import sqlite3
import threading
import time
from array import array
from bisect import bisect_left, bisect_right
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from yunzhou.domain.errors import UserError
from yunzhou.observe.metrics.chunks import (
    Rollups,
    decode_rollups,
    decode_samples,
    encode_rollups,
    encode_samples,
)
from yunzhou.observe.metrics.tsdb_index import METRIC_NAME, LabelIndex, Labels, Matcher, labels_key
from yunzhou.observe.metrics.tsdb_index import validate_series as _validate
from yunzhou.observe.metrics.tsdb_rollups import build_rollups, expand_rollups, is_counter_name, rollup_slice
from yunzhou.observe.metrics.tsdb_stale import STALE_NAN, is_stale

log = logging.getLogger("yunzhou.observe.metrics")

DAY = 86_400.0
RAW, ROLLUP = 0, 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS series (id INTEGER PRIMARY KEY, name TEXT NOT NULL, labels TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS head (
  series_id INTEGER NOT NULL, t INTEGER NOT NULL, v REAL, PRIMARY KEY (series_id, t)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS chunks (
  series_id INTEGER NOT NULL, kind INTEGER NOT NULL, min_t INTEGER NOT NULL, max_t INTEGER NOT NULL,
  n INTEGER NOT NULL, data BLOB NOT NULL, PRIMARY KEY (series_id, kind, min_t)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS chunks_by_age ON chunks (kind, max_t);
"""


@dataclass
class SeriesSamples:
    """What a query sees of one series within a time range.

    ``ts``/``vs``: samples in time order (ms, value); below ``raw_from`` they are expanded from rollups.
    ``rollups``: the rollup buckets in range (None when the range holds raw data only), so that
    *_over_time functions use min/max/sum/count rather than one sample per bucket.
    """

    sid: int
    labels: Labels
    ts: array[int]
    vs: array[float]
    rollups: Rollups | None = None
    raw_from: int = -(2**62)


@dataclass
class _Series:
    key: Labels
    ts: array[int] = field(default_factory=lambda: array("q"))
    vs: array[float] = field(default_factory=lambda: array("d"))
    sealed: list[tuple[array[int], array[float]]] = field(default_factory=list)  # not yet written
    last_t: int = -(2**62)
    is_counter: bool = False


@dataclass(frozen=True)
class CompactResult:
    deleted_chunks: int
    downsampled_chunks: int
    dropped_series: int


class MetricStore:
    """Thread-safe. Open with :meth:`open`; close when done (a final flush)."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        read_conn: sqlite3.Connection | None,
        *,
        retention: float,
        raw_retention: float,
        rollup_interval: float,
        flush_interval: float,
        chunk_samples: int,
        compact_interval: float,
        cache_samples: int,
        clock: Callable[[], float],
    ) -> None:
        self._conn = conn
        self._read_conn = read_conn
        self.retention = retention
        self.raw_retention = raw_retention
        self.rollup_interval = rollup_interval
        self.flush_interval = flush_interval
        self.chunk_samples = chunk_samples
        self.compact_interval = compact_interval
        self._clock = clock
        self._lock = threading.RLock()
        self._read_lock = threading.Lock()
        self._index = LabelIndex()
        self._series: dict[int, _Series] = {}
        self._ids: dict[Labels, int] = {}
        self._fast_ids: dict[tuple[str, Labels], int] = {}
        self._next_id = 1
        self._pending_series: list[tuple[int, Labels]] = []
        self._pending: list[tuple[int, int, float]] = []
        self._last_flush = clock()
        self._max_t = -(2**62)
        self._last_compact_t: int | None = None
        self._cache: OrderedDict[tuple[int, int, int], Any] = OrderedDict()
        self._cache_samples = 0
        self._cache_limit = cache_samples
        self._closed = False
        self.appended = 0
        self.out_of_order = 0
        self.rejected = 0
        self._rejected_names: set[object] = set()
        self._cache_lock = threading.Lock()
        self._load()

    # ---- opening -----------------------------------------------------------------------------------
    @classmethod
    def open(
        cls,
        path: str | Path | None,
        *,
        retention: float = 15 * DAY,
        raw_retention: float = 2 * DAY,
        rollup_interval: float = 300.0,
        flush_interval: float = 10.0,
        chunk_samples: int = 120,
        compact_interval: float = 600.0,
        cache_samples: int = 2_000_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> MetricStore:
        """Open (or create) the store. ``path``: a data directory (→ ``metrics.db`` inside it), a
        ``.db`` file, or None for memory only. Durations are seconds."""
        if retention <= 0 or raw_retention <= 0 or rollup_interval <= 0:
            raise ValueError("retention, raw_retention and rollup_interval must be positive")
        if chunk_samples < 2:
            raise ValueError("chunk_samples must be at least 2")
        read_conn = None
        if path is None:
            conn = sqlite3.connect(":memory:", check_same_thread=False, isolation_level=None)
        else:
            p = Path(path)
            if p.suffix not in (".db", ".sqlite", ".sqlite3"):
                p = p / "metrics.db"
            p.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(p, check_same_thread=False, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            read_conn = sqlite3.connect(p, check_same_thread=False, isolation_level=None)
        conn.executescript(_SCHEMA)
        return cls(
            conn,
            read_conn,
            retention=retention,
            raw_retention=raw_retention,
            rollup_interval=rollup_interval,
            flush_interval=flush_interval,
            chunk_samples=chunk_samples,
            compact_interval=compact_interval,
            cache_samples=cache_samples,
            clock=clock,
        )

    def _load(self) -> None:
        for sid, name, labels_json in self._conn.execute("SELECT id, name, labels FROM series"):
            key = labels_key(name, json.loads(labels_json))
            self._add_series(sid, key)
            self._next_id = max(self._next_id, sid + 1)
        for sid, max_t in self._conn.execute("SELECT series_id, max(max_t) FROM chunks GROUP BY series_id"):
            s = self._series.get(sid)
            if s is not None:
                s.last_t = max(s.last_t, max_t)
        for sid, t, v in self._conn.execute("SELECT series_id, t, v FROM head ORDER BY series_id, t"):
            s = self._series.get(sid)
            if s is None or t <= s.last_t:
                continue
            s.ts.append(t)
            s.vs.append(math.nan if v is None else v)
            s.last_t = t
        for s in self._series.values():
            self._max_t = max(self._max_t, s.last_t)

    def _add_series(self, sid: int, key: Labels) -> _Series:
        s = _Series(key=key, is_counter=is_counter_name(dict(key)[METRIC_NAME]))
        self._series[sid] = s
        self._ids[key] = sid
        self._index.add(sid, key)
        return s

    # ---- writing -----------------------------------------------------------------------------------
    def append(self, name: str, labels: Mapping[str, str], value: float, t: float) -> None:
        """Add one sample (``t`` in unix seconds). Samples not newer than the series' last are dropped.
        An invalid metric or label name is a UserError."""
        self.append_many(((name, labels, value, t),), strict=True)

    def append_many(
        self, rows: Iterable[tuple[str, Mapping[str, str], float, float]], *, strict: bool = False
    ) -> None:
        """Add samples. A row with an invalid name, labels or value is skipped and counted
        (``stats()["rejected"]``) so that one bad metric of a scraped app never costs the rest of the
        scrape; with ``strict`` it raises UserError instead (rows before it are kept)."""
        with self._lock:
            if self._closed:
                raise RuntimeError("the metric store is closed")
            for name, labels, value, t in rows:
                try:
                    # the labels as given, sorted: one C-level call, mapped to the series id once
                    raw_key = (name, tuple(sorted(labels.items())))
                    sid = self._fast_ids.get(raw_key)
                    if sid is None:
                        key = labels_key(name, labels)
                        sid = self._ids.get(key)
                        if sid is None:
                            _validate(name, labels)
                    t_ms = round(t * 1000)
                    v = float(value)
                except (UserError, TypeError, ValueError, AttributeError, OverflowError) as e:
                    if strict:
                        raise
                    self._reject(name, e)
                    continue
                if sid is None:
                    sid = self._next_id
                    self._next_id += 1
                    self._add_series(sid, key)
                    self._pending_series.append((sid, key))
                    self._fast_ids[raw_key] = sid
                elif raw_key not in self._fast_ids:
                    self._fast_ids[raw_key] = sid
                s = self._series[sid]
                if t_ms <= s.last_t:
                    self.out_of_order += 1
                    continue
                s.ts.append(t_ms)
                s.vs.append(v)
                s.last_t = t_ms
                self._pending.append((sid, t_ms, v))
                self.appended += 1
                if t_ms > self._max_t:
                    self._max_t = t_ms
                if len(s.ts) >= self.chunk_samples:
                    s.sealed.append((s.ts, s.vs))
                    s.ts, s.vs = array("q"), array("d")
            now = self._clock()
            if now - self._last_flush >= self.flush_interval:
                self._flush_locked()
                if self._last_compact_t is None:
                    self._last_compact_t = self._max_t
                elif self._max_t - self._last_compact_t >= self.compact_interval * 1000:
                    self._compact_locked(self._max_t / 1000)

    def _reject(self, name: object, error: Exception) -> None:
        self.rejected += 1
        if len(self._rejected_names) < 1000 and name not in self._rejected_names:
            self._rejected_names.add(name)
            log.warning("metric store: skipped a sample of %r: %s", name, error)

    def mark_stale(self, name: str, labels: Mapping[str, str], t: float) -> None:
        """Record that the series ended at ``t`` (as Prometheus does when a target stops exposing it)."""
        self.append(name, labels, STALE_NAN, t)

    def flush(self) -> None:
        with self._lock:
            self._flush_locked()

    def _flush_locked(self) -> None:
        self._last_flush = self._clock()
        if not (self._pending or self._pending_series or any(s.sealed for s in self._series.values())):
            return
        conn = self._conn
        sealed_upto: dict[int, int] = {}
        chunk_rows = []
        for sid, s in self._series.items():
            for ts, vs in s.sealed:
                chunk_rows.append((sid, RAW, ts[0], ts[-1], len(ts), encode_samples(ts, vs)))
                sealed_upto[sid] = ts[-1]
        conn.execute("BEGIN")
        try:
            conn.executemany(
                "INSERT OR REPLACE INTO series (id, name, labels) VALUES (?, ?, ?)",
                [
                    (sid, dict(key)[METRIC_NAME], json.dumps({k: v for k, v in key if k != METRIC_NAME}))
                    for sid, key in self._pending_series
                ],
            )
            conn.executemany(
                "INSERT OR REPLACE INTO head (series_id, t, v) VALUES (?, ?, ?)",
                [
                    (sid, t, None if v != v else v)
                    for sid, t, v in self._pending
                    if t > sealed_upto.get(sid, -(2**62)) and not is_stale(v)
                ],
            )
            conn.executemany(
                "INSERT OR REPLACE INTO chunks (series_id, kind, min_t, max_t, n, data) VALUES (?,?,?,?,?,?)",
                chunk_rows,
            )
            conn.executemany("DELETE FROM head WHERE series_id = ? AND t <= ?", list(sealed_upto.items()))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        self._pending_series.clear()
        self._pending.clear()
        for sid, s in self._series.items():
            for ts, vs in s.sealed:
                self._cache_put((sid, RAW, ts[0]), (ts, vs), len(ts))
            s.sealed.clear()

    # ---- maintenance -------------------------------------------------------------------------------
    def compact(self, now: float | None = None) -> CompactResult:
        """Apply retention and downsampling as of ``now`` (unix seconds; default: the newest sample)."""
        with self._lock:
            self._flush_locked()
            return self._compact_locked(self._max_t / 1000 if now is None else now)

    def _compact_locked(self, now: float) -> CompactResult:
        self._last_compact_t = round(now * 1000)
        conn = self._conn
        keep_from = round((now - self.retention) * 1000)
        step = round(self.rollup_interval * 1000)
        raw_until = (round((now - self.raw_retention) * 1000) // step) * step
        conn.execute("BEGIN")
        try:
            deleted = conn.execute("DELETE FROM chunks WHERE max_t < ?", (keep_from,)).rowcount
            conn.execute("DELETE FROM head WHERE t < ?", (keep_from,))
            old = conn.execute(
                "SELECT series_id, min_t, data FROM chunks WHERE kind = ? AND max_t < ? "
                "ORDER BY series_id, min_t",
                (RAW, raw_until),
            ).fetchall()
            by_series: dict[int, list[tuple[int, bytes]]] = {}
            for sid, min_t, data in old:
                by_series.setdefault(sid, []).append((min_t, data))
            for sid, blobs in by_series.items():
                prev_row = conn.execute(
                    "SELECT data FROM chunks WHERE series_id = ? AND kind = ? ORDER BY min_t DESC LIMIT 1",
                    (sid, ROLLUP),
                ).fetchone()
                prev = None
                if prev_row is not None:
                    pr = decode_rollups(prev_row[0])
                    prev = pr.last[-1] if len(pr) else None
                ts, vs = array("q"), array("d")
                for _, data in blobs:
                    a, b = decode_samples(data)
                    ts.extend(a)
                    vs.extend(b)
                r = build_rollups(ts, vs, step, prev)
                if len(r):
                    conn.execute(
                        "INSERT OR REPLACE INTO chunks (series_id, kind, min_t, max_t, n, data) "
                        "VALUES (?,?,?,?,?,?)",
                        (sid, ROLLUP, r.t[0], r.t[-1], len(r), encode_rollups(r)),
                    )
                conn.executemany(
                    "DELETE FROM chunks WHERE series_id = ? AND kind = ? AND min_t = ?",
                    [(sid, RAW, min_t) for min_t, _ in blobs],
                )
            live = {sid for (sid,) in conn.execute("SELECT DISTINCT series_id FROM chunks")}
            live |= {sid for (sid,) in conn.execute("SELECT DISTINCT series_id FROM head")}
            gone = [
                sid
                for sid, s in self._series.items()
                if sid not in live and not s.ts and not s.sealed and s.last_t < keep_from
            ]
            conn.executemany("DELETE FROM series WHERE id = ?", [(sid,) for sid in gone])
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        for sid in gone:
            s = self._series.pop(sid)
            self._ids.pop(s.key, None)
            self._index.remove(sid)
        if gone:
            self._fast_ids.clear()
        for s in self._series.values():  # a series that stopped: its old head samples go too
            if s.ts and s.ts[0] < keep_from:
                i = bisect_left(s.ts, keep_from)
                s.ts, s.vs = s.ts[i:], s.vs[i:]
        self._cache_clear()
        return CompactResult(deleted, sum(len(b) for b in by_series.values()), len(gone))

    # ---- reading -----------------------------------------------------------------------------------
    def select(self, matchers: Sequence[Matcher], mint: int, maxt: int) -> Iterator[SeriesSamples]:
        """Series matching all ``matchers`` with their samples in [mint, maxt] (ms), by series id.

        Lazily, one series at a time, so that a query over many long series never holds them all;
        no lock is held between two series."""
        with self._lock:
            picked = []
            for sid in self._index.match(matchers):
                s = self._series[sid]
                mem: list[tuple[array[int], array[float]]] = [*s.sealed, (s.ts, s.vs)]
                segs = [_slice(ts, vs, mint, maxt) for ts, vs in mem if ts and ts[0] <= maxt]
                picked.append((sid, s, segs))
        for sid, s, segs in picked:
            if self._read_conn is None:
                with self._lock:
                    yield self._assemble(self._conn, sid, s, segs, mint, maxt)
            else:
                with self._read_lock:
                    found = self._assemble(self._read_conn, sid, s, segs, mint, maxt)
                yield found

    def _assemble(
        self,
        conn: sqlite3.Connection,
        sid: int,
        s: _Series,
        mem_segs: list[tuple[array[int], array[float]]],
        mint: int,
        maxt: int,
    ) -> SeriesSamples:
        rows = conn.execute(
            "SELECT kind, min_t, data FROM chunks WHERE series_id = ? AND min_t <= ? AND max_t >= ? "
            "ORDER BY min_t",
            (sid, maxt, mint),
        ).fetchall()
        rollups: Rollups | None = None
        segs: list[tuple[array[int], array[float]]] = []
        raw_from = -(2**62)
        for kind, min_t, data in rows:
            if kind == ROLLUP:
                r: Rollups = self._cached((sid, ROLLUP, min_t), data, decode_rollups, len)
                lo, hi = bisect_left(r.t, mint), bisect_right(r.t, maxt)
                part = rollup_slice(r, lo, hi)
                if rollups is None:
                    rollups = part
                else:
                    rollups.extend(part)
                if len(part):
                    raw_from = max(raw_from, part.t[-1] + 1)
            else:
                ts, vs = self._cached((sid, RAW, min_t), data, decode_samples, lambda x: len(x[0]))
                segs.append(_slice(ts, vs, mint, maxt))
        segs.extend(mem_segs)
        out_ts, out_vs = array("q"), array("d")
        if rollups is not None:
            out_ts, out_vs = expand_rollups(rollups, s.is_counter)
        for ts, vs in sorted((seg for seg in segs if seg[0]), key=lambda seg: seg[0][0]):
            if out_ts and ts[0] <= out_ts[-1]:  # overlap: a flush happened between the two reads
                i = bisect_right(ts, out_ts[-1])
                ts, vs = ts[i:], vs[i:]
            out_ts.extend(ts)
            out_vs.extend(vs)
        return SeriesSamples(sid, s.key, out_ts, out_vs, rollups, raw_from)

    def _cached(self, key: tuple[int, int, int], data: bytes, decode: Any, size: Any) -> Any:
        with self._cache_lock:
            hit = self._cache.get(key)
            if hit is not None:
                self._cache.move_to_end(key)
                return hit
        value = decode(data)
        self._cache_put(key, value, size(value))
        return value

    def _cache_put(self, key: tuple[int, int, int], value: Any, n: int) -> None:
        if self._cache_limit <= 0:
            return
        with self._cache_lock:
            self._cache_put_locked(key, value, n)

    def _cache_clear(self) -> None:
        with self._cache_lock:
            self._cache.clear()
            self._cache_samples = 0

    def _cache_put_locked(self, key: tuple[int, int, int], value: Any, n: int) -> None:
        old = self._cache.pop(key, None)
        if old is not None:
            self._cache_samples -= _size(old)
        self._cache[key] = value
        self._cache_samples += n
        while self._cache_samples > self._cache_limit and self._cache:
            _, ev = self._cache.popitem(last=False)
            self._cache_samples -= _size(ev)

    def label_names(self) -> list[str]:
        with self._lock:
            return self._index.label_names()

    def label_values(self, name: str) -> list[str]:
        with self._lock:
            return self._index.label_values(name)

    def series(self, matchers: Sequence[Matcher]) -> list[dict[str, str]]:
        with self._lock:
            return [dict(self._series[sid].key) for sid in self._index.match(matchers)]

    def stats(self) -> dict[str, Any]:
        with self._lock:
            head = sum(len(s.ts) for s in self._series.values())
            (chunks, samples, nbytes) = self._conn.execute(
                "SELECT count(*), coalesce(sum(n), 0), coalesce(sum(length(data)), 0) FROM chunks"
            ).fetchone()
            return {
                "series": len(self._series),
                "appended": self.appended,
                "out_of_order": self.out_of_order,
                "rejected": self.rejected,
                "head_samples": head,
                "chunks": chunks,
                "chunk_samples": samples,
                "chunk_bytes": nbytes,
            }

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._flush_locked()
            self._closed = True
            self._conn.close()
            if self._read_conn is not None:
                with self._read_lock:
                    self._read_conn.close()

    def __enter__(self) -> MetricStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _size(value: Any) -> int:
    return len(value) if isinstance(value, Rollups) else len(value[0])


def _slice(ts: array[int], vs: array[float], mint: int, maxt: int) -> tuple[array[int], array[float]]:
    lo, hi = bisect_left(ts, mint), bisect_right(ts, maxt)
    return ts[lo:hi], vs[lo:hi]
