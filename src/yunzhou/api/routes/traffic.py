"""Progressive rollouts: manual promote and abort."""

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
APP = "/projects/{project}/environments/{env}/apps/{app}"


@operation(router, "POST", APP + "/rollout/promote", name="rollout.promote", permission=Permission.APP_DEPLOY)
def promote(project: schemas.Label, env: schemas.Label, app: schemas.Label, cp: CP, caller: Who) -> Any:
    """Skip the remaining canary steps (blue-green: switch now) of the rollout in progress."""
    return cp.traffic.rollout_command(caller, project, env, app, "promote")


@operation(router, "POST", APP + "/rollout/abort", name="rollout.abort", permission=Permission.APP_DEPLOY)
def abort(project: schemas.Label, env: schemas.Label, app: schemas.Label, cp: CP, caller: Who) -> Any:
    """Send all traffic back to the stable release; the rollout fails with the reason."""
    return cp.traffic.rollout_command(caller, project, env, app, "abort")
