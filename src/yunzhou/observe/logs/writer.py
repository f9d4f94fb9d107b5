"""The writer's side of the segment directory: batches into the newest segment, rotation, retention.

Used by the store's writer thread only (one connection, one thread).
"""

from __future__ import annotations

import json
import logging
import math
import re
import sqlite3
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from yunzhou.domain.errors import invalid
from yunzhou.observe.logs import fieldindex, segments, sql
from yunzhou.observe.logs.records import STREAMS, LogRecord, json_fields

log = logging.getLogger("yunzhou.observe.logs")

GiB = 1 << 30
MiB = 1 << 20


@dataclass(frozen=True)
class LogRetention:
    """How much to keep, enforced by the writer every ``interval_s`` seconds by deleting whole segments.

    ``max_age_days``: a segment goes once its newest record is older. ``max_bytes``: the oldest segments go
    while all of them together take more. None: no bound. A segment is sealed (and a new one started)
    when it reaches ``segment_bytes`` (at most a quarter of ``max_bytes``) or is ``segment_seconds`` old,
    so what retention keeps is within one segment of each bound.
    """

    max_age_days: float | None = 7.0
    max_bytes: int | None = 2 * GiB
    interval_s: float = 60.0
    segment_bytes: int = 256 * MiB
    segment_seconds: float = 6 * 3600.0

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> LogRetention:
        """``YUNZHOU_LOGS_MAX_AGE`` (a duration: ``7d``, ``36h``; ``0`` or ``none``: no bound) and
        ``YUNZHOU_LOGS_MAX_BYTES`` (``2GiB``, ``500MB``, ``1000000``; ``0`` or ``none``: no bound)."""
        values: dict[str, Any] = {}
        age = env.get("YUNZHOU_LOGS_MAX_AGE", "").strip()
        if age:
            seconds = _parse_size(age, _DURATION_UNITS, "YUNZHOU_LOGS_MAX_AGE", "7d or 36h")
            values["max_age_days"] = seconds / 86400.0 if seconds else None
        size = env.get("YUNZHOU_LOGS_MAX_BYTES", "").strip()
        if size:
            amount = _parse_size(size, _BYTE_UNITS, "YUNZHOU_LOGS_MAX_BYTES", "2GiB or 500MB")
            values["max_bytes"] = int(amount) if amount else None
        return cls(**values)

    @property
    def seal_at_bytes(self) -> int:
        if self.max_bytes is None:
            return self.segment_bytes
        return max(1, min(self.segment_bytes, self.max_bytes // 4))


_DURATION_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_BYTE_UNITS = {"": 1.0, "b": 1.0, "kb": 1e3, "mb": 1e6, "gb": 1e9, "kib": 1024.0, "mib": MiB, "gib": GiB}
_AMOUNT = re.compile(r"^(\d+(?:\.\d+)?)\s*([a-z]*)$")


def _parse_size(text: str, units: Mapping[str, float], name: str, example: str) -> float:
    """``7d`` / ``2GiB`` → seconds / bytes; 0 for ``none``. A UserError naming ``name`` otherwise."""
    lowered = text.lower()
    if lowered in ("none", "0"):
        return 0.0
    match = _AMOUNT.match(lowered)
    if match is None or match.group(2) not in units:
        raise invalid(name, f"{text!r} is not an amount like {example} (or none)")
    return float(match.group(1)) * units[match.group(2)]


class SegmentWriter:
    """Owns the newest segment's connection; opened in the store's constructor so that schema problems
    surface there."""

    def __init__(self, directory: Path, *, full_text: bool | None, clock: Callable[[], float]) -> None:
        self.directory = directory
        self._clock = clock
        existing = segments.list_segments(directory)
        active = existing[-1] if existing else segments.Segment(1, segments.segment_path(directory, 1))
        self.conn, self.full_text = segments.create_segment(active.path, active.first_id, full_text=full_text)
        self.active = active
        self.next_id = segments.last_id(self.conn) + 1
        self.opened_at = clock()
        self.app_ids = sql.AppIds()
        self._described: dict[Path, tuple[float | None, int]] = {}  # sealed segments never change

    def close(self) -> None:
        self.conn.close()

    # -- writing ---------------------------------------------------------------------------------

    def write(self, records: Iterable[LogRecord], checkpoints: dict[str, str]) -> tuple[int, int]:
        """One transaction; returns (stored, refused)."""
        rows: list[sql.Row] = []
        tokens: list[sql.Tokens] = []
        given = 0
        next_id = self.next_id
        for record in records:
            given += 1
            row = self._row(record, next_id, tokens)
            if row is not None:
                rows.append(row)
                next_id += 1
        stored = sql.insert(self.conn, rows, tokens, checkpoints, full_text=self.full_text)
        if rows:
            self.next_id = max(self.next_id, rows[-1][0] + 1)
        return len(stored), given - len(stored)

    def _row(self, record: LogRecord, record_id: int, tokens: list[sql.Tokens]) -> sql.Row | None:
        """The database row for ``record`` (its field index tokens go to ``tokens``), or None when it is
        not a valid record."""
        if record.stream not in STREAMS:
            return None
        try:
            app_id = self.app_ids.get(self.conn, record.app)
            when = float(record.time)
            if app_id is None or not math.isfinite(when):
                return None
            line = record.line if type(record.line) is str else str(record.line)
            column, fields = _fields(record, line)
            if fields:
                found = fieldindex.field_tokens(fields, access=record.stream == "access")
                if found is not None:
                    tokens.append((record_id, found))
            return (
                record_id,
                app_id,
                when,
                None if record.instance is None else str(record.instance),
                record.release if isinstance(record.release, int) else None,
                record.stream,
                line,
                column,
            )
        except Exception:  # whatever a caller put in a record, it must not stop the writer
            return None

    # -- segments --------------------------------------------------------------------------------

    def seal_if_due(self, policy: LogRetention) -> bool:
        """Start a new segment when the active one is big or old enough; True when it did."""
        if self.next_id == self.active.first_id:  # empty: nothing to seal
            return False
        too_big = segments.segment_bytes(self.active) >= policy.seal_at_bytes
        too_old = self._clock() - self.opened_at >= policy.segment_seconds
        if not (too_big or too_old):
            return False
        self.seal()
        return True

    def seal(self) -> None:
        """Close the active segment for good and start the next one at the next id."""
        if self.next_id == self.active.first_id:
            return
        path = segments.segment_path(self.directory, self.next_id)
        conn, _ = segments.create_segment(path, self.next_id, full_text=self.full_text, previous=self.conn)
        old = self.conn
        self.conn, self.active, self.opened_at = conn, segments.Segment(self.next_id, path), self._clock()
        try:
            old.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # a sealed segment is one file
        except sqlite3.Error:
            log.warning("could not checkpoint a sealed log segment", exc_info=True)
        old.close()

    def enforce_retention(self, policy: LogRetention) -> int:
        """Delete the segments past the age or size bound; returns how many records went with them."""
        deleted = 0
        if policy.max_age_days is not None:
            cutoff = self._clock() - policy.max_age_days * 86400.0
            active_newest = segments.time_range(self.conn)[1]
            if active_newest is not None and active_newest < cutoff:
                self.seal()  # every record of the active segment is too old: it goes as a whole too
            for segment in self._sealed():
                newest, count = self._describe(segment)
                if newest is None or newest < cutoff:
                    deleted += count
                    segments.delete_segment(segment)
        if policy.max_bytes is not None:
            sealed = self._sealed()
            total = sum(segments.segment_bytes(s) for s in sealed) + segments.segment_bytes(self.active)
            if total > policy.max_bytes and not sealed:
                self.seal()
                sealed = self._sealed()
            for segment in sealed:
                if total <= policy.max_bytes:
                    break
                size = segments.segment_bytes(segment)
                deleted += self._describe(segment)[1]
                segments.delete_segment(segment)
                total -= size
        segments.remove_orphans(self.directory)
        listed = {segment.path for segment in segments.list_segments(self.directory)}
        self._described = {path: known for path, known in self._described.items() if path in listed}
        return deleted

    def _describe(self, segment: segments.Segment) -> tuple[float | None, int]:
        known = self._described.get(segment.path)
        if known is None:
            known = self._described[segment.path] = _describe(segment)
        return known

    def _sealed(self) -> list[segments.Segment]:
        return [s for s in segments.list_segments(self.directory) if s.first_id < self.active.first_id]


def _describe(segment: segments.Segment) -> tuple[float | None, int]:
    """A sealed segment's newest record time and record count (None, 0 when it cannot be read)."""
    try:
        conn = segments.connect(segment.path, readonly=True)
    except sqlite3.Error:
        return None, 0
    try:
        if not segments.is_ready(conn):
            return None, 0
        count = conn.execute("SELECT count(*) FROM logs").fetchone()[0]
        return segments.time_range(conn)[1], int(count)
    except sqlite3.Error:
        return None, 0
    finally:
        conn.close()


def _fields(record: LogRecord, line: str) -> tuple[str | int | None, Mapping[str, object] | None]:
    """What to store in the fields column (None; 1: the line itself is their JSON; else JSON text) and
    the fields to index. The hot paths (the supervisor's JSON lines, the tailer's access records) come
    with both the parsed fields and their JSON text: nothing is parsed or encoded here."""
    given = record.fields
    if record.fields_json is not None:
        parsed = given or json_fields(record.fields_json)
        return (1 if record.fields_json == line else record.fields_json), parsed
    if given:
        return _json(dict(given)), given
    if line[:1] != "{" and line.lstrip()[:1] != "{":
        return None, None
    parsed = json_fields(line)  # a JSON line nobody parsed yet
    if parsed is None:
        return None, None
    if "NaN" in line or "Infinity" in line:
        return _json(parsed), parsed
    return 1, parsed


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
