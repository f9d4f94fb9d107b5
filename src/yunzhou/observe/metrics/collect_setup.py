"""Metrics assembled for a server: the store, the query engine (embedded, or a real Prometheus when
``YUNZHOU_PROMETHEUS_URL`` is set), the scrape loop and its collectors, the control plane's own metrics.

The composition root (``yunzhou.server``) opens one ``MetricsWiring``, hands it the local target's sources
when it runs one (``attach_local``), puts it on the API app (``install``) and starts/stops it.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import httpx

from yunzhou.domain.errors import TemporaryError
from yunzhou.observe.metrics.collect import Collector, ScrapeLoop, scrape_interval
from yunzhou.observe.metrics.collect_db import StateReader
from yunzhou.observe.metrics.collect_domains import DomainExpiryCollector
from yunzhou.observe.metrics.collect_host import HostCollector
from yunzhou.observe.metrics.collect_instances import (
    AppScrapeCollector,
    InstanceCollector,
    InstanceSample,
    InstanceSource,
)
from yunzhou.observe.metrics.collect_router import RouterCollector
from yunzhou.observe.metrics.collect_self import ControlPlaneMetrics
from yunzhou.observe.metrics.remote import PrometheusQueryEngine
from yunzhou.store import Database

log = logging.getLogger("yunzhou.observe.metrics")
LOCAL_TARGET = "local"  # an environment's target when it runs on this machine
# Where the process running the local target says where its router's admin API listens and the headers
# (its token) it needs, so a control plane started with --no-runtime on the same data dir can scrape the
# router too. JSON ``{"admin": "host:port", "headers": {...}}``, mode 0600.
ROUTER_ADMIN_FILE = "router-admin"


def publish_router_admin(data_dir: Path, admin: str, headers: Mapping[str, str]) -> None:
    """Write ``ROUTER_ADMIN_FILE`` atomically, readable by its owner only (it holds the admin token)."""
    where = data_dir / ROUTER_ADMIN_FILE
    tmp = where.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        json.dump({"admin": admin, "headers": dict(headers)}, out)
    tmp.replace(where)


def read_router_admin(data_dir: Path) -> tuple[str, dict[str, str]] | None:
    """The router's admin address and the headers it needs, from ``ROUTER_ADMIN_FILE``; None if absent."""
    try:
        doc = json.loads((data_dir / ROUTER_ADMIN_FILE).read_text(encoding="utf-8"))
        return str(doc["admin"]), {str(k): str(v) for k, v in doc["headers"].items()}
    except FileNotFoundError:
        return None
    except (ValueError, LookupError, TypeError, AttributeError):
        message = f"{data_dir / ROUTER_ADMIN_FILE} is not what this version writes: restart the worker"
        raise TemporaryError(message) from None


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
RETENTION_VARIABLES = {
    "YUNZHOU_METRICS_RETENTION": "retention",  # how long rollups are kept (default 15d)
    "YUNZHOU_METRICS_RAW_RETENTION": "raw_retention",  # how long full-resolution samples are kept (2d)
    "YUNZHOU_METRICS_ROLLUP": "rollup_interval",  # resolution of the rollups (5m)
}


def duration_seconds(variable: str, raw: str) -> float:
    """``90``, ``90s``, ``15m``, ``48h``, ``15d``, ``2w`` → seconds (> 0)."""
    text = raw.strip()
    number, unit = (text[:-1], text[-1]) if text[-1:] in _UNITS else (text, "s")
    try:
        seconds = float(number) * _UNITS[unit]
    except ValueError:
        seconds = 0.0
    if not seconds > 0:
        raise ValueError(f"{variable}={raw!r}: give a positive duration such as 90s, 15m, 48h or 15d")
    return seconds


def retention(environ: Mapping[str, str]) -> dict[str, float]:
    """The store's retention settings from the environment (only those that are set)."""
    return {
        option: duration_seconds(variable, environ[variable])
        for variable, option in RETENTION_VARIABLES.items()
        if environ.get(variable, "").strip()
    }


class MetricsWiring:
    def __init__(
        self, data_dir: Path, db: Database, *, environ: Mapping[str, str] | None = None, store: Any = None
    ) -> None:
        from yunzhou.observe.metrics import MetricStore, QueryEngine

        env = os.environ if environ is None else environ
        self.data_dir = data_dir
        self.interval = scrape_interval(env)
        if store is None:
            kept = retention(env)
            store = MetricStore.open(
                data_dir / "metrics",
                retention=kept.get("retention", 15 * 86400),
                raw_retention=kept.get("raw_retention", 2 * 86400),
                rollup_interval=kept.get("rollup_interval", 300.0),
            )
        self.store = store
        prometheus = env.get("YUNZHOU_PROMETHEUS_URL", "").strip()
        self.engine: Any = PrometheusQueryEngine(prometheus) if prometheus else QueryEngine(self.store)
        self.state = StateReader(db)
        self.own = ControlPlaneMetrics()
        self.own.watch_queue(self.state.queue_depth)
        self._instances: InstanceSource = self.state.reported_instances
        self._router: Callable[[], str] = self._router_of_worker
        self._cached: tuple[float, list[InstanceSample]] | None = None
        self.apps = AppScrapeCollector(self._this_tick, timeout=min(2.0, max(0.5, self.interval)))
        self.loop: ScrapeLoop | None = None

    def attach_local(self, *, router_metrics: Callable[[], str], instances: InstanceSource) -> None:
        """This process runs the local target: read its instances live (cluster targets' as the reconcilers
        reported them) and scrape the router."""
        self._router = router_metrics

        def local_and_clusters() -> list[InstanceSample]:
            return [*instances(), *self.state.reported_instances(except_target=LOCAL_TARGET)]

        self._instances = local_and_clusters

    def _router_of_worker(self) -> str:
        """The router's metrics when another process (``yunzhou worker``) runs the local target here."""
        published = read_router_admin(self.data_dir)
        if published is None:
            return ""  # no local target on this data dir: nothing to scrape
        admin, headers = published
        try:
            response = httpx.get(f"http://{admin}/metrics", headers=headers, timeout=2.0, trust_env=False)
            response.raise_for_status()
        except httpx.HTTPError as exc:
            raise TemporaryError(f"router admin API at {admin} (from {ROUTER_ADMIN_FILE}): {exc}") from None
        return response.text

    def _this_tick(self) -> list[InstanceSample]:
        """The instances with their declared endpoints, read once per tick for both collectors that use
        them (reading an instance's usage walks /proc when it has no cgroup)."""
        now = time.monotonic()
        if self._cached is None or now - self._cached[0] > self.interval / 2:
            self._cached = (now, self.state.with_endpoints(self._instances()))
        return self._cached[1]

    def collectors(self) -> list[Collector]:
        found: list[Collector] = [
            HostCollector((Path("/"), self.data_dir)),
            InstanceCollector(self._this_tick, self.state.replicas),
            self.apps,
            RouterCollector(self._router),
            DomainExpiryCollector(self.state.domain_expiries),
        ]
        return found

    def install(self, app: Any) -> None:
        """Put the engine, the loop and the control plane's metrics where the API routes look."""
        app.state.metrics = self.engine
        app.state.metrics_scrape = self
        app.state.metrics_self = self.own

    def render(self) -> str:
        """The latest value of every collected series (empty until the loop has run)."""
        return "" if self.loop is None else self.loop.render()

    def start(self) -> MetricsWiring:
        self.loop = ScrapeLoop(self.store, self.collectors(), interval=self.interval)
        self.loop.start()
        log.info(
            "metrics: scraping every %gs; queries go to %s",
            self.interval,
            self.engine.url if isinstance(self.engine, PrometheusQueryEngine) else "the embedded engine",
        )
        return self

    def stop(self) -> None:
        if self.loop is not None:
            self.loop.stop()
        self.apps.close()
        if isinstance(self.engine, PrometheusQueryEngine):
            self.engine.close()
        close = getattr(self.store, "close", None)
        if close is not None:
            close()
