"""The registry's token endpoint (the distribution token authentication scheme) and an app's images."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from yunzhou.api import schemas
from yunzhou.api.auth import caller_of, control_plane, operation
from yunzhou.domain.access import Permission
from yunzhou.services import Caller, ControlPlane

router = APIRouter()
# TYPE:NAME:ACTIONS, several separated by spaces (the registry's own grammar: the name may hold a ':')
_ONE_SCOPE = r"[^\s:]+:\S+:[^\s:]+"
ScopeParam = Annotated[str, Field(pattern=rf"^{_ONE_SCOPE}( {_ONE_SCOPE})*$", max_length=1024)]
CP = Annotated[ControlPlane, Depends(control_plane)]
Who = Annotated[Caller, Depends(caller_of)]


class RegistryToken(BaseModel):
    token: str
    access_token: str
    expires_in: int
    issued_at: str


class ImageReferrer(BaseModel):
    env: str
    release: int


class Image(BaseModel):
    digest: str
    reference: str
    size: int
    pushed_at: str | None
    age_seconds: int | None
    tags: list[str]
    signed: bool
    sbom: bool
    releases: list[ImageReferrer]


class ImageList(BaseModel):
    repository: str
    items: list[Image]


@operation(
    router,
    "GET",
    "/registry/token",
    name="registry.token",
    permission=Permission.REGISTRY_TOKEN,
    basic_auth=True,
    response_model=RegistryToken,
)
def registry_token(
    cp: CP,
    caller: Who,
    service: Annotated[Literal["yunzhou-registry"] | None, Query()] = None,
    scope: Annotated[list[ScopeParam] | None, Query(max_length=64)] = None,
) -> Any:
    """A registry token for the repositories the caller may use (docs/images.md). Credentials: HTTP basic
    auth with a Yunzhou token as the password (any username), or ``Authorization: Bearer <token>``."""
    return cp.registry.token(caller, service, scope or [])


@operation(
    router,
    "GET",
    "/projects/{project}/environments/{env}/apps/{app}/images",
    name="image.list",
    permission=Permission.APP_READ,
    response_model=ImageList,
)
def list_images(project: schemas.Label, env: schemas.Label, app: schemas.Label, cp: CP) -> Any:
    return cp.registry.images(project, env, app)
