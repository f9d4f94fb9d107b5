"""``yunzhou stacks …``: the base images the platform builds from Debian packages (docs/images.md#stacks)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

from yunzhou.cli.common import (
    CommandFailed,
    ListFormat,
    ListOutput,
    connect,
    err_console,
    note,
    print_list,
    say,
)

stacks_app = typer.Typer(
    help="Base images built from Debian packages: list, build, export and import them.", no_args_is_help=True
)
Json = dict[str, Any]
POLL_INTERVAL = 1.0


def _size(value: object) -> str:
    return f"{int(value) / 1e6:.0f} MB" if isinstance(value, int) else "-"


def _state(stack: Json) -> str:
    build = stack.get("build") or {}
    if build.get("state") in ("queued", "building"):
        return f"{build['state']} ({(build.get('fraction') or 0):.0%})"
    if build.get("state") == "failed":
        return f"{stack.get('state')}; last build failed"
    return str(stack.get("state"))


@stacks_app.command("list")
def list_stacks(ctx: typer.Context, output: ListOutput = ListFormat.table) -> None:
    """The stacks, their images on this server (digest and size) and the Debian packages in each."""
    items = connect(ctx).list_stacks()
    columns = [
        ("NAME", lambda s: s.get("name")),
        ("VERSION", lambda s: s.get("version")),
        ("STATE", _state),
        ("DIGEST", lambda s: (s.get("digest") or "not built")[:19]),
        ("SIZE", lambda s: _size(s.get("size"))),
        ("PACKAGES", lambda s: " ".join(s.get("packages") or [])),
    ]
    print_list(items, output, columns, empty="No stacks.")


@stacks_app.command("build")
def build(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="python, node, java, tomcat or static.")],
    wait: Annotated[bool, typer.Option("--wait", help="Show the build's progress until it is done.")] = False,
    timeout: Annotated[
        float | None, typer.Option("--timeout", min=1, help="With --wait: give up after this many seconds.")
    ] = None,
) -> None:
    """Build a stack on the server (mmdebstrap from the server's apt sources; admins). A stack that is
    built and current is reused from the cache in seconds."""
    client = connect(ctx)
    stack = client.build_stack(name)
    if not wait:
        say(f"Build of stack {name} queued: `yunzhou stacks list` shows how far it is")
        return
    console = err_console()
    progress = Progress(
        TextColumn("[bold]{task.fields[stack]}"),
        BarColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.description}"),
        console=console,
        disable=not console.is_terminal,
    )
    task = progress.add_task("queued", total=1.0, stack=name)
    last_step = ""

    def show(current: Json) -> None:
        nonlocal last_step
        build = current.get("build") or {}
        step = str(build.get("step") or build.get("state") or "")
        progress.update(task, completed=float(build.get("fraction") or 0.0), description=step)
        if not console.is_terminal and step != last_step:
            note(f"{name}: {step} ({float(build.get('fraction') or 0.0):.0%})")
        last_step = step

    with progress:
        stack = client.wait_for_stack_build(name, timeout=timeout, interval=POLL_INTERVAL, on_progress=show)
    build_status = stack.get("build") or {}
    if build_status.get("state") == "built":
        say(f"Built {stack.get('image')} {stack.get('digest')} ({_size(stack.get('size'))})")
        return
    if build_status.get("state") == "failed":
        raise CommandFailed(f"the build of stack {name} failed: {build_status.get('message')}")
    raise CommandFailed(
        f"stack {name} is still {build_status.get('state')} after {timeout:g}s; it goes on on the server",
        hint="`yunzhou stacks list` shows how far it is",
    )


@stacks_app.command("export")
def export(
    ctx: typer.Context,
    names: Annotated[list[str], typer.Argument(help="Stacks to export, e.g. python static.")],
    file: Annotated[Path, typer.Option("--file", "-f", help="The archive to write (an OCI layout tar).")],
) -> None:
    """Write built stacks to a file, for `yunzhou stacks import` on a machine without a package mirror."""
    size = connect(ctx).export_stacks(names, file)
    say(f"Wrote {', '.join(names)} to {file} ({_size(size)})")


@stacks_app.command("import")
def import_(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="An archive written by `yunzhou stacks export`.")],
) -> None:
    """Register exported stacks on this server (every blob checked against its digest; admins)."""
    if not file.is_file():
        raise CommandFailed(f"{file}: no such file (write one with `yunzhou stacks export NAME -f FILE`)")
    images = connect(ctx).import_stacks(file).get("images") or {}
    for tag, digest in sorted(images.items()):
        say(f"Imported {tag} {digest}")
