"""Scale from zero on the local target: wake an app the router holds requests for, without waiting for
the next autoscaling cycle.

While some autoscaled app with ``scaleToZero`` is at zero replicas, the router's held demand
(``GET /activations`` on its admin API, router/hold.py) is read every ``poll`` seconds (50 ms: a
loopback GET of a small JSON document; a held request waits for it). An app at
zero whose ``held`` count is positive, or whose ``held_total`` grew since the last read (a request held
and already timed out still asks for the app), is scaled to one through ``AutoscaleLoop.wake``: a recorded
decision and the normal scale path (desired replicas, audit, reconcile). Nothing is polled while no app
is at zero.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from yunzhou.domain.errors import YunzhouError
from yunzhou.reconcile.autoscale import AutoscaleLoop
from yunzhou.services.autoscaling import AutoscaleTarget

log = logging.getLogger("yunzhou.reconcile.wake")
Demand = Callable[[], Mapping[str, Mapping[str, Any]]]  # app address → the router's held counters
DEFAULT_POLL = 0.05
TARGETS_EVERY = 1.0  # seconds between reads of which apps are at zero (a database query)


class WakeOnDemand:
    def __init__(
        self,
        autoscaler: AutoscaleLoop,
        demand: Demand,
        *,
        poll: float = DEFAULT_POLL,
        woke: Callable[[], None] | None = None,
    ) -> None:
        """``woke()``: called after apps were woken (the server wakes its reconcile worker, so the scale
        is applied now rather than at the worker's next idle poll)."""
        self.autoscaler = autoscaler
        self.demand = demand
        self.poll = poll
        self.woke = woke
        self._seen: dict[str, int] = {}  # app address → held_total at the last read
        self._at_zero: list[AutoscaleTarget] = []
        self._targets_read = float("-inf")
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def refresh(self) -> None:
        """An app was scaled to zero: read which apps are at zero on the next poll."""
        self._targets_read = float("-inf")

    def _sleeping(self) -> list[AutoscaleTarget]:
        now = time.monotonic()
        if now - self._targets_read >= TARGETS_EVERY:
            self._targets_read = now
            self._at_zero = [
                t
                for t in self.autoscaler.service.targets()
                if t.replicas == 0 and t.policy.scale_to_zero.enabled
            ]
        return self._at_zero

    def run_once(self) -> list[dict[str, Any]]:
        """One look at the router for the apps at zero; returns the wake decisions made."""
        sleeping = self._sleeping()
        if not sleeping:
            return []
        demand = self.demand()
        woken: list[dict[str, Any]] = []
        for target in sleeping:
            address = f"{target.project}/{target.env}/{target.app}"
            held = demand.get(address)
            if held is None:
                continue
            total = int(held.get("held_total", 0))
            before = self._seen.get(address)
            self._seen[address] = total
            if int(held.get("held", 0)) > 0 or (before is not None and total > before):
                woken.append(self.autoscaler.wake(target, held))
                self._targets_read = float("-inf")  # re-read: this app is no longer at zero
        if woken and self.woke is not None:
            self.woke()
        return woken

    def start(self) -> WakeOnDemand:
        self._thread = threading.Thread(target=self._run, name="yunzhou-wake", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.poll):
            try:
                for decision in self.run_once():
                    log.info("scale from zero: %s", decision["reason"])
            except YunzhouError as exc:  # the router restarting: try again on the next poll
                log.warning("reading the router's held requests failed: %s", exc)
            except Exception:
                log.exception("scale-from-zero pass failed")

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
