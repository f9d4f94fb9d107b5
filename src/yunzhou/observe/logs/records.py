"""What a log record is, and how captured lines and router access-log lines become one."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

LogStream = Literal["stdout", "stderr", "access"]
STREAMS: tuple[LogStream, ...] = ("stdout", "stderr", "access")


@dataclass(frozen=True, slots=True)
class LogRecord:
    """One line to store. ``app`` is the address ``project/env/app``; ``time`` is unix time.

    ``fields`` are the keys of a JSON-object line; when left empty and ``line`` is a JSON object, the
    store takes them from the line (so that appending stays cheap for the caller). ``fields_json``, when
    given, is ``fields`` already encoded as a JSON object (the store keeps it as it is).
    """

    time: float
    app: str
    instance: str | None
    stream: str
    line: str
    release: int | None = None
    fields: Mapping[str, object] = field(default_factory=dict)
    fields_json: str | None = None

    @classmethod
    def from_captured(cls, captured: CapturedLine) -> LogRecord:
        """A record from a line the process supervisor captured (its ``LogLine``). When the supervisor
        parsed the fields from a JSON line, that line is their encoding: the store keeps it once and
        indexes the parsed fields, never parsing or encoding them again."""
        line, fields = captured.line, captured.fields
        from_line = bool(fields) and line.startswith("{") and not _non_finite(line)
        return cls(
            time=captured.time,
            app=captured.app,
            instance=captured.instance_id,
            stream=captured.stream,
            line=line,
            release=captured.release,
            fields=fields,
            fields_json=line if from_line else None,
        )


def _non_finite(text: str) -> bool:
    """Whether JSON ``text`` may hold NaN/Infinity (Python reads them; strict JSON cannot carry them)."""
    return "NaN" in text or "Infinity" in text


class CapturedLine(Protocol):
    """The shape of the supervisor's ``LogLine`` (observe does not import runtimes)."""

    @property
    def time(self) -> float: ...
    @property
    def app(self) -> str: ...
    @property
    def instance_id(self) -> str: ...
    @property
    def release(self) -> int: ...
    @property
    def stream(self) -> str: ...
    @property
    def line(self) -> str: ...
    @property
    def fields(self) -> Mapping[str, object]: ...


def split_address(address: str) -> tuple[str, str, str] | None:
    """``project/env/app`` → its three parts, or None when it is not such an address."""
    parts = address.split("/")
    if len(parts) != 3 or not all(parts):
        return None
    return parts[0], parts[1], parts[2]


def json_fields(line: str) -> dict[str, Any] | None:
    """The keys of ``line`` when it is a JSON object, else None."""
    text = line.strip()
    if not (text.startswith("{") and text.endswith("}")):
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def parse_rfc3339(value: str) -> float | None:
    """``2024-05-01T10:22:33.123Z`` (or with an offset) → unix time; None when it is not RFC 3339."""
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    if moment.tzinfo is None:
        return None
    return moment.timestamp()


def format_rfc3339(unix: float) -> str:
    """Unix time → ``2024-05-01T10:22:33.123456Z`` (UTC, microseconds)."""
    return datetime.fromtimestamp(unix, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def access_record(line: str, *, now: float) -> LogRecord | None:
    """A router access-log line (one JSON object) → a record on the ``access`` stream of its app.

    None for lines that are not JSON objects or name no app (requests the router could not route).
    The record's ``line`` is a readable summary (method, path, status, size, duration, request id) so
    that ``--grep`` finds it; the whole object is kept as ``fields``.
    """
    entry = json_fields(line)
    if entry is None:
        return None
    app = entry.get("app")
    if not isinstance(app, str) or split_address(app) is None:
        return None
    when = entry.get("time")
    unix = parse_rfc3339(when) if isinstance(when, str) else None
    backend = entry.get("backend")
    release = entry.get("release")
    return LogRecord(
        time=now if unix is None else unix,
        app=app,
        instance=str(backend) if backend is not None else None,
        stream="access",
        line=_access_summary(entry),
        release=release if isinstance(release, int) and not isinstance(release, bool) else None,
        fields=entry,
        fields_json=None if _non_finite(line) else line.strip(),  # else the store makes it strict
    )


def _access_summary(entry: Mapping[str, Any]) -> str:
    parts = [
        str(entry.get("method", "-")),
        str(entry.get("path", "-")),
        str(entry.get("status", "-")),
        f"{entry.get('bytes', '-')}B",
        f"{entry.get('duration_ms', '-')}ms",
    ]
    if entry.get("request_id"):
        parts.append(f"request_id={entry['request_id']}")
    return " ".join(parts)
