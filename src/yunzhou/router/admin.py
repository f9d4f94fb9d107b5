"""Admin API on its own loopback port: ``PUT/GET /config``, ``GET /status``, ``/healthz``, ``/metrics``.

Plain HTTP/1.1 with keep-alive, parsed with httptools like the proxy; requests are tiny and rare, so
bodies are collected whole (up to ``MAX_BODY_BYTES``).

Every endpoint but ``/healthz`` needs ``Authorization: Bearer <admin token>``: apps share the loopback
network and could otherwise reroute every host to themselves. Unauthorized bodies are never buffered.
"""

from __future__ import annotations

import asyncio
import hmac
import json
from typing import TYPE_CHECKING, Any, cast

import httptools

from yunzhou.domain.errors import Conflict, FieldProblem, Unauthenticated, UserError, YunzhouError
from yunzhou.router.http import simple_response
from yunzhou.router.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from yunzhou.router.metrics import render_certificate_expiry

if TYPE_CHECKING:
    from yunzhou.router.server import Router

MAX_BODY_BYTES = 32 * 1024 * 1024
# How RouterProcess hands the admin token to its child: the environment (/proc/<pid>/environ is readable
# by the router's user only), never argv (world-readable /proc/<pid>/cmdline).
ADMIN_TOKEN_VARIABLE = "YUNZHOU_ROUTER_ADMIN_TOKEN"  # noqa: S105 - the name of a variable, not a secret
MIN_ADMIN_TOKEN_LENGTH = 16
# A connection that has not sent one authorised request within this many seconds is closed, so an app
# on loopback cannot hold admin connections open for free (the control plane's keep-alive one is trusted).
UNTRUSTED_CONNECTION_SECONDS = 10.0
_OPEN_PATHS = frozenset({"/healthz"})  # liveness probes need no secret: only ok/draining and the version
_CHALLENGE = [(b"WWW-Authenticate", b'Bearer realm="yunzhou-router-admin"')]
_JSON = b"application/json"
_ENDPOINTS = {
    "/config": ("GET", "PUT"),
    "/healthz": ("GET",),
    "/status": ("GET",),
    "/metrics": ("GET",),
    "/inflight": ("GET",),
    "/activations": ("GET",),
}


def _json(doc: Any) -> bytes:
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8") + b"\n"


def error_document(exc: YunzhouError) -> dict[str, Any]:
    """The API's error shape, so the control plane reads router errors like its own."""
    return {
        "error": {
            "code": exc.code,
            "message": exc.message,
            "problems": [{"path": p.path, "message": p.message} for p in exc.problems],
        }
    }


class AdminConnection(asyncio.Protocol):
    def __init__(self, router: Router) -> None:
        self.router = router
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.url = b""
        self.body: list[bytes] = []
        self.body_size = 0
        self.too_large = False
        self.authorization = b""
        self.unauthorized = False
        self.trusted = False
        self.expiry: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports are not subclasses
        loop = asyncio.get_running_loop()
        self.expiry = loop.call_later(UNTRUSTED_CONNECTION_SECONDS, self._close_untrusted)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.expiry is not None:
            self.expiry.cancel()
            self.expiry = None

    def _close_untrusted(self) -> None:
        self.expiry = None
        if not self.trusted:
            self._close()

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._send(400, _json({"error": {"code": "bad_request", "message": f"malformed request: {exc}"}}))
            self._close()

    def on_message_begin(self) -> None:
        self.url = b""
        self.body = []
        self.body_size = 0
        self.too_large = False
        self.authorization = b""
        self.unauthorized = False

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() == b"authorization":
            self.authorization = value

    def on_headers_complete(self) -> None:
        path = self.url.split(b"?", 1)[0].decode("latin-1")
        self.unauthorized = path not in _OPEN_PATHS and not self._authorized()
        if not self.unauthorized and path not in _OPEN_PATHS and not self.trusted:
            self.trusted = True
            if self.expiry is not None:
                self.expiry.cancel()
                self.expiry = None

    def _authorized(self) -> bool:
        token = self.router.settings.admin_token
        if token is None:  # started with --insecure-admin
            return True
        scheme, _, credentials = self.authorization.strip().partition(b" ")
        return scheme.lower() == b"bearer" and hmac.compare_digest(credentials.strip(), token.encode("utf-8"))

    def on_body(self, body: bytes) -> None:
        if self.unauthorized:  # an attacker's body costs nothing: it is not kept
            return
        self.body_size += len(body)
        if self.body_size > MAX_BODY_BYTES:
            self.too_large = True
            self.body = []
        elif not self.too_large:
            self.body.append(body)

    def on_message_complete(self) -> None:
        method = self.parser.get_method().decode("ascii")
        path = self.url.split(b"?", 1)[0].decode("latin-1")
        keep_alive = self.parser.should_keep_alive()
        extra = None
        if self.unauthorized:
            self.router.metrics.admin_unauthorized += 1
            message = "the router's admin API needs 'Authorization: Bearer <admin token>' (docs/router.md)"
            status, body, ctype = 401, _json(error_document(Unauthenticated(message))), _JSON
            extra = _CHALLENGE
            keep_alive = False  # a refused caller does not keep the connection
        elif self.too_large:
            message = f"request body larger than {MAX_BODY_BYTES} bytes"
            status, body, ctype = 413, _json({"error": {"code": "too_large", "message": message}}), _JSON
        else:
            status, body, ctype = self.handle(method, path, b"".join(self.body))
        self._send(status, body, ctype, keep_alive=keep_alive, extra=extra)
        if not keep_alive:
            self._close()

    def handle(self, method: str, path: str, body: bytes) -> tuple[int, bytes, bytes]:
        router = self.router
        allowed = _ENDPOINTS.get(path)
        if allowed is None:
            message = f"no admin endpoint {path!r}; try /config, /status, /healthz, /metrics or /inflight"
            return 404, _json({"error": {"code": "not_found", "message": message}}), _JSON
        if method not in allowed:
            message = f"{method} is not allowed on {path}; use {' or '.join(allowed)}"
            return 405, _json({"error": {"code": "method_not_allowed", "message": message}}), _JSON
        if path == "/healthz":
            doc = {
                "status": "draining" if router.draining else "ok",
                "config_version": router.table.snapshot.version,
            }
            return (503 if router.draining else 200), _json(doc), _JSON
        if path == "/status":  # the active snapshot in numbers, and the routes it left out with why
            active = router.table.snapshot
            status = {
                "status": "draining" if router.draining else "ok",
                "config_version": active.version,
                "routes": len(active.routes),
                "dropped": [d.to_json() for d in active.dropped],
            }
            return 200, _json(status), _JSON
        if path == "/inflight":
            busy = {"apps": router.metrics.in_flight, "backends": router.metrics.backend_in_flight}
            return 200, _json(busy), _JSON
        if path == "/activations":  # held demand of apps scaled to zero: the wake signal
            return 200, _json({"apps": router.held.demand()}), _JSON
        if path == "/metrics":
            text = (
                router.metrics.render()
                + router.held.render_metrics()
                + render_certificate_expiry(router.certificates.not_after)
            )
            return 200, text.encode("utf-8"), METRICS_CONTENT_TYPE.encode("ascii")
        if method == "GET":
            return 200, _json(router.table.snapshot.to_json()), _JSON
        return self._put_config(body)

    def _put_config(self, body: bytes) -> tuple[int, bytes, bytes]:
        router = self.router
        try:
            try:
                doc = json.loads(body)
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise UserError(
                    f"the body is not valid JSON: {exc}", problems=[FieldProblem("", "not valid JSON")]
                ) from None
            applied = router.apply_config(doc)
        except Conflict as exc:
            router.metrics.config_rejected += 1
            return 409, _json(error_document(exc)), _JSON
        except UserError as exc:
            router.metrics.config_rejected += 1
            router.log.warning("config snapshot refused: %s", exc.message)
            return 422, _json(error_document(exc)), _JSON
        active = router.table.snapshot
        doc = {
            "version": active.version,
            "applied": applied,
            "dropped": [d.to_json() for d in active.dropped],
        }
        return 200, _json(doc), _JSON

    def _send(
        self,
        status: int,
        body: bytes,
        ctype: bytes = _JSON,
        *,
        keep_alive: bool = True,
        extra: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        if self.transport is not None and not self.transport.is_closing():
            response = simple_response(status, body, content_type=ctype, keep_alive=keep_alive, extra=extra)
            self.transport.write(response)

    def _close(self) -> None:
        if self.transport is not None:
            self.transport.close()
