"""observe: log store + search (more with the issues that need it: metrics samples, alerts)."""

from yunzhou.observe.logs import (
    MAX_QUERY_LIMIT,
    STREAMS,
    AccessLogTailer,
    CapturedLine,
    LogPage,
    LogRecord,
    LogRetention,
    LogStore,
    LogStoreStats,
    LogStream,
    access_record,
    format_rfc3339,
    parse_rfc3339,
    parse_time_bound,
)

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
