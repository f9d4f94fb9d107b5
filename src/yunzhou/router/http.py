"""Small HTTP/1.1 helpers shared by the proxy and the admin API: hop-by-hop rules, reasons, error bodies."""

from __future__ import annotations

import json
import os
import re
from http import HTTPStatus

# RFC 9110 §7.6.1 plus the legacy names proxies still see; never forwarded in either direction.
HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)
_REQUEST_ID_RE = re.compile(rb"^[A-Za-z0-9._:/+=-]{1,128}$")


_PLAIN_CONNECTION = frozenset({b"keep-alive", b"close"})


def connection_tokens(value: bytes, into: set[bytes] | None) -> set[bytes] | None:
    """Header names a ``Connection`` header lists (besides keep-alive/close): hop-by-hop for this hop only."""
    if value.lower() in _PLAIN_CONNECTION:  # the usual case, without building a set
        return into
    found = into if into is not None else set()
    for token in value.lower().split(b","):
        token = token.strip()
        if token and token not in (b"close", b"keep-alive"):
            found.add(token)
    return found


def reason_phrase(status: int) -> bytes:
    try:
        return HTTPStatus(status).phrase.encode("ascii")
    except ValueError:
        return b"Unknown"


def valid_request_id(value: bytes) -> bool:
    return _REQUEST_ID_RE.match(value) is not None


class RequestIds:
    """Unique request ids without the cost of uuid4 per request: a random process prefix and a counter."""

    def __init__(self) -> None:
        self._prefix = os.urandom(8).hex()
        self._counter = 0

    def next(self) -> str:
        self._counter += 1
        return f"{self._prefix}{self._counter:016x}"


def json_error_body(
    status: int,
    code: str,
    message: str,
    request_id: str | None = None,
    extra: dict[str, object] | None = None,
) -> bytes:
    """The same error shape as the API: ``{"error": {"code", "message", ...}}``, built as data."""
    error: dict[str, object] = {"code": code, "message": message, "status": status}
    if request_id is not None:
        error["request_id"] = request_id
    if extra:
        error.update(extra)
    return json.dumps({"error": error}, ensure_ascii=False).encode("utf-8") + b"\n"


def simple_response(
    status: int,
    body: bytes,
    *,
    content_type: bytes = b"application/json",
    keep_alive: bool = True,
    extra: list[tuple[bytes, bytes]] | None = None,
) -> bytes:
    """A complete HTTP/1.1 response with a Content-Length body."""
    parts = [
        b"HTTP/1.1 %d %s\r\n" % (status, reason_phrase(status)),
        b"Content-Type: " + content_type + b"\r\n",
        b"Content-Length: %d\r\n" % len(body),
    ]
    for name, value in extra or ():
        parts.append(name + b": " + value + b"\r\n")
    if not keep_alive:
        parts.append(b"Connection: close\r\n")
    parts.append(b"\r\n")
    parts.append(body)
    return b"".join(parts)
