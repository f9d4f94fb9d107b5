"""Projects, members, environments."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Response

from yunzhou.api import schemas
from yunzhou.api.auth import caller_of, control_plane, operation
from yunzhou.domain.access import Permission
from yunzhou.services import Caller, ControlPlane

router = APIRouter()
CP = Annotated[ControlPlane, Depends(control_plane)]
Who = Annotated[Caller, Depends(caller_of)]


@operation(
    router,
    "POST",
    "/projects",
    name="project.create",
    permission=Permission.PROJECT_CREATE,
    status_code=201,
    response_model=schemas.Project,
)
def create_project(body: schemas.ProjectCreate, cp: CP, caller: Who) -> Any:
    return cp.projects.create(caller, body.name, body.display_name)


@operation(
    router,
    "GET",
    "/projects",
    name="project.list",
    permission=Permission.AUTHENTICATED,
    response_model=schemas.Items[schemas.Project],
)
def list_projects(cp: CP, caller: Who) -> Any:
    return {"items": cp.projects.list_visible(caller)}


@operation(
    router,
    "GET",
    "/projects/{project}",
    name="project.get",
    permission=Permission.PROJECT_READ,
    response_model=schemas.Project,
)
def get_project(project: schemas.Label, cp: CP) -> Any:
    return cp.projects.get(project)


@operation(
    router,
    "DELETE",
    "/projects/{project}",
    name="project.delete",
    permission=Permission.PROJECT_DELETE,
    status_code=204,
    response_class=Response,
)
def delete_project(
    project: schemas.Label, cp: CP, caller: Who, version: schemas.Count | None = None
) -> Response:
    cp.projects.delete(caller, project, version)
    return Response(status_code=204)


@operation(
    router,
    "GET",
    "/projects/{project}/members",
    name="member.list",
    permission=Permission.MEMBER_READ,
    response_model=schemas.Items[schemas.Member],
)
def list_members(project: schemas.Label, cp: CP) -> Any:
    return {"items": cp.projects.members(project)}


@operation(
    router,
    "PUT",
    "/projects/{project}/members/{principal}",
    name="member.set",
    permission=Permission.MEMBER_WRITE,
    response_model=schemas.Member,
)
def set_member(
    project: schemas.Label, principal: schemas.Principal, body: schemas.MemberSet, cp: CP, caller: Who
) -> Any:
    return cp.projects.set_member(caller, project, principal, body.role)


@operation(
    router,
    "DELETE",
    "/projects/{project}/members/{principal}",
    name="member.remove",
    permission=Permission.MEMBER_WRITE,
    status_code=204,
    response_class=Response,
)
def remove_member(project: schemas.Label, principal: schemas.Principal, cp: CP, caller: Who) -> Response:
    cp.projects.remove_member(caller, project, principal)
    return Response(status_code=204)


@operation(
    router,
    "POST",
    "/projects/{project}/environments",
    name="env.create",
    permission=Permission.ENV_WRITE,
    status_code=201,
    response_model=schemas.Environment,
)
def create_environment(project: schemas.Label, body: schemas.EnvironmentCreate, cp: CP, caller: Who) -> Any:
    return cp.projects.create_environment(
        caller, project, body.name, body.target, body.namespace,
        require_signed_images=body.require_signed_images, egress=body.egress,
    )  # fmt: skip


@operation(
    router,
    "GET",
    "/projects/{project}/environments",
    name="env.list",
    permission=Permission.ENV_READ,
    response_model=schemas.Items[schemas.Environment],
)
def list_environments(project: schemas.Label, cp: CP) -> Any:
    return {"items": cp.projects.list_environments(project)}


@operation(
    router,
    "GET",
    "/projects/{project}/environments/{env}",
    name="env.get",
    permission=Permission.ENV_READ,
    response_model=schemas.Environment,
)
def get_environment(project: schemas.Label, env: schemas.Label, cp: CP) -> Any:
    return cp.projects.get_environment(project, env)


@operation(
    router,
    "PATCH",
    "/projects/{project}/environments/{env}",
    name="env.update",
    permission=Permission.ENV_WRITE,
    response_model=schemas.Environment,
)
def update_environment(
    project: schemas.Label, env: schemas.Label, body: schemas.EnvironmentUpdate, cp: CP, caller: Who
) -> Any:
    return cp.projects.update_environment(
        caller, project, env, require_signed_images=body.require_signed_images, egress=body.egress,
        version=body.version,
    )  # fmt: skip


@operation(
    router,
    "DELETE",
    "/projects/{project}/environments/{env}",
    name="env.delete",
    permission=Permission.ENV_WRITE,
    status_code=204,
    response_class=Response,
)
def delete_environment(
    project: schemas.Label, env: schemas.Label, cp: CP, caller: Who, version: schemas.Count | None = None
) -> Response:
    cp.projects.delete_environment(caller, project, env, version)
    return Response(status_code=204)
