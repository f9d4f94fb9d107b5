"""The control plane's own metrics (prometheus-client, in a private registry): HTTP requests by route
template and status, reconcile pass durations by kind and result, and the reconcile queue depth.

They are served live by ``/metrics`` next to the collected series; they are not stored (nothing queries
them through the embedded engine, and an external Prometheus scrapes them)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector as PromCollector

disable_created_metrics()  # type: ignore[no-untyped-call] # no *_created series: nothing reads them and they double the output

Scope = dict[str, Any]
Receive = Callable[[], Any]
Send = Callable[[dict[str, Any]], Any]
ASGIApp = Callable[[Scope, Receive, Send], Any]


class _Controller(Protocol):
    kind: str

    def reconcile(self, key: str) -> Any: ...


class _QueueDepth(PromCollector):
    def __init__(self, depth: Callable[[], dict[str, int]]) -> None:
        self.depth = depth

    def collect(self) -> Any:
        family = GaugeMetricFamily(
            "yunzhou_reconcile_queue_depth", "Work items due now and not leased, by kind.", labels=["kind"]
        )
        for kind, count in sorted(self.depth().items()):
            family.add_metric([kind], count)
        yield family


class ControlPlaneMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.http_requests = Counter(
            "yunzhou_http_requests",  # exposed as yunzhou_http_requests_total
            "API and console requests by method, route template and status code.",
            ["method", "route", "code"],
            registry=self.registry,
        )
        self.http_duration = Histogram(
            "yunzhou_http_request_duration_seconds",
            "API and console request handling time by route template.",
            ["method", "route"],
            registry=self.registry,
        )
        self.reconcile_passes = Histogram(
            "yunzhou_reconcile_pass_duration_seconds",
            "Duration of one reconcile pass, by kind of work and result (ok|error|exception).",
            ["kind", "result"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
            registry=self.registry,
        )

    def watch_queue(self, depth: Callable[[], dict[str, int]]) -> None:
        self.registry.register(_QueueDepth(depth))

    def render(self) -> str:
        return generate_latest(self.registry).decode("utf-8")

    def timed(self, controller: _Controller) -> TimedController:
        return TimedController(controller, self.reconcile_passes)


class HttpMetricsMiddleware:
    """ASGI middleware counting requests by route template (``/api/v1/projects/{project}``), not by path,
    so the number of series stays bounded."""

    def __init__(self, app: ASGIApp, metrics: ControlPlaneMetrics) -> None:
        self.app = app
        self.metrics = metrics

    @staticmethod
    def _template(scope: Scope) -> str:
        """The matched route's full path template. FastAPI puts the route as declared (without the prefix
        it was included under) in the scope, so the prefix is taken from the real path."""
        template = str(getattr(scope.get("route"), "path", "") or "")
        if not template:
            return "unmatched"
        depth = template.count("/")
        segments = str(scope.get("path", "")).split("/")
        prefix = "/".join(segments[: len(segments) - depth]) if len(segments) > depth else ""
        return prefix + template

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = {"code": 500}

        async def capture(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        started = time.perf_counter()
        try:
            await self.app(scope, receive, capture)
        finally:
            method = scope.get("method", "")
            template = self._template(scope)
            self.metrics.http_requests.labels(method, template, str(status["code"])).inc()
            self.metrics.http_duration.labels(method, template).observe(time.perf_counter() - started)


class TimedController:
    """A reconcile controller whose passes are timed; everything else is the wrapped controller's."""

    def __init__(self, inner: _Controller, histogram: Histogram) -> None:
        self.inner = inner
        self.kind = inner.kind
        self._histogram = histogram

    def reconcile(self, key: str) -> Any:
        started = time.perf_counter()
        result = "exception"
        try:
            outcome = self.inner.reconcile(key)
            result = "error" if getattr(outcome, "error", None) else "ok"
            return outcome
        finally:
            self._histogram.labels(self.kind, result).observe(time.perf_counter() - started)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)
