"""``yunzhou logs``: an app's captured output and router access records, searched or followed."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from enum import StrEnum
from typing import Annotated, Any

import typer
from rich.text import Text

from yunzhou.cli.common import PANEL_APPS, AppArg, app_hint, connect, note, out_console

Json = dict[str, Any]
_TIME = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d{1,3})?\d*(Z|[+-]\d\d:\d\d)$")
_STREAM_STYLE = {"stdout": "green", "stderr": "red", "access": "magenta"}


class LogOutput(StrEnum):
    text = "text"
    json = "json"


class Stream(StrEnum):
    stdout = "stdout"
    stderr = "stderr"
    access = "access"


def logs(
    ctx: typer.Context,
    address: AppArg,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new lines as they arrive, until Ctrl-C.")
    ] = False,
    grep: Annotated[
        str | None,
        typer.Option("--grep", metavar="TEXT", help="Only lines containing TEXT (literal, any case)."),
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(
            "--since",
            metavar="WHEN",
            help="Only lines since a duration ago (90s, 10m, 2h, 1d) or a time (RFC 3339).",
        ),
    ] = None,
    until: Annotated[
        str | None,
        typer.Option(
            "--until", metavar="WHEN", help="Only lines before a duration ago or a time (RFC 3339)."
        ),
    ] = None,
    where: Annotated[
        list[str] | None,
        typer.Option(
            "--where",
            "-w",
            metavar="KEY OP VALUE",
            help="Only JSON lines whose field matches: level=error, user_id=42, status>=500 "
            "(OP: = != > >= < <=). Repeat it for several (all must hold).",
        ),
    ] = None,
    instance: Annotated[
        str | None, typer.Option("--instance", metavar="ID", help="Only this instance.")
    ] = None,
    stream: Annotated[Stream | None, typer.Option("--stream", help="Only stdout, stderr or access.")] = None,
    limit: Annotated[
        int, typer.Option("--limit", "-n", min=1, max=10_000, help="How many of the newest lines to show.")
    ] = 100,
    output: Annotated[
        LogOutput,
        typer.Option(
            "--output", "-o", help="text (default), or json: one JSON object per line (JSON lines)."
        ),
    ] = LogOutput.text,
    interval: Annotated[
        float, typer.Option("--interval", min=0.1, help="Seconds between polls with -f.")
    ] = 1.0,
    export: Annotated[
        bool,
        typer.Option(
            "--export",
            help="Every matching line, oldest first, as JSON lines (not limited by -n): "
            "yunzhou logs APP --export > app.jsonl, for shipping to a collector.",
        ),
    ] = False,
) -> None:
    """An app's logs: time, instance, stream and line; its router access records on stream 'access'."""
    if export and follow:
        raise typer.BadParameter("--export and --follow do not go together", param_hint="--export")
    client = connect(ctx, not_found=app_hint(address))
    filters: Json = {
        "grep": grep,
        "instance": instance,
        "stream": stream.value if stream else None,
        "where": list(where) if where else None,
    }
    if export:
        for record in client.export_logs(
            address.project, address.env, address.app, since=since, until=until, **filters
        ):
            _print_json(record)
        return
    show = _print_json if output is LogOutput.json else _printer()
    if not follow:
        page = client.get_logs(
            address.project, address.env, address.app, since=since, until=until, limit=limit, **filters
        )
        for record in page["items"]:
            show(record)
        if not page["items"]:
            note(f"No log lines for {address}{' match' if any(filters.values()) or since or until else ''}.")
        return
    records = client.follow_logs(
        address.project, address.env, address.app, since=since, limit=limit, interval=interval, **filters
    )
    try:
        for record in records:
            show(record)
    except KeyboardInterrupt:  # the way to stop following: a normal end
        raise typer.Exit(0) from None


def _print_json(record: Json) -> None:
    typer.echo(json.dumps(record, ensure_ascii=False))


def _printer() -> Callable[[Json], None]:
    console = out_console()

    def show(record: Json) -> None:
        stream = str(record.get("stream") or "-")
        text = Text.assemble(
            (_short_time(record.get("time")), "dim"),
            " ",
            (str(record.get("instance") or "-"), "cyan"),
            " ",
            (stream, _STREAM_STYLE.get(stream, "")),
            " ",
            str(record.get("line", "")),
        )
        console.print(text, soft_wrap=True)

    return show


def _short_time(value: object) -> str:
    """``2024-05-01T10:22:33.123456Z`` → ``2024-05-01T10:22:33.123Z`` (milliseconds are enough to read)."""
    match = _TIME.match(value) if isinstance(value, str) else None
    if match is None:
        return str(value or "-")
    return match.group(1) + (match.group(2) or ".000").ljust(4, "0") + match.group(3)


def register(app: typer.Typer) -> None:
    app.command("logs", no_args_is_help=True, rich_help_panel=PANEL_APPS)(logs)
