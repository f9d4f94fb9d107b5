"""Authentication and authorization. Each route declares one Permission; `operation` registers the route
with a dependency that enforces it and records it in the OpenAPI document (x-yunzhou-permission), which
is what the authorization-matrix tests read."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Depends, Request

from yunzhou.domain.access import Permission, Role, scope_allows
from yunzhou.domain.errors import Forbidden, NotFound, Unauthenticated
from yunzhou.services import Caller, ControlPlane

PERMISSION_KEY = "x-yunzhou-permission"


def control_plane(request: Request) -> ControlPlane:
    cp: ControlPlane = request.app.state.control_plane
    return cp


def authenticate(request: Request) -> Caller:
    cached: Caller | None = getattr(request.state, "caller", None)
    if cached is not None:
        return cached
    header = request.headers.get("authorization", "")
    scheme, _, secret = header.partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        raise Unauthenticated(
            "missing token: send 'Authorization: Bearer <token>' (see `yunzhou token create`)"
        )
    caller = control_plane(request).tokens.authenticate(secret.strip(), request.state.request_id)
    request.state.caller = caller
    return caller


def _enforce(permission: Permission) -> Callable[[Request], Caller]:
    def check(request: Request) -> Caller:
        caller = authenticate(request)
        if not scope_allows(caller.scopes, permission.scope):
            raise Forbidden(f"this token lacks the '{permission.scope.value}' scope")
        needed = permission.role
        if needed is None or caller.is_admin:
            return caller
        project = request.path_params.get("project")
        assert project is not None, f"{permission.name} needs a {{project}} path parameter"
        role: Role | None = caller.roles.get(project)
        if role is None:  # not a member: do not reveal that the project exists
            raise NotFound(f"project {project!r} not found")
        if not role.includes(needed):
            raise Forbidden(
                f"your role in project {project!r} is {role.value}; this needs {needed.value} or higher"
            )
        return caller

    return check


def caller_of(request: Request) -> Caller:
    """The caller the route's permission dependency already established."""
    caller: Caller = request.state.caller
    return caller


def operation(
    router: APIRouter,
    method: str,
    path: str,
    *,
    name: str,
    permission: Permission,
    status_code: int = 200,
    **kwargs: Any,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def register(fn: Callable[..., Any]) -> Callable[..., Any]:
        router.add_api_route(
            path,
            fn,
            methods=[method],
            name=name,
            operation_id=name.replace(".", "_"),
            status_code=status_code,
            dependencies=[Depends(_enforce(permission))],
            openapi_extra={**kwargs.pop("openapi_extra", {}), PERMISSION_KEY: permission.name},
            **kwargs,
        )
        return fn

    return register
