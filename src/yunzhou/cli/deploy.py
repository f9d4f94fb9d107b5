"""``yunzhou deploy`` and ``yunzhou settings …``: new releases from a Score file or settings changes."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from yunzhou.cli.builds import follow_build
from yunzhou.cli.common import (
    PANEL_APPS,
    AppArg,
    EnvArg,
    ShowFormat,
    ShowOutput,
    app_hint,
    connect,
    dump_yaml,
    env_hint,
    note,
    print_object,
    say,
    warn,
)
from yunzhou.cli.documents import (
    Assignment,
    apply_overrides,
    default_settings_path,
    load_yaml_file,
    nested,
    parse_assignment,
    select_environment,
)
from yunzhou.cli.progress import TimeoutOption, WaitOption, follow_rollout
from yunzhou.cli.source import IncludeOption, left_out_line
from yunzhou.client import YunzhouClient, pack_source
from yunzhou.domain.errors import UserError
from yunzhou.domain.names import AppAddress, EnvAddress

Json = dict[str, Any]
settings_app = typer.Typer(help="Show or change an app's platform settings.", no_args_is_help=True)


def _assignments(ctx: typer.Context, values: list[str], option: str) -> list[Assignment]:
    try:
        return [parse_assignment(value) for value in values]
    except UserError as exc:
        raise typer.BadParameter(str(exc), ctx=ctx, param_hint=option) from None


def release_line(address: object, deployment: Json) -> str:
    """``shop/dev/orders as release 3``."""
    app = deployment.get("app") or {}
    release = deployment.get("release") or {}
    return f"{app.get('address') or address} as release {release.get('number', '?')}"


def deploy(
    ctx: typer.Context,
    address: EnvArg,
    score_file: Annotated[
        Path,
        typer.Option("--file", "-f", exists=True, dir_okay=False, help="The app's Score file (score.yaml)."),
    ],
    settings_file: Annotated[
        Path | None,
        typer.Option(
            "--settings",
            exists=True,
            dir_okay=False,
            help="Platform settings; default: yunzhou.yaml beside -f.",
        ),
    ] = None,
    env_name: Annotated[
        str | None,
        typer.Option("--env-name", help="Use this environments.<NAME> block of the settings file."),
    ] = None,
    source: Annotated[
        Path | None,
        typer.Option(
            "--source",
            exists=True,
            file_okay=False,
            help="Upload this directory, build it into an image (its log is shown) and release the image "
            "pinned to its digest; a failed build makes no release.",
        ),
    ] = None,
    stack: Annotated[
        str | None,
        typer.Option(
            "--stack",
            help="With --source: build with this stack (python, node, java, tomcat, static); default: "
            "detected from the source or the Score annotation yunzhou.io/stack.",
        ),
    ] = None,
    no_build: Annotated[
        bool,
        typer.Option(
            "--no-build",
            help="With --source: release the uploaded directory without building an image (it runs only "
            "with YUNZHOU_INSTANCE_MODE=process, see docs/local-runtime.md).",
        ),
    ] = False,
    overrides: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            metavar="KEY=VALUE",
            help="Override a setting, dotted keys: rollout.maxSurge=2 (repeatable).",
        ),
    ] = None,
    strategy: Annotated[
        str | None,
        typer.Option(
            "--strategy",
            help="rolling, canary (steps from rollout.steps, default 10% then 50%, each with a 1 m "
            "error-rate analysis) or blue-green (new release at 0% beside the old one, then switched at "
            "once; previewHost and analysis from the settings); see docs/traffic.md.",
        ),
    ] = None,
    allow_no_traffic: Annotated[
        bool,
        typer.Option(
            "--allow-no-traffic",
            help="Canary/blue-green: promote a step whose analysis saw no request (rollout.allowNoTraffic); "
            "without it such a step waits for traffic up to the progress deadline.",
        ),
    ] = False,
    include: IncludeOption = None,
    wait: WaitOption = False,
    timeout: TimeoutOption = None,
) -> None:
    """Deploy a Score file to PROJECT/ENV as a new release."""
    assignments = _assignments(ctx, overrides or [], "--set")
    score = load_yaml_file(score_file, "Score file")
    settings_path = settings_file or default_settings_path(score_file)
    settings: Json | None = None
    if settings_path is not None:
        settings = load_yaml_file(settings_path, "settings file", required=False)
        if env_name is not None and env_name != address.env:
            settings = select_environment(settings, address.env, env_name)
    elif env_name is not None:
        raise UserError(f"--env-name {env_name} needs a settings file (--settings or yunzhou.yaml beside -f)")
    if assignments:
        settings = apply_overrides(settings or {}, assignments, address.env)
    if strategy is not None:
        settings = _with_strategy(settings, strategy)
    if allow_no_traffic:
        settings = {
            **(settings or {}),
            "rollout": {**((settings or {}).get("rollout") or {}), "allowNoTraffic": True},
        }
    if (stack is not None or no_build) and source is None:
        raise UserError(f"{'--stack' if stack is not None else '--no-build'} goes with --source DIR")
    if stack is not None and no_build:
        raise UserError("--stack builds an image; --no-build builds none: choose one")
    client = connect(ctx, not_found=env_hint(address))
    artifact: str | None = None
    if source is not None:
        deploy_files = [path for path in (score_file, settings_path) if path is not None]
        archive = pack_source(source, leave_out=deploy_files, include=include or ())
        artifact = client.upload_source(archive)
        note(f"Uploaded {source} as {artifact}")
        if (left_out := left_out_line(archive.left_out)) is not None:
            note(left_out)
    if artifact is not None and not no_build:
        deployment = build_and_release(client, address, artifact, score, settings, stack)
    else:
        deployment = client.deploy(address.project, address.env, score, settings, artifact)
    say(f"Deployed {release_line(address, deployment)}")
    for warning in deployment.get("warnings") or []:  # it will not start: said now, not after a rollout
        message = str(warning.get("message"))
        # it runs, but: its tag may move (docs/images.md, pinning), it keeps the image of an earlier build,
        # or it runs as a host process (a development server)
        if message.startswith(("not pinned:", "'.' is the image built", "this release has no image")):
            note(f"{warning.get('path')}: {message}")
        else:
            warn(f"this release will not start: {warning.get('path')}: {message}")
    app_name = (deployment.get("app") or {}).get("name")
    if wait and app_name:
        follow_rollout(
            client, AppAddress(address.project, address.env, app_name), deployment.get("rollout"), timeout
        )


def build_and_release(
    client: YunzhouClient,
    address: EnvAddress,
    artifact: str,
    score: Json,
    settings: Json | None,
    stack: str | None,
) -> Json:
    """Start a build that deploys on success, follow it, and return the deployment it made (app, release,
    rollout) as ``client.deploy`` would."""
    build = client.start_build(
        address.project, address.env, artifact, score=score, settings=settings, stack=stack
    )
    note(
        f"Building {build.get('address')} (build {build['id']}, stack {build.get('stack')}); "
        "Ctrl-C stops following, not the build"
    )
    final = follow_build(client, build)
    app, number = str(final["app"]), int(final["release"])
    note(f"Built {final.get('image')}" + (" (dependencies reused)" if final.get("deps_cached") else ""))
    rollouts = client.list_rollouts(address.project, address.env, app)
    return {
        "app": client.get_app(address.project, address.env, app),
        "release": client.get_release(address.project, address.env, app, number),
        "rollout": next((r for r in rollouts if r.get("to_release") == number), None),
    }


STRATEGIES = ("rolling", "canary", "blue-green")
DEFAULT_CANARY_STEPS = [
    {"weight": 10, "analysis": {"window": "1m", "maxErrorRate": 0.01}},
    {"weight": 50, "analysis": {"window": "1m", "maxErrorRate": 0.01}},
]


def _with_strategy(settings: Json | None, strategy: str) -> Json:
    """Settings with ``rollout.strategy`` set (canary gets default steps unless the settings have some).

    Keys only one strategy takes are dropped for the others (steps: canary; analysis: blue-green), so a
    settings file written for one strategy can be deployed with another.
    """
    if strategy not in STRATEGIES:
        raise UserError(f"--strategy: {strategy!r} is not supported; allowed: {', '.join(STRATEGIES)}")
    doc = dict(settings or {})
    rollout = dict(doc.get("rollout") or {})
    rollout["strategy"] = strategy
    if strategy == "canary":
        rollout.setdefault("steps", DEFAULT_CANARY_STEPS)
    else:
        rollout.pop("steps", None)
    if strategy != "blue-green":
        rollout.pop("analysis", None)
    if strategy == "rolling":
        rollout.pop("previewHost", None)
    doc["rollout"] = rollout
    return doc


@settings_app.command("show")
def show(ctx: typer.Context, address: AppArg, output: ShowOutput = ShowFormat.text) -> None:
    """The app's current platform settings."""
    result = connect(ctx, not_found=app_hint(address)).get_settings(address.project, address.env, address.app)

    def render() -> None:
        typer.echo(f"# settings of {address}, version {result.get('version')}")
        typer.echo(dump_yaml(result.get("settings") or {}), nl=False)

    print_object(result, output, render)


@settings_app.command("set")
def set_(
    ctx: typer.Context,
    address: AppArg,
    assignments: Annotated[
        list[str], typer.Argument(metavar="KEY=VALUE...", help="e.g. replicas=3 rollout.maxSurge=2")
    ],
    version: Annotated[
        int | None, typer.Option("--version", help="Only if the settings version is this one (else 409).")
    ] = None,
    wait: WaitOption = False,
    timeout: TimeoutOption = None,
) -> None:
    """Change settings (a partial update); makes a new release."""
    partial = nested(_assignments(ctx, assignments, "KEY=VALUE"))
    client = connect(ctx, not_found=app_hint(address))
    deployment = client.update_settings(address.project, address.env, address.app, partial, version)
    say(f"Updated settings of {release_line(address, deployment)}")
    if wait:
        follow_rollout(client, address, deployment.get("rollout"), timeout)


def register(app: typer.Typer) -> None:
    app.command("deploy", no_args_is_help=True, rich_help_panel=PANEL_APPS)(deploy)
    app.add_typer(settings_app, name="settings", rich_help_panel=PANEL_APPS)
