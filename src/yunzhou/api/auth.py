"""Authentication and authorization. Each route declares one Permission; `operation` registers the route
with a dependency that enforces it and records it in the OpenAPI document (x-yunzhou-permission), which
is what the authorization-matrix tests read."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool

from yunzhou.domain.access import Permission, Role, scope_allows
from yunzhou.domain.errors import Forbidden, NotFound, Unauthenticated
from yunzhou.services import Caller, ControlPlane

PERMISSION_KEY = "x-yunzhou-permission"
BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


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


def basic_credentials(request: Request) -> None:
    """HTTP basic auth, for the registry's token endpoint only: docker-style clients (``docker login``,
    containerd, a cluster's pull secret) send the platform token as the password; the username is
    ignored. A refusal there says ``WWW-Authenticate: Basic``."""
    request.state.www_authenticate = 'Basic realm="yunzhou"'
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic" or getattr(request.state, "caller", None) is not None:
        return  # Bearer (or nothing) is authenticate()'s
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise Unauthenticated("malformed basic credentials: send base64 of USERNAME:TOKEN") from None
    _, colon, password = decoded.partition(":")
    if not colon or not password:
        raise Unauthenticated("basic credentials need a password: a Yunzhou token (the username is ignored)")
    request.state.caller = control_plane(request).tokens.authenticate(password, request.state.request_id)


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


class AuthenticatedRoute(APIRoute):
    """Authenticates before anything reads the body: FastAPI reads a route's body before it solves the
    route's dependencies, so without this a stranger's body would be read (and parsed) before the 401.
    The body itself is bounded by api/limits.py while it is read."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        body_parsed = self.body_field is not None  # else the route reads (streams) the body itself

        async def handle(request: Request) -> Response:
            if request.method in BODY_METHODS:
                await run_in_threadpool(authenticate, request)  # the token look-up reads the store
                if body_parsed:  # read it here, bounded, so a 413 is ours and not FastAPI's "parse error"
                    await request.body()
            return await handler(request)

        return handle


def operation(
    router: APIRouter,
    method: str,
    path: str,
    *,
    name: str,
    permission: Permission,
    status_code: int = 200,
    basic_auth: bool = False,
    **kwargs: Any,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``basic_auth``: also accept the token as the password of HTTP basic auth (registry clients)."""
    checks = [Depends(basic_credentials)] if basic_auth else []
    checks.append(Depends(_enforce(permission)))

    def register(fn: Callable[..., Any]) -> Callable[..., Any]:
        router.add_api_route(
            path,
            fn,
            methods=[method],
            name=name,
            operation_id=name.replace(".", "_"),
            status_code=status_code,
            dependencies=checks,
            route_class_override=AuthenticatedRoute,
            openapi_extra={**kwargs.pop("openapi_extra", {}), PERMISSION_KEY: permission.name},
            **kwargs,
        )
        return fn

    return register
