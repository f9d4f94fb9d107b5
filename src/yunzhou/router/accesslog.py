"""Access log: one JSON object per line per request, written in small batches.

The request path only keeps the request's fields (one tuple); the lines are formatted when the batch is
written — every ``FLUSH_INTERVAL_S`` or ``FLUSH_LINES`` requests, one ``write`` for the batch — with the
time's seconds formatted once per second of the batch, not once per request. A line is exactly what
``json.dumps(entry, ensure_ascii=False, separators=(",", ":"))`` gives for the same fields (``format_line``).
"""

from __future__ import annotations

import asyncio
import sys
import time
from json.encoder import encode_basestring  # the C encoder of json.dumps(ensure_ascii=False)
from typing import IO

FLUSH_INTERVAL_S = 0.1
FLUSH_LINES = 256

# (unix time, app, backend id, release, method, host, path, status, bytes, duration s, request id)
Entry = tuple[float, str | None, str | None, int | None, str, str, str, int, int, float, str]


def _utc_timestamp(now: float) -> str:
    seconds = int(now)
    millis = int((now - seconds) * 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{millis:03d}Z"


def _text(value: str | None) -> str:
    return "null" if value is None else encode_basestring(value)


def format_lines(entries: list[Entry]) -> list[str]:
    """The JSON lines of ``entries`` (keys in the order ``json.dumps`` of the entry dict writes them)."""
    lines = []
    second = -1
    prefix = ""
    for now, app, backend, release, method, host, path, status, sent, duration, request_id in entries:
        whole = int(now)
        if whole != second:
            second = whole
            prefix = '{"time":"' + time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))
        millis = int((now - whole) * 1000)
        lines.append(
            f'{prefix}.{millis:03d}Z","app":{_text(app)},"backend":{_text(backend)},'
            f'"release":{"null" if release is None else int(release)},"method":{encode_basestring(method)},'
            f'"host":{encode_basestring(host)},"path":{encode_basestring(path)},"status":{int(status)},'
            f'"bytes":{int(sent)},"duration_ms":{round(duration * 1000, 3)!r},'
            f'"request_id":{encode_basestring(request_id)}}}'
        )
    return lines


class AccessLog:
    """Buffers requests and writes their lines every ``FLUSH_INTERVAL_S`` or ``FLUSH_LINES`` requests,
    whichever comes first."""

    def __init__(self, target: str, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._owned = target != "-"
        self._stream: IO[str] = sys.stdout if target == "-" else open(target, "a", encoding="utf-8")  # noqa: SIM115
        self._pending: list[Entry] = []
        self._flush_handle: asyncio.TimerHandle | None = None

    def record(
        self,
        *,
        app: str | None,
        backend_id: str | None,
        release: int | None,
        method: str,
        path: str,
        status: int,
        bytes_sent: int,
        duration_s: float,
        request_id: str,
        host: str,
    ) -> None:
        self.add(
            (
                time.time(),
                app,
                backend_id,
                release,
                method,
                host,
                path,
                status,
                bytes_sent,
                duration_s,
                request_id,
            )
        )

    def add(self, entry: Entry) -> None:
        """``record`` without the keywords, for the request path: ``entry`` is an ``Entry`` tuple."""
        pending = self._pending
        pending.append(entry)
        if len(pending) >= FLUSH_LINES:
            self.flush()
        elif self._flush_handle is None:
            self._flush_handle = self._loop.call_later(FLUSH_INTERVAL_S, self.flush)

    def flush(self) -> None:
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        if not self._pending:
            return
        entries, self._pending = self._pending, []
        text = "\n".join(format_lines(entries)) + "\n"
        try:
            self._stream.write(text)
            self._stream.flush()
        except OSError as exc:  # a full disk must not stop the data plane
            print(f"yunzhou-router: access log write failed: {exc}", file=sys.stderr)

    def close(self) -> None:
        self.flush()
        if self._owned:
            self._stream.close()
