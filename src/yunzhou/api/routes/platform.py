"""Platform-wide endpoints: health, identity, tokens, artifacts, audit."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response

from yunzhou import __version__
from yunzhou.api import schemas
from yunzhou.api.auth import caller_of, control_plane, operation
from yunzhou.domain.access import Permission
from yunzhou.domain.errors import invalid
from yunzhou.services import Caller, ControlPlane

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
    permission=Permission.TOKEN_SELF,
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
        "requestBody": {"content": {"application/gzip": {"schema": {"type": "string", "format": "binary"}}}}
    },
)
async def upload_artifact(request: Request, cp: CP, caller: Who) -> Any:
    ctype = request.headers.get("content-type", "").split(";")[0].strip()
    if ctype not in ARCHIVE_TYPES:
        raise invalid("content-type", f"{ctype or 'none'} is not accepted; send application/gzip (a tar.gz)")
    body = await request.body()
    return cp.artifacts.upload(caller, body)


@operation(
    router,
    "GET",
    "/audit",
    name="audit.list",
    permission=Permission.AUDIT_READ,
    response_model=schemas.Items[schemas.AuditEvent],
)
def list_audit(
    cp: CP,
    caller: Who,
    project: str | None = None,
    actor: str | None = None,
    action: str | None = None,
    outcome: str | None = None,
    limit: int = 100,
    before_id: int | None = None,
) -> Any:
    return {
        "items": cp.audit.query(
            caller,
            project=project,
            actor=actor,
            action=action,
            outcome=outcome,
            limit=limit,
            before_id=before_id,
        )
    }


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
    return cp.clusters.add(caller, body.name, body.kubeconfig, body.context, body.base_domain)


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
def remove_cluster(cluster: str, cp: CP, caller: Who) -> Response:
    cp.clusters.remove(caller, cluster)
    return Response(status_code=204)
