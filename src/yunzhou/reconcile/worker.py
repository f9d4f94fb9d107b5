"""The worker loop: lease due work items, run their controller, release with a requeue or a backoff.

Several workers (threads here, or `yunzhou worker` processes) can share one store: a lease is exclusive
until it expires, so a crashed worker's items are picked up again.
"""

from __future__ import annotations

import logging
import secrets
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from yunzhou.store import Database
from yunzhou.store.leases import Lease, lease_due, release

log = logging.getLogger("yunzhou.reconcile")
Clock = Callable[[], datetime]


@dataclass(frozen=True)
class Outcome:
    """``requeue_after`` None: done until new intent arrives. ``error``: recorded, retried with backoff."""

    requeue_after: float | None = None
    error: str | None = None


class Controller(Protocol):
    kind: str

    def reconcile(self, key: str) -> Outcome: ...


def backoff(attempts: int, base: float = 0.5, cap: float = 60.0) -> float:
    return float(min(cap, base * (2 ** max(attempts, 0))))


class Worker:
    def __init__(
        self,
        db: Database,
        controllers: Mapping[str, Controller],
        clock: Clock,
        *,
        lease_ttl: float = 30.0,
        idle_poll: float = 0.5,
        batch: int = 16,
        name: str | None = None,
        on_idle: Callable[[], None] | None = None,
        concurrency: int = 1,
    ) -> None:
        self.db = db
        self.controllers = dict(controllers)
        self.clock = clock
        self.lease_ttl = timedelta(seconds=lease_ttl)
        self.idle_poll = idle_poll
        self.batch = batch
        self.name = name or f"worker-{secrets.token_hex(3)}"
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.passes = 0
        self.on_idle = on_idle
        # Passes are mostly waiting on a cluster's API or the database: a few threads keep many apps moving.
        self._pool = (
            ThreadPoolExecutor(concurrency, thread_name_prefix="yunzhou-reconcile")
            if concurrency > 1
            else None
        )
        self._count_lock = threading.Lock()

    def run_once(self) -> int:
        """One sweep over every kind; returns how many items were processed."""
        done = 0
        for kind, controller in self.controllers.items():
            with self.db.transaction() as s:
                leases = lease_due(s, kind, self.clock(), self.lease_ttl, self.batch)
            if self._pool is not None and len(leases) > 1:
                # one app per thread; the same app is never leased twice at once
                list(self._pool.map(lambda lease, c=controller: self._process(c, lease), leases))
            else:
                for lease in leases:
                    self._process(controller, lease)
            done += len(leases)
        return done

    def _process(self, controller: Controller, lease: Lease) -> None:
        try:
            outcome = controller.reconcile(lease.key)
        except Exception as exc:  # a controller bug must not kill the loop; it is recorded and retried
            log.exception("reconcile %s/%s failed", lease.kind, lease.key)
            outcome = Outcome(error=f"{type(exc).__name__}: {exc}")
        with self._count_lock:
            self.passes += 1
        delay = backoff(lease.attempts) if outcome.error else outcome.requeue_after
        with self.db.transaction() as s:
            release(
                s,
                lease,
                self.clock(),
                requeue_after=timedelta(seconds=delay) if delay is not None else None,
                error=outcome.error,
            )

    def wake(self) -> None:
        self._wake.set()

    def run_forever(self) -> None:
        while not self._stop.is_set():
            try:
                processed = self.run_once()
            except Exception:
                log.exception("worker sweep failed; retrying")
                processed = 0
            if processed == 0:
                if self.on_idle is not None:
                    try:
                        self.on_idle()
                    except Exception:
                        log.exception("idle hook failed")
                self._wake.wait(self.idle_poll)
                self._wake.clear()

    def start(self) -> Worker:
        self._thread = threading.Thread(target=self.run_forever, name=f"yunzhou-{self.name}", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        if self._pool is not None:
            self._pool.shutdown(wait=True)
