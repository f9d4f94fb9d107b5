"""Metrics: the embedded time-series store and the PromQL-subset query engine.

``MetricStore.open(path_or_None)`` keeps samples; ``QueryEngine(store)`` answers ``instant``/``range``
queries with the Prometheus HTTP API's ``data`` object. See docs/metrics-query.md.
"""

from yunzhou.observe.metrics.engine import MAX_POINTS, QueryEngine, format_value
from yunzhou.observe.metrics.store import CompactResult, MetricStore, SeriesSamples
from yunzhou.observe.metrics.tsdb_index import Matcher
from yunzhou.observe.metrics.tsdb_stale import STALE_NAN, is_stale

__all__ = [
    "MAX_POINTS",
    "STALE_NAN",
    "CompactResult",
    "Matcher",
    "MetricStore",
    "QueryEngine",
    "SeriesSamples",
    "format_value",
    "is_stale",
]
