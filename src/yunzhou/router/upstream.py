"""Backend side: one keep-alive connection pool per backend address and the response-parsing protocol.

A connection belongs to at most one exchange at a time. Response bytes are parsed with httptools and
re-framed for the client (hop-by-hop headers dropped, body streamed as it arrives).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, cast

import httptools

from yunzhou.router.http import HOP_BY_HOP, connection_tokens

if TYPE_CHECKING:
    from yunzhou.router.config import Backend
    from yunzhou.router.exchange import Exchange
    from yunzhou.router.server import Router

MAX_IDLE_PER_BACKEND = 128
DOWN_AFTER_CONNECT_FAILURE_S = 2.0  # passive health: such a backend is tried last for this long


class UpstreamConnection(asyncio.Protocol):
    """A connection to one backend; parses responses and hands them to the current exchange."""

    def __init__(self, pool: BackendPool) -> None:
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.exchange: Exchange | None = None
        self.closed = False
        self.idle_since = 0.0
        self.requests_served = 0
        self.read_paused = False
        # The idle-timeout timer of the exchanges without a policy, kept across the requests this connection
        # carries: one armed at the first request fires no later than any later one needs, and the check
        # re-arms it from the exchange's last activity (a timer per request costs more than the rest of
        # its bookkeeping). ``idle_due``: the loop time it fires at.
        self.idle_timer: asyncio.TimerHandle | None = None
        self.idle_due = 0.0
        # per-response state
        self.reason = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.out: list[bytes] = []
        self.informational = False
        self.switching = False  # a 101 to an upgrade request was parsed: past it, bytes are spliced

    # asyncio.Protocol -------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports are not subclasses
        self.pool.router.metrics.upstream_connections += 1

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.disarm_idle()
        self.pool.router.metrics.upstream_connections -= 1
        self.pool.forget(self)
        exchange = self.exchange
        if exchange is not None:
            self.exchange = None
            exchange.upstream_lost()

    def data_received(self, data: bytes) -> None:
        exchange = self.exchange
        if exchange is None:  # a backend may not speak while idle; such a connection is not reusable
            self.close()
            return
        exchange.last_upstream_activity = exchange.loop.time()
        if exchange.switched:  # a tunnel: bytes go to the client as they came
            exchange.bytes_sent += len(data)
            exchange.client.write(data)
            return
        out: list[bytes] = []
        self.out = out
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            if self.switching:
                offset = exc.args[0] if exc.args and isinstance(exc.args[0], int) else len(data)
                out.append(data[offset:])
                self.out = []
                exchange.switch(b"".join(out))
                return
            exchange.upstream_bad_response(f"invalid HTTP response from backend: {exc}")
            return
        except httptools.HttpParserError as exc:
            self.out = []
            if out and exchange.response_started:
                exchange.client.write(b"".join(out))
            exchange.upstream_bad_response(f"invalid HTTP response from backend: {exc}")
            return
        if out:
            exchange.client.write(b"".join(out))
            self.out = []
        if exchange.response_complete and self.exchange is exchange:
            exchange.finish()

    def eof_received(self) -> bool | None:
        return None  # close our side too; connection_lost reports to the exchange

    def pause_writing(self) -> None:
        if self.exchange is not None:
            self.exchange.client.pause_reading_for_upstream(True)

    def resume_writing(self) -> None:
        if self.exchange is not None:
            self.exchange.client.pause_reading_for_upstream(False)

    # httptools callbacks ----------------------------------------------------------------------
    def on_message_begin(self) -> None:
        self.reason = b""
        self.headers = []

    def on_status(self, status: bytes) -> None:
        self.reason += status

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        if status < 200:  # 1xx: the router answers 100-continue itself; a 101 to an upgrade is relayed
            self.informational = True
            exchange = self.exchange
            # switched only with Upgrade and Connection: upgrade in the 101, as RFC 9110 asks
            upgrade = status == 101 and exchange is not None and exchange.upgrade is not None
            if upgrade and self.parser.should_upgrade():
                self.switching = True
                self.out.append(self._switching_head())
            return
        exchange = self.exchange
        if exchange is None or exchange.response_complete:  # a second response nobody asked for
            self.close()
            return
        if exchange.policy is not None and exchange.after_status(status):
            return  # retried elsewhere: this connection was detached and closed
        length: bytes | None = None
        chunked = False
        extra_hop: set[bytes] | None = None
        lines: list[bytes] = []
        has_request_id = False
        for name, value in self.headers:
            lname = name.lower()
            if lname in HOP_BY_HOP:
                if lname == b"transfer-encoding":
                    chunked = True
                elif lname == b"connection":
                    extra_hop = connection_tokens(value, extra_hop)
                continue
            if lname == b"content-length":
                length = value
            elif lname == b"x-request-id":
                has_request_id = True
            lines.append(name + b": " + value + b"\r\n")
        if extra_hop:
            lines = [line for line in lines if line.partition(b":")[0].lower() not in extra_hop]
        self.out.append(exchange.response_head(status, self.reason, lines, length, chunked, has_request_id))
        if exchange.method == "HEAD":
            # httptools cannot be told a response has no body; a fresh parser takes the next response.
            keep_alive = self.parser.should_keep_alive()
            self.parser = httptools.HttpResponseParser(self)
            exchange.response_finished(self.out, keep_alive=keep_alive)

    def _switching_head(self) -> bytes:
        """The backend's 101 head for the client: its headers as they came (Upgrade, Connection and the
        protocol's own, e.g. Sec-WebSocket-Accept), hop-by-hop ones included: they are about this upgrade."""
        lines = [b"HTTP/1.1 101 " + (self.reason or b"Switching Protocols") + b"\r\n"]
        lines.extend(name + b": " + value + b"\r\n" for name, value in self.headers)
        lines.append(b"\r\n")
        return b"".join(lines)

    def on_body(self, body: bytes) -> None:
        exchange = self.exchange
        if exchange is not None and not exchange.response_complete:
            exchange.response_body(self.out, body)

    def on_message_complete(self) -> None:
        if self.informational:
            self.informational = False
            return
        exchange = self.exchange
        if exchange is not None and not exchange.response_complete:
            exchange.response_finished(self.out, keep_alive=self.parser.should_keep_alive())

    # idle timeout of the exchange using this connection ----------------------------------------
    def arm_idle(self, due: float) -> None:
        """Make sure the current exchange's ``check_timeout`` runs by loop time ``due``."""
        timer = self.idle_timer
        if timer is not None:
            if self.idle_due <= due:
                return  # fires first; the check re-arms for what is left
            timer.cancel()
        self.idle_due = due
        self.idle_timer = self.pool.router.loop.call_at(due, self._idle_check)

    def disarm_idle(self) -> None:
        if self.idle_timer is not None:
            self.idle_timer.cancel()
            self.idle_timer = None

    def _idle_check(self) -> None:
        self.idle_timer = None
        exchange = self.exchange
        if exchange is not None and exchange.decision is None and not exchange.switched:
            exchange.check_timeout()  # exchanges with a policy, and tunnels, keep a timer of their own

    # pool interface ---------------------------------------------------------------------------
    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.closed:
            self.transport.write(data)

    def pause_reading(self, paused: bool) -> None:
        if self.transport is None or self.closed or paused == self.read_paused:
            return
        self.read_paused = paused
        if paused:
            self.transport.pause_reading()
        else:
            self.transport.resume_reading()

    def close(self) -> None:
        self.disarm_idle()
        if not self.closed:
            self.closed = True
            if self.transport is not None:
                self.transport.close()


class BackendPool:
    """Idle keep-alive connections to one backend address, shared by every snapshot that lists it."""

    def __init__(self, router: Router, host: str, port: int) -> None:
        self.router = router
        self.host = host
        self.port = port
        self.idle: list[UpstreamConnection] = []
        self.retired = False

    def take(self) -> UpstreamConnection | None:
        idle = self.idle
        while idle:
            conn = idle.pop()
            if not conn.closed and conn.transport is not None and not conn.transport.is_closing():
                return conn
        return None

    async def connect(self, timeout: float) -> UpstreamConnection:
        loop = self.router.loop
        _transport, conn = await asyncio.wait_for(
            loop.create_connection(lambda: UpstreamConnection(self), self.host, self.port), timeout
        )
        return conn

    def give_back(self, conn: UpstreamConnection) -> None:
        conn.exchange = None
        if conn.closed:
            return
        if self.retired or self.router.draining or len(self.idle) >= MAX_IDLE_PER_BACKEND:
            conn.close()
            return
        conn.pause_reading(False)  # an idle connection must notice when the backend closes it
        conn.idle_since = self.router.loop.time()
        conn.requests_served += 1
        self.idle.append(conn)

    def forget(self, conn: UpstreamConnection) -> None:
        if conn in self.idle:
            self.idle.remove(conn)

    def close_idle(self, older_than: float | None = None) -> None:
        keep: list[UpstreamConnection] = []
        for conn in self.idle:
            if older_than is None or conn.idle_since < older_than:
                conn.close()
            else:
                keep.append(conn)
        self.idle = keep


class Pools:
    """Every backend pool by address. Addresses a new snapshot no longer lists are retired."""

    def __init__(self, router: Router) -> None:
        self.router = router
        self.by_address: dict[tuple[str, int], BackendPool] = {}
        self.down_until: dict[tuple[str, int], float] = {}  # addresses whose last connect failed

    def mark_down(self, host: str, port: int) -> None:
        self.down_until[(host, port)] = self.router.loop.time() + DOWN_AFTER_CONNECT_FAILURE_S

    def mark_up(self, host: str, port: int) -> None:
        self.down_until.pop((host, port), None)

    def healthy_first(self, backends: list[Backend]) -> list[Backend]:
        """Backends whose last connect failed recently go last: still tried, but after the others."""
        now = self.router.loop.time()
        down = self.down_until
        for address, until in list(down.items()):
            if until <= now:
                del down[address]
        if not down:
            return backends
        return sorted(backends, key=lambda b: (b.host, b.port) in down)  # stable: keeps round-robin order

    def get(self, host: str, port: int) -> BackendPool:
        pool = self.by_address.get((host, port))
        if pool is None:
            pool = self.by_address[(host, port)] = BackendPool(self.router, host, port)
        return pool

    def keep_only(self, addresses: set[tuple[str, int]]) -> None:
        """Retire pools not in ``addresses``: idle connections close now, busy ones after their response."""
        for address in list(self.by_address):
            if address not in addresses:
                pool = self.by_address.pop(address)
                pool.retired = True
                pool.close_idle()
                self.down_until.pop(address, None)

    def close_idle(self, older_than: float | None = None) -> None:
        for pool in self.by_address.values():
            pool.close_idle(older_than)
