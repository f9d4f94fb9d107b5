"""Node autoscaling events of a cluster: what the node autoscaler added, removed or could not add, and why."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from yunzhou.api import schemas
from yunzhou.api.auth import control_plane, operation
from yunzhou.domain.access import Permission
from yunzhou.services import ControlPlane
from yunzhou.services.nodes import NodeEventService

router = APIRouter()
CP = Annotated[ControlPlane, Depends(control_plane)]


@operation(
    router,
    "GET",
    "/clusters/{cluster}/node-events",
    name="cluster.node_events",
    permission=Permission.AUTHENTICATED,
)
def node_events(cluster: schemas.Label, cp: CP, limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> Any:
    """Newest first: time, action (add | remove | blocked), node, reason, provider."""
    return {"items": NodeEventService(cp.ctx).list(cluster, limit)}
