"""Reading across segments: one page of an app's records, newest-first or after a cursor.

Sealed segments never change, so only the newest one needs a snapshot: it is opened first, and the last
id it holds is the page's horizon (everything up to it was visible to this read).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from yunzhou.observe.logs import segments, sql


@dataclass(frozen=True)
class LogPage:
    """Records in id order, and the cursor to pass as ``after_id`` for the ones that come next."""

    items: list[dict[str, Any]]
    next_after_id: int


class SegmentReaders:
    """Pooled read-only connections per segment file; those of deleted segments are closed."""

    def __init__(self) -> None:
        self._pool: dict[Path, list[sqlite3.Connection]] = {}
        self._lock = threading.Lock()
        self._closed = False

    @contextmanager
    def open(self, segment: segments.Segment) -> Iterator[sqlite3.Connection | None]:
        """A connection to ``segment``, or None when it is gone or not yet complete."""
        with self._lock:
            pooled = self._pool.get(segment.path)
            conn = pooled.pop() if pooled else None
        if conn is None:
            try:
                conn = segments.connect(segment.path, readonly=True)
                if not segments.is_ready(conn):
                    conn.close()
                    conn = None
            except sqlite3.OperationalError:  # deleted by retention since it was listed
                conn = None
        try:
            yield conn
        finally:
            if conn is not None:
                with self._lock:
                    if self._closed:
                        conn.close()
                    else:
                        self._pool.setdefault(segment.path, []).append(conn)

    def prune(self, existing: list[segments.Segment]) -> None:
        keep = {segment.path for segment in existing}
        with self._lock:
            gone = [path for path in self._pool if path not in keep]
            for path in gone:
                for conn in self._pool.pop(path):
                    conn.close()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            for conns in self._pool.values():
                for conn in conns:
                    conn.close()
            self._pool.clear()


def read_page(
    readers: SegmentReaders,
    directory: Path,
    app: str,
    filters: sql.Filters,
    *,
    after_id: int | None,
    limit: int,
    full_text: bool,
) -> LogPage:
    listed = segments.list_segments(directory)
    readers.prune(listed)
    # Where each segment ends: the next one's first id - 1 (the newest: open-ended).
    spans = [
        (segment, listed[i + 1].first_id - 1 if i + 1 < len(listed) else None)
        for i, segment in enumerate(listed)
    ]
    while spans:
        newest, _ = spans[-1]
        with readers.open(newest) as conn:
            if conn is None:  # being created (or just deleted): the one before is the newest
                spans.pop()
                continue
            conn.execute("BEGIN")  # the newest segment's snapshot: its last id bounds this page
            try:
                horizon = segments.last_id(conn)
                found = sql.app_id(conn, app)
                if filters.grep and full_text and len(filters.grep) >= sql.TRIGRAM:
                    # chosen once, in the newest segment: which trigrams are rare changes slowly
                    choice = sql.rare_trigram_query(conn, filters.grep)
                    filters = replace(filters, grep_match=choice)
                items: list[dict[str, Any]] = []
                if found is not None:
                    items = _collect(readers, conn, spans, (found, app), filters, after_id, limit, full_text)
            finally:
                conn.execute("COMMIT")
        if after_id is not None and len(items) == limit:
            return LogPage(items, items[-1]["id"])  # there may be more: continue right after this page
        return LogPage(items, max(horizon, after_id or 0))
    return LogPage([], after_id or 0)


def _collect(
    readers: SegmentReaders,
    newest_conn: sqlite3.Connection,
    spans: list[tuple[segments.Segment, int | None]],
    app: tuple[int, str],
    filters: sql.Filters,
    after_id: int | None,
    limit: int,
    full_text: bool,
) -> list[dict[str, Any]]:
    forward = after_id is not None
    wanted = [(s, end) for s, end in spans if after_id is None or end is None or end > after_id]
    order = wanted if forward else list(reversed(wanted))
    newest = spans[-1][0]
    pages: list[list[dict[str, Any]]] = []
    remaining = limit
    for segment, _ in order:
        if segment == newest:
            items = _segment_page(newest_conn, app, filters, after_id, remaining, full_text)
        else:
            with readers.open(segment) as conn:
                if conn is None:
                    continue
                items = _segment_page(conn, app, filters, after_id, remaining, full_text)
        pages.append(items)
        remaining -= len(items)
        if remaining <= 0:
            break
    if not forward:
        pages.reverse()
    return [item for page in pages for item in page]


def _segment_page(
    conn: sqlite3.Connection,
    app: tuple[int, str],
    filters: sql.Filters,
    after_id: int | None,
    limit: int,
    full_text: bool,
) -> list[dict[str, Any]]:
    if filters.since is not None or filters.until is not None:
        oldest, newest = segments.time_range(conn)
        if oldest is None or newest is None:
            return []
        if (filters.since is not None and newest < filters.since) or (
            filters.until is not None and oldest >= filters.until
        ):
            return []
    return sql.select(
        conn,
        app,
        filters,
        after_id=after_id,
        limit=limit,
        full_text=full_text and segments.has_full_text(conn),
    )
