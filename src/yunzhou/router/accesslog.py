"""Access log: one JSON object per line per request, written in small batches."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import IO

FLUSH_INTERVAL_S = 0.1
FLUSH_LINES = 256


def _utc_timestamp(now: float) -> str:
    seconds = int(now)
    millis = int((now - seconds) * 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{millis:03d}Z"


class AccessLog:
    """Buffers lines and writes them every ``FLUSH_INTERVAL_S`` or ``FLUSH_LINES`` lines, whichever first."""

    def __init__(self, target: str, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._owned = target != "-"
        self._stream: IO[str] = sys.stdout if target == "-" else open(target, "a", encoding="utf-8")  # noqa: SIM115
        self._pending: list[str] = []
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
        entry = {
            "time": _utc_timestamp(time.time()),
            "app": app,
            "backend": backend_id,
            "release": release,
            "method": method,
            "host": host,
            "path": path,
            "status": status,
            "bytes": bytes_sent,
            "duration_ms": round(duration_s * 1000, 3),
            "request_id": request_id,
        }
        self._pending.append(json.dumps(entry, ensure_ascii=False, separators=(",", ":")))
        if len(self._pending) >= FLUSH_LINES:
            self.flush()
        elif self._flush_handle is None:
            self._flush_handle = self._loop.call_later(FLUSH_INTERVAL_S, self.flush)

    def flush(self) -> None:
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        if not self._pending:
            return
        text = "\n".join(self._pending) + "\n"
        self._pending.clear()
        try:
            self._stream.write(text)
            self._stream.flush()
        except OSError as exc:  # a full disk must not stop the data plane
            print(f"yunzhou-router: access log write failed: {exc}", file=sys.stderr)

    def close(self) -> None:
        self.flush()
        if self._owned:
            self._stream.close()
