"""The embedded log store: captured stdout/stderr and router access logs, searchable per app.

It lives in its own SQLite file, apart from the state DB, so that logging never blocks a control-plane
write. See docs/logs.md.
"""

from yunzhou.observe.logs.records import (
    STREAMS,
    CapturedLine,
    LogRecord,
    LogStream,
    access_record,
    format_rfc3339,
    parse_rfc3339,
)
from yunzhou.observe.logs.store import (
    MAX_QUERY_LIMIT,
    LogPage,
    LogRetention,
    LogStore,
    LogStoreStats,
)
from yunzhou.observe.logs.tailer import AccessLogTailer
from yunzhou.observe.logs.timespec import parse_time_bound

__all__ = [
    "MAX_QUERY_LIMIT",
    "STREAMS",
    "AccessLogTailer",
    "CapturedLine",
    "LogPage",
    "LogRecord",
    "LogRetention",
    "LogStore",
    "LogStoreStats",
    "LogStream",
    "access_record",
    "format_rfc3339",
    "parse_rfc3339",
    "parse_time_bound",
]
