"""Holding requests for an app scaled to zero until its first instance is ready (scale from zero).

A route with ``activation`` whose snapshot lists no backend is *activatable*: its requests wait here, in
one bounded queue per app, instead of getting 503 at once. The wait is the wake signal: the admin API
(``GET /activations``) and ``/metrics`` show held demand, the control plane scales the app to one, and
the next snapshot that lists a backend for the route releases the held requests to it in arrival order.
A request that waits longer than the route's ``timeout_seconds``, or finds the queue full, is answered
503 with ``Retry-After`` and a JSON body saying which.
"""

from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from yunzhou.domain.errors import FieldProblem

if TYPE_CHECKING:
    import asyncio

    from yunzhou.router.config import Route, RoutingTable
    from yunzhou.router.exchange import Exchange

_ACTIVATION_KEYS = frozenset({"timeout_seconds", "queue_limit"})
MAX_HOLD_SECONDS = 3600.0
MAX_QUEUE_LIMIT = 100_000
QUEUE_FULL_RETRY_AFTER = 1  # seconds: a full queue drains as soon as the first instance is ready


@dataclass(frozen=True, slots=True)
class Activation:
    """How a route of an app scaled to zero holds requests while the app wakes."""

    timeout: float = 30.0  # seconds one request may wait for a backend
    queue_limit: int = 1000  # requests held at once, per app

    def to_json(self) -> dict[str, Any]:
        return {"timeout_seconds": self.timeout, "queue_limit": self.queue_limit}


def parse_activation(raw: object, path: str, problems: list[FieldProblem]) -> Activation | None:
    """``{"timeout_seconds": 30, "queue_limit": 1000}`` (both optional) → Activation; problems appended."""
    if not isinstance(raw, dict):
        problems.append(FieldProblem(path, "must be an object with timeout_seconds and queue_limit"))
        return None
    for key in sorted(set(raw) - _ACTIVATION_KEYS):
        problems.append(
            FieldProblem(
                f"{path}.{key}", f"unknown field; allowed fields are {', '.join(sorted(_ACTIVATION_KEYS))}"
            )
        )
    default = Activation()
    timeout = raw.get("timeout_seconds", default.timeout)
    limit = raw.get("queue_limit", default.queue_limit)
    ok = True
    if (
        isinstance(timeout, bool)
        or not isinstance(timeout, int | float)
        or not 0 < timeout <= MAX_HOLD_SECONDS
    ):
        problems.append(
            FieldProblem(
                f"{path}.timeout_seconds", f"must be a number of seconds in (0, {MAX_HOLD_SECONDS:g}]"
            )
        )
        ok = False
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_QUEUE_LIMIT:
        problems.append(
            FieldProblem(f"{path}.queue_limit", f"must be an integer from 1 to {MAX_QUEUE_LIMIT}")
        )
        ok = False
    if not ok or set(raw) - _ACTIVATION_KEYS:
        return None
    return Activation(timeout=float(timeout), queue_limit=int(limit))


@dataclass(slots=True)
class _Waiting:
    exchange: Exchange
    timer: asyncio.TimerHandle | None = None


@dataclass(slots=True)
class _AppHold:
    queue: deque[_Waiting] = field(default_factory=deque)
    held_total: int = 0  # requests ever held (the wake signal: a poller compares it with its last read)
    released_total: int = 0
    timed_out_total: int = 0
    rejected_total: int = 0  # queue full
    last_held_at: float = 0.0  # unix time

    def live(self) -> int:
        while self.queue and self.queue[0].exchange.done:  # clients that left while waiting
            self.queue.popleft()
        return sum(1 for w in self.queue if not w.exchange.done)


class HeldRequests:
    """Every app's queue of held requests in one router process (event-loop thread only)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.apps: dict[str, _AppHold] = {}

    def hold(self, exchange: Exchange, route: Route) -> bool:
        """Queue ``exchange`` for ``route``'s app. False when the queue is full: the exchange then has its
        503 (``local_error``, ``Retry-After``) set for the caller to answer."""
        activation = route.activation
        assert activation is not None
        state = self.apps.setdefault(route.app, _AppHold())
        if state.live() >= activation.queue_limit:
            state.rejected_total += 1
            exchange.error_headers = [(b"Retry-After", b"%d" % QUEUE_FULL_RETRY_AFTER)]
            exchange.error_extra = {"reason": "hold_queue_full", "retry_after": QUEUE_FULL_RETRY_AFTER}
            exchange.local_error = (
                503,
                "activation_queue_full",
                f"app {route.app!r} is scaled to zero and starting; {activation.queue_limit} requests "
                "are already waiting for it",
            )
            return False
        waiting = _Waiting(exchange)
        waiting.timer = self.loop.call_later(activation.timeout, self._expire, route.app, waiting, activation)
        state.queue.append(waiting)
        state.held_total += 1
        state.last_held_at = time.time()
        return True

    def _expire(self, app: str, waiting: _Waiting, activation: Activation) -> None:
        waiting.timer = None
        state = self.apps.get(app)
        if state is not None:
            try:
                state.queue.remove(waiting)
            except ValueError:
                return  # released meanwhile
        exchange = waiting.exchange
        if exchange.done:
            return
        if state is not None:
            state.timed_out_total += 1
        retry_after = max(1, math.ceil(activation.timeout))
        exchange.error_headers = [(b"Retry-After", b"%d" % retry_after)]
        exchange.error_extra = {"reason": "hold_timeout", "retry_after": retry_after}
        message = (
            f"app {app!r} is scaled to zero and no instance became ready within "
            f"{activation.timeout:g} s of this request"
        )
        self._answer(exchange, (503, "activation_timeout", message))

    @staticmethod
    def _answer(exchange: Exchange, error: tuple[int, str, str]) -> None:
        exchange.local_error = error
        if exchange.request_complete:
            exchange.respond_locally(*error)
        # else: the rest of the body is discarded and ``request_finished`` answers

    def release(self, table: RoutingTable) -> None:
        """A new snapshot is active: held requests whose route now has backends go to them, in order;
        those whose route is gone or no longer activatable get the answer the snapshot gives them."""
        for app, state in list(self.apps.items()):
            keep: deque[_Waiting] = deque()
            while state.queue:
                waiting = state.queue.popleft()
                exchange = waiting.exchange
                if exchange.done:
                    self._cancel(waiting)
                    continue
                route = table.match(exchange.host, exchange.path)
                if route is not None and route.backends:
                    self._cancel(waiting)
                    state.released_total += 1
                    exchange.route = route
                    exchange.candidates = route.pick_order()
                    exchange.try_next_backend()
                elif route is None or route.activation is None:
                    self._cancel(waiting)
                    if route is None:
                        error = (404, "no_route", f"no route for host {exchange.host!r}")
                    else:
                        error = (503, "no_ready_backends", f"app {route.app!r} has no ready backends")
                    self._answer(exchange, error)
                else:
                    keep.append(waiting)
            state.queue = keep
            if not keep and app not in {r.app for r in table.snapshot.routes if r.activation is not None}:
                del self.apps[app]  # no longer activatable: forget its counters

    @staticmethod
    def _cancel(waiting: _Waiting) -> None:
        if waiting.timer is not None:
            waiting.timer.cancel()
            waiting.timer = None

    def abandon_all(self, reason: str) -> None:
        """Answer every held request 503 (the router is shutting down)."""
        for app, state in self.apps.items():
            while state.queue:
                waiting = state.queue.popleft()
                self._cancel(waiting)
                if not waiting.exchange.done:
                    self._answer(waiting.exchange, (503, "router_draining", f"app {app!r}: {reason}"))

    # what the control plane reads ------------------------------------------------------------------
    def demand(self) -> dict[str, dict[str, Any]]:
        """Per activatable app that held a request: ``held`` now, ``held_total`` ever, and counters."""
        return {
            app: {
                "held": state.live(),
                "held_total": state.held_total,
                "released_total": state.released_total,
                "timed_out_total": state.timed_out_total,
                "rejected_total": state.rejected_total,
                "last_held_at": state.last_held_at,
            }
            for app, state in sorted(self.apps.items())
        }

    def render_metrics(self) -> str:
        """Prometheus text for the held requests (appended to the router's ``/metrics``)."""
        series = (
            ("yunzhou_router_held_requests", "gauge", "Requests waiting for an app scaled to zero.", "held"),
            (
                "yunzhou_router_held_requests_total",
                "counter",
                "Requests held while scaled to zero.",
                "held_total",
            ),
            (
                "yunzhou_router_held_released_total",
                "counter",
                "Held requests sent to the first ready instance.",
                "released_total",
            ),
            (
                "yunzhou_router_held_timeouts_total",
                "counter",
                "Held requests answered 503: timeout.",
                "timed_out_total",
            ),
            (
                "yunzhou_router_held_rejected_total",
                "counter",
                "Requests answered 503: hold queue full.",
                "rejected_total",
            ),
        )
        demand = self.demand()
        lines: list[str] = []
        for name, kind, text, key in series:
            lines.append(f"# HELP {name} {text}")
            lines.append(f"# TYPE {name} {kind}")
            for app, doc in demand.items():
                escaped = app.replace("\\", "\\\\").replace('"', '\\"')
                lines.append(f'{name}{{app="{escaped}"}} {doc[key]}')
        return "\n".join(lines) + "\n"
