"""The evaluation loop: every interval, run each rule's expression through the query engine at one instant,
step its state machine, store states and history, feed the notifier and the healer; flush notifications
on a finer tick so group_wait/group_interval hold between evaluations."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Protocol

from yunzhou.domain.alerts import AlertState, evaluate, samples_of
from yunzhou.domain.errors import YunzhouError
from yunzhou.envnumbers import number_from_env, seconds_from_env
from yunzhou.observe.alerts.delivery import NotifiedAlert
from yunzhou.observe.alerts.healing import Healer
from yunzhou.observe.alerts.notifier import Notifier, Sent, silenced
from yunzhou.observe.alerts.scoped import scoped_engine
from yunzhou.services import ControlPlane
from yunzhou.services.alert_deliveries import DeliveryOutcome
from yunzhou.services.alerts import RuleInstance, where_of

log = logging.getLogger("yunzhou.observe.alerts")
DEFAULT_INTERVAL = 15.0
HISTORY_DAYS = 30.0  # YUNZHOU_ALERT_HISTORY_DAYS: alert and action history older than this is dropped


def alert_interval(environ: Mapping[str, str] | None = None) -> float:
    """``YUNZHOU_ALERT_INTERVAL`` in seconds (default 15); refuses what is not a number from 0.05 to 3600."""
    return seconds_from_env("YUNZHOU_ALERT_INTERVAL", DEFAULT_INTERVAL, environ)


def history_days(environ: Mapping[str, str] | None = None) -> float:
    """``YUNZHOU_ALERT_HISTORY_DAYS`` (default 30); refuses what is not a number from 1 to 3650."""
    return number_from_env("YUNZHOU_ALERT_HISTORY_DAYS", HISTORY_DAYS, 1, 3650, unit="days", environ=environ)


class InstantQuery(Protocol):
    def instant(self, expr: str, t: float) -> dict[str, Any]: ...


@dataclass
class RuleHealth:
    """The last evaluation of a rule in this process: "ok", or "err" with the reason (also logged)."""

    health: str = "unknown"
    last_error: str = ""
    last_evaluation: float | None = None


class AlertEvaluator:
    def __init__(
        self,
        cp: ControlPlane,
        engine: InstantQuery,
        *,
        interval: float = DEFAULT_INTERVAL,
        external_url: str = "",
        notifier: Notifier | None = None,
    ) -> None:
        self.cp = cp
        self.engine = engine
        self.interval = interval
        self.history_days = history_days()
        self.external_url = external_url
        # an alert not observed for 4 evaluations (at least 4 min) resolves, as Prometheus' endsAt makes it
        self.notifier = notifier or Notifier(external_url, stale_after=4 * max(interval, 60.0))
        self.healer = Healer(cp)
        self.health: dict[str, RuleHealth] = {}
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def now(self) -> float:
        return self.cp.ctx.clock().timestamp()

    # ---- one pass
    def evaluate_once(self, now: float | None = None) -> None:
        now = self.now() if now is None else now
        alerts = self.cp.alerts
        plan = alerts.evaluation_plan()
        states = alerts.load_states()
        receivers = alerts.receivers()
        silences = alerts.active_silences(self.cp.ctx.clock())
        self.notifier.sync_receivers(receivers)
        health_changes: dict[str, tuple[str, str]] = {}
        for inst in plan:
            previous = states.get(inst.key, {})
            health = self.health.setdefault(inst.key, RuleHealth())
            health.last_evaluation = now
            try:
                engine = scoped_engine(self.engine, inst.scope)
                samples = samples_of(engine.instant(inst.rule.expr, now))
            except Exception as exc:  # a bad expression, or a remote Prometheus away: the other rules run
                reason = exc.message if isinstance(exc, YunzhouError) else f"{type(exc).__name__}: {exc}"
                if health.last_error != reason:  # logged and stored when it starts failing (or differently)
                    log.warning(
                        "alert rule %s (%s) cannot be evaluated: %s", inst.rule.alert, inst.key, reason
                    )
                    health_changes[inst.key] = ("err", reason)
                health.health, health.last_error = "err", reason
                continue
            if health.health != "ok":
                health_changes[inst.key] = ("ok", "")
            health.health, health.last_error = "ok", ""
            current, changes = evaluate(inst.rule, previous, samples, now, {"url": self.external_url})
            if changes or _differs(previous, current) or inst.rule.keep_firing_for_s:
                alerts.save_evaluation(inst, current, changes)
            fired_now = {c.alert.fingerprint for c in changes if c.to == "firing"}
            for c in changes:
                if c.to == "resolved":
                    self.notifier.observe(receivers, self._notified(inst, c.alert, ended=now), now)
            healing: list[AlertState] = []
            for st in current.values():
                if st.state != "firing":
                    continue
                self.notifier.observe(receivers, self._notified(inst, st), now)
                if not silenced(st.labels, silences, where_of(inst.scope, st.labels)[0]):
                    healing.append(st)
            if healing:  # together: one budget and one action per app for all the rule's firing alerts
                self.healer.consider(inst, healing, fired_now)
        alerts.record_health(health_changes)
        alerts.forget({i.key for i in plan})

    def flush(self, now: float | None = None) -> list[Sent]:
        """Send what is due, and record how each receiver's messages went (shown with the receiver)."""
        now = self.now() if now is None else now
        sent = self.notifier.flush(now, self.cp.alerts.active_silences(self.cp.ctx.clock()))
        self.cp.alerts.record_deliveries(
            DeliveryOutcome(m.receiver_id, m.error, m.next_retry) for m in sent if m.receiver_id
        )
        return sent

    def _notified(self, inst: RuleInstance, st: AlertState, ended: float | None = None) -> NotifiedAlert:
        project = where_of(inst.scope, st.labels)[0]  # a project's rule notifies that project only
        url = f"{self.external_url}/api/v1/projects/{project}/alerts" if self.external_url and project else ""
        return NotifiedAlert(
            st.fingerprint, st.labels, st.annotations, st.fired_at or st.active_at, ended, url, project
        )

    # ---- the loops: evaluation every interval; notifications on a finer tick, in their own thread so a
    # slow receiver never delays evaluation (and healing)
    def start(self) -> AlertEvaluator:
        self._threads = [
            threading.Thread(target=self._evaluate_loop, name="yunzhou-alerts", daemon=True),
            threading.Thread(target=self._notify_loop, name="yunzhou-alerts-notify", daemon=True),
        ]
        for t in self._threads:
            t.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=15)

    def _evaluate_loop(self) -> None:
        pruned = float("-inf")
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                self.evaluate_once()
                if started - pruned >= 3600:
                    pruned = started
                    gone = self.cp.alerts.prune_history(timedelta(days=self.history_days))
                    if gone:
                        log.info("dropped %d alert history rows older than %g days", gone, self.history_days)
            except Exception:  # the loop outlives one bad pass; the next one starts from the store again
                log.exception("alert evaluation failed")
            self._stop.wait(max(0.0, self.interval - (time.monotonic() - started)))

    def _notify_loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.flush()
            except Exception:
                log.exception("alert notification flush failed")
            self._stop.wait(min(self.interval, 1.0))


def _differs(before: Mapping[str, AlertState], after: Mapping[str, AlertState]) -> bool:
    return before.keys() != after.keys() or any(
        (before[k].state, before[k].value, before[k].annotations) != (a.state, a.value, a.annotations)
        for k, a in after.items()
    )
