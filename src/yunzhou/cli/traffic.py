"""``yunzhou traffic …``: check a settings file's traffic policy locally, show an app's policy."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from yunzhou.cli.common import AppArg, app_hint, connect, dump_yaml, say
from yunzhou.cli.documents import load_yaml_file
from yunzhou.domain.settings import parse_settings

traffic_app = typer.Typer(
    help="Traffic policy: routes, retries, timeouts, rate limits, who may call whom (docs/traffic.md).",
    no_args_is_help=True,
)


@traffic_app.command("check")
def check(
    settings_file: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, help="A settings file (yunzhou.yaml).")
    ] = Path("yunzhou.yaml"),
    env: Annotated[str | None, typer.Option("--env", help="Check with environments.<ENV> applied.")] = None,
) -> None:
    """Validate the traffic policy and rollout of a settings file without a server; print it as applied."""
    settings = parse_settings(load_yaml_file(settings_file, "settings file", required=False), env)
    doc = settings.to_dict()
    say(f"{settings_file}: valid")
    typer.echo(dump_yaml({"rollout": doc["rollout"], "traffic": doc.get("traffic", {})}), nl=False)


@traffic_app.command("show")
def show(ctx: typer.Context, address: AppArg) -> None:
    """The traffic policy and rollout strategy of an app's current settings."""
    result = connect(ctx, not_found=app_hint(address)).get_settings(address.project, address.env, address.app)
    settings: dict[str, Any] = result.get("settings") or {}
    typer.echo(
        dump_yaml({"rollout": settings.get("rollout", {}), "traffic": settings.get("traffic", {})}), nl=False
    )


rollout_app = typer.Typer(help="Steer a canary or blue-green rollout in progress.", no_args_is_help=True)


@rollout_app.command("promote")
def promote(ctx: typer.Context, address: AppArg) -> None:
    """Skip the remaining canary steps (blue-green: switch now); the new release takes all traffic."""
    _command(ctx, address, "promote")


@rollout_app.command("abort")
def abort(ctx: typer.Context, address: AppArg) -> None:
    """Send all traffic back to the stable release and mark the rollout failed."""
    _command(ctx, address, "abort")


def _command(ctx: typer.Context, address: Any, command: str) -> None:
    client = connect(ctx, not_found=app_hint(address))
    rollout = client.rollout_command(address.project, address.env, address.app, command)
    say(
        f"Asked rollout {rollout.get('id')} of {address} to {command}; "
        f"follow it with `yunzhou rollouts {address}`"
    )
