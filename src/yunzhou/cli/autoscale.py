"""``yunzhou autoscale``: replay a demand trace through an autoscaling policy in simulated time.

Runs locally (no server): the same policy code the control plane runs, driven by a simulated clock.
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import replace
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
import yaml

from yunzhou.cli.common import (
    AppArg,
    CommandFailed,
    ListFormat,
    ListOutput,
    ShowFormat,
    ShowOutput,
    app_hint,
    connect,
    print_fields,
    print_list,
    print_object,
    short_time,
)
from yunzhou.domain.autoscale import AutoscalingPolicy
from yunzhou.domain.autoscale.simulate import builtin_policy, builtin_run_options, parse_trace_csv, simulate
from yunzhou.domain.errors import FieldProblem, UserError, YunzhouError
from yunzhou.domain.names import parse_app_address
from yunzhou.domain.settings import parse_settings

autoscale_app = typer.Typer(
    help="Autoscaling: the autoscaler's decisions, and policy simulation over a demand trace.",
    no_args_is_help=True,
)


class PolicyName(StrEnum):
    hpa = "hpa"
    hpa_fast = "hpa-fast"
    hpa_5s = "hpa-5s"
    predictive = "predictive"
    predictive_hw = "predictive-hw"
    settings = "settings"


def _settings_policy(path: Path, env: str | None) -> AutoscalingPolicy:
    try:
        doc = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise typer.BadParameter(f"cannot read {path}: {exc}", param_hint="--settings") from None
    policy = parse_settings(doc, env).autoscaling
    if policy is None:
        raise UserError(
            "no autoscaling policy", problems=[FieldProblem("settings.autoscaling", f"missing in {path}")]
        )
    rps = [m for m in policy.metrics if m.kind == "rps"]
    if not rps:
        raise UserError(
            "the trace is request demand",
            problems=[FieldProblem("settings.autoscaling.metrics", "needs an rps metric to replay a trace")],
        )
    # The trace is the request rate: the policy's other metrics have no data in a simulation.
    return replace(policy, metrics=(rps[0],))


_SINCE_RE = re.compile(r"^(\d+)([smhd])$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _recorded_demand(ctx: typer.Context, address_text: str, since: str) -> tuple[float, np.ndarray]:
    """The app's request rate over ``since`` from the server's metrics (needs a platform-admin token:
    raw PromQL sees every project), held per second between samples."""
    try:
        address = parse_app_address(address_text)
    except YunzhouError as exc:
        raise typer.BadParameter(exc.message, param_hint="--app") from None
    m = _SINCE_RE.match(since)
    if not m or int(m.group(1)) == 0:
        raise typer.BadParameter("a duration like 30m, 6h or 7d", param_hint="--since")
    span = int(m.group(1)) * _UNIT[m.group(2)]
    step = max(10, math.ceil(span / 10_000))  # Prometheus answers at most 11,000 points a series
    end = time.time()
    sel = f'project="{address.project}",env="{address.env}",app="{address.app}"'
    data = connect(ctx, not_found=app_hint(address)).metrics_query_range(
        f"sum(rate(yunzhou_router_requests_total{{{sel}}}[1m]))", end - span, end, step
    )
    values = [(float(t), float(v)) for series in data.get("result", []) for t, v in series.get("values", [])]
    if not values:
        raise CommandFailed(f"no request metrics for {address} in the last {since}")
    values.sort()
    t0 = values[0][0]
    demand = np.zeros(int(values[-1][0] - t0) + step)
    for t, v in values:
        demand[int(t - t0) : int(t - t0) + step] = v
    return t0, demand


@autoscale_app.command("simulate")
def simulate_command(
    ctx: typer.Context,
    trace: Annotated[
        Path | None,
        typer.Option("--trace", metavar="FILE.csv", help="timestamp,demand rows (unix seconds or ISO 8601)."),
    ] = None,
    app_address: Annotated[
        str | None,
        typer.Option(
            "--app",
            metavar="PROJECT/ENV/APP",
            help="Replay the app's recorded request rate instead of a file.",
        ),
    ] = None,
    since: Annotated[str, typer.Option("--since", help="With --app: how far back, e.g. 6h, 7d.")] = "1d",
    policy: Annotated[PolicyName, typer.Option("--policy", help="A built-in policy, or 'settings'.")] = (
        PolicyName.hpa
    ),
    capacity: Annotated[
        float,
        typer.Option("--capacity-per-instance", min=0.001, help="Requests/s one ready instance serves."),
    ] = 10.0,
    startup: Annotated[
        int, typer.Option("--startup-seconds", min=0, help="From start to ready, per instance.")
    ] = 30,
    target: Annotated[
        float | None,
        typer.Option("--target", min=0.001, help="rps per instance to aim for (default 0.8 × capacity)."),
    ] = None,
    min_replicas: Annotated[int, typer.Option("--min-replicas", min=0)] = 1,
    max_replicas: Annotated[int | None, typer.Option("--max-replicas", min=1)] = None,
    settings_file: Annotated[
        Path | None,
        typer.Option(
            "--settings", metavar="yunzhou.yaml", help="With --policy settings: the app's settings."
        ),
    ] = None,
    env: Annotated[str | None, typer.Option("--env", help="Apply environments.<env> of --settings.")] = None,
    warmup: Annotated[
        int, typer.Option("--warmup-seconds", min=0, help="Simulate but do not score the first seconds.")
    ] = 0,
    timeline_every: Annotated[
        int, typer.Option("--timeline-every", min=0, help="Keep every n-th 15 s cycle in the timeline.")
    ] = 1,
    output: ShowOutput = ShowFormat.text,
) -> None:
    """Replay a demand trace (a CSV, or an app's recorded request rate) through a policy; prints
    instance-seconds, under-provisioned seconds, scaling actions and the timeline (with -o json)."""
    if (trace is None) == (app_address is None):
        raise typer.BadParameter("give --trace FILE.csv or --app PROJECT/ENV/APP", param_hint="--trace")
    if trace is not None:
        try:
            start, demand = parse_trace_csv(trace.read_text())
        except OSError as exc:
            raise typer.BadParameter(f"cannot read {trace}: {exc.strerror}", param_hint="--trace") from None
    else:
        start, demand = _recorded_demand(ctx, str(app_address), since)
    aim = target if target is not None else 0.8 * capacity
    if policy is PolicyName.settings:
        if settings_file is None:
            raise typer.BadParameter(
                "--policy settings needs --settings yunzhou.yaml", param_hint="--settings"
            )
        chosen = _settings_policy(settings_file, env)
        run_options: dict[str, Any] = {}
    else:
        ceiling = max_replicas or max(min_replicas, 2 * math.ceil(float(demand.max()) / aim), 1)
        chosen = builtin_policy(
            policy.value, target=aim, max_replicas=ceiling, startup_seconds=startup, min_replicas=min_replicas
        )
        run_options = builtin_run_options(policy.value)  # sampled as bench/autoscale.py runs it
    result = simulate(
        demand,
        chosen,
        capacity=capacity,
        startup_seconds=startup,
        start_time=start,
        score_from=warmup,
        timeline_every=timeline_every,
        **run_options,
    )
    data = result.to_dict(timeline=True)
    data["policy"] = chosen.to_dict()

    def render_text() -> None:
        print_fields(
            [
                ("seconds", result.seconds),
                ("instance-seconds", f"{result.instance_seconds:.0f}"),
                ("under-provisioned seconds", result.underprovisioned_seconds),
                ("scaling actions", result.actions),
                ("modes", ", ".join(f"{k}: {v}" for k, v in result.modes.items())),
            ]
        )

    print_object(data, output, render_text)


@autoscale_app.command("decisions")
def decisions_command(
    ctx: typer.Context,
    address: AppArg,
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000)] = 50,
    output: ListOutput = ListFormat.table,
) -> None:
    """The autoscaler's recorded decisions for an app, newest first."""
    items = connect(ctx, not_found=app_hint(address)).autoscale_decisions(
        address.project, address.env, address.app, limit
    )
    columns = [
        ("TIME", lambda d: short_time(d.get("time"))),
        ("CURRENT", lambda d: d.get("current")),
        ("DESIRED", lambda d: d.get("desired")),
        ("APPLIED", lambda d: "yes" if d.get("applied") else "no"),
        ("MODE", lambda d: d.get("mode")),
        ("REASON", lambda d: d.get("reason")),
    ]
    print_list(items, output, columns, empty=f"{address} has no autoscaling decisions yet.")


scale_hook_app = typer.Typer(
    help="Secret URLs that scale an app when POSTed to (for CI, alerting tools, chat-ops).",
    no_args_is_help=True,
)


class HookAction(StrEnum):
    up = "up"
    down = "down"
    set = "set"


@scale_hook_app.command("create")
def hook_create(
    ctx: typer.Context,
    address: AppArg,
    action: Annotated[HookAction, typer.Option("--action", help="up/down by --step, or set to --replicas.")],
    step: Annotated[int, typer.Option("--step", min=1, max=100)] = 1,
    replicas: Annotated[int | None, typer.Option("--replicas", min=0, help="For --action set.")] = None,
    min_interval: Annotated[
        int, typer.Option("--min-interval", min=1, max=3600, help="Seconds between two accepted calls.")
    ] = 10,
    output: ShowOutput = ShowFormat.text,
) -> None:
    """Create a hook; prints its secret URL once (POST to it, no token needed; revoke to disable)."""
    client = connect(ctx, not_found=app_hint(address))
    hook = client.create_scale_hook(
        address.project, address.env, address.app, action.value, step=step, replicas=replicas,
        min_interval_seconds=min_interval,
    )  # fmt: skip
    hook["url"] = client.url + hook["path"]
    print_object(hook, output, lambda: typer.echo(f"{hook['url']}\n(hook {hook['id']}: keep the URL secret)"))


@scale_hook_app.command("list")
def hook_list(ctx: typer.Context, address: AppArg, output: ListOutput = ListFormat.table) -> None:
    """An app's scale hooks (never their URLs)."""
    items = connect(ctx, not_found=app_hint(address)).list_scale_hooks(
        address.project, address.env, address.app
    )
    columns = [
        ("ID", lambda h: h.get("id")),
        ("ACTION", lambda h: h.get("action") if h.get("action") != "set" else f"set {h.get('replicas')}"),
        ("STEP", lambda h: h.get("step")),
        ("CREATED", lambda h: short_time(h.get("created_at"))),
        ("BY", lambda h: h.get("created_by")),
        ("LAST USED", lambda h: short_time(h.get("last_used_at"))),
        ("REVOKED", lambda h: "yes" if h.get("revoked") else "no"),
    ]
    print_list(items, output, columns, empty=f"{address} has no scale hooks.")


@scale_hook_app.command("revoke")
def hook_revoke(
    ctx: typer.Context, address: AppArg, hook_id: Annotated[str, typer.Argument(metavar="HOOK_ID")]
) -> None:
    """Revoke a hook: its URL is refused from now on."""
    connect(ctx, not_found=app_hint(address)).revoke_scale_hook(
        address.project, address.env, address.app, hook_id
    )
    typer.echo(f"revoked scale hook {hook_id} of {address}")
