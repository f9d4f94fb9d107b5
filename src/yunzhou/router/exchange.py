"""One request/response exchange: routing, backend choice with fall-through, streaming, errors, accounting.

Life of an exchange: created when the client's request headers are parsed, ``start`` (when it is the
client connection's turn) picks the route from the snapshot active at that moment, takes a pooled
connection or connects (a failed connect tries the next backend; bytes already sent are never retried),
streams the request body up and the response down, then ``finish`` records it exactly once.
"""

from __future__ import annotations

import asyncio
from time import perf_counter
from typing import TYPE_CHECKING

from yunzhou.router.http import json_error_body, reason_phrase, simple_response

if TYPE_CHECKING:
    from yunzhou.router.config import Backend, Route
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
        self.candidates: list[Backend] = []
        self.started_at = perf_counter()  # uvloop's loop.time() ticks in whole milliseconds

    # request side ---------------------------------------------------------------------------------
    def start(self) -> None:
        """Route with the snapshot active now; called when this exchange is the connection's current one."""
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
                self.candidates = route.pick_order()
                if self.router.pools.down_until:
                    self.candidates = self.router.pools.healthy_first(self.candidates)
                if not self.candidates:
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
        self.last_upstream_activity = self.loop.time()
        self.timer = self.loop.call_later(self.router.settings.upstream_timeout, self.check_timeout)

    def check_timeout(self) -> None:
        self.timer = None
        if self.done:
            return
        timeout = self.router.settings.upstream_timeout
        if self.client.write_paused:  # the client is the slow side; the backend is waiting on us
            self.last_upstream_activity = self.loop.time()
        remaining = self.last_upstream_activity + timeout - self.loop.time()
        if remaining > 0:
            self.timer = self.loop.call_later(remaining, self.check_timeout)
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
        if self.close_client or not self.keep_alive or self.router.draining:
            self.close_client = True
            parts.append(b"Connection: close\r\n")
        elif not self.http11:
            parts.append(b"Connection: keep-alive\r\n")
        parts.append(b"\r\n")
        self.response_started = True
        return b"".join(parts)

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
        if self.response_started and self.resp_until_close:
            if self.resp_chunked:
                self.client.write(b"0\r\n\r\n")
            self.response_complete = True
            self.finish()
        elif self.response_started:
            self.fail(self.status, "truncated", "backend closed the connection mid-response")
        else:
            backend = self.backend.id if self.backend else "?"
            self.fail(502, "bad_gateway", f"backend {backend} closed the connection without a response")

    def upstream_bad_response(self, message: str) -> None:
        self.fail(502, "bad_gateway", message)

    # endings --------------------------------------------------------------------------------------
    def respond_locally(self, status: int, code: str, message: str) -> None:
        body = json_error_body(status, code, message, self.request_id)
        if not self.request_complete or not self.keep_alive or self.router.draining:
            self.close_client = True
        extra = [(b"X-Request-Id", self.request_id.encode("ascii"))]
        self.client.write(simple_response(status, body, keep_alive=not self.close_client, extra=extra))
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
        conn = self.upstream
        if conn is not None:
            self.upstream = None
            if self.response_complete and self.request_complete and self.upstream_keep_alive:
                conn.pool.give_back(conn)
            else:
                conn.exchange = None
                conn.close()
        self.router.exchange_finished(self)
        self.client.exchange_done(self)
