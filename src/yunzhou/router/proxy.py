"""Client side: one asyncio Protocol per client connection, parsing requests with httptools.

Requests on a keep-alive connection are served one at a time, in order; pipelined requests wait in a
queue (reading pauses meanwhile). Each request becomes an ``Exchange``.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import TYPE_CHECKING, cast

import httptools

from yunzhou.router.config import host_from_header
from yunzhou.router.exchange import Exchange
from yunzhou.router.http import (
    HOP_BY_HOP,
    connection_tokens,
    json_error_body,
    simple_response,
    valid_request_id,
)

if TYPE_CHECKING:
    from yunzhou.router.server import Router

MAX_URL_BYTES = 8 * 1024
MAX_HEADER_BYTES = 64 * 1024
# Headers the router rewrites itself; every other end-to-end header is forwarded unchanged.
_REWRITTEN = HOP_BY_HOP | {
    b"host",
    b"x-forwarded-for",
    b"x-forwarded-proto",
    b"x-forwarded-host",
    b"x-request-id",
    b"expect",
    b"x-yunzhou-caller",  # identity is the router's to set: never accepted from a client
    b"x-yunzhou-caller-token",
}
_PAUSE_PIPELINE = 1
_PAUSE_BODY = 2
_PAUSE_UPSTREAM = 4


def tunnelled_protocols(value: bytes) -> bytes | None:
    """The protocols of an ``Upgrade`` request header the router passes on; None: serve it as plain HTTP.

    ``h2c`` is left out: an h2c connection would carry many requests past the per-request access policy,
    rate limits, metrics and access log, and RFC 9110 §7.8 lets the server ignore the offer (the client
    then gets its answer in HTTP/1.1, as it expects)."""
    kept = [p.strip() for p in value.split(b",") if p.strip() and p.strip().lower().split(b"/")[0] != b"h2c"]
    return b", ".join(kept) if kept else None


class _RejectRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class ClientConnection(asyncio.Protocol):
    tls = False  # TLSClientConnection: the client came through the TLS listener
    forwarded_proto = b"\r\nX-Forwarded-Proto: http\r\n"

    def __init__(self, router: Router) -> None:
        self.router = router
        self.loop = router.loop
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.peer = ""  # the client's IP address (rate-limit key, source hash)
        self.peer_ip = b""  # the same, for X-Forwarded-For
        self.closed = False
        self.write_paused = False
        self.read_pauses = 0
        self.last_activity = self.loop.time()
        # when the request head being read began (its first byte; the connection for the first request);
        # 0 while no head is in progress. The router's sweep answers 408 to heads older than header_timeout.
        self.head_started = self.last_activity
        self.active: Exchange | None = None  # the exchange being answered
        self.parsing: Exchange | None = None  # the exchange whose request body is being read
        self.upgrading: Exchange | None = None  # the last request that asked to upgrade the connection
        self.upgraded: Exchange | None = None  # past its head, every byte is that exchange's (router/tunnel)
        self.queue: deque[Exchange] = deque()
        self._starting = False
        # per-request parse state
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.header_bytes = 0

    # asyncio.Protocol -------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports are not subclasses
        peer = transport.get_extra_info("peername")
        self.peer = peer[0] if peer else ""
        self.peer_ip = self.peer.encode("ascii")
        if not self.router.client_opened(self):  # over the per-address bound: answered at once, closed
            self.head_started = 0.0
            limit = self.router.settings.max_connections_per_client
            message = f"too many connections from {self.peer}: at most {limit} at once"
            body = json_error_body(429, "too_many_connections", message)
            self.write(simple_response(429, body, keep_alive=False, extra=[(b"Retry-After", b"1")]))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.router.client_closed(self)
        self.queue.clear()
        active = self.active
        if active is not None:
            active.client_gone()

    def data_received(self, data: bytes) -> None:
        self.last_activity = self.loop.time()
        upgraded = self.upgraded
        if upgraded is not None:
            upgraded.from_client(data)
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            offset = exc.args[0] if exc.args and isinstance(exc.args[0], int) else len(data)
            upgraded = self.upgrading
            if upgraded is not None:  # no more HTTP on this connection: the rest goes to the backend as is
                self.upgraded = upgraded
                if offset < len(data):
                    upgraded.from_client(data[offset:])
                return
            # An upgrade the router does not pass on (h2c) was proxied as a plain request; the bytes after
            # it start the next request.
            self.parser = httptools.HttpRequestParser(self)
            if offset < len(data):
                self.data_received(data[offset:])
        except httptools.HttpParserError as exc:
            cause = exc.__context__
            if isinstance(cause, _RejectRequest):
                self.reject(cause.status, str(cause))
            elif isinstance(exc, httptools.HttpParserCallbackError) and cause is not None:
                self.router.log.error("internal error handling a request", exc_info=cause)
                self.reject(500, "internal router error")
            else:
                self.reject(400, f"malformed HTTP request: {exc}")

    def pause_writing(self) -> None:
        self.write_paused = True
        if self.active is not None and self.active.upstream is not None:
            self.active.upstream.pause_reading(True)

    def resume_writing(self) -> None:
        self.write_paused = False
        if self.active is not None and self.active.upstream is not None:
            self.active.upstream.pause_reading(False)

    # httptools callbacks ----------------------------------------------------------------------
    def on_message_begin(self) -> None:
        self.url = b""
        self.headers = []
        self.header_bytes = 0
        if not self.head_started:
            self.head_started = self.last_activity  # set by data_received for these bytes: no clock read

    def on_url(self, url: bytes) -> None:
        self.url += url
        if len(self.url) > MAX_URL_BYTES:
            raise _RejectRequest(414, f"request target longer than {MAX_URL_BYTES} bytes")

    def on_header(self, name: bytes, value: bytes) -> None:
        self.header_bytes += len(name) + len(value) + 4
        if self.header_bytes > MAX_HEADER_BYTES:
            raise _RejectRequest(431, f"request headers larger than {MAX_HEADER_BYTES} bytes")
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        self.head_started = 0.0
        parser = self.parser
        method = parser.get_method()
        url = self.url
        host_value: bytes | None = None
        xff: bytes | None = None
        request_id: bytes | None = None
        chunked = False
        expect_continue = False
        extra_hop: set[bytes] | None = None
        caller_token: bytes | None = None
        upgrade: bytes | None = None
        out = [b""]  # the request line goes first, once the target is known
        for name, value in self.headers:
            lname = name.lower()
            if lname in _REWRITTEN:
                if lname == b"host":
                    if host_value is not None:
                        raise _RejectRequest(400, "more than one Host header")
                    host_value = value
                elif lname == b"x-forwarded-for":
                    xff = value if xff is None else xff + b", " + value
                elif lname == b"x-request-id":
                    request_id = value
                elif lname == b"transfer-encoding":
                    chunked = True
                elif lname == b"connection":
                    extra_hop = connection_tokens(value, extra_hop)
                elif lname == b"expect":
                    expect_continue = value.lower() == b"100-continue"
                elif lname == b"x-yunzhou-caller-token":
                    caller_token = value
                elif lname == b"upgrade":
                    upgrade = value
                continue
            out.append(name + b": " + value + b"\r\n")
        if extra_hop:
            out = [line for line in out if line.partition(b":")[0].lower() not in extra_hop]
        if upgrade is not None:  # passed on only with "Connection: upgrade", over HTTP/1.1, and not h2c
            asked = extra_hop is not None and b"upgrade" in extra_hop and parser.get_http_version() == "1.1"
            upgrade = tunnelled_protocols(upgrade) if asked else None

        if url[:1] != b"/" and url != b"*":  # absolute-form target: the host in it wins over Host
            try:
                parsed = httptools.parse_url(url)
            except httptools.HttpParserInvalidURLError:
                raise _RejectRequest(400, "malformed request target") from None
            if parsed.host:
                host_value = parsed.host + (b":%d" % parsed.port if parsed.port else b"")
            url = (parsed.path or b"/") + (b"?" + parsed.query if parsed.query else b"")
        query_at = url.find(b"?")
        path = (url if query_at < 0 else url[:query_at]).decode("latin-1")
        method_text = method.decode("ascii")

        router = self.router
        if request_id is None or not valid_request_id(request_id):
            request_id_text = router.request_ids.next()
            request_id = request_id_text.encode("ascii")
        else:
            request_id_text = request_id.decode("ascii")
        host = host_from_header(host_value) if host_value is not None else ""
        out[0] = method + b" " + url + b" HTTP/1.1\r\n"
        if host_value is not None:
            out.append(b"Host: " + host_value + b"\r\n")
            out.append(b"X-Forwarded-Host: " + host_value + b"\r\n")
        xff = self.peer_ip if xff is None else xff + b", " + self.peer_ip
        out.append(b"X-Forwarded-For: " + xff + self.forwarded_proto)
        out.append(b"X-Request-Id: " + request_id + b"\r\n")
        if chunked:
            out.append(b"Transfer-Encoding: chunked\r\n")
        if upgrade is not None:  # hop-by-hop, but kept for this hop: the backend must see the offer
            out.append(b"Connection: Upgrade\r\nUpgrade: " + upgrade + b"\r\n")
        out.append(b"\r\n")

        local_error: tuple[int, str, str] | None = None
        if method == b"CONNECT":
            local_error = (405, "method_not_allowed", "CONNECT is not supported by the router")
        elif host_value is None:
            local_error = (400, "missing_host", "the request has no Host header; the router routes by host")
        http11 = parser.get_http_version() == "1.1"
        exchange = Exchange(
            self,
            method=method_text,
            path=path,
            host=host,
            request_id=request_id_text,
            head=b"".join(out),
            req_chunked=chunked and upgrade is None,  # after an upgrade head, bytes go on as they came
            keep_alive=parser.should_keep_alive(),
            http11=http11,
            local_error=local_error,
            headers=self.headers,
            caller_token=caller_token,
            upgrade=upgrade,
        )
        if upgrade is not None:
            self.upgrading = exchange
        if expect_continue and http11 and local_error is None:
            self.write(b"HTTP/1.1 100 Continue\r\n\r\n")  # answered here; backends never see Expect
        self.parsing = exchange
        if self.active is None and not self.queue and not self._starting:  # the usual case
            self.active = exchange
            exchange.start()
            return
        self.queue.append(exchange)
        self._start_next()
        if self.queue:
            self._set_read_pause(_PAUSE_PIPELINE, True)

    def on_body(self, body: bytes) -> None:
        exchange = self.parsing
        if exchange is not None:
            exchange.request_body(body)

    def on_message_complete(self) -> None:
        exchange = self.parsing
        if exchange is not None:
            self.parsing = None
            exchange.request_finished()

    # exchange interface ----------------------------------------------------------------------
    def _start_next(self) -> None:
        if not self.queue:
            if self.read_pauses & _PAUSE_PIPELINE:
                self._set_read_pause(_PAUSE_PIPELINE, False)
            return
        if self._starting:  # a start that finished at once re-enters here; the loop below continues
            return
        self._starting = True
        try:
            while self.active is None and self.queue and not self.closed:
                self.active = self.queue.popleft()
                self.active.start()
        finally:
            self._starting = False
        if not self.queue:
            self._set_read_pause(_PAUSE_PIPELINE, False)

    def exchange_done(self, exchange: Exchange) -> None:
        if self.active is exchange:
            self.active = None
        if self.closed:
            return
        if self.read_pauses & (_PAUSE_BODY | _PAUSE_UPSTREAM):
            self._set_read_pause(_PAUSE_BODY | _PAUSE_UPSTREAM, False)
        if exchange.close_client or self.router.draining:
            self.close()
            return
        self.last_activity = self.loop.time()
        if self.head_started:  # a next head begun while this request was answered: its time starts now
            self.head_started = self.last_activity
        self._start_next()

    def write(self, data: bytes) -> None:
        if not self.closed and self.transport is not None:
            self.transport.write(data)

    def _set_read_pause(self, reason: int, paused: bool) -> None:
        before = self.read_pauses
        after = before | reason if paused else before & ~reason
        self.read_pauses = after
        if self.transport is None or self.closed or bool(before) == bool(after):
            return
        if after:
            self.transport.pause_reading()
        else:
            self.transport.resume_reading()

    def pause_reading_for_body(self, paused: bool) -> None:
        self._set_read_pause(_PAUSE_BODY, paused)

    def pause_reading_for_upstream(self, paused: bool) -> None:
        self._set_read_pause(_PAUSE_UPSTREAM, paused)

    def reject(self, status: int, message: str) -> None:
        """Answer a request the router cannot parse or accept (or not in time), then close: the byte
        stream is unusable."""
        self._set_read_pause(_PAUSE_PIPELINE, True)
        self.queue.clear()
        self.head_started = 0.0
        code = "request_timeout" if status == 408 else "bad_request"
        if self.active is None:
            body = json_error_body(status, code, message)
            self.write(simple_response(status, body, keep_alive=False))
            self.router.protocol_error(status, message)
            self.close()
        elif not self.active.request_complete:
            self.active.fail(status, code, message)
        else:
            self.active.close_client = True

    def is_idle(self) -> bool:
        return self.active is None and self.parsing is None and not self.queue

    def close(self) -> None:
        if not self.closed and self.transport is not None:
            self.closed = True
            self.transport.close()

    def abort(self) -> None:
        if self.transport is not None:
            self.closed = True
            self.transport.abort()


class TLSClientConnection(ClientConnection):
    """A client of the TLS listener: the same HTTP/1.1 handling, told apart for redirects, HSTS and
    ``X-Forwarded-Proto`` (the transport decrypts; the handshake is over before ``connection_made``)."""

    tls = True
    forwarded_proto = b"\r\nX-Forwarded-Proto: https\r\n"
