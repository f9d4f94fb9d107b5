"""An app's Metrics tab: request rate, error rate, latency p50/p99, CPU and memory over a chosen window,
drawn by ECharts from the API's per-app chart series (``GET …/apps/{app}/metrics?window=``, shape in
docs/metrics.md). The page embeds the first answer; while it is open, app.js asks ``…/metrics/data`` for
a fresh one. Without JavaScript the page shows each series' latest value."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse

from yunzhou.client import ApiError
from yunzhou.web.app_pages import BASE, _base, _page
from yunzhou.web.context import ConsoleRoute, Ctx, Json, PageCtx

router = APIRouter(route_class=ConsoleRoute, include_in_schema=False)

WINDOWS = ("15m", "1h", "6h", "24h", "7d")
DEFAULT_WINDOW = "1h"
# how often an open tab asks for fresh series (seconds): about one new point per refresh
REFRESH = {"15m": 15, "1h": 30, "6h": 60, "24h": 300, "7d": 300}
MIB = 1048576.0

# chart key → (API series names, how a value is shown: scale and unit key)
CHARTS: tuple[tuple[str, tuple[str, ...], float, str], ...] = (
    ("request_rate", ("request_rate",), 1.0, "metrics.unit.rps"),
    ("error_rate", ("error_rate",), 100.0, "metrics.unit.percent"),
    ("latency", ("latency_p50", "latency_p99"), 1000.0, "metrics.unit.ms"),
    ("cpu", ("cpu",), 1.0, "metrics.unit.cores"),
    ("memory", ("memory",), 1.0 / MIB, "metrics.unit.mib"),
)


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None


def _grid(answer: Json) -> list[float]:
    """Every step of the window: the API leaves out steps without samples; the charts show them as gaps."""
    start, end, step = _number(answer.get("start")), _number(answer.get("end")), _number(answer.get("step"))
    if start is None or end is None or step is None or step <= 0:
        return []
    count = min(int((end - start) // step), 20_000)
    return [end - step * i for i in range(count, -1, -1)]


def _scaled(points: list[list[Any]], factor: float, grid: list[float]) -> list[list[float | None]]:
    """[unix ms, value in display units or None] at every step of ``grid`` (and at any point off it)."""
    values: dict[float, float | None] = dict.fromkeys(grid)
    for t, value in points:
        number = _number(value)
        values[float(t)] = round(number * factor, 6) if number is not None else None
    return [[t * 1000.0, value] for t, value in sorted(values.items())]  # ECharts' time axis wants ms


def chart_data(answer: Json, window: str, t: Callable[..., str]) -> Json:
    """The API's series regrouped into the tab's five charts, in display units and the page's language."""
    by_name = {str(s.get("name")): s for s in answer.get("series", [])}
    grid = _grid(answer)
    charts: list[Json] = []
    for key, names, factor, unit_key in CHARTS:
        lines: list[Json] = []
        samples = 0
        for name in names:
            points = _scaled(list(by_name.get(name, {}).get("points") or []), factor, grid)
            values = [v for _, v in points if v is not None]
            samples += len(values)
            latest = values[-1] if values else None
            lines.append({"name": t(f"metrics.series.{name}"), "points": points, "latest": latest})
        charts.append({
            "key": key, "title": t(f"metrics.chart.{key}"), "unit": t(unit_key), "series": lines,
            "samples": samples,
        })  # fmt: skip
    return {
        "window": window,
        "start_ms": grid[0] * 1000.0 if grid else None,
        "end_ms": grid[-1] * 1000.0 if grid else None,
        "step": answer.get("step"),
        "charts": charts,
        "has_data": any(chart["samples"] for chart in charts),
    }


def _window(value: str) -> str:
    return value if value in WINDOWS else DEFAULT_WINDOW


def _load(ctx: Ctx, project: str, env: str, app: str, window: str) -> tuple[Json | None, str | None]:
    """(chart data, None) or (None, why there is none): a server without a metrics engine says so."""
    try:
        answer = ctx.client().app_metrics(project, env, app, window)
    except ApiError as exc:
        if exc.status not in (404, 503):  # 503: no metrics engine; a missing app is a 404 of the page
            raise
        return None, exc.message
    return chart_data(answer, window, ctx.t), None


@router.get(BASE + "/metrics")
def metrics(
    ctx: PageCtx, project: str, env: str, app: str, window: str = DEFAULT_WINDOW, refresh: int | None = None
) -> Response:
    ctx.require_session()
    window = _window(window)
    data, unavailable = _load(ctx, project, env, app, window)
    every = max(2, min(refresh, 3600)) if refresh else REFRESH[window]
    return _page(
        ctx, "metrics", project, env, app, windows=WINDOWS, window=window, chart=data,
        unavailable=unavailable, refresh_ms=every * 1000,
        data_url=_base(project, env, app) + f"/metrics/data?window={window}",
        instances=ctx.client().list_instances(project, env, app),
    )  # fmt: skip


@router.get(BASE + "/metrics/data")
def metrics_data(ctx: PageCtx, project: str, env: str, app: str, window: str = DEFAULT_WINDOW) -> Response:
    """The same chart data as JSON, for the open tab's refresh."""
    ctx.require_session()
    window = _window(window)
    data, unavailable = _load(ctx, project, env, app, window)
    response = JSONResponse(data if data is not None else {"unavailable": unavailable}, status_code=200)
    ctx.finish(response)
    return response
