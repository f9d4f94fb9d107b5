"""The embedded log store: captured stdout/stderr and router access logs, searchable per app.

It lives in its own directory of SQLite files (segments), apart from the state DB, so that logging never
blocks a control-plane write. See docs/logs.md.
"""

from yunzhou.observe.logs.reader import LogPage
from yunzhou.observe.logs.records import (
    STREAMS,
    CapturedLine,
    LogRecord,
    LogStream,
    access_record,
    format_rfc3339,
    json_fields,
    parse_rfc3339,
)
from yunzhou.observe.logs.store import MAX_QUERY_LIMIT, LogStore, LogStoreStats
from yunzhou.observe.logs.tailer import AccessLogTailer
from yunzhou.observe.logs.timespec import parse_time_bound
from yunzhou.observe.logs.where import FieldFilter, parse_filters
from yunzhou.observe.logs.writer import LogRetention

__all__ = [
    "MAX_QUERY_LIMIT",
    "STREAMS",
    "AccessLogTailer",
    "CapturedLine",
    "FieldFilter",
    "LogPage",
    "LogRecord",
    "LogRetention",
    "LogStore",
    "LogStoreStats",
    "LogStream",
    "access_record",
    "format_rfc3339",
    "json_fields",
    "parse_filters",
    "parse_rfc3339",
    "parse_time_bound",
]
