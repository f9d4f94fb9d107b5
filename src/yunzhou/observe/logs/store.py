"""LogStore: an embedded, searchable log database fed through a bounded queue by one writer thread.

``append`` never blocks on I/O: records wait in memory (dropping the oldest when full, counted) and a
background thread writes them in batches, each batch one transaction.
"""

from __future__ import annotations

import json
import logging
import math
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from yunzhou.domain.errors import TemporaryError
from yunzhou.observe.logs import sql
from yunzhou.observe.logs.records import STREAMS, LogRecord, json_fields

log = logging.getLogger("yunzhou.observe.logs")

DEFAULT_CAPACITY = 100_000
MAX_QUERY_LIMIT = 10_000


@dataclass(frozen=True)
class LogRetention:
    """How much to keep per app (None: no bound), checked by the writer every ``interval_s`` seconds."""

    max_records_per_app: int | None = 200_000
    max_age_days: float | None = 7.0
    interval_s: float = 60.0


@dataclass(frozen=True)
class LogStoreStats:
    appended: int  # accepted by append()
    written: int  # committed to the database
    dropped: int  # pushed out of the full queue (oldest first), or appended after close()
    rejected: int  # not a valid record (address, stream), or lost to a failed write
    queued: int
    capacity: int
    full_text: bool  # the trigram index serves --grep (else a LIKE scan)
    retention_deleted: int


@dataclass(frozen=True)
class LogPage:
    """Records in id order, and the cursor to pass as ``after_id`` for the ones that come next."""

    items: list[dict[str, Any]]
    next_after_id: int


class LogStore:
    """The log database at ``path`` (created if missing) and its writer thread. Close it when done."""

    def __init__(
        self,
        path: Path,
        *,
        capacity: int = DEFAULT_CAPACITY,
        retention: LogRetention | None = None,
        clock: Callable[[], float] = time.time,
        full_text: bool | None = None,
    ) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._capacity = capacity
        self._retention = retention or LogRetention()
        self._clock = clock
        conn = sql.connect(self.path)
        try:
            self._full_text = sql.create_schema(conn, full_text=full_text)
        except BaseException:
            conn.close()
            raise
        self._cond = threading.Condition()
        self._queue: deque[LogRecord] = deque()
        self._checkpoints: dict[str, str] = {}
        self._appended = self._written = self._dropped = self._rejected = 0
        self._retention_deleted = 0
        self._retention_asked = self._retention_done = 0
        self._taken = self._committed = 0  # batches handed to the writer / finished by it
        self._writer_waiting = False
        self._closing = False
        self._readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()
        self._writer = threading.Thread(
            target=self._run, args=(conn,), name="yunzhou-logs-writer", daemon=True
        )
        self._writer.start()

    # -- writing ---------------------------------------------------------------------------------

    def append(self, record: LogRecord) -> None:
        """Queue ``record`` for writing. Never waits for I/O; when the queue is full the oldest goes."""
        with self._cond:
            self._appended += 1
            if self._closing:
                self._dropped += 1
                return
            if len(self._queue) >= self._capacity:
                self._queue.popleft()
                self._dropped += 1
            self._queue.append(record)
            if self._writer_waiting:
                self._cond.notify_all()

    def set_checkpoint(self, name: str, value: object) -> None:
        """Record ``value`` (JSON) under ``name`` in the same transaction as every record appended so far.

        A reader of a file saves how far it has read this way, so after a restart it resumes exactly
        after the records that were stored.
        """
        text = json.dumps(value)
        with self._cond:
            self._checkpoints[name] = text
            if self._writer_waiting:
                self._cond.notify_all()

    def checkpoint(self, name: str) -> Any:
        """The last committed value for ``name``, or None."""
        with self._reader() as conn:
            text = sql.read_checkpoint(conn, name)
        return None if text is None else json.loads(text)

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything appended before this call is written (or dropped); False on timeout."""
        with self._cond:
            target = self._taken + (1 if self._queue or self._checkpoints else 0)
            return self._cond.wait_for(lambda: self._committed >= target, timeout)

    def enforce_retention(self, timeout: float = 60.0) -> int:
        """Apply the retention policy now (on the writer thread) and return how many records went."""
        with self._cond:
            self._retention_asked += 1
            ticket = self._retention_asked
            before = self._retention_deleted
            self._cond.notify_all()
            if not self._cond.wait_for(lambda: self._retention_done >= ticket, timeout):
                raise TemporaryError("log retention did not finish in time")
            return self._retention_deleted - before

    def stats(self) -> LogStoreStats:
        with self._cond:
            return LogStoreStats(
                appended=self._appended,
                written=self._written,
                dropped=self._dropped,
                rejected=self._rejected,
                queued=len(self._queue),
                capacity=self._capacity,
                full_text=self._full_text,
                retention_deleted=self._retention_deleted,
            )

    def close(self, timeout: float = 10.0) -> None:
        """Write what is queued, stop the writer and close the database."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._writer.join(timeout)
        with self._readers_lock:
            for conn in self._readers:
                conn.close()
            self._readers.clear()

    def __enter__(self) -> LogStore:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _run(self, conn: sqlite3.Connection) -> None:
        app_ids = sql.AppIds()
        next_retention = time.monotonic() + self._retention.interval_s
        try:
            while True:
                with self._cond:
                    while not (
                        self._queue
                        or self._checkpoints
                        or self._closing
                        or self._retention_asked > self._retention_done
                        or time.monotonic() >= next_retention
                    ):
                        self._writer_waiting = True
                        self._cond.wait(max(0.0, next_retention - time.monotonic()))
                        self._writer_waiting = False
                    batch, self._queue = self._queue, deque()
                    checkpoints, self._checkpoints = self._checkpoints, {}
                    if batch or checkpoints:
                        self._taken += 1
                    retention_ticket = self._retention_asked
                    closing = self._closing
                if batch or checkpoints:
                    self._write(conn, app_ids, batch, checkpoints)
                if retention_ticket > self._retention_done or time.monotonic() >= next_retention:
                    self._apply_retention(conn, retention_ticket)
                    next_retention = time.monotonic() + self._retention.interval_s
                if closing and not batch and not checkpoints:
                    return
        finally:
            conn.close()

    def _write(
        self,
        conn: sqlite3.Connection,
        app_ids: sql.AppIds,
        batch: deque[LogRecord],
        checkpoints: dict[str, str],
    ) -> None:
        rows: list[sql.Row] = []
        try:
            for record in batch:
                row = _row(conn, app_ids, record)
                if row is not None:
                    rows.append(row)
            stored = sql.insert(conn, rows, checkpoints, full_text=self._full_text)
        except Exception:  # the writer must outlive any batch: count it as lost and go on
            log.exception("could not write %d log records to %s", len(batch), self.path)
            stored = 0
        with self._cond:
            self._written += stored
            self._rejected += len(batch) - stored
            self._committed += 1
            self._cond.notify_all()

    def _apply_retention(self, conn: sqlite3.Connection, ticket: int) -> None:
        policy = self._retention
        oldest = None if policy.max_age_days is None else self._clock() - policy.max_age_days * 86400.0
        deleted = 0
        try:
            deleted = sql.enforce_retention(
                conn, max_records=policy.max_records_per_app, oldest_time=oldest, full_text=self._full_text
            )
        except sqlite3.Error:
            log.exception("log retention failed on %s", self.path)
        with self._cond:
            self._retention_deleted += deleted
            self._retention_done = max(self._retention_done, ticket)
            self._cond.notify_all()

    # -- reading ---------------------------------------------------------------------------------

    def query(
        self,
        app: str,
        *,
        since: float | None = None,
        until: float | None = None,
        grep: str | None = None,
        instance: str | None = None,
        stream: str | None = None,
        after_id: int | None = None,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        """Records of ``app`` (``project/env/app``) in id order; see ``page``."""
        return self.page(
            app,
            since=since,
            until=until,
            grep=grep,
            instance=instance,
            stream=stream,
            after_id=after_id,
            limit=limit,
        ).items

    def page(
        self,
        app: str,
        *,
        since: float | None = None,
        until: float | None = None,
        grep: str | None = None,
        instance: str | None = None,
        stream: str | None = None,
        after_id: int | None = None,
        limit: int = 100,
    ) -> LogPage:
        """Records of ``app`` matching every filter, in id order.

        With ``after_id``: the first ``limit`` records after it (paging forward, following). Without: the
        newest ``limit`` records. ``grep`` is a case-insensitive substring, taken literally. ``since`` is
        inclusive, ``until`` exclusive (unix times). ``next_after_id`` continues after this page — past
        records that did not match too, so following a rare match does not scan the same rows again.
        """
        if not 1 <= limit <= MAX_QUERY_LIMIT:
            raise ValueError(f"limit must be 1-{MAX_QUERY_LIMIT}")
        filters = sql.Filters(since=since, until=until, grep=grep or None, instance=instance, stream=stream)
        try:
            with self._reader() as conn:
                conn.execute("BEGIN")  # one snapshot for the rows and the last id
                try:
                    newest = sql.last_id(conn)
                    found = sql.app_id(conn, app)
                    items = []
                    if found is not None:
                        items = sql.select(
                            conn,
                            (found, app),
                            filters,
                            after_id=after_id,
                            limit=limit,
                            full_text=self._full_text,
                        )
                finally:
                    conn.execute("COMMIT")
        except sqlite3.Error as exc:
            raise TemporaryError(f"the log store could not be read: {exc}") from exc
        if after_id is not None and len(items) == limit:
            next_after_id = items[-1]["id"]  # there may be more: continue right after this page
        else:
            next_after_id = max(newest, after_id or 0)
        return LogPage(items=items, next_after_id=next_after_id)

    @contextmanager
    def _reader(self) -> Iterator[sqlite3.Connection]:
        with self._readers_lock:
            conn = self._readers.pop() if self._readers else None
        if conn is None:
            conn = sql.connect(self.path, readonly=True)
        try:
            yield conn
        finally:
            with self._readers_lock:
                if self._closing:
                    conn.close()
                else:
                    self._readers.append(conn)


def _row(conn: sqlite3.Connection, app_ids: sql.AppIds, record: LogRecord) -> sql.Row | None:
    """The database row for ``record``, or None when it is not a valid record."""
    if record.stream not in STREAMS:
        return None
    try:
        app_id = app_ids.get(conn, record.app)
        when = float(record.time)
        if app_id is None or not math.isfinite(when):
            return None
        line = str(record.line)
        return (
            app_id,
            when,
            None if record.instance is None else str(record.instance),
            record.release if isinstance(record.release, int) else None,
            record.stream,
            line,
            _fields(record.fields, line),
        )
    except Exception:  # whatever a caller put in a record, it must not stop the writer
        return None


def _fields(given: Mapping[str, object], line: str) -> str | None:
    """The record's fields as JSON: those given, else the line itself when it is a JSON object."""
    if given:
        return _json(dict(given))
    parsed = json_fields(line)
    if parsed is None:
        return None
    if "NaN" in line or "Infinity" in line:
        return _json(parsed)
    return line.strip()  # already JSON: no need to encode it again


def _json(fields: dict[str, Any]) -> str:
    """Strict JSON (the API cannot send NaN/Infinity): non-finite numbers become strings."""
    try:
        return json.dumps(fields, ensure_ascii=False, allow_nan=False, default=str)
    except ValueError:
        return json.dumps(_finite(fields), ensure_ascii=False, allow_nan=False, default=str)


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {str(key): _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value
