"""Turning a child's byte streams into ``LogLine`` records without ever blocking the child."""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Callable, Mapping

from yunzhou.domain.masking import NO_MASK, SecretMask

from .spec import LogLine, LogStream

_Raw = tuple[float, str, str, int, LogStream, bytes, SecretMask]


def parse_fields(line: str) -> Mapping[str, object]:
    """The keys of a JSON-object line; {} for anything else."""
    if not line.startswith("{"):
        return {}
    try:
        value = json.loads(line)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


class LineSplitter:
    """Splits chunks into lines; a line longer than ``max_bytes`` is cut there (the rest is dropped)."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._buf = bytearray()
        self._skipping = False  # inside an over-long line whose head was already emitted
        self.truncated = 0

    def feed(self, chunk: bytes) -> list[bytes]:
        out: list[bytes] = []
        self._buf += chunk
        while True:
            nl = self._buf.find(b"\n")
            if nl < 0:
                if len(self._buf) > self.max_bytes:
                    if not self._skipping:
                        out.append(bytes(self._buf[: self.max_bytes]))
                        self.truncated += 1
                    self._skipping = True
                    self._buf.clear()
                return out
            line = bytes(self._buf[:nl])
            del self._buf[: nl + 1]
            if self._skipping:
                self._skipping = False
                continue
            if len(line) > self.max_bytes:
                line = line[: self.max_bytes]
                self.truncated += 1
            out.append(line)

    def flush(self) -> list[bytes]:
        rest = b"" if self._skipping else bytes(self._buf[: self.max_bytes])
        self._buf.clear()
        self._skipping = False
        return [rest] if rest else []


class LogPump:
    """A bounded queue drained by one thread that calls the sink. ``offer`` never blocks: when the sink
    falls behind, lines are dropped and counted in ``dropped``."""

    def __init__(self, sink: Callable[[LogLine], None] | None, capacity: int = 10_000) -> None:
        self._sink = sink
        self._queue: queue.Queue[_Raw | None] = queue.Queue(maxsize=capacity)
        self._lock = threading.Lock()
        self.dropped = 0
        self.sink_errors = 0
        self._thread: threading.Thread | None = None
        if sink is not None:
            self._thread = threading.Thread(target=self._run, name="yunzhou-log-sink", daemon=True)
            self._thread.start()

    def offer(
        self,
        app: str,
        instance_id: str,
        release: int,
        stream: LogStream,
        raw: bytes,
        mask: SecretMask = NO_MASK,
    ) -> None:
        """``mask``: the instance's secret values, replaced by *** before the line reaches the sink."""
        if self._sink is None:
            return
        try:  # decoding, masking and JSON parsing happen on the sink thread, off the event loop
            self._queue.put_nowait((time.time(), app, instance_id, release, stream, raw, mask))
        except queue.Full:
            with self._lock:
                self.dropped += 1

    def _run(self) -> None:
        assert self._sink is not None
        while True:
            item = self._queue.get()
            if item is None:
                return
            at, app, instance_id, release, stream, raw, mask = item
            text = mask.apply(raw.decode("utf-8", errors="replace").rstrip("\r"))
            try:
                self._sink(LogLine(at, app, instance_id, release, stream, text, parse_fields(text)))
            except Exception:
                with self._lock:
                    self.sink_errors += 1  # a failing sink must not stop capture

    def close(self, timeout: float = 5.0) -> None:
        """Deliver what is queued (up to ``timeout``), then stop the thread."""
        if self._thread is None:
            return
        deadline = time.monotonic() + timeout
        while True:
            try:
                self._queue.put(None, timeout=max(0.01, deadline - time.monotonic()))
                break
            except queue.Full:
                if time.monotonic() >= deadline:
                    return  # a stuck sink: leave the daemon thread behind rather than hang
        self._thread.join(max(0.0, deadline - time.monotonic()))
        self._thread = None
