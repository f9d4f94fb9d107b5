"""Platform-wide endpoints: health, identity, tokens, artifacts, audit."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from yunzhou import __version__
from yunzhou.api import schemas
from yunzhou.api.auth import caller_of, control_plane, operation
from yunzhou.domain.access import Permission
from yunzhou.domain.errors import invalid
from yunzhou.services import Caller, ControlPlane
from yunzhou.services.audit import MAX_LIMIT as AUDIT_MAX_LIMIT

router = APIRouter()
CP = Annotated[ControlPlane, Depends(control_plane)]
Who = Annotated[Caller, Depends(caller_of)]
ARCHIVE_TYPES = (
    "application/gzip",
    "application/x-gzip",
    "application/x-tar+gzip",
    "application/octet-stream",
)


@router.get("/healthz", name="health", operation_id="health", response_model=schemas.Health)
def health() -> Any:
    return {"status": "ok", "version": __version__}


@operation(
    router,
    "GET",
    "/whoami",
    name="whoami",
    permission=Permission.AUTHENTICATED,
    response_model=schemas.WhoAmI,
)
def whoami(caller: Who) -> Any:
    return {
        "principal": caller.principal,
        "token_id": caller.token_id,
        "scopes": sorted(s.value for s in caller.scopes),
        "admin": caller.is_admin,
        "roles": {k: v.value for k, v in sorted(caller.roles.items())},
    }


@operation(
    router,
    "POST",
    "/tokens",
    name="token.create",
    permission=Permission.TOKEN_CREATE,
    status_code=201,
    response_model=schemas.NewToken,
)
def create_token(body: schemas.TokenCreate, cp: CP, caller: Who) -> Any:
    return cp.tokens.create(caller, body.name, body.scopes, body.expires_in_seconds, body.principal)


@operation(
    router,
    "GET",
    "/tokens",
    name="token.list",
    permission=Permission.TOKEN_SELF,
    response_model=schemas.Items[schemas.Token],
)
def list_tokens(cp: CP, caller: Who) -> Any:
    return {"items": cp.tokens.list_tokens(caller)}


@operation(
    router,
    "DELETE",
    "/tokens/{token_id}",
    name="token.revoke",
    permission=Permission.TOKEN_SELF,
    status_code=204,
    response_class=Response,
)
def revoke_token(token_id: str, cp: CP, caller: Who) -> Response:
    cp.tokens.revoke(caller, token_id)
    return Response(status_code=204)


@operation(
    router,
    "POST",
    "/artifacts",
    name="artifact.upload",
    permission=Permission.ARTIFACT_UPLOAD,
    status_code=201,
    response_model=schemas.ArtifactUploaded,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {t: {"schema": {"type": "string", "format": "binary"}} for t in ARCHIVE_TYPES},
        }
    },
)
async def upload_artifact(request: Request, cp: CP, caller: Who) -> Any:
    ctype = request.headers.get("content-type", "").split(";")[0].strip()
    if ctype not in ARCHIVE_TYPES:
        raise invalid("content-type", f"{ctype or 'none'} is not accepted; send application/gzip (a tar.gz)")
    # streamed to a file under the upload limit (api/limits.py); checked and hashed in a worker thread
    with cp.artifacts.receiving() as (received, handle):
        async for chunk in request.stream():
            handle.write(chunk)
        handle.close()
        return await run_in_threadpool(cp.artifacts.upload, caller, received)


@operation(
    router,
    "GET",
    "/audit",
    name="audit.list",
    permission=Permission.AUDIT_READ,
    response_model=schemas.AuditPage,
)
def list_audit(
    cp: CP,
    caller: Who,
    project: str | None = None,
    actor: str | None = None,
    action: str | None = None,
    outcome: str | None = None,
    limit: Annotated[int, Query(ge=1, le=AUDIT_MAX_LIMIT, description="Events per page")] = 100,
    before_id: Annotated[
        schemas.Id | None, Query(description="Only events older than this id (next_before_id pages on)")
    ] = None,
) -> Any:
    items = cp.audit.query(
        caller,
        project=project,
        actor=actor,
        action=action,
        outcome=outcome,
        limit=limit,
        before_id=before_id,
    )
    return {"items": items, "next_before_id": items[-1]["id"] if len(items) == limit else None}


@operation(
    router,
    "POST",
    "/clusters",
    name="cluster.add",
    permission=Permission.PLATFORM_ADMIN,
    status_code=201,
    response_model=schemas.ClusterInfo,
)
def add_cluster(body: schemas.ClusterCreate, cp: CP, caller: Who) -> Any:
    return cp.clusters.add(caller, body.name, body.kubeconfig, body.context, body.base_domain, body.registry)


@operation(
    router,
    "PATCH",
    "/clusters/{cluster}",
    name="cluster.update",
    permission=Permission.PLATFORM_ADMIN,
    response_model=schemas.ClusterInfo,
)
def update_cluster(cluster: schemas.Label, body: schemas.ClusterUpdate, cp: CP, caller: Who) -> Any:
    return cp.clusters.set_registry(caller, cluster, body.registry)


@operation(
    router,
    "GET",
    "/clusters",
    name="cluster.list",
    permission=Permission.AUTHENTICATED,
    response_model=schemas.Items[schemas.ClusterInfo],
)
def list_clusters(cp: CP) -> Any:
    return {"items": cp.clusters.list_clusters()}


@operation(
    router,
    "DELETE",
    "/clusters/{cluster}",
    name="cluster.remove",
    permission=Permission.PLATFORM_ADMIN,
    status_code=204,
    response_class=Response,
)
def remove_cluster(cluster: schemas.Label, cp: CP, caller: Who) -> Response:
    cp.clusters.remove(caller, cluster)
    return Response(status_code=204)
