"""``yunzhou server`` and ``yunzhou up``: run the control plane on this machine (blocks until stopped)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from yunzhou.cli.common import PANEL_SERVER, CommandFailed
from yunzhou.client import default_data_dir

DataDirOption = Annotated[
    Path | None,
    typer.Option("--data-dir", envvar="YUNZHOU_DATA_DIR", file_okay=False, help="Default: .yunzhou here."),
]
ApiHostOption = Annotated[
    str, typer.Option("--api-host", envvar="YUNZHOU_API_HOST", help="Address the API and console listen on.")
]
ApiPortOption = Annotated[
    int, typer.Option("--api-port", envvar="YUNZHOU_API_PORT", min=1, max=65535, help="API and console port.")
]
RouterPortOption = Annotated[
    int, typer.Option("--router-port", envvar="YUNZHOU_ROUTER_PORT", min=1, max=65535, help="Router port.")
]


def _data_dir(value: Path | None) -> Path:
    return (value if value is not None else default_data_dir({})).resolve()


def _cannot_start(exc: ImportError) -> CommandFailed:
    hint = "is yunzhou installed with all its dependencies?"
    return CommandFailed(f"cannot start the server: {exc}", hint=hint)


def server(
    data_dir: DataDirOption = None,
    api_host: ApiHostOption = "127.0.0.1",
    api_port: ApiPortOption = 7070,
    router_port: RouterPortOption = 8080,
    runtime: Annotated[
        bool, typer.Option("--runtime/--no-runtime", help="Also run the reconcilers and the local target.")
    ] = True,
    tls_listen: Annotated[
        str | None,
        typer.Option(
            "--tls-listen",
            metavar="HOST:PORT",
            help="The router's HTTPS listener (YUNZHOU_TLS_LISTEN), e.g. 127.0.0.1:8443; default: no HTTPS.",
        ),
    ] = None,
) -> None:
    """Run the control plane: API + console, reconcilers and the local router."""
    try:
        from yunzhou.server import run_server
    except ImportError as exc:
        raise _cannot_start(exc) from None
    run_server(
        data_dir=_data_dir(data_dir),
        api_host=api_host,
        api_port=api_port,
        router_port=router_port,
        runtime=runtime,
        tls_listen=tls_listen,
    )


def worker(data_dir: DataDirOption = None, router_port: RouterPortOption = 8080) -> None:
    """Run the reconcilers and the local target without the API (beside `yunzhou server --no-runtime`)."""
    from yunzhou.server import run_worker

    run_worker(data_dir=_data_dir(data_dir), router_port=router_port)


def up(
    data_dir: DataDirOption = None,
    api_host: ApiHostOption = "127.0.0.1",
    api_port: ApiPortOption = 7070,
    router_port: RouterPortOption = 8080,
) -> None:
    """Run the control plane and seed a demo (shop/dev with the example apps): the quickest start."""
    try:
        from yunzhou.server import run_up
    except ImportError as exc:
        raise _cannot_start(exc) from None
    run_up(data_dir=_data_dir(data_dir), api_host=api_host, api_port=api_port, router_port=router_port)


def register(app: typer.Typer) -> None:
    app.command("server", rich_help_panel=PANEL_SERVER)(server)
    app.command("up", rich_help_panel=PANEL_SERVER)(up)
    app.command("worker", rich_help_panel=PANEL_SERVER)(worker)
