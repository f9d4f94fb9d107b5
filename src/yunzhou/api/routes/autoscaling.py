"""Autoscaling: an app's recorded autoscaler decisions."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from yunzhou.api.auth import control_plane, operation
from yunzhou.domain.access import Permission
from yunzhou.services import ControlPlane

router = APIRouter()
CP = Annotated[ControlPlane, Depends(control_plane)]
APP = "/projects/{project}/environments/{env}/apps/{app}"


@operation(
    router,
    "GET",
    APP + "/autoscaling/decisions",
    name="autoscaling.decisions",
    permission=Permission.APP_READ,
)
def list_decisions(
    project: str, env: str, app: str, cp: CP, limit: Annotated[int, Query(ge=1, le=1000)] = 100
) -> Any:
    """Newest first: time, current, desired, applied, mode, reason, inputs."""
    return {"items": cp.autoscaling.decisions(project, env, app, limit)}
