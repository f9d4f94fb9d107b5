"""Autoscaling: an app's recorded autoscaler decisions, and scale hooks (secret URLs that scale an app)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from yunzhou.api import schemas
from yunzhou.api.auth import caller_of, control_plane, operation
from yunzhou.domain.access import Permission
from yunzhou.services import Caller, ControlPlane
from yunzhou.services.autoscaling import ScaleHookService

router = APIRouter()
CP = Annotated[ControlPlane, Depends(control_plane)]
Who = Annotated[Caller, Depends(caller_of)]
APP = "/projects/{project}/environments/{env}/apps/{app}"


@operation(
    router,
    "GET",
    APP + "/autoscaling/decisions",
    name="autoscaling.decisions",
    permission=Permission.APP_READ,
)
def list_decisions(
    project: schemas.Label,
    env: schemas.Label,
    app: schemas.Label,
    cp: CP,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Any:
    """Newest first: time, current, desired, applied, mode, reason, inputs."""
    return {"items": cp.autoscaling.decisions(project, env, app, limit)}


class ScaleHookCreate(BaseModel):
    action: Literal["up", "down", "set"]
    step: int = Field(default=1, ge=1, le=100)
    replicas: int | None = Field(default=None, ge=0, le=1000, description="For set only (and required)")
    min_interval_seconds: int = Field(default=10, ge=1, le=3600)


@operation(
    router,
    "POST",
    APP + "/scale-hooks",
    name="scale_hook.create",
    permission=Permission.APP_DEPLOY,
    status_code=201,
)
def create_hook(
    project: schemas.Label, env: schemas.Label, app: schemas.Label, body: ScaleHookCreate, cp: CP, caller: Who
) -> Any:
    """A new secret URL (``path``, shown once) that scales the app; POST to it, no token needed."""
    return ScaleHookService(cp.ctx).create(
        caller, project, env, app, action=body.action, step=body.step, replicas=body.replicas,
        min_interval_seconds=body.min_interval_seconds,
    )  # fmt: skip


@operation(router, "GET", APP + "/scale-hooks", name="scale_hook.list", permission=Permission.APP_READ)
def list_hooks(project: schemas.Label, env: schemas.Label, app: schemas.Label, cp: CP) -> Any:
    return {"items": ScaleHookService(cp.ctx).list(project, env, app)}


@operation(
    router,
    "DELETE",
    APP + "/scale-hooks/{name}",
    name="scale_hook.revoke",
    permission=Permission.APP_DEPLOY,
)
def revoke_hook(
    project: schemas.Label, env: schemas.Label, app: schemas.Label, name: str, cp: CP, caller: Who
) -> Any:
    """``name`` is the hook's id (from the create answer or the list)."""
    return ScaleHookService(cp.ctx).revoke(caller, project, env, app, name)


def fire_hook(token: str, cp: CP) -> Any:
    """The capability URL itself: whoever holds it may scale (rate limited, audited as scale-hook:<id>)."""
    return ScaleHookService(cp.ctx).fire(token)


# Not in the OpenAPI document: the secret in the path is the credential, there is no token to declare.
router.add_api_route(
    "/hooks/scale/{token}", fire_hook, methods=["POST"], name="scale_hook.fire", include_in_schema=False
)
