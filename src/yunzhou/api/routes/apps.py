"""Deployments, apps, releases, rollouts."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends

from yunzhou.api import schemas
from yunzhou.api.auth import caller_of, control_plane, operation
from yunzhou.domain.access import Permission
from yunzhou.services import Caller, ControlPlane

router = APIRouter()
CP = Annotated[ControlPlane, Depends(control_plane)]
Who = Annotated[Caller, Depends(caller_of)]
ENV = "/projects/{project}/environments/{env}"
APP = ENV + "/apps/{app}"


@operation(
    router,
    "POST",
    ENV + "/deployments",
    name="app.deploy",
    permission=Permission.APP_DEPLOY,
    status_code=201,
    response_model=schemas.Deployment,
)
def deploy(
    project: schemas.Label, env: schemas.Label, body: schemas.DeploymentCreate, cp: CP, caller: Who
) -> Any:
    return cp.apps.deploy(caller, project, env, body.score, body.settings, body.artifact)


@operation(
    router,
    "GET",
    ENV + "/apps",
    name="app.list",
    permission=Permission.APP_READ,
    response_model=schemas.Items[schemas.App],
)
def list_apps(project: schemas.Label, env: schemas.Label, cp: CP) -> Any:
    return {"items": cp.apps.list_apps(project, env)}


@operation(router, "GET", APP, name="app.get", permission=Permission.APP_READ, response_model=schemas.App)
def get_app(project: schemas.Label, env: schemas.Label, app: schemas.Label, cp: CP) -> Any:
    return cp.apps.get(project, env, app)


@operation(
    router,
    "DELETE",
    APP,
    name="app.remove",
    permission=Permission.APP_DELETE,
    status_code=202,
    response_model=schemas.App,
)
def remove_app(project: schemas.Label, env: schemas.Label, app: schemas.Label, cp: CP, caller: Who) -> Any:
    return cp.apps.remove(caller, project, env, app)


@operation(
    router,
    "PUT",
    APP + "/replicas",
    name="app.scale",
    permission=Permission.APP_DEPLOY,
    response_model=schemas.App,
)
def scale(
    project: schemas.Label,
    env: schemas.Label,
    app: schemas.Label,
    body: schemas.ReplicasSet,
    cp: CP,
    caller: Who,
) -> Any:
    return cp.apps.scale(caller, project, env, app, body.replicas, body.version)


@operation(
    router,
    "GET",
    APP + "/settings",
    name="app.settings.get",
    permission=Permission.APP_READ,
    response_model=schemas.AppSettings,
)
def get_settings(project: schemas.Label, env: schemas.Label, app: schemas.Label, cp: CP) -> Any:
    return cp.apps.settings(project, env, app)


@operation(
    router,
    "PATCH",
    APP + "/settings",
    name="app.settings",
    permission=Permission.APP_DEPLOY,
    status_code=201,
    response_model=schemas.Deployment,
)
def patch_settings(
    project: schemas.Label,
    env: schemas.Label,
    app: schemas.Label,
    body: schemas.SettingsPatch,
    cp: CP,
    caller: Who,
) -> Any:
    return cp.apps.update_settings(caller, project, env, app, body.settings, body.version)


@operation(
    router,
    "GET",
    APP + "/releases",
    name="release.list",
    permission=Permission.APP_READ,
    response_model=schemas.Items[schemas.Release],
)
def list_releases(project: schemas.Label, env: schemas.Label, app: schemas.Label, cp: CP) -> Any:
    return {"items": cp.apps.releases(project, env, app)}


@operation(
    router,
    "GET",
    APP + "/releases/{number}",
    name="release.get",
    permission=Permission.APP_READ,
    response_model=schemas.Release,
)
def get_release(
    project: schemas.Label, env: schemas.Label, app: schemas.Label, number: schemas.Id, cp: CP
) -> Any:
    return cp.apps.release(project, env, app, number)


@operation(
    router,
    "POST",
    APP + "/rollback",
    name="app.rollback",
    permission=Permission.APP_DEPLOY,
    status_code=201,
    response_model=schemas.Deployment,
)
def rollback(
    project: schemas.Label,
    env: schemas.Label,
    app: schemas.Label,
    body: schemas.RollbackCreate,
    cp: CP,
    caller: Who,
) -> Any:
    return cp.apps.rollback(caller, project, env, app, body.to)


@operation(
    router,
    "GET",
    APP + "/rollouts",
    name="rollout.list",
    permission=Permission.APP_READ,
    response_model=schemas.Items[schemas.Rollout],
)
def list_rollouts(project: schemas.Label, env: schemas.Label, app: schemas.Label, cp: CP) -> Any:
    return {"items": cp.apps.rollouts(project, env, app)}


@operation(
    router,
    "GET",
    APP + "/rollouts/{rollout_id}",
    name="rollout.get",
    permission=Permission.APP_READ,
    response_model=schemas.Rollout,
)
def get_rollout(
    project: schemas.Label, env: schemas.Label, app: schemas.Label, rollout_id: schemas.Id, cp: CP
) -> Any:
    return cp.apps.rollout(project, env, app, rollout_id)


@operation(
    router,
    "GET",
    APP + "/instances",
    name="instance.list",
    permission=Permission.APP_READ,
    response_model=schemas.Items[schemas.InstanceReport],
)
def list_instances(project: schemas.Label, env: schemas.Label, app: schemas.Label, cp: CP) -> Any:
    return {"items": cp.apps.instances(project, env, app)}


@operation(router, "GET", APP + "/render", name="app.render", permission=Permission.APP_READ)
def render(
    project: schemas.Label,
    env: schemas.Label,
    app: schemas.Label,
    cp: CP,
    caller: Who,
    release: schemas.Id | None = None,
    show_secrets: bool = False,
) -> Any:
    return {"items": cp.apps.render(caller, project, env, app, release, show_secrets)}
