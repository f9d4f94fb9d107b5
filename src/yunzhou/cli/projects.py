"""``yunzhou project …``: projects and their members."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer

from yunzhou.cli.common import (
    ListFormat,
    ListOutput,
    ProjectArg,
    ShowFormat,
    ShowOutput,
    connect,
    print_fields,
    print_list,
    print_object,
    project_hint,
    say,
    short_time,
)

project_app = typer.Typer(
    help="Create, inspect and delete projects; manage their members.", no_args_is_help=True
)


class Role(StrEnum):
    owner = "owner"
    maintainer = "maintainer"
    developer = "developer"
    viewer = "viewer"


VersionOption = Annotated[
    int | None, typer.Option("--version", help="Only if the stored version is this one (else 409).")
]


@project_app.command("create")
def create(
    ctx: typer.Context,
    name: ProjectArg,
    display_name: Annotated[str | None, typer.Option("--display-name", help="Human-friendly name.")] = None,
) -> None:
    """Create a project; you become its owner."""
    project = connect(ctx).create_project(name, display_name)
    say(f"Created project {project.get('name', name)}")


@project_app.command("list")
def list_(ctx: typer.Context, output: ListOutput = ListFormat.table) -> None:
    """Projects you are a member of (admins: all)."""
    items = connect(ctx).list_projects()
    columns = [
        ("NAME", lambda p: p.get("name")),
        ("DISPLAY NAME", lambda p: p.get("display_name")),
        ("CREATED", lambda p: short_time(p.get("created_at"))),
        ("VERSION", lambda p: p.get("version")),
    ]
    print_list(items, output, columns, empty="No projects yet: `yunzhou project create NAME` makes one.")


@project_app.command("show")
def show(ctx: typer.Context, name: ProjectArg, output: ShowOutput = ShowFormat.text) -> None:
    """One project."""
    project = connect(ctx, not_found=project_hint(name)).get_project(name)
    print_object(
        project,
        output,
        lambda: print_fields(
            [
                ("Name", project.get("name")),
                ("Display name", project.get("display_name")),
                ("Created", short_time(project.get("created_at"))),
                ("Version", project.get("version")),
            ]
        ),
    )


@project_app.command("delete")
def delete(ctx: typer.Context, name: ProjectArg, version: VersionOption = None) -> None:
    """Delete a project (only when it has no environments)."""
    connect(ctx, not_found=project_hint(name)).delete_project(name, version)
    say(f"Deleted project {name}")


@project_app.command("members")
def members(ctx: typer.Context, name: ProjectArg, output: ListOutput = ListFormat.table) -> None:
    """Members of a project and their roles."""
    items = connect(ctx, not_found=project_hint(name)).list_members(name)
    columns = [("PRINCIPAL", lambda m: m.get("principal")), ("ROLE", lambda m: m.get("role"))]
    print_list(items, output, columns, empty=f"Project {name} has no members.")


@project_app.command("add-member")
def add_member(
    ctx: typer.Context,
    name: ProjectArg,
    principal: Annotated[str, typer.Argument(help="Who, e.g. alice.")],
    role: Annotated[Role, typer.Option("--role", help="owner, maintainer, developer or viewer.")],
) -> None:
    """Add a member to a project, or change a member's role."""
    member = connect(ctx, not_found=project_hint(name)).set_member(name, principal, role.value)
    say(f"{member.get('principal', principal)} is now {member.get('role', role.value)} of project {name}")


@project_app.command("remove-member")
def remove_member(
    ctx: typer.Context, name: ProjectArg, principal: Annotated[str, typer.Argument(help="Who.")]
) -> None:
    """Remove a member from a project."""
    hint = f"`yunzhou project members {name}` lists its members"
    connect(ctx, not_found=hint).remove_member(name, principal)
    say(f"Removed {principal} from project {name}")
