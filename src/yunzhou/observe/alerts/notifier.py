"""The notification pipeline, Alertmanager's semantics in one process: route each alert to the receivers
whose scope and matchers take it, group by labels, wait group_wait before a new group's first message,
then look again every group_interval and send only when something changed (a new firing alert, or a
resolved one that was announced) or repeat_interval passed. Silenced alerts are left out of every message,
so an alert silenced before it was announced is never sent, firing or resolved.

A firing alert that stops being observed (its rule deleted or switched off, its app removed, its
expression failing) is resolved ``stale_after`` seconds after it was last observed, as Alertmanager resolves
an alert Prometheus stopped sending once its endsAt passes.

State lives in memory: a restart of the control plane may send a group once more (Alertmanager without
its notification log does the same)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from yunzhou.domain.alerts import Matcher, matches_all
from yunzhou.observe.alerts.delivery import DeliveryError, NotifiedAlert, deliver, webhook_payload
from yunzhou.services.alerts import Receiver

log = logging.getLogger("yunzhou.observe.alerts")
Deliver = Callable[[str, Mapping[str, Any], Mapping[str, Any]], None]
Silences = Sequence[tuple[str, tuple[Matcher, ...]]]
STALE_AFTER = 240.0  # Prometheus' endsAt: 4 × its resend delay (1m) after the last evaluation that sent it
RETRY_FIRST, RETRY_MAX = 2.0, 300.0  # a failed message is tried again after 2 s, 4 s, 8 s … at most 5 min
# a whole message, however slowly the receiver answers: a client's timeouts bound each read, not the sum,
# so a server trickling a byte every few seconds would otherwise hold every receiver's notifications
DELIVERY_DEADLINE = 30.0


def retry_delay(failures: int, first: float = RETRY_FIRST, most: float = RETRY_MAX) -> float:
    return float(min(most, first * 2 ** min(max(failures - 1, 0), 30)))


@dataclass
class _Group:
    receiver: Receiver
    labels: dict[str, str]
    next_flush: float
    alerts: dict[str, NotifiedAlert] = field(default_factory=dict)
    seen: dict[str, float] = field(default_factory=dict)  # fingerprint → when last observed
    last_sent: float | None = None
    sent_firing: frozenset[str] = frozenset()
    failures: int = 0  # consecutive failed deliveries: the next retry waits retry_delay(failures)
    in_flight: bool = False  # a delivery past its deadline still runs: no second one meanwhile

    @property
    def key(self) -> str:
        matchers = ",".join(self.receiver.route.to_dict()["matchers"])
        labels = ",".join(f'{k}="{v}"' for k, v in sorted(self.labels.items()))
        return f"{{}}/{{{matchers}}}:{{{labels}}}"


@dataclass(frozen=True)
class Sent:
    """What one flush delivered (or failed to), for logs and tests."""

    receiver: str
    group_key: str
    status: str
    fingerprints: tuple[str, ...]
    error: str | None = None
    receiver_id: int = 0
    next_retry: float | None = None  # when a failed message is tried again


def silenced(labels: Mapping[str, str], silences: Silences, project: str) -> bool:
    """``project`` owns the alert (its rule's scope, else its label): its silences and global ones apply."""
    return any((scope in ("", project)) and matches_all(ms, labels) for scope, ms in silences)


@dataclass
class _Outgoing:
    """One message decided under the lock and sent outside it."""

    group: _Group
    payload: dict[str, Any]
    fingerprints: tuple[str, ...]  # the alerts in the message
    firing: frozenset[str]
    resolved: tuple[str, ...]  # forgotten once the message is out


class Notifier:
    """Thread-safe: the evaluator observes alerts while another thread flushes; deliveries (which can take
    a receiver's whole timeout) happen outside the lock, so a slow receiver never holds up evaluation."""

    def __init__(
        self,
        external_url: str = "",
        deliver_fn: Deliver = deliver,
        *,
        stale_after: float = STALE_AFTER,
        retry_first: float = RETRY_FIRST,
        deadline: float = DELIVERY_DEADLINE,
    ) -> None:
        self.external_url = external_url
        self.stale_after = stale_after
        self.retry_first = retry_first
        self.deadline = deadline
        self._deliver = deliver_fn
        self._groups: dict[tuple[int, tuple[tuple[str, str], ...]], _Group] = {}
        self._lock = threading.Lock()
        self.sent: list[Sent] = []  # the last flush's deliveries

    def observe(self, receivers: Iterable[Receiver], alert: NotifiedAlert, now: float) -> None:
        """A firing alert (ends_at None) or one that just resolved."""
        with self._lock:
            for r in receivers:
                if r.project not in ("", alert.owner):  # the owner, not a label the expression returned
                    continue
                if not matches_all(r.route.matchers, alert.labels):
                    continue
                gk = r.route.group_key(alert.labels)
                key = (r.id, gk)
                group = self._groups.get(key)
                if group is None:
                    if alert.ends_at is not None:
                        continue  # resolved before any group knew it: nothing to announce
                    group = _Group(r, dict(gk), next_flush=now + r.route.group_wait_s)
                    self._groups[key] = group
                if (group.receiver.config, group.receiver.problem) != (r.config, r.problem):
                    group.failures = 0  # edited (fixed?): what it still owes goes out now, not after backoff
                    group.next_flush = min(group.next_flush, now)
                group.receiver = r  # a receiver edited in place keeps its groups
                group.alerts[alert.fingerprint] = alert
                group.seen[alert.fingerprint] = now

    def flush(self, now: float, silences: Silences) -> list[Sent]:
        """Each receiver's failure stays its own: whatever one message raises (a refused address, a value
        stored before validation was strict) is recorded for that group, which retries with backoff."""
        sent = []
        with self._lock:
            outgoing = []
            for group in self._groups.values():
                self._resolve_stale(group, now)
                if now >= group.next_flush and not group.in_flight:
                    group.next_flush = now + group.receiver.route.group_interval_s
                    try:
                        message = self._decide(group, now, silences)
                    except Exception as exc:  # e.g. a stored max_alerts that is not a number
                        sent.append(self._failed(group, now, "", (), exc))
                        continue
                    if message is not None:
                        outgoing.append(message)
            self._drop_empty()
        for m, error in self._send_all(outgoing):
            g = m.group
            if error is not None:  # state kept as is: the group tries again after its backoff
                with self._lock:
                    sent.append(self._failed(g, now, m.payload["status"], m.fingerprints, error))
                continue
            sent.append(
                Sent(g.receiver.name, g.key, m.payload["status"], m.fingerprints, None, g.receiver.id)
            )
            with self._lock:
                g.last_sent, g.sent_firing, g.failures = now, m.firing, 0
                self._forget_resolved(g, m.resolved)
        with self._lock:
            self._drop_empty()
        self.sent = sent
        return sent

    def _send_all(self, outgoing: list[_Outgoing]) -> list[tuple[_Outgoing, Exception | None]]:
        """Every message at once, each on a thread of its own, all within one deadline: a receiver that
        never finishes fails alone (its group sends nothing more until that thread ends)."""
        errors: dict[int, Exception | None] = {}
        threads = []
        for m in outgoing:
            m.group.in_flight = True
            t = threading.Thread(target=self._send, args=(m, errors), name="yunzhou-alert-send", daemon=True)
            t.start()
            threads.append((m, t))
        end = time.monotonic() + self.deadline
        for _, t in threads:
            t.join(max(0.0, end - time.monotonic()))
        late = DeliveryError(
            f"the receiver did not finish within {self.deadline:g} s (each read has its own timeout; the"
            " whole message must be sent within this deadline)"
        )
        with self._lock:
            return [(m, errors.get(id(m), late)) for m, _ in threads]  # absent: still running

    def _send(self, m: _Outgoing, errors: dict[int, Exception | None]) -> None:
        g = m.group
        error: Exception | None = None
        try:
            if g.receiver.problem:
                raise DeliveryError(g.receiver.problem)
            self._deliver(g.receiver.kind, g.receiver.config, m.payload)
        except Exception as exc:  # whatever one receiver raises stays its own
            error = exc
        with self._lock:
            errors[id(m)] = error
            g.in_flight = False

    def _failed(
        self, g: _Group, now: float, status: str, fingerprints: tuple[str, ...], exc: Exception
    ) -> Sent:
        reason = str(exc) if isinstance(exc, DeliveryError) else f"{type(exc).__name__}: {exc}"
        g.failures += 1
        g.next_flush = now + retry_delay(g.failures, self.retry_first)
        log.warning("alert notification to %s failed (%d in a row): %s", g.receiver.name, g.failures, reason)
        return Sent(g.receiver.name, g.key, status, fingerprints, reason, g.receiver.id, g.next_flush)

    def sync_receivers(self, receivers: Iterable[Receiver]) -> None:
        """Drop the groups of receivers deleted, or whose route changed (its groups are rebuilt from the next
        observation, as Alertmanager rebuilds them on a reload; the old ones would go stale and announce
        still-firing alerts as resolved)."""
        routes = {r.id: r.route for r in receivers}
        with self._lock:
            for key in [k for k, g in self._groups.items() if routes.get(k[0]) != g.receiver.route]:
                del self._groups[key]

    def _resolve_stale(self, g: _Group, now: float) -> None:
        for fp, alert in list(g.alerts.items()):
            seen = g.seen.get(fp, now)
            if alert.ends_at is None and now - seen > self.stale_after:
                g.alerts[fp] = replace(alert, ends_at=seen + self.stale_after)

    def _drop_empty(self) -> None:
        for key in [k for k, g in self._groups.items() if not g.alerts]:
            del self._groups[key]

    @staticmethod
    def _forget_resolved(g: _Group, fingerprints: Iterable[str]) -> None:
        """A resolved alert is announced at most once, then forgotten (unless it fired again meanwhile)."""
        for fp in fingerprints:
            alert = g.alerts.get(fp)
            if alert is not None and alert.ends_at is not None:
                del g.alerts[fp]
                g.seen.pop(fp, None)

    def _decide(self, g: _Group, now: float, silences: Silences) -> _Outgoing | None:
        visible = {fp: a for fp, a in g.alerts.items() if not silenced(a.labels, silences, a.owner)}
        firing = frozenset(fp for fp, a in visible.items() if a.ends_at is None)
        resolved = [fp for fp, a in g.alerts.items() if a.ends_at is not None]
        announced_resolved = {fp for fp in resolved if fp in visible and fp in g.sent_firing}
        changed = bool(firing - g.sent_firing) or bool(announced_resolved)
        due_repeat = (
            bool(firing)
            and g.last_sent is not None
            and now - g.last_sent >= g.receiver.route.repeat_interval_s
        )
        send_resolved = bool(g.receiver.config.get("send_resolved", True))
        to_send = [
            a for fp, a in visible.items() if fp in firing or (send_resolved and fp in announced_resolved)
        ]
        if (changed or due_repeat) and to_send:
            payload = webhook_payload(
                g.receiver.name,
                g.key,
                g.labels,
                sorted(to_send, key=lambda a: a.starts_at),
                self.external_url,
                int(g.receiver.config.get("max_alerts", 0)),
            )
            return _Outgoing(g, payload, tuple(a.fingerprint for a in to_send), firing, tuple(resolved))
        if changed or due_repeat:  # only resolutions nobody wants to hear about
            g.sent_firing = firing
        else:
            g.sent_firing &= firing
        self._forget_resolved(g, resolved)
        return None


def resolved(alert: NotifiedAlert, at: float) -> NotifiedAlert:
    return replace(alert, ends_at=at)
