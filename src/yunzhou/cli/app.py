"""The root ``yunzhou`` command: wires the command groups and turns expected errors into exit codes."""

from __future__ import annotations

from typing import Any

import typer
from typer.core import TyperGroup

from yunzhou.cli import admin, apps, builds, deploy, images, logs, server
from yunzhou.cli.alerts import alerts_app
from yunzhou.cli.autoscale import autoscale_app, scale_hook_app
from yunzhou.cli.clusters import cluster_app
from yunzhou.cli.common import (
    EXPECTED_ERRORS,
    PANEL_APPS,
    PANEL_SETUP,
    CliState,
    render_error,
    state_of,
)
from yunzhou.cli.config import config_app
from yunzhou.cli.environments import env_app
from yunzhou.cli.names import dns_app, domains_app
from yunzhou.cli.observe import observe_app
from yunzhou.cli.projects import project_app
from yunzhou.cli.secrets import secret_app
from yunzhou.cli.stacks import stacks_app
from yunzhou.cli.traffic import rollout_app, traffic_app
from yunzhou.cli.watched_domains import watched_domains_app


class YunzhouGroup(TyperGroup):
    """Expected errors end as a message on stderr and exit code 1, never as a traceback."""

    def invoke(self, ctx: typer.Context) -> Any:  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except EXPECTED_ERRORS as exc:
            state = ctx.obj if isinstance(ctx.obj, CliState) else None
            render_error(exc, state)
            raise typer.Exit(1) from None


app = typer.Typer(
    name="yunzhou",
    cls=YunzhouGroup,
    help="Yunzhou (云舟): deploy, scale and govern apps described by Score files.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)


@app.callback()
def root(ctx: typer.Context) -> None:
    """Yunzhou (云舟): deploy, scale and govern apps described by Score files.

    The server is YUNZHOU_URL (default http://127.0.0.1:7070); the token is YUNZHOU_TOKEN, else the
    admin-token file in the data dir (YUNZHOU_DATA_DIR, default .yunzhou).
    """
    ctx.call_on_close(state_of(ctx).close)


app.add_typer(project_app, name="project", rich_help_panel=PANEL_SETUP)
app.add_typer(env_app, name="env", rich_help_panel=PANEL_SETUP)
app.add_typer(config_app, name="config", rich_help_panel=PANEL_SETUP)
app.add_typer(secret_app, name="secret", rich_help_panel=PANEL_SETUP)
app.add_typer(cluster_app, name="cluster", rich_help_panel=PANEL_SETUP)
app.add_typer(stacks_app, name="stacks", rich_help_panel=PANEL_SETUP)
app.add_typer(watched_domains_app, name="domains", rich_help_panel=PANEL_SETUP)
app.add_typer(dns_app, name="dns", rich_help_panel=PANEL_SETUP)
app.add_typer(domains_app, name="custom-domains", rich_help_panel=PANEL_APPS)
app.add_typer(alerts_app, name="alerts", rich_help_panel=PANEL_APPS)
app.add_typer(observe_app, name="observe", rich_help_panel=PANEL_APPS)
app.add_typer(autoscale_app, name="autoscale", rich_help_panel=PANEL_APPS)
app.add_typer(scale_hook_app, name="scale-hook", rich_help_panel=PANEL_APPS)
app.add_typer(traffic_app, name="traffic", rich_help_panel=PANEL_APPS)
app.add_typer(rollout_app, name="rollout", rich_help_panel=PANEL_APPS)
deploy.register(app)
builds.register(app)
images.register(app)
apps.register(app)
logs.register(app)
admin.register(app)
server.register(app)


def main() -> None:
    app()
