"""App commands: ``apps``, ``status``, ``scale``, ``releases``, ``release show``, ``rollback``, ``rollouts``,
``remove``."""

from __future__ import annotations

from typing import Annotated, Any

import typer
import yaml
from rich.markup import escape
from rich.table import Table

from yunzhou.cli.common import (
    PANEL_APPS,
    AppArg,
    EnvArg,
    ListFormat,
    ListOutput,
    ShowFormat,
    ShowOutput,
    app_hint,
    connect,
    dump_yaml,
    env_hint,
    out_console,
    print_fields,
    print_list,
    print_object,
    say,
    short_time,
    text,
)
from yunzhou.cli.deploy import release_line
from yunzhou.cli.progress import (
    TimeoutOption,
    WaitOption,
    describe,
    diagnosis_lines,
    follow_rollout,
    strategy_text,
)

Json = dict[str, Any]
release_app = typer.Typer(help="Inspect one release.", no_args_is_help=True)


def _release_number(app: Json) -> str:
    current, desired = app.get("current_release"), app.get("desired_release")
    if current == desired or desired is None:
        return text(current)
    return f"{text(current)} → {desired}"


def apps(ctx: typer.Context, address: EnvArg, output: ListOutput = ListFormat.table) -> None:
    """Apps in an environment."""
    items = connect(ctx, not_found=env_hint(address)).list_apps(address.project, address.env)
    columns = [
        ("NAME", lambda a: a.get("name")),
        ("STATUS", lambda a: a.get("status")),
        ("RELEASE", _release_number),
        ("READY", lambda a: f"{text(a.get('ready_replicas'))}/{text(a.get('replicas'))}"),
        ("ROUTE", lambda a: a.get("route")),
    ]
    empty = f"No apps in {address}: `yunzhou deploy {address} -f score.yaml` deploys one."
    print_list(items, output, columns, empty=empty)


def status(ctx: typer.Context, address: AppArg, output: ShowOutput = ShowFormat.text) -> None:
    """An app's status: release, replicas, route, rollout, conditions and why it does not serve."""
    app = connect(ctx, not_found=app_hint(address)).get_app(address.project, address.env, address.app)
    print_object(app, output, lambda: _print_status(app))


def _print_status(app: Json) -> None:
    rollout = app.get("rollout")
    print_fields(
        [
            ("App", app.get("address")),
            ("Status", app.get("status")),
            ("Release", _release_number(app)),
            ("Replicas", f"{text(app.get('ready_replicas'))}/{text(app.get('replicas'))} ready"),
            ("Route", app.get("route")),
            ("Rollout", describe(rollout) if rollout else None),
        ]
    )
    conditions = app.get("conditions") or []
    if conditions:
        table = Table(title="Conditions", title_justify="left", box=None, header_style="bold", pad_edge=False)
        for column in ("TYPE", "STATUS", "REASON", "MESSAGE", "SINCE"):
            table.add_column(column)
        for condition in conditions:
            cells = (
                condition.get("type"),
                condition.get("status"),
                condition.get("reason"),
                condition.get("message"),
                short_time(condition.get("last_transition")),
            )
            table.add_row(*(escape(text(cell)) for cell in cells))
        out_console().print()
        out_console().print(table)
    why = diagnosis_lines(app.get("diagnosis"))
    if why:
        out_console().print()
        out_console().print("[bold]Why it does not serve[/]")
        for line in why:
            out_console().print(escape(f"  {line}"), soft_wrap=True)


def scale(
    ctx: typer.Context,
    address: AppArg,
    replicas: Annotated[int, typer.Argument(min=0, help="How many instances.")],
    version: Annotated[
        int | None, typer.Option("--version", help="Only if the app's version is this one (else 409).")
    ] = None,
    wait: WaitOption = False,
    timeout: TimeoutOption = None,
) -> None:
    """Set the number of instances of an app."""
    client = connect(ctx, not_found=app_hint(address))
    app = client.scale(address.project, address.env, address.app, replicas, version)
    count = app.get("replicas", replicas)
    say(f"Scaled {address} to {count} replica{'' if count == 1 else 's'}")
    if wait:
        follow_rollout(client, address, app.get("rollout"), timeout)


def releases(ctx: typer.Context, address: AppArg, output: ListOutput = ListFormat.table) -> None:
    """Releases of an app, newest first."""
    items = connect(ctx, not_found=app_hint(address)).list_releases(address.project, address.env, address.app)
    columns = [
        ("RELEASE", lambda r: r.get("number")),
        ("CREATED", lambda r: short_time(r.get("created_at"))),
        ("BY", lambda r: r.get("created_by")),
        ("CAUSE", lambda r: r.get("cause")),
        ("IMAGE/ARTIFACT", lambda r: r.get("image") or _short_digest(r.get("artifact"))),
        ("CHANGES", lambda r: "; ".join(str(change) for change in r.get("changes") or []) or None),
    ]
    print_list(items, output, columns, empty=f"{address} has no releases.")


def _short_digest(value: object) -> object:
    if isinstance(value, str) and value.startswith("sha256:") and len(value) > 19:
        return value[:19] + "…"
    return value


@release_app.command("show")
def release_show(
    ctx: typer.Context,
    address: AppArg,
    number: Annotated[int, typer.Argument(min=1, help="Release number.")],
    output: ShowOutput = ShowFormat.text,
) -> None:
    """One release: its Score, settings and config (secrets by version, never values), as YAML."""
    hint = f"`yunzhou releases {address}` lists its releases"
    release = connect(ctx, not_found=hint).get_release(address.project, address.env, address.app, number)

    def render() -> None:
        header = [
            f"# release {release.get('number', number)} of {address}",
            f"# created {short_time(release.get('created_at'))} by {text(release.get('created_by'))}"
            f" ({text(release.get('cause'))})",
        ]
        if release.get("image") or release.get("artifact"):
            header.append(f"# image/artifact: {release.get('image') or release.get('artifact')}")
        header.extend(f"# change: {change}" for change in release.get("changes") or [])
        typer.echo("\n".join(header))
        doc = {"score": release.get("score"), "settings": release.get("settings")}
        if release.get("config"):  # variables' values; secrets as scope + version only
            doc["config"] = release.get("config")
        typer.echo(dump_yaml(doc), nl=False)

    print_object(release, output, render)


def rollback(
    ctx: typer.Context,
    address: AppArg,
    to: Annotated[
        int | None,
        typer.Option("--to", min=1, help="Release to restore (default: the one before the current)."),
    ] = None,
    wait: WaitOption = False,
    timeout: TimeoutOption = None,
) -> None:
    """Restore an earlier release (as a new release that copies it)."""
    client = connect(ctx, not_found=app_hint(address))
    deployment = client.rollback(address.project, address.env, address.app, to)
    say(f"Rolled back {release_line(address, deployment)}")
    if wait:
        follow_rollout(client, address, deployment.get("rollout"), timeout)


def rollouts(ctx: typer.Context, address: AppArg, output: ListOutput = ListFormat.table) -> None:
    """Rollouts of an app, newest first."""
    items = connect(ctx, not_found=app_hint(address)).list_rollouts(address.project, address.env, address.app)
    columns = [
        ("ID", lambda r: r.get("id")),
        ("KIND", lambda r: r.get("kind")),
        ("RELEASE", lambda r: f"{text(r.get('from_release'))} → {text(r.get('to_release'))}"),
        ("STRATEGY", lambda r: strategy_text(r.get("strategy"))),
        ("STATE", lambda r: r.get("state")),
        ("UPDATED", lambda r: short_time(r.get("updated_at"))),
        ("MESSAGE", lambda r: r.get("message")),
    ]
    print_list(items, output, columns, empty=f"{address} has no rollouts.")


def dump_yaml_all(objects: list[Any]) -> str:
    return yaml.safe_dump_all(objects, sort_keys=False, allow_unicode=True, default_flow_style=False)


def _mib(value: object) -> str | None:
    return f"{int(value) / 1048576:.1f} MiB" if isinstance(value, int | float) else None


def instances(ctx: typer.Context, address: AppArg, output: ListOutput = ListFormat.table) -> None:
    """Running copies of an app: pid, port, state, readiness, restarts, CPU and memory."""
    items = connect(ctx, not_found=app_hint(address)).list_instances(
        address.project, address.env, address.app
    )
    columns = [
        ("ID", lambda r: r.get("id")),
        ("RELEASE", lambda r: r.get("release")),
        ("PID", lambda r: r.get("pid")),
        ("PORT", lambda r: r.get("port")),
        ("STATE", lambda r: r.get("state")),
        ("READY", lambda r: "yes" if r.get("ready") else "no"),
        ("RESTARTS", lambda r: r.get("restarts")),
        ("CPU", lambda r: f"{r.get('cpu_seconds', 0):.2f}s"),
        ("MEMORY", lambda r: _mib(r.get("memory_bytes"))),
        ("LAST EXIT", lambda r: r.get("last_exit")),
        ("REASON", lambda r: r.get("reason") or None),
    ]
    print_list(items, output, columns, empty=f"{address} has no instances.")


def render(
    ctx: typer.Context,
    address: AppArg,
    release: Annotated[
        int | None, typer.Option("--release", help="Release number (default: desired).")
    ] = None,
    show_secrets: Annotated[
        bool, typer.Option("--show-secrets", help="Admins only, audited: include secret values.")
    ] = False,
) -> None:
    """Print what the target would be given for a release, as YAML (for review or GitOps)."""
    objects = connect(ctx, not_found=app_hint(address)).render(
        address.project, address.env, address.app, release, show_secrets=show_secrets
    )
    out_console().print(dump_yaml_all(objects), markup=False, highlight=False, end="")


def remove(ctx: typer.Context, address: AppArg) -> None:
    """Remove an app from its environment (its instances are stopped and its route dropped)."""
    connect(ctx, not_found=app_hint(address)).remove_app(address.project, address.env, address.app)
    say(f"Removing {address}: `yunzhou apps {address.env_address}` shows when it is gone")


def register(app: typer.Typer) -> None:
    app.command("apps", no_args_is_help=True, rich_help_panel=PANEL_APPS)(apps)
    app.command("status", no_args_is_help=True, rich_help_panel=PANEL_APPS)(status)
    app.command("scale", no_args_is_help=True, rich_help_panel=PANEL_APPS)(scale)
    app.command("releases", no_args_is_help=True, rich_help_panel=PANEL_APPS)(releases)
    app.add_typer(release_app, name="release", rich_help_panel=PANEL_APPS)
    app.command("rollback", no_args_is_help=True, rich_help_panel=PANEL_APPS)(rollback)
    app.command("rollouts", no_args_is_help=True, rich_help_panel=PANEL_APPS)(rollouts)
    app.command("remove", no_args_is_help=True, rich_help_panel=PANEL_APPS)(remove)
    app.command("instances", no_args_is_help=True, rich_help_panel=PANEL_APPS)(instances)
    app.command("render", no_args_is_help=True, rich_help_panel=PANEL_APPS)(render)
