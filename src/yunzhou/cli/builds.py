"""``yunzhou builds P/E/A``, ``yunzhou build show|logs|cancel ID``, and following a build for
``deploy --source``: its log as it is written, a progress line, and the outcome. Ctrl-C stops following,
never the build (``yunzhou build cancel ID`` does that)."""

from __future__ import annotations

import time
from typing import Annotated, Any

import typer
from rich.markup import escape

from yunzhou.cli.common import (
    PANEL_APPS,
    AppArg,
    CommandFailed,
    ListFormat,
    ListOutput,
    ShowFormat,
    ShowOutput,
    app_hint,
    connect,
    err_console,
    print_fields,
    print_list,
    print_object,
    say,
    short_time,
)
from yunzhou.client import YunzhouClient

Json = dict[str, Any]
PROGRESS_POLL_S = 2.0
build_app = typer.Typer(help="Show, follow or cancel one build.", no_args_is_help=True)
BuildIdArg = Annotated[str, typer.Argument(metavar="ID", help="The build's id (`yunzhou builds P/E/A`).")]


def progress_text(build: Json) -> str:
    """``running: dependencies (40%)``."""
    progress = build.get("progress") or {}
    step, fraction = progress.get("step") or "", progress.get("fraction") or 0.0
    detail = f": {step} ({fraction:.0%})" if step else ""
    return f"build {build.get('id')} {build.get('state')}{detail}"


def follow_build(client: YunzhouClient, build: Json) -> Json:
    """Print the build's log (stderr) until it ends; the finished build. A failed or cancelled build is
    a CommandFailed (exit 1) with its error; Ctrl-C stops following (exit 130) and says how to cancel."""
    build_id = str(build["id"])
    console = err_console()
    status = console.status(escape(progress_text(build))) if console.is_terminal else None
    if status is not None:
        status.start()
    polled = time.monotonic()
    try:
        for chunk in client.follow_build_log(build_id):
            if chunk.get("done"):
                break
            for line in str(chunk.get("text") or "").splitlines():
                console.print(escape(line), style="dim", highlight=False)
            if status is not None and time.monotonic() - polled >= PROGRESS_POLL_S:
                polled = time.monotonic()
                status.update(escape(progress_text(client.get_build(build_id))))
    except KeyboardInterrupt:
        if status is not None:
            status.stop()
            status = None
        console.print(
            f"Stopped following; build {build_id} goes on on the server. `yunzhou build logs {build_id} -f` "
            f"follows it again, `yunzhou build cancel {build_id}` stops it."
        )
        raise typer.Exit(130) from None
    finally:
        if status is not None:
            status.stop()
    final = client.get_build(build_id)
    if final.get("state") != "succeeded":
        raise CommandFailed(
            f"build {build_id} {final.get('state')}: {final.get('error') or 'no reason given'}",
            hint=f"`yunzhou build logs {build_id}` shows its whole log; the running release is unchanged",
        )
    return final


def builds(ctx: typer.Context, address: AppArg, output: ListOutput = ListFormat.table) -> None:
    """Builds of an app, newest first."""
    items = connect(ctx, not_found=app_hint(address)).list_builds(address.project, address.env, address.app)
    columns = [
        ("ID", lambda b: b.get("id")),
        ("STATE", lambda b: b.get("state")),
        ("STACK", lambda b: b.get("stack")),
        ("CREATED", lambda b: short_time(b.get("created_at"))),
        ("BY", lambda b: b.get("created_by")),
        ("RELEASE", lambda b: b.get("release")),
        (
            "IMAGE / ERROR",
            lambda b: b.get("image") or b.get("error") or (b.get("progress") or {}).get("step"),
        ),
    ]
    print_list(items, output, columns, empty=f"{address} has no builds.")


@build_app.command("show")
def show(ctx: typer.Context, build_id: BuildIdArg, output: ShowOutput = ShowFormat.text) -> None:
    """One build: state, progress, stack, image and the release it made."""
    build = connect(ctx).get_build(build_id)

    def render() -> None:
        progress = build.get("progress") or {}
        print_fields(
            [
                ("Build", build.get("id")),
                ("App", build.get("address")),
                ("State", build.get("state")),
                ("Progress", f"{progress.get('step')} ({(progress.get('fraction') or 0):.0%})"),
                ("Stack", build.get("stack")),
                ("Image", build.get("image")),
                ("Dependencies", _deps(build.get("deps_cached"))),
                ("Release", build.get("release")),
                ("Error", build.get("error")),
                ("Created", f"{short_time(build.get('created_at'))} by {build.get('created_by')}"),
                ("Finished", short_time(build.get("finished_at"))),
            ]
        )

    print_object(build, output, render)


def _deps(cached: object) -> str | None:
    return "cached (reused layer)" if cached is True else "installed" if cached is False else None


@build_app.command("logs")
def logs(
    ctx: typer.Context,
    build_id: BuildIdArg,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing as the build writes, until it ends.")
    ] = False,
) -> None:
    """A build's log (the tool's own output; a failure's error is its last line)."""
    client = connect(ctx)
    if follow:
        final = client.get_build(build_id)
        try:
            for chunk in client.follow_build_log(build_id):
                if chunk.get("done"):
                    final = chunk
                    break
                typer.echo(str(chunk.get("text") or ""), nl=False)
        except KeyboardInterrupt:
            raise typer.Exit(130) from None
        if final.get("state") not in ("succeeded", "queued", "running"):
            raise typer.Exit(1)
        return
    offset = 0
    while True:
        page = client.build_log(build_id, offset)
        typer.echo(str(page.get("text") or ""), nl=False)
        if page["next_offset"] == offset:
            return
        offset = int(page["next_offset"])


@build_app.command("cancel")
def cancel(ctx: typer.Context, build_id: BuildIdArg) -> None:
    """Cancel a build: a queued one at once, a running one within seconds. It makes no release."""
    build = connect(ctx).cancel_build(build_id)
    if build.get("state") == "running":
        say(f"Cancelling build {build_id}; `yunzhou build show {build_id}` shows when it stopped")
    else:
        say(f"Build {build_id} is {build.get('state')}")


def register(app: typer.Typer) -> None:
    app.command("builds", no_args_is_help=True, rich_help_panel=PANEL_APPS)(builds)
    app.add_typer(build_app, name="build", rich_help_panel=PANEL_APPS)
