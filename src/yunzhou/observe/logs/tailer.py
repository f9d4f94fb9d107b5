"""AccessLogTailer: follows the router's access log file into the log store (stream ``access``)."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

from yunzhou.observe.logs.records import access_record
from yunzhou.observe.logs.store import LogStore

log = logging.getLogger("yunzhou.observe.logs")

READ_CHUNK = 1 << 20
MAX_LINE = 1 << 20  # a longer "line" without a newline is not an access-log line: skip it


class AccessLogTailer:
    """Reads new complete lines of ``path`` as the router appends them; survives truncation and rotation.

    How far it has read (file identity + offset) is saved in the store in the same transaction as the
    records read, so a restarted server resumes where the last one stopped: no line twice, none missed
    (unless the file was rotated away while nobody was reading it).

    ``poll()`` reads what is there now (tests call it directly); ``start()`` polls on a thread.
    """

    def __init__(
        self,
        path: Path,
        store: LogStore,
        *,
        interval: float = 0.25,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = Path(path)
        self._store = store
        self._interval = interval
        self._clock = clock
        self._checkpoint_name = f"access-log:{self.path.resolve()}"
        self._file: IO[bytes] | None = None
        self._identity: tuple[int, int] | None = None  # (st_dev, st_ino) of the open file
        self._offset = 0  # end of the last complete line read
        self._saved_offset: int | None = None
        self._resume = True  # only the first file opened continues from the saved checkpoint
        self._partial = b""
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.lines_skipped = 0  # lines that were not access records (no app, not JSON)

    def poll(self) -> int:
        """Read every complete new line; returns how many records were appended."""
        with self._lock:
            appended = 0
            while True:
                if self._file is None and not self._open():
                    return appended
                appended += self._read_available()
                if not self._rotated():
                    return appended
                appended += self._read_available()  # what was written to the old file before the switch
                self._close()

    def start(self) -> AccessLogTailer:
        self._thread = threading.Thread(target=self._loop, name="yunzhou-access-log-tailer", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        with self._lock:
            self._close()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll()
            except OSError:
                log.exception("reading the access log %s failed; retrying", self.path)
                with self._lock:
                    self._close()
            self._stop.wait(self._interval)

    def _open(self) -> bool:
        try:
            handle = open(self.path, "rb")  # noqa: SIM115 - kept open across polls
        except FileNotFoundError:
            return False
        stat = os.fstat(handle.fileno())
        identity = (stat.st_dev, stat.st_ino)
        offset = 0
        if self._resume:
            self._resume = False
            saved = self._store.checkpoint(self._checkpoint_name)
            if isinstance(saved, dict) and [saved.get("dev"), saved.get("ino")] == list(identity):
                offset = int(saved.get("offset", 0))
                if offset > stat.st_size:  # truncated while nobody was reading
                    offset = 0
        handle.seek(offset)
        self._file, self._identity, self._offset, self._partial = handle, identity, offset, b""
        self._saved_offset = offset
        return True

    def _close(self) -> None:
        if self._file is not None:
            self._file.close()
        self._file = None

    def _read_available(self) -> int:
        assert self._file is not None
        try:
            size = os.fstat(self._file.fileno()).st_size
        except OSError:
            size = self._offset
        if size < self._offset + len(self._partial):  # truncated (copytruncate): start again at 0
            self._file.seek(0)
            self._offset, self._partial = 0, b""
        appended = 0
        while True:
            chunk = self._file.read(READ_CHUNK)
            if not chunk:
                break
            data = self._partial + chunk
            end = data.rfind(b"\n")
            if end < 0:
                self._partial = data if len(data) <= MAX_LINE else b""
                if not self._partial:
                    self._offset += len(data)
                    self.lines_skipped += 1
                continue
            complete, self._partial = data[: end + 1], data[end + 1 :]
            appended += self._append_lines(complete)
            self._offset += len(complete)
        if self._offset != self._saved_offset:
            self._save_position()
        return appended

    def _append_lines(self, data: bytes) -> int:
        now = self._clock()
        appended = 0
        for raw in data.splitlines():
            if not raw.strip():
                continue
            record = access_record(raw.decode("utf-8", errors="replace"), now=now)
            if record is None:
                self.lines_skipped += 1
                continue
            self._store.append(record)
            appended += 1
        return appended

    def _save_position(self) -> None:
        assert self._identity is not None
        dev, ino = self._identity
        self._store.set_checkpoint(self._checkpoint_name, {"dev": dev, "ino": ino, "offset": self._offset})
        self._saved_offset = self._offset

    def _rotated(self) -> bool:
        """True when ``path`` now names another file (the router reopened it after a rotation)."""
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            return False  # moved away and not yet recreated: keep reading the old file
        return (stat.st_dev, stat.st_ino) != self._identity
