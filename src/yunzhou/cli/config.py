"""``yunzhou config``: plain config variables of an environment (PROJECT/ENV) or one app (PROJECT/ENV/APP).

``yunzhou config ADDRESS`` shows them; ``set`` and ``unset`` change them (each change that reaches an
app's effective config makes a new release of that app).
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from yunzhou.cli.common import (
    ShowFormat,
    ShowOutput,
    connect,
    env_hint,
    print_fields,
    print_object,
    say,
)
from yunzhou.domain.errors import YunzhouError
from yunzhou.domain.names import EnvAddress, label_problem, parse_env_address

Json = dict[str, Any]


class ConfigAddress:
    """``PROJECT/ENV`` or ``PROJECT/ENV/APP``."""

    def __init__(self, env: EnvAddress, app: str | None) -> None:
        self.env = env
        self.app = app

    @property
    def project(self) -> str:
        return self.env.project

    def __str__(self) -> str:
        return f"{self.env}/{self.app}" if self.app else str(self.env)


def parse_config_address(value: str) -> ConfigAddress:
    parts = value.split("/")
    app = parts[2] if len(parts) == 3 else None
    try:
        env = parse_env_address("/".join(parts[:2])) if len(parts) in (2, 3) else None
    except YunzhouError as exc:
        raise typer.BadParameter(str(exc)) from None
    if env is None:
        raise typer.BadParameter(f"{value!r} is not PROJECT/ENV or PROJECT/ENV/APP (e.g. shop/dev/orders)")
    if app is not None and (problem := label_problem(app)) is not None:
        raise typer.BadParameter(f"app name {problem}")
    return ConfigAddress(env, app)


AddressArg = Annotated[
    ConfigAddress,
    typer.Argument(
        parser=parse_config_address,
        metavar="PROJECT/ENV[/APP]",
        help="An environment (shop/dev) or one app in it (shop/dev/orders; app level wins).",
        show_default=False,
    ),
]


def releases_note(releases: Json | None) -> str:
    if not releases:
        return "no app uses what changed: no new release"
    return "new release: " + ", ".join(f"{app} {number}" for app, number in sorted(releases.items()))


class ShowByDefault(TyperGroup):
    """``yunzhou config shop/dev`` is ``yunzhou config show shop/dev``: a first argument that is not a
    subcommand (nor an option) goes to ``show``."""

    def parse_args(self, ctx: typer.Context, args: list[str]) -> list[str]:  # type: ignore[override]
        if args and not args[0].startswith("-") and args[0] not in self.commands:
            args = ["show", *args]
        return super().parse_args(ctx, args)


config_app = typer.Typer(
    cls=ShowByDefault,
    help="Config variables of an environment or app: `config shop/dev`, `config set`, `config unset`.",
    no_args_is_help=True,
)


@config_app.command("show")
def show(ctx: typer.Context, address: AddressArg, output: ShowOutput = ShowFormat.text) -> None:
    """Show the variables (at app level also those inherited from the environment)."""
    client = connect(ctx, not_found=env_hint(address.env))
    data = client.get_config(address.project, address.env.env, address.app)

    def render() -> None:
        rows: list[tuple[str, object]] = [(k, v) for k, v in data.get("vars", {}).items()]
        rows += [(f"{k} (from {address.env})", v) for k, v in (data.get("inherited") or {}).items()]
        if not rows:
            say(f"# {address} has no config variables: `yunzhou config set {address} KEY=VALUE`")
            return
        print_fields(rows)

    print_object(data, output, render)


def _pairs(items: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"{item!r} is not KEY=VALUE", param_hint="KEY=VALUE")
        out[key] = value
    return out


@config_app.command("set")
def set_(
    ctx: typer.Context,
    address: AddressArg,
    pairs: Annotated[list[str], typer.Argument(metavar="KEY=VALUE...", help="Variables to set.")],
    version: Annotated[
        int | None, typer.Option("--version", help="Only if the config is at this version.")
    ] = None,
) -> None:
    """Set variables (plain values; use `yunzhou secret set` for secrets)."""
    values = _pairs(pairs)
    client = connect(ctx, not_found=env_hint(address.env))
    result = client.update_config(address.project, address.env.env, address.app, set=values, version=version)
    say(f"Set {', '.join(values)} in {address} (config version {result.get('version')}); "
        f"{releases_note(result.get('releases'))}")  # fmt: skip


@config_app.command("unset")
def unset(
    ctx: typer.Context,
    address: AddressArg,
    keys: Annotated[list[str], typer.Argument(metavar="KEY...", help="Variables to remove.")],
    version: Annotated[
        int | None, typer.Option("--version", help="Only if the config is at this version.")
    ] = None,
) -> None:
    """Remove variables (refused while a deployed app still uses one)."""
    client = connect(ctx, not_found=env_hint(address.env))
    result = client.update_config(address.project, address.env.env, address.app, unset=keys, version=version)
    say(f"Unset {', '.join(keys)} in {address} (config version {result.get('version')}); "
        f"{releases_note(result.get('releases'))}")  # fmt: skip
