"""Predictive scaling: learn an app's daily/weekly demand pattern and forecast it one startup ahead.

Demand samples (any rate, e.g. requests per second) are kept in fixed bins (``bin_seconds``, 60 s):
each bin keeps its mean and its peak. Two models, both pure numpy and O(1) per bin:

- ``seasonal-quantile``: the forecast for a future bin is the median of the peaks at the same phase
  (± ``spread`` bins) of each past hour, day and week (per ``seasonality``), each relative to the mean
  of the half hour before it, times the mean of the last half hour. Robust to noise and to single odd
  days. Peaks, not means: a short burst inside a bin is what an instance has to serve.
- ``holt-winters``: additive Holt-Winters (level, trend, one season of the shortest period) on the
  peaks, updated once per bin; the forecast is ``level + h·trend + season``.

The forecast for ``now`` is the highest forecast over the bins covering ``[now, now + horizon]``
(horizon = instance startup + margin), so capacity is ready when the demand arrives.

Next to the model's forecast it keeps a second, cruder one: the **previous peak**, the highest sample
between ``2 × peak_seconds`` and ``peak_seconds`` ago (10 to 5 minutes): a burst that came and went and
may come back (batch work on a timer does). For each of the two it remembers what it forecast and,
when that time comes, what happened: the sorted ratios (what happened / what was forecast) of recent
forecasts are its :class:`Spread`. :func:`replicas_worth_running` turns a spread into instances by the
marginal rule, and :class:`PeakHold` decides from outcomes whether holding the previous peak has been
worth its cost for this app.

The forecaster says which **mode** it is in: ``learning`` while it has less than
``min_history_seconds`` of history, ``reactive`` while its recent error is too high (the mean sMAPE
of each bin's forecast, made from the bins before it, against what then happened, over the last
``error_bins`` bins, above ``max_error``), else ``predictive``. Only in ``predictive`` mode does the
forecast count.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from yunzhou.domain.autoscale.policy import PredictiveSpec

DAY = 86400
WEEK = 7 * DAY


@dataclass(frozen=True)
class Spread:
    """A forecast and how it fared: ``ratios`` are the sorted (what happened / what was forecast) of
    recent forecasts, so ``point × ratios`` is an empirical distribution of the demand to come."""

    point: float
    ratios: np.ndarray


@dataclass(frozen=True)
class Forecast:
    mode: str  # learning | reactive | predictive
    value: float | None  # demand to provision for: the point forecast × the error quantile
    error: float | None  # recent sMAPE
    history_seconds: float
    reason: str
    point: float | None = None  # the point forecast
    factor: float = 1.0  # the spec's quantile of (what happened / what was forecast), recently
    spread: Spread | None = None  # the point forecast and its recent ratios, for the marginal rule
    peak: Spread | None = None  # the previous peak and its recent ratios (see PeakHold)


@dataclass
class Forecaster:
    spec: PredictiveSpec
    bin_seconds: int = 60
    spread: int = 1
    error_bins: int = 360
    max_days: int = 14
    use_peaks: bool = True  # model bin peaks (False: bin means)
    _means: list[float] = field(default_factory=list)
    _peaks: list[float] = field(default_factory=list)
    _first_bin: int | None = None
    _cur_bin: int | None = None
    _cur_sum: float = 0.0
    _cur_n: int = 0
    _cur_peak: float = 0.0
    _errors: deque[float] = field(default_factory=deque)
    _hw: tuple[float, float, np.ndarray] | None = None  # level, trend, seasonal
    _error_sum: float = 0.0
    trend: bool = True  # add a short-term Holt (level + slope) forecast for ramps the seasons miss
    trend_alpha: float = 0.5
    trend_beta: float = 0.3
    _trend_state: tuple[float, float, float] | None = None  # (time, level, slope per second)
    max_seasons: int = 48  # past seasons looked at per period (48 hours, 14 days, 2 weeks at most)
    _cache: dict[tuple[int, int], float | None] = field(default_factory=dict)
    _prefix_sums: list[float] = field(default_factory=lambda: [0.0])
    ratio_window: int = 720  # forecasts remembered for the error quantile (1 h at a 5 s cycle)
    _said: deque[tuple[float, float]] = field(default_factory=deque)  # (for time, point forecast)
    _ratios: deque[float] = field(default_factory=deque)
    _factor_cache: tuple[int, float, np.ndarray] | None = None
    _scored: int = 0
    peak_seconds: int = 300  # the previous peak: the highest sample 2× to 1× this ago (0: none)
    peak_ratio_window: int = 1440  # previous-peak forecasts remembered (2 h at a 5 s cycle)
    _fresh: deque[tuple[float, float]] = field(default_factory=deque)  # (time, peak) of the last window
    _before: deque[tuple[float, float]] = field(default_factory=deque)  # the window before, peaks falling
    _peak_said: deque[tuple[float, float]] = field(default_factory=deque)
    _peak_ratios: deque[float] = field(default_factory=deque)
    _peak_scored: int = 0
    _peak_cache: tuple[int, np.ndarray] | None = None

    @property
    def periods(self) -> list[int]:
        out = []
        if "hourly" in self.spec.seasonality:
            out.append(3600 // self.bin_seconds)
        if "daily" in self.spec.seasonality:
            out.append(DAY // self.bin_seconds)
        if "weekly" in self.spec.seasonality:
            out.append(WEEK // self.bin_seconds)
        return out

    def observe(self, t: float, value: float, *, peak: float | None = None, count: int = 1) -> None:
        """Add a demand sample taken at ``t`` (seconds), in time order. ``count`` > 1 adds an aggregate:
        ``value`` is then the mean of ``count`` samples and ``peak`` their maximum."""
        b = int(t // self.bin_seconds)
        if self._cur_bin is None:
            self._cur_bin = b
            self._first_bin = b
        while b > self._cur_bin:
            self._close_bin()
        self._trend_update(t, value)
        actual = value if peak is None else peak
        while self._said and self._said[0][0] <= t:
            _, said = self._said.popleft()
            if said > 0:
                self._scored += 1
                self._ratios.append(actual / said)
                if len(self._ratios) > self.ratio_window:
                    self._ratios.popleft()
        while self._peak_said and self._peak_said[0][0] <= t:
            _, said = self._peak_said.popleft()
            self._peak_scored += 1
            self._peak_ratios.append(actual / said)
            if len(self._peak_ratios) > self.peak_ratio_window:
                self._peak_ratios.popleft()
        if self.peak_seconds:
            self._fresh.append((t, actual))
            self._age_peaks(t)
        self._cur_sum += value * count
        self._cur_n += count
        self._cur_peak = max(self._cur_peak, value if peak is None else peak)

    def _close_bin(self) -> None:
        assert self._cur_bin is not None
        mean = self._cur_sum / self._cur_n if self._cur_n else (self._means[-1] if self._means else 0.0)
        peak = self._cur_peak if self._cur_n else (self._peaks[-1] if self._peaks else 0.0)
        predicted = self._bin_forecast(1)  # what the model says about this bin from the bins before it
        if predicted is not None:
            actual = peak if self.use_peaks else mean
            denom = abs(predicted) + abs(actual)
            err = 0.0 if denom == 0 else 2 * abs(predicted - actual) / denom
            self._errors.append(err)
            self._error_sum += err
            if len(self._errors) > self.error_bins:
                self._error_sum -= self._errors.popleft()
        self._means.append(mean)
        self._peaks.append(peak)
        if len(self._prefix_sums) == len(self._means):
            self._prefix_sums.append(self._prefix_sums[-1] + mean)
        limit = self.max_days * DAY // self.bin_seconds + 2 * self.spread + 1
        if len(self._means) > limit + 1024:
            drop = len(self._means) - limit
            del self._means[:drop]
            del self._peaks[:drop]
            self._prefix_sums = [0.0]  # rebuilt on next use
        if self.spec.model == "holt-winters":
            self._hw_update(peak if self.use_peaks else mean)
        self._cur_bin += 1
        self._cur_sum = 0.0
        self._cur_n = 0
        self._cur_peak = 0.0

    def history_seconds(self) -> float:
        return len(self._means) * self.bin_seconds

    def _trend_update(self, t: float, value: float) -> None:
        if self._trend_state is None:
            self._trend_state = (t, value, 0.0)
            return
        last_t, level, slope = self._trend_state
        dt = t - last_t
        if dt <= 0:
            return
        predicted = level + slope * dt
        new_level = self.trend_alpha * value + (1 - self.trend_alpha) * predicted
        slope = self.trend_beta * (new_level - level) / dt + (1 - self.trend_beta) * slope
        self._trend_state = (t, new_level, slope)

    def trend_forecast(self, at: float) -> float | None:
        """The short-term (Holt) forecast for the instant ``at``."""
        if self._trend_state is None:
            return None
        last_t, level, slope = self._trend_state
        return max(0.0, level + slope * (at - last_t))

    # --- models --------------------------------------------------------------------------------------

    def _hw_update(self, y: float, alpha: float = 0.2, beta: float = 0.01, gamma: float = 0.3) -> None:
        m = min(self.periods)
        if self._hw is None:
            if len(self._peaks) < m:
                return
            first = np.asarray((self._peaks if self.use_peaks else self._means)[-m:], dtype=float)
            self._hw = (float(first.mean()), 0.0, first - first.mean())
            return
        level, trend, season = self._hw
        i = len(self._peaks) % m
        new_level = alpha * (y - season[i]) + (1 - alpha) * (level + trend)
        trend = beta * (new_level - level) + (1 - beta) * trend
        season[i] = gamma * (y - new_level) + (1 - gamma) * season[i]
        self._hw = (new_level, trend, season)

    def _bin_forecast(self, ahead: int) -> float | None:
        """Forecast for the bin ``ahead`` bins after the last closed one (1 = the bin now filling)."""
        if self.spec.model == "holt-winters":
            if self._hw is None:
                return None
            level, trend, season = self._hw
            m = len(season)
            return max(0.0, level + ahead * trend + float(season[(len(self._peaks) + ahead - 1) % m]))
        return self._quantile_forecast(ahead)

    def _quantile_forecast(self, ahead: int) -> float | None:
        n = len(self._means)
        key = (n, ahead)
        if key in self._cache:
            return self._cache[key]
        if len(self._cache) > 64:
            self._cache.clear()
        series = self._peaks if self.use_peaks else self._means
        recent = max(1, 30 * 60 // self.bin_seconds)
        if n < recent:
            return None
        prefix = self._prefix()
        level_now = (prefix[n] - prefix[n - recent]) / recent
        ratios: list[float] = []
        for period in self.periods:
            seasons = min(self.max_seasons, (self.max_days * DAY) // (period * self.bin_seconds))
            for k in range(1, seasons + 1):
                centre = n + ahead - 1 - k * period
                if centre - self.spread < recent:
                    break
                lo, hi = centre - self.spread, min(n, centre + self.spread + 1)
                a, b = n - recent - k * period, n - k * period
                level_then = (prefix[b] - prefix[a]) / (b - a)
                if level_then <= 0 or hi <= lo:
                    continue
                ratios.extend(v / level_then for v in series[lo:hi])
        value = None
        if ratios:
            value = level_now * float(np.median(np.asarray(ratios)))
        self._cache[key] = value
        return value

    def _prefix(self) -> list[float]:
        """Prefix sums of the bin means, kept in step with ``_means``."""
        if len(self._prefix_sums) != len(self._means) + 1:
            self._prefix_sums = [0.0]
            for v in self._means:
                self._prefix_sums.append(self._prefix_sums[-1] + v)
        return self._prefix_sums

    # --- the answer ------------------------------------------------------------------------------------

    def forecast(self, now: float) -> Forecast:
        """The demand to provision for at ``now`` and the mode (see the module docstring)."""
        history = self.history_seconds()
        horizon = self.spec.horizon_seconds
        if self._cur_bin is None:
            return Forecast("learning", None, None, 0.0, "no history yet")
        last_closed = self._cur_bin - 1
        first = int(now // self.bin_seconds) - last_closed
        last = int((now + horizon) // self.bin_seconds) - last_closed
        values = [self._bin_forecast(max(1, a)) for a in range(first, last + 1)]
        if self.trend:
            values.append(self.trend_forecast(now + horizon))
        known = [v for v in values if v is not None]
        point = max(known) if known else None
        factor = self._error_factor()
        value = None if point is None else point * factor
        spread = None
        if point is not None:
            self._said.append((now + horizon, point))
            ratios = self._sorted_ratios()
            spread = Spread(point, ratios if ratios is not None else np.ones(1))
        peak = self._peak_spread(now, horizon)
        error = self._error_sum / len(self._errors) if self._errors else None
        if history < self.spec.min_history_seconds or value is None:
            mode, why = "learning", f"{history:.0f}s of history < {self.spec.min_history_seconds}s"
        elif error is None or len(self._errors) < min(self.error_bins, 30):
            mode, why = "reactive", "not enough scored forecasts yet"
        elif error > self.spec.max_error:
            mode, why = "reactive", f"forecast error {error:.2f} > {self.spec.max_error}"
        else:
            mode, why = "predictive", f"forecast error {error:.2f}"
        return Forecast(mode, value, error, history, why, point, factor, spread, peak)

    def _age_peaks(self, now: float) -> None:
        """Move samples older than ``peak_seconds`` into the previous window; drop those past it."""
        while self._fresh and self._fresh[0][0] < now - self.peak_seconds:
            t, actual = self._fresh.popleft()
            while self._before and self._before[-1][1] <= actual:
                self._before.pop()  # a lower earlier sample can never be the window's peak again
            self._before.append((t, actual))
        while self._before and self._before[0][0] < now - 2 * self.peak_seconds:
            self._before.popleft()

    def _peak_spread(self, now: float, horizon: float) -> Spread | None:
        """The previous-peak forecast for ``now + horizon`` (remembered, to be scored when that time
        comes) with its recent ratios; None without a peak or before 50 were scored."""
        self._age_peaks(now)
        if not self._before or self._before[0][1] <= 0:
            return None
        top = self._before[0][1]
        self._peak_said.append((now + horizon, top))
        if len(self._peak_ratios) < 50:
            return None
        if self._peak_cache is None or self._peak_scored - self._peak_cache[0] >= 10:
            ratios = np.sort(np.fromiter(self._peak_ratios, float, len(self._peak_ratios)))
            self._peak_cache = (self._peak_scored, ratios)
        return Spread(top, self._peak_cache[1])

    def _error_factor(self) -> float:
        """The spec's quantile of (what happened / what was forecast) over the recent forecasts, in
        [0.5, 3]; 1 until 20 forecasts were scored."""
        ratios = self._sorted_ratios()
        if ratios is None:
            return 1.0
        assert self._factor_cache is not None
        return self._factor_cache[1]

    def _sorted_ratios(self) -> np.ndarray | None:
        """The recent (what happened / what was forecast), sorted; None until 20 were scored."""
        if len(self._ratios) < 20:
            return None
        # recomputed every 10 scored forecasts: sorting a few thousand numbers is not free
        if self._factor_cache is None or self._scored - self._factor_cache[0] >= 10:
            ratios = np.sort(np.fromiter(self._ratios, float, len(self._ratios)))
            q = float(np.quantile(ratios, self.spec.quantile))
            self._factor_cache = (self._scored, min(3.0, max(0.5, q)), ratios)
        return self._factor_cache[2]


def replicas_for_forecast(value: float, target_per_instance: float) -> int:
    """Instances needed for a forecast demand at the policy's per-instance target."""
    return max(0, math.ceil(value / target_per_instance - 1e-9))


def replicas_worth_running(
    spread: Spread, per_instance: float, min_chance: float, *, low: float = 0.5, high: float = 0.995
) -> int:
    """Instances for a forecast by the marginal rule: start from what the ``low`` quantile of the
    outcomes needs and add one more while the chance that demand lands in its slice (between r and
    r + 1 instances' worth) is at least ``min_chance``, never past what the ``high`` quantile needs.

    An instance is worth its cost when it is likely to be the one that makes the difference: a narrow
    spread (a predictable app) earns a high quantile for little, a wide one (bursty demand, where
    each extra instance covers only a sliver of the outcomes) stops sooner instead of paying for the
    tail."""
    ratios, n = spread.ratios, len(spread.ratios)
    if spread.point <= 0 or per_instance <= 0 or n == 0:
        return 0
    lo = spread.point * float(ratios[min(n - 1, int(low * (n - 1)))])
    top = spread.point * float(ratios[min(n - 1, round(high * (n - 1)))])
    first = max(0, math.ceil(lo / per_instance - 1e-9))
    last = max(first, math.ceil(top / per_instance - 1e-9))
    edges = np.arange(first, last + 1) * per_instance / spread.point
    chances = np.diff(np.searchsorted(ratios, edges, side="right")) / n  # chances[i]: slice first + i
    short = np.flatnonzero(chances < min_chance)
    return first + int(short[0] if len(short) else len(chances))


@dataclass
class PeakHold:
    """Whether holding the previous peak (the forecaster's :attr:`Forecast.peak`) is worth it for this
    app, learned from what happened.

    The hold is the previous peak's spread through :func:`replicas_worth_running` at ``min_chance``.
    Each time it asks for more than the model's floor and the reactive count would run, the counts are
    remembered; when the forecast time comes the outcome is scored: did demand land between the two
    (the hold would have saved that moment) and how many instances did it add. The hold is used
    while, over the last ``window`` such times, moments saved per instance added is at least
    ``min_yield``: on an app whose bursts recur within minutes (cron-like batch work) it is; on one
    whose bursts are one-offs it is not, and holding would only cost."""

    min_chance: float = 0.06
    min_yield: float = 0.004
    window: int = 4320  # scored times (6 h at a 5 s cycle)
    min_scored: int = 100
    _pending: deque[tuple[float, int, int]] = field(default_factory=deque)  # (due, without, with)
    _scored: deque[tuple[int, int]] = field(default_factory=deque)  # (saved 0/1, instances added)
    _saved: int = 0
    _added: int = 0

    def replicas(self, due: float, peak: Spread | None, per_instance: float, without: int) -> int:
        """The instances the hold asks for, 0 while it is off; ``without`` is what would run without
        it (the model's floor or the reactive count, the higher). An ask above that is remembered and
        scored at ``due``."""
        if peak is None:
            return 0
        held = replicas_worth_running(peak, per_instance, self.min_chance)
        if held <= without:
            return 0
        self._pending.append((due, without, held))
        return held if self.worth_it() else 0

    def worth_it(self) -> bool:
        return len(self._scored) >= self.min_scored and self._saved >= self.min_yield * self._added

    def observe(self, t: float, demand_instances: float) -> None:
        """Score the asks due by ``t`` against the demand then (in instances)."""
        while self._pending and self._pending[0][0] <= t:
            _, without, held = self._pending.popleft()
            saved = int(without < demand_instances <= held)
            self._scored.append((saved, held - without))
            self._saved += saved
            self._added += held - without
            if len(self._scored) > self.window:
                old_saved, old_added = self._scored.popleft()
                self._saved -= old_saved
                self._added -= old_added
