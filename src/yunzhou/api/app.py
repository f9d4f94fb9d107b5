"""The FastAPI application factory."""

from __future__ import annotations

from fastapi import FastAPI

from yunzhou import __version__
from yunzhou.api.errors import ERROR_RESPONSES, RequestIdMiddleware, install_error_handlers
from yunzhou.api.limits import BodyLimitMiddleware
from yunzhou.api.routes import alerts, apps, config, logs, platform, projects
from yunzhou.api.routes import autoscaling as autoscaling_routes
from yunzhou.api.routes import builds as build_routes
from yunzhou.api.routes import domains as domain_routes
from yunzhou.api.routes import metrics as metrics_routes
from yunzhou.api.routes import names as name_routes
from yunzhou.api.routes import nodes as node_routes
from yunzhou.api.routes import preferences as preference_routes
from yunzhou.api.routes import registry as registry_routes
from yunzhou.api.routes import stacks as stack_routes
from yunzhou.api.routes import traffic as traffic_routes
from yunzhou.observe.metrics.collect_self import ControlPlaneMetrics, HttpMetricsMiddleware
from yunzhou.services import ControlPlane
from yunzhou.web import mount_console

API_PREFIX = "/api/v1"


def create_app(control_plane: ControlPlane, own_metrics: ControlPlaneMetrics | None = None) -> FastAPI:
    app = FastAPI(
        title="Yunzhou API",
        version=__version__,
        description="Describe an app once (Score), deploy it anywhere. See docs/api.md.",
        openapi_url="/openapi.json",
        docs_url="/api/docs",
        redoc_url=None,
        responses=ERROR_RESPONSES,  # every operation documents the error handler's answers
    )
    app.state.control_plane = control_plane
    install_error_handlers(app)
    for module in (platform, projects, apps, logs, config, alerts):
        app.include_router(module.router, prefix=API_PREFIX)
    app.include_router(metrics_routes.router, prefix=API_PREFIX)
    app.include_router(autoscaling_routes.router, prefix=API_PREFIX)
    app.include_router(build_routes.router, prefix=API_PREFIX)
    app.include_router(traffic_routes.router, prefix=API_PREFIX)
    app.include_router(node_routes.router, prefix=API_PREFIX)
    app.include_router(preference_routes.router, prefix=API_PREFIX)
    app.include_router(registry_routes.router, prefix=API_PREFIX)
    app.include_router(stack_routes.router, prefix=API_PREFIX)
    app.include_router(domain_routes.router, prefix=API_PREFIX)
    app.include_router(name_routes.router, prefix=API_PREFIX)
    app.include_router(metrics_routes.exposition_router)  # GET /metrics, where Prometheus looks
    app.state.metrics_self = own_metrics or ControlPlaneMetrics()
    mount_console(app)  # the web console at `/`; it calls this API over HTTP with the user's token
    # bodies bounded by the server's limits (YUNZHOU_MAX_*), read lazily: routes authenticate first
    app.add_middleware(BodyLimitMiddleware, limits=lambda: control_plane.ctx.limits)
    app.add_middleware(HttpMetricsMiddleware, metrics=app.state.metrics_self)
    app.add_middleware(RequestIdMiddleware)
    return app
