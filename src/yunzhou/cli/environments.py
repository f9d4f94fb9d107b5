"""``yunzhou env …``: environments of a project."""

from __future__ import annotations

from typing import Annotated

import typer

from yunzhou.cli.common import (
    EnvArg,
    ListFormat,
    ListOutput,
    ProjectArg,
    ShowFormat,
    ShowOutput,
    connect,
    env_hint,
    print_fields,
    print_list,
    print_object,
    project_hint,
    say,
    short_time,
)
from yunzhou.cli.projects import VersionOption
from yunzhou.domain.names import EnvAddress

env_app = typer.Typer(help="Create, inspect and delete environments (PROJECT/ENV).", no_args_is_help=True)
RequireSigned = Annotated[
    bool,
    typer.Option("--require-signed-images", help="Release only images signed with the platform key."),
]
Egress = Annotated[bool, typer.Option("--egress/--no-egress", help="Instances may reach the outside.")]


@env_app.command("create")
def create(
    ctx: typer.Context,
    address: EnvArg,
    target: Annotated[
        str,
        typer.Option("--target", help="Where its apps run: local, or cluster:NAME (a registered cluster)."),
    ] = "local",
    namespace: Annotated[
        str | None, typer.Option("--namespace", help="Kubernetes namespace (cluster targets).")
    ] = None,
    require_signed: RequireSigned = False,
    egress: Egress = True,
) -> None:
    """Create an environment bound to a target."""
    env = connect(ctx, not_found=project_hint(address.project)).create_environment(
        address.project, address.env, target, namespace, require_signed_images=require_signed, egress=egress
    )
    say(f"Created environment {address} (target {env.get('target', target)}{_policies(env)})")


@env_app.command("set")
def set_(
    ctx: typer.Context,
    address: EnvArg,
    require_signed: Annotated[
        bool | None,
        typer.Option(
            "--require-signed-images/--allow-unsigned-images",
            help="Release only images signed with the platform key (checked at each later release).",
        ),
    ] = None,
    egress: Annotated[
        bool | None,
        typer.Option(
            "--egress/--no-egress", help="Instances may reach the outside (from their next rollout)."
        ),
    ] = None,
    version: VersionOption = None,
) -> None:
    """Change an environment's policies."""
    if require_signed is None and egress is None:
        raise typer.BadParameter(
            "give --require-signed-images/--allow-unsigned-images or --egress/--no-egress"
        )
    policies = {
        k: v for k, v in (("require_signed_images", require_signed), ("egress", egress)) if v is not None
    }
    env = connect(ctx, not_found=env_hint(address)).update_environment(
        address.project, address.env, version, **policies
    )
    say(f"Environment {address}:{_policies(env) or ' unsigned images allowed, egress on'}")


def _policies(env: dict[str, object]) -> str:
    said = []
    if env.get("require_signed_images"):
        said.append("signed images only")
    if env.get("egress") is False:
        said.append("no egress")
    return "; " + ", ".join(said) if said else ""


@env_app.command("list")
def list_(ctx: typer.Context, project: ProjectArg, output: ListOutput = ListFormat.table) -> None:
    """Environments of a project."""
    items = connect(ctx, not_found=project_hint(project)).list_environments(project)
    columns = [
        ("NAME", lambda e: e.get("name")),
        ("TARGET", lambda e: e.get("target")),
        ("NAMESPACE", lambda e: e.get("namespace")),
        ("CREATED", lambda e: short_time(e.get("created_at"))),
        ("VERSION", lambda e: e.get("version")),
    ]
    empty = f"Project {project} has no environments: `yunzhou env create {project}/dev` makes one."
    print_list(items, output, columns, empty=empty)


@env_app.command("show")
def show(ctx: typer.Context, address: EnvArg, output: ShowOutput = ShowFormat.text) -> None:
    """One environment."""
    env = connect(ctx, not_found=env_hint(address)).get_environment(address.project, address.env)
    print_object(env, output, lambda: _print_env(address, env))


def _print_env(address: EnvAddress, env: dict[str, object]) -> None:
    print_fields(
        [
            ("Environment", str(address)),
            ("Target", env.get("target")),
            ("Namespace", env.get("namespace")),
            ("Signed images only", "yes" if env.get("require_signed_images") else "no"),
            ("Egress", "off" if env.get("egress") is False else "on"),
            ("Created", short_time(env.get("created_at"))),
            ("Version", env.get("version")),
        ]
    )


@env_app.command("delete")
def delete(ctx: typer.Context, address: EnvArg, version: VersionOption = None) -> None:
    """Delete an environment (only when it has no apps)."""
    connect(ctx, not_found=env_hint(address)).delete_environment(address.project, address.env, version)
    say(f"Deleted environment {address}")
