"""The web console: server-rendered pages (Jinja2 + htmx) served by the API process at ``/``.

It reaches the server only through ``yunzhou.client`` — HTTP to its own API with the signed-in user's
token — so the API's authorization applies to every page and every button.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from yunzhou.web.context import ConsoleState
from yunzhou.web.session import SessionBox

__all__ = ["ConsoleState", "SessionBox", "mount_console", "static_dir"]


def static_dir() -> Path:
    return Path(str(resources.files("yunzhou.web").joinpath("static")))


def mount_console(app: FastAPI, box: SessionBox | None = None) -> ConsoleState:
    """Add the console's pages and static assets to the API app; returns its state (``app.state.console``)."""
    from yunzhou.web import (
        app_pages,
        autoscaling_pages,
        build_pages,
        config_pages,
        deploy,
        manage_pages,
        metrics_pages,
        names_pages,
        pages,
        traffic_pages,
    )

    state = ConsoleState(box)
    app.state.console = state
    modules = (
        pages,
        deploy,
        app_pages,
        build_pages,
        config_pages,
        manage_pages,
        metrics_pages,
        autoscaling_pages,
        traffic_pages,
        names_pages,
    )
    for module in modules:
        app.include_router(module.router)
    app.mount("/static", StaticFiles(directory=static_dir(), check_dir=False), name="console-static")
    return state
