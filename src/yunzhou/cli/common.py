"""What every command group shares: the client, address arguments, output formats, error rendering."""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Annotated, Any

import httpx
import typer
import yaml
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from yunzhou.client import ApiError, ClientConfig, ClientError, YunzhouClient, admin_token_path, load_config
from yunzhou.domain.errors import YunzhouError
from yunzhou.domain.names import AppAddress, EnvAddress, label_problem, parse_app_address, parse_env_address

Json = dict[str, Any]

# Sections of `yunzhou --help`.
PANEL_SETUP = "Projects and environments"
PANEL_APPS = "Apps"
PANEL_ACCESS = "Access and audit"
PANEL_SERVER = "Run a server"


class CommandFailed(Exception):
    """An expected failure of a command that is not an API error (e.g. a failed rollout): exit 1."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


@dataclass
class CliState:
    """Per-invocation state, kept in the root context's ``obj``. Tests pass their own (with a transport)."""

    config: ClientConfig | None = None
    transport: httpx.BaseTransport | None = None
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    not_found_hint: str | None = None
    _client: YunzhouClient | None = field(default=None, repr=False)

    def get_config(self) -> ClientConfig:
        if self.config is None:
            self.config = load_config()
        return self.config

    def client(self) -> YunzhouClient:
        if self._client is None:
            self._client = YunzhouClient.from_config(
                self.get_config(), transport=self.transport, sleep=self.sleep, clock=self.clock
            )
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


def state_of(ctx: typer.Context) -> CliState:
    root = ctx.find_root()
    if not isinstance(root.obj, CliState):
        root.obj = CliState()
    return root.obj


def connect(ctx: typer.Context, not_found: str | None = None) -> YunzhouClient:
    """The client for this invocation; ``not_found`` is the hint shown if the API answers 404."""
    state = state_of(ctx)
    state.not_found_hint = not_found
    return state.client()


# -- consoles and output ---------------------------------------------------------------------------


def out_console() -> Console:
    console = Console(highlight=False)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        # Piped output: never wrap table cells at an imagined 80 columns; let lines be as long as needed.
        console.width = 1000
    return console


def err_console() -> Console:
    return Console(stderr=True, highlight=False, soft_wrap=True)


def say(message: str) -> None:
    """A result line on stdout (plain text, never wrapped)."""
    typer.echo(message)


def note(message: str) -> None:
    """Progress or side information on stderr, so that stdout stays what the command produces."""
    err_console().print(escape(message), style="dim")


def warn(message: str) -> None:
    """Something the user must act on, on stderr (the command itself went through)."""
    err_console().print(f"Warning: {escape(message)}", style="bold yellow")


class ListFormat(StrEnum):
    table = "table"
    json = "json"
    yaml = "yaml"


class ShowFormat(StrEnum):
    text = "text"
    json = "json"
    yaml = "yaml"


ListOutput = Annotated[
    ListFormat,
    typer.Option("--output", "-o", help="table (default), or json/yaml: the raw list of items."),
]
ShowOutput = Annotated[
    ShowFormat,
    typer.Option("--output", "-o", help="text (default), or json/yaml: the raw API object."),
]


def print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, ensure_ascii=False))


def print_yaml(data: Any) -> None:
    typer.echo(dump_yaml(data), nl=False)


def dump_yaml(data: Any) -> str:
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, default_flow_style=False)


Column = tuple[str, Callable[[Json], object]]


def print_list(
    items: list[Json], output: ListFormat, columns: Sequence[Column], empty: str = "Nothing to show."
) -> None:
    """Items as a table, or exactly the raw JSON/YAML list and nothing else on stdout."""
    if output is ListFormat.json:
        print_json(items)
        return
    if output is ListFormat.yaml:
        print_yaml(items)
        return
    if not items:
        note(empty)
        return
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, header_style="bold")
    for title, _ in columns:
        table.add_column(title)
    for item in items:
        table.add_row(*(escape(text(getter(item))) for _, getter in columns))
    out_console().print(table)


def print_object(data: Any, output: ShowFormat, render_text: Callable[[], None]) -> None:
    if output is ShowFormat.json:
        print_json(data)
    elif output is ShowFormat.yaml:
        print_yaml(data)
    else:
        render_text()


def print_fields(rows: Iterable[tuple[str, object]]) -> None:
    table = Table(box=None, show_header=False, pad_edge=False)
    table.add_column(style="bold")
    table.add_column()
    for key, value in rows:
        table.add_row(escape(key), escape(text(value)))
    out_console().print(table)


def text(value: object) -> str:
    """A cell: '-' for nothing, lists joined, times shortened."""
    if value is None or value == "" or value == []:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ", ".join(text(item) for item in value)
    return str(value)


_RFC3339 = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.\d+)?(Z|[+-]\d\d:\d\d)?$")


def short_time(value: object) -> str:
    """``2024-05-01T10:22:33.123456Z`` → ``2024-05-01T10:22:33Z`` (to the second, one word)."""
    match = _RFC3339.match(value) if isinstance(value, str) else None
    if match is None:
        return text(value)
    offset = match.group(2) or ""
    return match.group(1) + ("Z" if offset in ("Z", "+00:00") else offset)


# -- addresses -------------------------------------------------------------------------------------


def _address_message(exc: YunzhouError) -> str:
    """The domain error without repeating a single problem its message already states."""
    if len(exc.problems) == 1 and exc.problems[0].message in exc.message:
        return exc.message
    return str(exc)


def _parse_env(value: str) -> EnvAddress:
    try:
        return parse_env_address(value)
    except YunzhouError as exc:
        raise typer.BadParameter(_address_message(exc)) from None


def _parse_app(value: str) -> AppAddress:
    try:
        return parse_app_address(value)
    except YunzhouError as exc:
        raise typer.BadParameter(_address_message(exc)) from None


def _parse_name(value: str) -> str:
    problem = label_problem(value)
    if problem is not None:
        raise typer.BadParameter(f"project name {problem}")
    return value


EnvArg = Annotated[
    EnvAddress,
    typer.Argument(parser=_parse_env, metavar="PROJECT/ENV", help="e.g. shop/dev", show_default=False),
]
AppArg = Annotated[
    AppAddress,
    typer.Argument(
        parser=_parse_app, metavar="PROJECT/ENV/APP", help="e.g. shop/dev/orders", show_default=False
    ),
]
ProjectArg = Annotated[
    str, typer.Argument(parser=_parse_name, metavar="PROJECT", help="project name, e.g. shop")
]


def project_hint(project: str) -> str:
    return f"`yunzhou project list` shows the projects you can see (is '{project}' spelled right?)"


def env_hint(address: EnvAddress) -> str:
    return (
        f"`yunzhou env list {address.project}` shows its environments; `yunzhou project list` your projects"
    )


def app_hint(address: AppAddress) -> str:
    return f"`yunzhou apps {address.env_address}` shows its apps; `yunzhou project list` your projects"


# -- errors ----------------------------------------------------------------------------------------


def _auth_hint(config: ClientConfig | None) -> str:
    base = "set YUNZHOU_TOKEN or run on the server machine"
    if config is None:
        return base
    if config.auth_source == "YUNZHOU_TOKEN":
        return f"the token in YUNZHOU_TOKEN was refused (unknown, revoked or expired); {base}"
    if config.auth_source:
        return (
            f"the admin token from {config.auth_source} was refused; "
            f"is YUNZHOU_URL ({config.url}) the server that wrote it? Otherwise {base}"
        )
    return (
        f"{base} (no token: YUNZHOU_TOKEN is unset, no server started on this machine listens at "
        f"{config.url}, and {admin_token_path(config.data_dir)} does not exist)"
    )


def _hint_for(error: ApiError, state: CliState | None) -> str | None:
    if error.code == "unauthenticated" or error.status == 401:
        return _auth_hint(state.config if state else None)
    if error.code == "forbidden" or error.status == 403:
        return "`yunzhou whoami` shows your token's scopes and project roles"
    if error.code == "not_found" or error.status == 404:
        return state.not_found_hint if state else None
    if error.code == "temporary" or error.status == 503:
        wait = f" in {error.retry_after:g}s" if error.retry_after else ""
        return f"the server is busy; retry{wait}"
    return None


def render_error(exc: BaseException, state: CliState | None) -> None:
    """One readable message on stderr: what went wrong, each field problem, and a hint when obvious."""
    console = err_console()
    hint: str | None = None
    if isinstance(exc, ApiError):
        console.print(f"[bold red]Error:[/] {escape(exc.message)}")
        for problem in exc.problems:
            console.print(f"  - {escape(str(problem))}")
        hint = _hint_for(exc, state)
    elif isinstance(exc, YunzhouError):
        console.print(f"[bold red]Error:[/] {escape(str(exc))}")
    elif isinstance(exc, CommandFailed):
        console.print(f"[bold red]Error:[/] {escape(exc.message)}")
        hint = exc.hint
    else:
        console.print(f"[bold red]Error:[/] {escape(str(exc))}")
    if hint:
        console.print(f"[yellow]Hint:[/] {escape(hint)}")
    if isinstance(exc, ApiError) and exc.status:
        request = f", request {exc.request_id}" if exc.request_id else ""
        console.print(f"[dim](HTTP {exc.status} {escape(exc.code)}{escape(request)})[/]")


EXPECTED_ERRORS = (ClientError, YunzhouError, CommandFailed)
