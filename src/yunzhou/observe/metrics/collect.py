"""The scrape loop: every interval, ask each collector for samples, append them to the store in one batch,
and keep the latest value of every series for the control plane's ``/metrics``.

A collector is anything with a ``name`` and ``collect(now) -> Iterable[Sample]``. One that raises costs
only its own samples for that tick: the failure is counted (``yunzhou_scrape_errors_total{source}``) and
logged, and the loop goes on. Tests drive ``run_once(now)`` with their own clock; no sleeping.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Protocol

from yunzhou.domain.errors import YunzhouError
from yunzhou.envnumbers import seconds_from_env
from yunzhou.observe.metrics.exposition import Sample, render

log = logging.getLogger("yunzhou.observe.metrics")

DEFAULT_INTERVAL = 10.0
SeriesKey = tuple[str, tuple[tuple[str, str], ...]]


class AppendOnlyStore(Protocol):
    """The part of ``MetricStore`` the loop uses."""

    def append_many(self, rows: Iterable[tuple[str, Mapping[str, str], float, float]]) -> object: ...


class Collector(Protocol):
    name: str

    def collect(self, now: float) -> Iterable[Sample]: ...


def interval_from_env(variable: str, default: float, environ: Mapping[str, str] | None = None) -> float:
    """Seconds from an environment variable; refuses what is not a number from 0.05 to 3600."""
    return seconds_from_env(variable, default, environ)


def scrape_interval(environ: Mapping[str, str] | None = None) -> float:
    """``YUNZHOU_SCRAPE_INTERVAL`` (default 10 s)."""
    return interval_from_env("YUNZHOU_SCRAPE_INTERVAL", DEFAULT_INTERVAL, environ)


def series_key(name: str, labels: Mapping[str, str]) -> SeriesKey:
    return name, tuple(sorted(labels.items()))


class ScrapeLoop:
    def __init__(
        self,
        store: AppendOnlyStore,
        collectors: Iterable[Collector],
        *,
        interval: float = DEFAULT_INTERVAL,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.collectors = list(collectors)
        self.interval = interval
        self.clock = clock
        self.types: dict[str, str] = {}
        self.help: dict[str, str] = {}
        self._latest: dict[str, dict[SeriesKey, float]] = {}  # by collector: a tick replaces its series
        self._errors: dict[str, int] = {}
        self._last_error: dict[str, str] = {}
        self._durations: dict[str, float] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.ticks = 0
        self._describe_own()

    def _describe_own(self) -> None:
        for name, kind, text in (
            ("yunzhou_scrape_errors_total", "counter", "Collector runs that failed, by source."),
            ("yunzhou_scrape_duration_seconds", "gauge", "How long the last run of a collector took."),
            ("yunzhou_scrape_samples", "gauge", "Samples the last run of a collector produced."),
        ):
            self.types[name] = kind
            self.help[name] = text
        for collector in self.collectors:
            self.types.update(getattr(collector, "types", {}))
            self.help.update(getattr(collector, "help", {}))

    # ---- one tick ----------------------------------------------------------------------------------------
    def run_once(self, now: float | None = None) -> int:
        """Collect from every collector at ``now`` and append; returns how many samples were stored."""
        t = self.clock() if now is None else now
        rows: list[tuple[str, Mapping[str, str], float, float]] = []
        own: list[Sample] = []
        stale: list[SeriesKey] = []
        for collector in self.collectors:
            started = time.perf_counter()
            try:
                samples = list(collector.collect(t))
            except Exception as exc:
                self._failed(collector.name, exc)
                samples = None
            else:
                if self._last_error.pop(collector.name, None) is not None:
                    log.info("metrics collector %s works again", collector.name)
            elapsed = time.perf_counter() - started
            self._durations[collector.name] = elapsed
            source = {"source": collector.name}
            own.append(Sample("yunzhou_scrape_duration_seconds", source, elapsed))
            own.append(
                Sample("yunzhou_scrape_errors_total", source, float(self._errors.get(collector.name, 0)))
            )
            if samples is None:
                continue  # keep its previous latest values: a failed run says nothing new
            own.append(Sample("yunzhou_scrape_samples", source, float(len(samples))))
            latest: dict[SeriesKey, float] = {}
            for s in samples:
                rows.append((s.name, s.labels, s.value, t))
                latest[series_key(s.name, s.labels)] = s.value
            self.types.update(getattr(collector, "types", {}))
            self.help.update(getattr(collector, "help", {}))
            with self._lock:
                previous = self._latest.get(collector.name, {})
                self._latest[collector.name] = latest
            # a series that is no longer exposed ends now, as in Prometheus (rate() stops at once)
            stale.extend(key for key in previous if key not in latest)
        own_latest = {series_key(s.name, s.labels): s.value for s in own}
        rows.extend((s.name, s.labels, s.value, t) for s in own)
        with self._lock:
            self._latest["scrape"] = own_latest
        if rows:
            self.store.append_many(rows)
        mark_stale = getattr(self.store, "mark_stale", None)
        if mark_stale is not None:
            for name, labels in stale:
                mark_stale(name, dict(labels), t)
        self.ticks += 1
        return len(rows)

    def _failed(self, name: str, exc: Exception) -> None:
        """Count every failure; log it when it is new (a router that is down says so once, not every tick)."""
        with self._lock:
            self._errors[name] = self._errors.get(name, 0) + 1
        reason = f"{type(exc).__name__}: {exc}"
        if self._last_error.get(name) == reason:
            return
        self._last_error[name] = reason
        if isinstance(exc, YunzhouError | OSError | ValueError):  # expected kinds: one line is enough
            log.warning("metrics collector %s failed: %s", name, reason)
        else:
            log.exception("metrics collector %s failed", name)

    # ---- what /metrics serves ------------------------------------------------------------------------------
    def latest(self) -> list[tuple[str, dict[str, str], float]]:
        with self._lock:
            sources = list(self._latest.values())
        return [(name, dict(labels), value) for series in sources for (name, labels), value in series.items()]

    def render(self) -> str:
        return render(self.latest(), self.types, self.help)

    # ---- the thread ----------------------------------------------------------------------------------------
    def start(self) -> ScrapeLoop:
        if self._thread is not None:
            raise RuntimeError("scrape loop already started")
        self._thread = threading.Thread(target=self._run, name="yunzhou-metrics-scrape", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        next_at = time.monotonic()
        while not self._stop.is_set():
            try:
                self.run_once()
            except Exception:  # the store refusing a batch must not end collection
                log.exception("metrics scrape tick failed")
            next_at += self.interval
            delay = next_at - time.monotonic()
            if delay < 0:  # fell behind (a slow tick): skip the missed ticks instead of bursting
                next_at = time.monotonic()
                delay = 0
            self._stop.wait(delay)

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
