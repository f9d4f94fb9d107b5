"""LogStore: an embedded, searchable log database fed through a bounded queue by one writer thread.

``append`` never blocks on I/O: records wait in memory (dropping the oldest when full, counted) and a
background thread writes them in batches, each batch one transaction, into the newest segment file of
the store's directory (see segments.py); retention deletes whole old segments.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from yunzhou.domain.errors import TemporaryError
from yunzhou.observe.logs import segments, sql
from yunzhou.observe.logs.reader import LogPage, SegmentReaders, read_page
from yunzhou.observe.logs.records import LogRecord
from yunzhou.observe.logs.where import FieldFilter
from yunzhou.observe.logs.writer import LogRetention, SegmentWriter

log = logging.getLogger("yunzhou.observe.logs")

DEFAULT_CAPACITY = 100_000
MAX_QUERY_LIMIT = 10_000


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
    segments: int  # files in the store's directory
    bytes: int  # what they take on disk


class LogStore:
    """The log store in directory ``path`` (created if missing) and its writer thread. Close it when done."""

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
        if self.path.is_file():
            raise ValueError(f"{self.path} is a file; the log store is a directory (of segment files)")
        self.path.mkdir(parents=True, exist_ok=True)
        self._capacity = capacity
        self._retention = retention or LogRetention()
        self._clock = clock
        writer = SegmentWriter(self.path, full_text=full_text, clock=clock)
        self._full_text = writer.full_text
        self._cond = threading.Condition()
        self._queue: deque[LogRecord] = deque()
        self._checkpoints: dict[str, str] = {}
        self._appended = self._written = self._dropped = self._rejected = 0
        self._retention_deleted = 0
        self._retention_asked = self._retention_done = 0
        self._taken = self._committed = 0  # batches handed to the writer / finished by it
        self._writer_waiting = False
        self._closing = False
        self._readers = SegmentReaders()
        self._writer = threading.Thread(
            target=self._run, args=(writer,), name="yunzhou-logs-writer", daemon=True
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
        for segment in reversed(segments.list_segments(self.path)):
            with self._readers.open(segment) as conn:
                if conn is None:
                    continue
                text = sql.read_checkpoint(conn, name)
                return None if text is None else json.loads(text)
        return None

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
        listed = segments.list_segments(self.path)
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
                segments=len(listed),
                bytes=sum(segments.segment_bytes(segment) for segment in listed),
            )

    def close(self, timeout: float = 10.0) -> None:
        """Write what is queued, stop the writer and close the database."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._writer.join(timeout)
        self._readers.close()

    def __enter__(self) -> LogStore:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _run(self, writer: SegmentWriter) -> None:
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
                    self._write(writer, batch, checkpoints)
                if retention_ticket > self._retention_done or time.monotonic() >= next_retention:
                    self._apply_retention(writer, retention_ticket)
                    next_retention = time.monotonic() + self._retention.interval_s
                if closing and not batch and not checkpoints:
                    return
        finally:
            writer.close()

    def _write(self, writer: SegmentWriter, batch: deque[LogRecord], checkpoints: dict[str, str]) -> None:
        try:
            writer.seal_if_due(self._retention)  # before the batch: it goes into the new segment
        except sqlite3.Error:
            log.exception("could not start a new log segment in %s", self.path)
        try:
            stored, refused = writer.write(batch, checkpoints)
        except Exception:  # the writer must outlive any batch: count it as lost and go on
            log.exception("could not write %d log records to %s", len(batch), self.path)
            stored, refused = 0, len(batch)
        with self._cond:
            self._written += stored
            self._rejected += refused
            self._committed += 1
            self._cond.notify_all()

    def _apply_retention(self, writer: SegmentWriter, ticket: int) -> None:
        deleted = 0
        try:
            writer.seal_if_due(self._retention)
            deleted = writer.enforce_retention(self._retention)
        except (sqlite3.Error, OSError):
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
        where: Sequence[FieldFilter] = (),
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
            where=where,
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
        where: Sequence[FieldFilter] = (),
        after_id: int | None = None,
        limit: int = 100,
    ) -> LogPage:
        """Records of ``app`` matching every filter, in id order.

        With ``after_id``: the first ``limit`` records after it (paging forward, following). Without: the
        newest ``limit`` records. ``grep`` is a case-insensitive substring, taken literally. ``since`` is
        inclusive, ``until`` exclusive (unix times). ``where``: field filters (see where.py), all must
        hold. ``next_after_id`` continues after this page — past records that did not match too, so
        following a rare match does not scan the same rows again.
        """
        if not 1 <= limit <= MAX_QUERY_LIMIT:
            raise ValueError(f"limit must be 1-{MAX_QUERY_LIMIT}")
        filters = sql.Filters(
            since=since, until=until, grep=grep or None, instance=instance, stream=stream, where=tuple(where)
        )
        try:
            return read_page(
                self._readers,
                self.path,
                app,
                filters,
                after_id=after_id,
                limit=limit,
                full_text=self._full_text,
            )
        except sqlite3.Error as exc:
            raise TemporaryError(f"the log store could not be read: {exc}") from exc

    def export(
        self,
        app: str,
        *,
        since: float | None = None,
        until: float | None = None,
        grep: str | None = None,
        instance: str | None = None,
        stream: str | None = None,
        where: Sequence[FieldFilter] = (),
        page_size: int = 5000,
    ) -> Iterator[dict[str, Any]]:
        """Every matching record of ``app``, oldest first, up to the newest stored when the export began
        (so that it ends even while the app keeps logging). Reads a page at a time."""
        filters = {"since": since, "until": until, "grep": grep, "instance": instance, "stream": stream}
        end = self.page(app, limit=1).next_after_id
        cursor = 0
        while cursor < end:
            page = self.page(app, **filters, where=where, after_id=cursor, limit=page_size)  # type: ignore[arg-type]
            for item in page.items:
                if item["id"] > end:
                    return
                yield item
            if len(page.items) < page_size:
                return
            cursor = page.next_after_id
