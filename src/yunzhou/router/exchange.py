"""One request/response exchange: routing, backend choice with fall-through, streaming, errors, accounting.

Life of an exchange: created when the client's request headers are parsed, ``start`` (when it is the
client connection's turn) picks the route from the snapshot active at that moment, takes a pooled
connection or connects (a failed connect tries the next backend; bytes already sent are never retried),
streams the request body up and the response down, then ``finish`` records it exactly once.

An upgrade request (``Connection: Upgrade``, e.g. WebSocket) is routed and admitted the same way; when its
backend answers ``101 Switching Protocols`` the exchange ``switch``es: the 101 goes to the client and bytes
are copied both ways until either side closes or the tunnel is idle for ``tunnel_idle_timeout``. The
exchange (and its backend's in-flight count, which drains wait for) lasts as long as the tunnel.
"""

from __future__ import annotations

import asyncio
import math
from time import perf_counter
from typing import TYPE_CHECKING

from yunzhou.names.tls.http01 import CHALLENGE_PATH_PREFIX, challenge_answer
from yunzhou.router.http import json_error_body, reason_phrase, simple_response
from yunzhou.router.policy import DEFAULT_ACCESS

if TYPE_CHECKING:
    from yunzhou.router.config import Backend, Route
    from yunzhou.router.policy import AppPolicy, Decision
    from yunzhou.router.proxy import ClientConnection
    from yunzhou.router.server import Router
    from yunzhou.router.upstream import BackendPool, UpstreamConnection

BODY_BUFFER_LIMIT = 256 * 1024  # request body held while connecting; above it the client is paused
_NO_BODY_STATUSES = frozenset({204, 304})


def _chunk(body: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(body), body)


class Exchange:
    # Per-request state. Class-level defaults keep __init__ short: most fields keep them for most requests.
    body: list[bytes] | None = None
    body_size = 0
    route: Route | None = None
    app: str | None = None
    backend: Backend | None = None
    connect_task: asyncio.Task[None] | None = None
    upstream: UpstreamConnection | None = None
    sent = False
    timer: asyncio.TimerHandle | None = None
    last_upstream_activity = 0.0
    request_complete = False
    status = 0
    bytes_sent = 0
    response_started = False
    response_complete = False
    resp_chunked = False
    resp_until_close = False
    upstream_keep_alive = False
    close_client = False
    done = False
    counted_backend: str | None = None  # the backend id whose in-flight count includes this request
    # traffic policy (only for apps that have one, or app-to-app calls)
    caller: str | None = None
    policy: AppPolicy | None = None
    decision: Decision | None = None
    retries_left = 0
    retained: list[bytes] | None = None  # request body kept for retries (None: not kept / too large)
    retained_size = 0
    per_try: float | None = None  # seconds one attempt may take until response headers
    deadline = 0.0  # loop time by which the whole response must be complete (0: none)
    attempt_started = 0.0
    deadline_timer: asyncio.TimerHandle | None = None  # only while queued for a pool slot
    holds_slot = False
    queued = False
    error_extra: dict[str, object] | None = None
    error_headers: list[tuple[bytes, bytes]] | None = None
    local_body: bytes | None = None  # a plain-text answer of the router's own (ACME HTTP-01)
    # upgrades: the protocols asked for, whether the backend answered at all, and the tunnel once switched
    upgrade: bytes | None = None
    backend_answered = False
    switched = False
    switched_at = 0.0
    tunnel_end = ""  # which side ended the tunnel: client, backend, idle_timeout

    def __init__(
        self,
        client: ClientConnection,
        *,
        method: str,
        path: str,
        host: str,
        request_id: str,
        head: bytes,
        req_chunked: bool,
        keep_alive: bool,
        http11: bool,
        local_error: tuple[int, str, str] | None = None,
        headers: list[tuple[bytes, bytes]] | None = None,
        caller_token: bytes | None = None,
        upgrade: bytes | None = None,
    ) -> None:
        self.client = client
        self.router: Router = client.router
        self.loop = client.loop
        self.method = method
        self.path = path
        self.host = host
        self.request_id = request_id
        self.head = head
        self.req_chunked = req_chunked
        self.keep_alive = keep_alive
        self.http11 = http11
        self.local_error = local_error
        self.headers = headers or []
        self.caller_token = caller_token
        self.candidates: list[Backend] = []
        self.started_at = perf_counter()  # uvloop's loop.time() ticks in whole milliseconds
        if upgrade is not None:
            self.upgrade = upgrade
            self.close_client = True  # refused or declined: the client's next bytes are not HTTP we can read

    # request side ---------------------------------------------------------------------------------
    def start(self) -> None:
        """Route with the snapshot active now; called when this exchange is the connection's current one."""
        if self.path.startswith(CHALLENGE_PATH_PREFIX) and self._answer_acme_challenge():
            return
        if self.local_error is None:
            route = self.router.table.match(self.host, self.path)
            if route is None:
                self.router.metrics.unrouted += 1
                if self.router.table.has_host(self.host):
                    message = f"no route for host {self.host!r} and path {self.path!r}"
                else:
                    message = f"no route for host {self.host!r}"
                self.local_error = (404, "no_route", message)
            else:
                self.route = route
                self.app = route.app
                self.router.metrics.request_started(route.app)
                if route.redirect_https and not self.client.tls and self.router.tls_port:
                    self._redirect_https()
                elif route.policy is not None or self.caller_token is not None:
                    if self._admit(route):
                        return
                else:
                    self.candidates = route.pick_order()
                if self.router.pools.down_until:
                    self.candidates = self.router.pools.healthy_first(self.candidates)
                if (
                    not self.candidates
                    and route.activation is not None
                    and self.local_error is None
                    and self.router.held.hold(self, route)
                ):
                    return  # scaled to zero: waits for a snapshot with a backend (router/hold.py)
                if not self.candidates and self.local_error is None:
                    self.local_error = (503, "no_ready_backends", f"app {route.app!r} has no ready backends")
        if self.local_error is not None:
            if self.request_complete:
                self.respond_locally(*self.local_error)
            return
        self.try_next_backend()

    def request_body(self, body: bytes) -> None:
        if self.done or self.local_error is not None:
            return  # discarded: the answer does not depend on it
        data = _chunk(body) if self.req_chunked else body
        if self.retained is not None:
            self.retained_size += len(data)
            if self.retained_size > BODY_BUFFER_LIMIT:
                self.retained = None  # too large to keep: this request is not retried
            else:
                self.retained.append(data)
        if self.sent and self.upstream is not None:
            self.upstream.write(data)
            self.last_upstream_activity = self.loop.time()  # the backend cannot answer before the body ends
            return
        if self.body is None:
            self.body = []
        self.body.append(data)
        self.body_size += len(data)
        if self.body_size > BODY_BUFFER_LIMIT:
            self.client.pause_reading_for_body(True)

    def from_client(self, data: bytes) -> None:
        """Bytes after an upgrade request's head: the backend's to read (held until it is connected)."""
        if self.switched:
            upstream = self.upstream
            if upstream is not None:
                upstream.write(data)
                self.last_upstream_activity = self.loop.time()
        else:
            self.request_body(data)

    def request_finished(self) -> None:
        self.request_complete = True
        if self.done:
            return
        if self.sent and self.upstream is not None:
            if self.req_chunked:
                self.upstream.write(b"0\r\n\r\n")
        elif self.local_error is not None and self.client.active is self:
            self.respond_locally(*self.local_error)

    # backend choice -------------------------------------------------------------------------------
    def try_next_backend(self) -> None:
        if self.candidates:
            backend = self.candidates.pop(0)
            self.backend = backend
            pool = self.router.pools.get(backend.host, backend.port)
            conn = pool.take()
            if conn is not None:
                self.attach(conn)
            else:
                self.connect_task = self.loop.create_task(self.connect(pool, backend))
            return
        app = self.app or "?"
        self.fail(502, "backend_unavailable", f"could not connect to any backend of app {app!r}")

    async def connect(self, pool: BackendPool, backend: Backend) -> None:
        try:
            conn = await pool.connect(self.router.settings.connect_timeout)
        except (OSError, TimeoutError) as exc:
            self.router.connect_failed(self.app or "?", backend, exc)
            self.router.pools.mark_down(backend.host, backend.port)
            if self.policy is not None:
                self._outcome(backend, 0, gateway_error=True)
            if not self.done:
                self.try_next_backend()
            return
        except Exception as exc:  # never leave the client waiting on a failed task
            self.router.log.error("connecting to backend %s failed unexpectedly", backend.id, exc_info=exc)
            self.fail(502, "bad_gateway", f"could not connect to backend {backend.id}")
            return
        finally:
            self.connect_task = None
        self.router.pools.mark_up(backend.host, backend.port)
        if self.done:
            pool.give_back(conn)
        else:
            self.attach(conn)

    def attach(self, conn: UpstreamConnection) -> None:
        self.upstream = conn
        conn.exchange = self
        parts = [self.head]
        if self.body:
            parts.extend(self.body)
            self.body = None
            self.client.pause_reading_for_body(False)
        if self.request_complete and self.req_chunked:
            parts.append(b"0\r\n\r\n")
        conn.write(b"".join(parts) if len(parts) > 1 else self.head)
        self.sent = True
        if self.backend is not None:
            self.counted_backend = self.backend.id
            self.router.metrics.backend_started(self.backend.id)
        if self.client.write_paused:
            conn.pause_reading(True)
        now = self.last_upstream_activity = self.loop.time()
        wait = self.router.settings.upstream_timeout
        if self.decision is None:  # the connection's timer, kept across its requests (upstream.py)
            conn.arm_idle(now + wait)
            return
        self.attempt_started = now  # one timer of its own covers the idle, per-try and overall timeouts
        if self.per_try is not None and self.per_try < wait:
            wait = self.per_try
        if self.deadline and self.deadline - now < wait:
            wait = max(self.deadline - now, 0.0)
        self.timer = self.loop.call_later(wait, self.check_timeout)

    def check_timeout(self) -> None:
        self.timer = None
        if self.done:
            return
        timeout = self.router.settings.upstream_timeout
        if self.switched:
            timeout = self.router.settings.tunnel_idle_timeout
        now = self.loop.time()
        if self.decision is not None:
            if self.deadline and now >= self.deadline:
                self._overall_expired()
                return
            per_try = self.per_try
            if per_try is not None and not self.response_started and now - self.attempt_started >= per_try:
                self._per_try_expired()
                return
        if self.client.write_paused:  # the client is the slow side; the backend is waiting on us
            self.last_upstream_activity = now
        remaining = self.last_upstream_activity + timeout - now
        if remaining > 0:
            upstream = self.upstream
            if self.decision is not None:
                remaining = self._policy_wait(remaining, now)
            elif not self.switched and upstream is not None:
                upstream.arm_idle(now + remaining)
                return
            self.timer = self.loop.call_later(remaining, self.check_timeout)
            return
        if self.switched:
            self.tunnel_end = "idle_timeout"
            self.finish()
            return
        backend = self.backend.id if self.backend else "?"
        message = f"backend {backend} of app {self.app!r} did not answer within {timeout:g} s"
        self.fail(504, "backend_timeout", message)

    # response side (called by the upstream connection) --------------------------------------------
    def response_head(
        self,
        status: int,
        reason: bytes,
        header_lines: list[bytes],
        length: bytes | None,
        chunked: bool,
        has_request_id: bool,
    ) -> bytes:
        """The response head for the client; ``header_lines`` are the backend's end-to-end headers."""
        self.status = status
        self.backend_answered = True
        parts = header_lines
        parts.insert(0, b"HTTP/1.1 %d %s\r\n" % (status, reason or reason_phrase(status)))
        if self.method == "HEAD" or status in _NO_BODY_STATUSES or length is not None:
            pass
        else:
            self.resp_until_close = not chunked
            if self.http11:
                self.resp_chunked = True
                parts.append(b"Transfer-Encoding: chunked\r\n")
            else:
                self.close_client = True  # an HTTP/1.0 client reads this body until the connection closes
        if not has_request_id:
            parts.append(b"X-Request-Id: " + self.request_id.encode("ascii") + b"\r\n")
        if self.client.tls and self.route is not None and self.route.hsts:
            parts.append(b"Strict-Transport-Security: " + self.route.hsts + b"\r\n")
        if self.close_client or not self.keep_alive or self.router.draining:
            self.close_client = True
            parts.append(b"Connection: close\r\n")
        elif not self.http11:
            parts.append(b"Connection: keep-alive\r\n")
        parts.append(b"\r\n")
        self.response_started = True
        return b"".join(parts)

    def switch(self, first: bytes) -> None:
        """The backend answered an upgrade with 101: relay it (``first``: the 101 head and any bytes after
        it), then splice the two connections until either closes."""
        self.switched = True
        self.switched_at = perf_counter()
        self.status = 101
        self.response_started = self.response_complete = True
        self.upstream_keep_alive = False
        self.per_try = None  # a policy's timeouts bound the handshake; the tunnel has its idle timeout
        self.deadline = 0.0
        self.bytes_sent += len(first)
        self.client.write(first)
        if self.policy is not None:
            self.after_status(101)
        self.router.tunnel_opened(self)
        if self.timer is not None:
            self.timer.cancel()
        if self.upstream is not None:
            self.upstream.disarm_idle()  # the tunnel's idle timeout is its own timer
        self.last_upstream_activity = self.loop.time()
        self.timer = self.loop.call_later(self.router.settings.tunnel_idle_timeout, self.check_timeout)

    def response_body(self, out: list[bytes], body: bytes) -> None:
        self.bytes_sent += len(body)
        out.append(_chunk(body) if self.resp_chunked else body)

    def response_finished(self, out: list[bytes], *, keep_alive: bool) -> None:
        if self.resp_chunked:
            out.append(b"0\r\n\r\n")
        self.response_complete = True
        self.upstream_keep_alive = keep_alive and not self.resp_until_close

    def upstream_lost(self) -> None:
        """The backend connection closed while this exchange used it."""
        self.upstream = None
        if self.done:
            return
        if self.switched:
            self.tunnel_end = "backend"
            self.finish()
            return
        if self.response_started and self.resp_until_close:
            if self.resp_chunked:
                self.client.write(b"0\r\n\r\n")
            self.response_complete = True
            self.finish()
        elif self.response_started:
            self.fail(self.status, "truncated", "backend closed the connection mid-response")
        else:
            backend = self.backend.id if self.backend else "?"
            if self.policy is not None and self.backend is not None:
                self._outcome(self.backend, 0, gateway_error=True)
                if self._retry("reset", 0):
                    return
            self.fail(502, "bad_gateway", f"backend {backend} closed the connection without a response")

    def upstream_bad_response(self, message: str) -> None:
        self.fail(502, "bad_gateway", message)

    # endings --------------------------------------------------------------------------------------
    def respond_locally(self, status: int, code: str, message: str) -> None:
        body = self.local_body
        content_type = b"text/plain"
        if body is None:
            body = json_error_body(status, code, message, self.request_id, self.error_extra)
            content_type = b"application/json"
        if not self.request_complete or not self.keep_alive or self.router.draining:
            self.close_client = True
        extra = [(b"X-Request-Id", self.request_id.encode("ascii"))]
        if self.error_headers:
            extra.extend(self.error_headers)
        if self.client.tls and self.route is not None and self.route.hsts:
            extra.append((b"Strict-Transport-Security", self.route.hsts))
        keep_alive = not self.close_client
        self.client.write(
            simple_response(status, body, content_type=content_type, keep_alive=keep_alive, extra=extra)
        )
        self.status = status
        self.bytes_sent = len(body)
        self.response_started = True
        self.response_complete = True
        self.finish()

    def fail(self, status: int, code: str, message: str) -> None:
        if self.done:
            return
        self.upstream_keep_alive = False
        if self.response_started:
            # The status line is already out: all we can do is cut the connection so the client notices.
            self.status = status
            self.close_client = True
            self.client.abort()
            self.finish()
            return
        if status >= 500:
            self.router.log_upstream_error(self, status, message)
        self.respond_locally(status, code, message)

    def client_gone(self) -> None:
        if self.done:
            return
        self.upstream_keep_alive = False
        if not self.response_complete:
            self.status = self.status or 499  # nginx's "client closed request"
        elif self.switched:
            self.tunnel_end = "client"
        self.finish()

    def finish(self) -> None:
        if self.done:
            return
        self.done = True
        if self.counted_backend is not None:
            self.router.metrics.backend_finished(self.counted_backend)
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.connect_task is not None:
            self.connect_task.cancel()
            self.connect_task = None
        if self.policy is not None:
            self._release_policy(self.policy)
        conn = self.upstream
        if conn is not None:
            self.upstream = None
            if (
                self.response_complete
                and self.request_complete
                and self.upstream_keep_alive
                and self.upgrade is None  # the backend may have read the client's bytes after the head
                and not (self.policy is not None and self.policy.connection_spent(conn.requests_served))
            ):
                conn.pool.give_back(conn)
            else:
                conn.exchange = None
                conn.close()
        self.router.exchange_finished(self)
        self.client.exchange_done(self)

    def _answer_acme_challenge(self) -> bool:
        """ACME HTTP-01 on the plain listener, for any Host: the key authorization the issuer left in
        --acme-challenges (names/tls/http01.py). False (route as usual) for anything else."""
        directory = self.router.settings.acme_challenges
        if directory is None or self.client.tls or self.local_error is not None or self.method != "GET":
            return False
        answer = challenge_answer(directory, self.path)
        if answer is None:
            return False
        self.local_body = answer
        self.local_error = (200, "acme_challenge", "")
        if self.request_complete:
            self.respond_locally(*self.local_error)
        return True

    def _redirect_https(self) -> None:
        """308 to the same URL over HTTPS (the TLS listener's port unless 443): method and body kept."""
        port = self.router.tls_port
        target = self.head[self.head.index(b" ") + 1 : self.head.index(b" HTTP/1.1\r\n")]
        authority = self.host.encode("ascii") + (b"" if port == 443 else b":%d" % port)
        location = b"https://" + authority + target
        self.error_headers = [(b"Location", location)]
        self.local_error = (308, "https_required", f"{self.host} is served over HTTPS: {location.decode()}")

    # traffic policy ---------------------------------------------------------------------------------
    def _admit(
        self,
        route: Route,
    ) -> bool:
        """Access, route rule, rate limit and pool slot; True when the request is answered or queued."""
        router = self.router
        policy = route.policy
        if self.caller_token is not None:
            self.caller = router.caller_of(self.caller_token)
            if self.caller is not None:
                self.head = self.head[:-2] + b"X-Yunzhou-Caller: " + self.caller.encode("ascii") + b"\r\n\r\n"
        caller = tuple(self.caller.split("/")) if self.caller is not None else None
        if policy is not None:
            allowed, rule = policy.access(caller)  # type: ignore[arg-type]
        elif caller is not None:
            project, env, _ = route.app.split("/")
            allowed, rule = DEFAULT_ACCESS.decide(caller, own_project=project, own_env=env)  # type: ignore[arg-type]
        else:
            allowed, rule = True, ""
        if not allowed:
            who = self.caller or "outside callers"
            name = f"{route.app} traffic.{rule}"
            router.metrics.policy_event("denied", route.app, rule)
            self.error_extra = {"policy": name, "caller": self.caller}
            self.local_error = (403, "access_denied", f"{who} may not call {route.app} (policy {name})")
            return False
        if policy is None:
            self.candidates = route.pick_order()
            return False
        now = self.loop.time()
        wanted = policy.wanted_headers
        headers: dict[bytes, str] = {}
        for raw_name, raw_value in self.headers:
            lname = raw_name.lower()
            if lname in wanted:
                headers[lname] = raw_value.decode("latin-1")
        peer = self.client.peer
        decision = policy.decide(self.host, self.path, headers, peer)
        wait, limit = policy.rate_limit(decision.route, self.caller or peer, now)
        if wait:
            retry_after = max(1, math.ceil(wait))
            name = f"{route.app} traffic.{limit}"
            router.metrics.policy_event("rate_limited", route.app, limit)
            self.error_extra = {"policy": name, "retry_after": retry_after}
            self.error_headers = [(b"Retry-After", b"%d" % retry_after)]
            self.local_error = (
                429,
                "rate_limited",
                f"rate limit {name} exceeded; retry after {retry_after} s",
            )
            return False
        self.policy = policy
        self.decision = decision
        if decision.attempts:
            self.retries_left = decision.attempts
            self.retained = []
            policy.state.budget.note_request(now)
        self.per_try = decision.per_try
        if decision.overall is not None:
            self.deadline = now + decision.overall
        if policy.max_active is not None:
            state = policy.state
            if state.active >= policy.max_active:
                if len(state.pending) >= policy.max_pending:
                    router.metrics.policy_event("pool_overflow", route.app, "connectionPool")
                    self.error_extra = {"policy": f"{route.app} traffic.connectionPool"}
                    self.local_error = (503, "pool_overflow", f"connection pool of {route.app} is full")
                    return False
                state.pending.append(self)
                self.queued = True
                if self.deadline:
                    self.deadline_timer = self.loop.call_later(self.deadline - now, self._overall_expired)
                return True
            state.active += 1
            self.holds_slot = True
        self.candidates = policy.order(route.backends, decision, now, router.metrics.backend_in_flight)
        return False

    def _order(self, decision: Decision, now: float, avoid: Backend | None = None) -> list[Backend]:
        assert self.policy is not None
        assert self.route is not None
        load = self.router.metrics.backend_in_flight
        order = self.policy.order(self.route.backends, decision, now, load)
        if avoid is not None and len(order) > 1 and order[0] is avoid:
            order.append(order.pop(0))  # a retry goes to another backend when there is one
        return order

    def dequeued(self) -> None:
        """A pool slot freed up for this queued request (it is counted as this request's already)."""
        if self.done:
            if self.policy is not None:
                self._hand_on_slot()
            return
        if self.deadline_timer is not None:
            self.deadline_timer.cancel()
            self.deadline_timer = None
        self.queued = False
        self.holds_slot = True
        assert self.decision is not None
        self.candidates = self._order(self.decision, self.loop.time())
        if not self.candidates:
            self.local_error = (503, "no_ready_backends", f"app {self.app!r} has no ready backends")
            if self.request_complete:
                self.respond_locally(*self.local_error)
            return
        self.try_next_backend()

    def _release_policy(self, policy: AppPolicy) -> None:
        if self.deadline_timer is not None:
            self.deadline_timer.cancel()
            self.deadline_timer = None
        if self.holds_slot:
            self.holds_slot = False
            state = policy.state
            if state.pending:
                self._hand_on_slot()
            else:
                state.active -= 1

    def _hand_on_slot(self) -> None:
        """A pool slot is free: the first live queued request gets it, else it is given back."""
        assert self.policy is not None
        state = self.policy.state
        while state.pending:
            waiting = state.pending.popleft()
            if not waiting.done:
                self.loop.call_soon(waiting.dequeued)
                return
        state.active -= 1

    def _outcome(self, backend: Backend, status: int, *, gateway_error: bool) -> None:
        policy = self.policy
        assert policy is not None
        assert self.route is not None
        if policy.traffic.outlier_detection is None:
            return
        if policy.record(backend, status, gateway_error, self.loop.time(), self.route.backends):
            self.router.metrics.policy_event("ejections", policy.app, backend.id)

    def after_status(self, status: int) -> bool:
        """The backend answered with ``status``; True when the policy retries instead of forwarding it."""
        backend, policy = self.backend, self.policy
        if backend is None or policy is None:
            return False
        if status < 500 and not policy.state.health:
            return False  # a success with no outlier state to reset: nothing to record, nothing to retry
        self._outcome(backend, status, gateway_error=status in (502, 503, 504))
        if status < 500:
            return False
        return self._retry("gateway-error" if status in (502, 503, 504) else "5xx", status)

    def _retry(self, reason: str, status: int) -> bool:
        decision = self.decision
        policy = self.policy
        if policy is None or decision is None or decision.retries is None or self.retries_left <= 0:
            return False
        if not self.request_complete or self.retained is None:
            return False
        on = decision.retries.on
        eligible = reason in on or (reason == "gateway-error" and "5xx" in on)
        if reason == "per-try-timeout":
            eligible = bool({"gateway-error", "5xx", "reset"} & set(on))
        if not eligible:
            return False
        budget = decision.retries.budget
        if not policy.state.budget.try_retry(budget.percent, budget.min_per_second, self.loop.time()):
            self.router.metrics.policy_event("retry_budget_exhausted", policy.app, decision.route or "-")
            return False
        self.retries_left -= 1
        self.router.metrics.policy_event("retries", policy.app, reason)
        conn = self.upstream
        if conn is not None:
            self.upstream = None
            conn.exchange = None
            conn.close()
        if self.counted_backend is not None:
            self.router.metrics.backend_finished(self.counted_backend)
            self.counted_backend = None
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.sent = False
        self.body = list(self.retained) or None
        self.candidates = self._order(decision, self.loop.time(), avoid=self.backend)
        self.try_next_backend()
        return True

    def _policy_wait(self, wait: float, now: float) -> float:
        """``wait`` shortened to when the per-try or overall timeout would expire."""
        if self.per_try is not None and not self.response_started:
            wait = min(wait, self.attempt_started + self.per_try - now)
        if self.deadline:
            wait = min(wait, self.deadline - now)
        return max(wait, 0.0)

    def _per_try_expired(self) -> None:
        if self.done or self.response_started:
            return
        if self.backend is not None:
            self._outcome(self.backend, 0, gateway_error=True)
        self.router.metrics.policy_event("timeouts", self.app or "?", "perTry")
        if self._retry("per-try-timeout", 0):
            return
        self.error_extra = {"policy": f"{self.app} traffic.timeouts.perTry"}
        self.fail(
            504, "upstream_timeout", f"backend did not answer within the per-try timeout of app {self.app!r}"
        )

    def _overall_expired(self) -> None:
        self.deadline_timer = None
        if self.done:
            return
        self.router.metrics.policy_event("timeouts", self.app or "?", "overall")
        self.error_extra = {"policy": f"{self.app} traffic.timeouts.overall"}
        self.fail(504, "timeout", f"no complete response within the overall timeout of app {self.app!r}")
