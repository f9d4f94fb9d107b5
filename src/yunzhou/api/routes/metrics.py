"""Metrics: the control plane's ``/metrics`` (Prometheus text), PromQL instant and range queries answered
like Prometheus's HTTP API, and the per-app chart series the console draws (shape in docs/metrics.md).

The engine is ``app.state.metrics`` (the embedded ``QueryEngine`` or a ``PrometheusQueryEngine``); the
scrape loop (``app.state.metrics_scrape``) and the control plane's own metrics
(``app.state.metrics_self``) feed ``/metrics``.
"""

from __future__ import annotations

import math
import re
import time
from datetime import datetime
from typing import Annotated, Any, Literal, Protocol

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel, Field

from yunzhou.api import schemas
from yunzhou.api.auth import control_plane, operation
from yunzhou.domain.access import Permission
from yunzhou.domain.errors import TemporaryError, UserError, invalid
from yunzhou.domain.metrics import CHART_WINDOWS, chart_window
from yunzhou.services import ControlPlane

router = APIRouter()  # under /api/v1
exposition_router = APIRouter()  # at the root: /metrics, where Prometheus looks by default
CP = Annotated[ControlPlane, Depends(control_plane)]
APP = "/projects/{project}/environments/{env}/apps/{app}"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
MAX_POINTS = 11_000  # as Prometheus: (end - start) / step may not exceed this
_DURATION_RE = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h|d|w|y)$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
TIME_HELP = "Unix seconds (may be fractional) or RFC 3339; default now"


class Engine(Protocol):
    def instant(self, expr: str, t: float) -> dict[str, Any]: ...

    def range(self, expr: str, start: float, end: float, step: float) -> dict[str, Any]: ...


def engine_of(request: Request) -> Engine:
    engine: Engine | None = getattr(request.app.state, "metrics", None)
    if engine is None:
        raise TemporaryError("this server has no metrics engine running", retry_after=5.0)
    return engine


def parse_time(value: str | None, field: str, now: float) -> float:
    if value is None or value == "":
        return now
    try:
        t = float(value)
    except ValueError:
        try:
            t = datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        except ValueError:
            raise invalid(field, f"{value!r} is not a time; give unix seconds or RFC 3339") from None
    if not math.isfinite(t):
        raise invalid(field, f"{value!r} is not a finite time")
    return t


def parse_step(value: str, field: str = "step") -> float:
    """``15``, ``15.5``, ``15s``, ``1m``, ``1h`` → seconds (> 0)."""
    try:
        seconds = float(value)
    except ValueError:
        m = _DURATION_RE.match(value)
        if m is None:
            raise invalid(field, f"{value!r} is not a duration; give seconds or e.g. 15s, 1m, 1h") from None
        seconds = float(m.group(1)) * _UNIT_SECONDS[m.group(2)]
    if not math.isfinite(seconds) or seconds <= 0:
        raise invalid(field, "must be a positive duration")
    return seconds


def prometheus_error(exc: UserError | TemporaryError) -> JSONResponse:
    """The error envelope Prometheus's HTTP API uses, so code that reads Prometheus answers reads it."""
    if isinstance(exc, TemporaryError):
        return JSONResponse(
            {"status": "error", "errorType": "unavailable", "error": exc.message},
            status_code=503,
            headers={"Retry-After": str(max(1, round(exc.retry_after)))},
        )
    return JSONResponse({"status": "error", "errorType": "bad_data", "error": exc.message}, status_code=400)


_WINDOW_PATTERN = "^(" + "|".join(re.escape(w) for w in CHART_WINDOWS) + ")$"
QueryText = Annotated[str, Query(min_length=1, max_length=10_000, description="A PromQL expression")]


class PrometheusError(BaseModel):
    status: Literal["error"]
    errorType: str = Field(description="bad_data (400) or unavailable (503)")
    error: str


_PROMETHEUS_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": PrometheusError, "description": "A bad query, time or step (the message names it)"},
    503: {"model": PrometheusError, "description": "No metrics engine; retry after Retry-After seconds"},
}


@operation(
    router, "GET", "/metrics/query", name="metrics.query", permission=Permission.METRICS_READ,
    responses=_PROMETHEUS_ERRORS,
)  # fmt: skip
def instant_query(
    request: Request,
    query: QueryText,
    time_: Annotated[str | None, Query(alias="time", description=TIME_HELP)] = None,
) -> Any:
    """Evaluate `query` at one time; answers like Prometheus's `/api/v1/query`."""
    try:
        engine = engine_of(request)
        t = parse_time(time_, "time", time.time())
        return {"status": "success", "data": engine.instant(query, t)}
    except (UserError, TemporaryError) as exc:
        return prometheus_error(exc)


@operation(
    router, "GET", "/metrics/query_range", name="metrics.query_range", permission=Permission.METRICS_READ,
    responses=_PROMETHEUS_ERRORS,
)  # fmt: skip
def range_query(
    request: Request,
    query: QueryText,
    start: Annotated[str, Query(description=TIME_HELP)],
    end: Annotated[str, Query(description=TIME_HELP)],
    step: Annotated[str, Query(description="Resolution: seconds or a duration such as 15s, 1m")],
) -> Any:
    """Evaluate `query` from `start` to `end` every `step`, like Prometheus's `/api/v1/query_range`."""
    try:
        engine = engine_of(request)
        now = time.time()
        start_t, end_t, step_s = (
            parse_time(start, "start", now),
            parse_time(end, "end", now),
            parse_step(step),
        )
        if end_t < start_t:
            raise invalid("end", "must not be before start")
        if (end_t - start_t) / step_s > MAX_POINTS:
            raise invalid("step", f"too many points: (end - start) / step may be at most {MAX_POINTS}")
        return {"status": "success", "data": engine.range(query, start_t, end_t, step_s)}
    except (UserError, TemporaryError) as exc:
        return prometheus_error(exc)


@operation(
    exposition_router, "GET", "/metrics", name="metrics.exposition", permission=Permission.METRICS_READ,
    response_class=PlainTextResponse,
)  # fmt: skip
def exposition(request: Request) -> PlainTextResponse:
    """Every collected series (latest value) and the control plane's own metrics, in Prometheus text."""
    parts = []
    scrape = getattr(request.app.state, "metrics_scrape", None)
    if scrape is not None:
        parts.append(scrape.render())
    own = getattr(request.app.state, "metrics_self", None)
    if own is not None:
        parts.append(own.render())
    return PlainTextResponse("".join(parts), media_type=CONTENT_TYPE)


# ---- per-app charts ----------------------------------------------------------------------------------------
def chart_queries(project: str, env: str, app: str, rate_range: str) -> dict[str, str]:
    """The PromQL behind each chart. The names are those of an existing app (DNS labels), so they cannot
    change the structure of the expressions they are put into."""
    sel = f'project="{project}",env="{env}",app="{app}"'
    by_code = f"sum by (code) (rate(yunzhou_router_requests_total{{{sel}}}[{rate_range}]))"
    buckets = f"sum by (le) (rate(yunzhou_router_request_duration_seconds_bucket{{{sel}}}[{rate_range}]))"
    return {
        "requests_by_code": by_code,
        "latency_p50": f"histogram_quantile(0.5, {buckets})",
        "latency_p99": f"histogram_quantile(0.99, {buckets})",
        "cpu": f"sum(rate(yunzhou_instance_cpu_seconds_total{{{sel}}}[{rate_range}]))",
        "memory": f"sum(yunzhou_instance_memory_bytes{{{sel}}})",
    }


def _points(result: list[dict[str, Any]]) -> list[tuple[float, float | None]]:
    """The one series of an aggregated range result, as [t, value] with NaN/±Inf as null."""
    if not result:
        return []
    out = []
    for t, raw in result[0].get("values", []):
        value = float(raw)
        out.append((float(t), value if math.isfinite(value) else None))
    return out


def _add(into: dict[float, float], result: list[dict[str, Any]], only: str | None = None) -> None:
    for series in result:
        if only is not None and series.get("metric", {}).get("code") != only:
            continue
        for t, raw in series.get("values", []):
            value = float(raw)
            if math.isfinite(value):
                into[float(t)] = into.get(float(t), 0.0) + value


@operation(router, "GET", APP + "/metrics", name="apps.metrics", permission=Permission.APP_READ)
def app_metrics(
    request: Request,
    project: schemas.Label,
    env: schemas.Label,
    app: schemas.Label,
    cp: CP,
    window: Annotated[
        str, Query(pattern=_WINDOW_PATTERN, description="One of " + ", ".join(CHART_WINDOWS))
    ] = "1h",
    end: Annotated[str | None, Query(description=TIME_HELP)] = None,
) -> Any:
    """Chart series for one app over `window`: request rate, error rate, latency p50/p99, CPU, memory."""
    cp.apps.get(project, env, app)  # 404 for an app that does not exist
    seconds, rate_range, step = chart_window(window)
    engine = engine_of(request)
    end_t = parse_time(end, "query.end", time.time())
    end_t -= end_t % step  # aligned steps: two people looking at the same chart see the same points
    start_t = end_t - seconds
    queries = chart_queries(project, env, app, rate_range)
    data = {name: engine.range(q, start_t, end_t, step)["result"] for name, q in queries.items()}
    total: dict[float, float] = {}
    errors: dict[float, float] = {}
    _add(total, data["requests_by_code"])
    _add(errors, data["requests_by_code"], only="5xx")
    series = [
        _chart("request_rate", "Requests", "req/s", queries["requests_by_code"] + " (summed over code)",
               sorted(total.items())),
        _chart("error_rate", "Errors (5xx share)", "ratio", queries["requests_by_code"] + " (5xx / all)",
               [(t, errors.get(t, 0.0) / n if n > 0 else None) for t, n in sorted(total.items())]),
        _chart("latency_p50", "Latency p50", "seconds", queries["latency_p50"], _points(data["latency_p50"])),
        _chart("latency_p99", "Latency p99", "seconds", queries["latency_p99"], _points(data["latency_p99"])),
        _chart("cpu", "CPU", "cores", queries["cpu"], _points(data["cpu"])),
        _chart("memory", "Memory", "bytes", queries["memory"], _points(data["memory"])),
    ]  # fmt: skip
    return {
        "app": f"{project}/{env}/{app}",
        "window": window,
        "start": start_t,
        "end": end_t,
        "step": step,
        "series": series,
    }


def _chart(
    name: str, title: str, unit: str, query: str, points: list[tuple[float, float | None]]
) -> dict[str, Any]:
    return {"name": name, "title": title, "unit": unit, "query": query, "points": [[t, v] for t, v in points]}
