"""``yunzhou observe``: a Prometheus scrape config for this control plane, and PromQL queries against it."""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

import typer
from rich import box
from rich.markup import escape
from rich.table import Table

from yunzhou.cli.common import (
    AppArg,
    ShowFormat,
    ShowOutput,
    app_hint,
    connect,
    note,
    out_console,
    print_json,
    print_object,
    print_yaml,
)
from yunzhou.client import admin_token_path

observe_app = typer.Typer(
    help="Metrics: a Prometheus scrape config for this server, and PromQL queries (instant and range).",
    no_args_is_help=True,
)
_DURATION = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def prometheus_config(
    target_url: str, credentials_file: Path, *, job: str = "yunzhou", interval: str = "10s"
) -> dict[str, Any]:
    """A complete Prometheus configuration that scrapes ``target_url``'s ``/metrics`` with a bearer token
    read from ``credentials_file``. Built as data, so no value can change its structure."""
    parts = urlsplit(target_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise typer.BadParameter(f"{target_url!r} is not an http(s) URL", param_hint="--url")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    prefix = parts.path.rstrip("/")
    return {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "scrape_configs": [
            {
                "job_name": job,
                "scheme": parts.scheme,
                "metrics_path": f"{prefix}/metrics",
                "scrape_interval": interval,
                # Yunzhou's series carry their own instance label (the app instance): keep it as is
                "honor_labels": True,
                "authorization": {"type": "Bearer", "credentials_file": str(credentials_file)},
                "static_configs": [{"targets": [f"{host}:{port}"]}],
            }
        ],
    }


@observe_app.command("prometheus-config")
def prometheus_config_command(
    ctx: typer.Context,
    credentials_file: Annotated[
        Path | None,
        typer.Option(
            "--credentials-file",
            help="File holding the token Prometheus sends (the metrics or admin scope); "
            "default: the admin-token file of the data dir.",
        ),
    ] = None,
    url: Annotated[
        str | None,
        typer.Option("--url", help="The address Prometheus reaches Yunzhou at; default YUNZHOU_URL."),
    ] = None,
    job: Annotated[str, typer.Option("--job", help="job_name of the scrape config.")] = "yunzhou",
    interval: Annotated[str, typer.Option("--interval", help="scrape_interval, e.g. 10s or 1m.")] = "10s",
    output: Annotated[
        str, typer.Option("--output", "-o", help="yaml (default, a prometheus.yml) or json.")
    ] = "yaml",
) -> None:
    """Print a Prometheus configuration (prometheus.yml) that scrapes this server's /metrics."""
    from yunzhou.cli.common import state_of

    config = state_of(ctx).get_config()
    token_file = credentials_file or admin_token_path(config.data_dir)
    if not (interval[:-1].isdigit() and interval[-1:] in _DURATION and int(interval[:-1]) > 0):
        raise typer.BadParameter(
            f"{interval!r}: give a duration such as 10s, 1m or 1h", param_hint="--interval"
        )
    doc = prometheus_config(url or config.url, token_file.resolve(), job=job, interval=interval)
    if output == "json":
        print_json(doc)
    elif output == "yaml":
        print_yaml(doc)
    else:
        raise typer.BadParameter(f"{output!r}: allowed: yaml, json", param_hint="--output")


def parse_when(value: str | None, now: float, hint: str) -> float:
    """``now``, unix seconds, RFC 3339, or a duration ago (``15m``, ``2h``, ``1d``)."""
    if value is None or value == "now":
        return now
    if value[:-1].replace(".", "", 1).isdigit() and value[-1:] in _DURATION:
        return now - float(value[:-1]) * _DURATION[value[-1]]
    try:
        return float(value)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise typer.BadParameter(
            f"{value!r}: give now, unix seconds, RFC 3339 or a duration ago such as 15m", param_hint=hint
        ) from None


def _labels(metric: dict[str, str]) -> str:
    name = metric.get("__name__", "")
    rest = ",".join(f'{k}="{v}"' for k, v in sorted(metric.items()) if k != "__name__")
    return f"{name}{{{rest}}}" if rest or not name else name


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _print_instant(data: dict[str, Any]) -> None:
    kind = data.get("resultType")
    result = data.get("result")
    if kind in ("scalar", "string"):
        assert isinstance(result, list)
        out_console().print(escape(str(result[1])))
        return
    if not result:
        note("No series matched.")
        return
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, header_style="bold")
    table.add_column("SERIES")
    table.add_column("VALUE", justify="right")
    for series in result:
        if "value" in series:
            table.add_row(escape(_labels(series["metric"])), escape(str(series["value"][1])))
        else:  # a range vector selector at one time: its last sample
            values = series.get("values") or [[0, ""]]
            table.add_row(escape(_labels(series["metric"])), escape(str(values[-1][1])))
    out_console().print(table)


def _print_range(data: dict[str, Any]) -> None:
    result = data.get("result") or []
    if not result:
        note("No series matched.")
        return
    for series in result:
        out_console().print(f"[bold]{escape(_labels(series['metric']))}[/bold]")
        for t, value in series.get("values", []):
            out_console().print(f"  {_iso(float(t))}  {escape(str(value))}")


@observe_app.command("query")
def query_command(
    ctx: typer.Context,
    query: Annotated[
        str, typer.Argument(help="A PromQL expression, e.g. 'sum(rate(yunzhou_router_requests_total[5m]))'")
    ],
    at: Annotated[
        str | None, typer.Option("--time", help="now (default), unix seconds, RFC 3339, or 15m ago.")
    ] = None,
    output: ShowOutput = ShowFormat.text,
) -> None:
    """Evaluate a PromQL expression at one time (the server's engine, or its Prometheus)."""
    t = parse_when(at, time.time(), "--time")
    data = connect(ctx).metrics_query(query, t)
    print_object(data, output, lambda: _print_instant(data))


@observe_app.command("query-range")
def query_range_command(
    ctx: typer.Context,
    query: Annotated[str, typer.Argument(help="A PromQL expression")],
    start: Annotated[
        str, typer.Option("--start", help="unix seconds, RFC 3339, or a duration ago (1h).")
    ] = "1h",
    end: Annotated[
        str, typer.Option("--end", help="now (default), unix seconds, RFC 3339, or a duration ago.")
    ] = "now",
    step: Annotated[
        float | None, typer.Option("--step", help="Seconds between points; default: about 60 points.")
    ] = None,
    output: ShowOutput = ShowFormat.text,
) -> None:
    """Evaluate a PromQL expression from --start to --end every --step seconds."""
    now = time.time()
    start_t, end_t = parse_when(start, now, "--start"), parse_when(end, now, "--end")
    if end_t < start_t:
        raise typer.BadParameter("--end is before --start", param_hint="--end")
    if step is not None and (not math.isfinite(step) or step <= 0):
        raise typer.BadParameter("must be a positive number of seconds", param_hint="--step")
    resolution = step if step is not None else max(1.0, round((end_t - start_t) / 60))
    data = connect(ctx).metrics_query_range(query, start_t, end_t, resolution)
    print_object(data, output, lambda: _print_range(data))


def _latest(series: dict[str, Any]) -> str:
    points = [v for _, v in series.get("points", []) if v is not None]
    if not points:
        return "-"
    value = float(points[-1])
    unit = series.get("unit", "")
    if unit == "bytes":
        return f"{value / (1 << 20):.1f} MiB"
    if unit == "seconds":
        return f"{value * 1000:.1f} ms"
    if unit == "ratio":
        return f"{value * 100:.2f} %"
    return f"{value:.3g} {unit}"


@observe_app.command("app")
def app_command(
    ctx: typer.Context,
    address: AppArg,
    window: Annotated[str, typer.Option("--window", help="15m, 1h (default), 6h, 24h or 7d.")] = "1h",
    end: Annotated[
        str, typer.Option("--end", help="now (default), unix seconds, RFC 3339, or 15m ago.")
    ] = "now",
    output: ShowOutput = ShowFormat.text,
) -> None:
    """An app's chart series (request rate, error rate, latency p50/p99, CPU, memory): the latest values,
    or every point with -o json."""
    end_t = parse_when(end, time.time(), "--end")
    data = connect(ctx, not_found=app_hint(address)).app_metrics(
        address.project, address.env, address.app, window, end_t
    )
    print_object(data, output, lambda: _print_charts(data))


def _print_charts(data: dict[str, Any]) -> None:
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, header_style="bold")
    table.add_column("SERIES")
    table.add_column("LATEST", justify="right")
    table.add_column("POINTS", justify="right")
    for series in data.get("series", []):
        table.add_row(
            escape(str(series.get("title"))), escape(_latest(series)), str(len(series.get("points", [])))
        )
    out_console().print(table)
