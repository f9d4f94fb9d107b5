"""Route changes at the moment readiness changes, not at the app's next reconcile pass.

Without this the router learns of a newly ready instance only on the app's next pass (its progressing
requeue plus the worker's idle poll: up to ~0.4 s). For an app woken from zero that wait is part of the
held request's latency. ``ReadinessFollower`` waits on the supervisor's condition (no polling: it is
notified whenever an instance changes) and, when the set of ready instances differs from the last one
it saw, has the runtime publish its route table (from a fresh look, under the runtime's lock, so a
pass that drained an instance meanwhile is not undone). Publishing is idempotent (the runtime pushes only
a table that differs), so a pass and the follower may both publish.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from yunzhou.runtimes.base import InstanceStatus
from yunzhou.runtimes.local.supervisor import LocalSupervisor

log = logging.getLogger("yunzhou.runtimes.local.readiness")


def ready_ids(statuses: list[InstanceStatus]) -> frozenset[str]:
    return frozenset(s.instance_id for s in statuses if s.ready)


class ReadinessFollower:
    def __init__(
        self,
        supervisor: LocalSupervisor,
        publish: Callable[[], None],
        *,
        check_stop_every: float = 0.5,
    ) -> None:
        """``publish()``: the runtime's route push (it takes its own lock and looks at the instances)."""
        self.supervisor = supervisor
        self.publish = publish
        self.check_stop_every = check_stop_every
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.pushes = 0  # how many readiness changes were followed by a publish (tests, diagnostics)

    def start(self) -> ReadinessFollower:
        self._thread = threading.Thread(target=self._run, name="yunzhou-readiness", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def _run(self) -> None:
        seen: frozenset[str] = frozenset()
        while not self._stop.is_set():
            now = self._changed_from(seen)
            if now is None:
                continue
            seen = now
            try:
                self.publish()
                self.pushes += 1
            except Exception:  # the router restarting: the next pass publishes again
                log.warning("publishing routes after a readiness change failed", exc_info=True)

    def _changed_from(self, seen: frozenset[str]) -> frozenset[str] | None:
        """The ready instances once they differ from ``seen``; None after ``check_stop_every``."""
        observed: list[frozenset[str]] = []

        def changed(statuses: list[InstanceStatus]) -> bool:
            observed[:] = [ready_ids(statuses)]
            return observed[0] != seen

        if self.supervisor.wait_for(changed, self.check_stop_every) and observed:
            return observed[0]
        return None
