"""The one place where errors become HTTP responses — and where refused mutations are audited."""

from __future__ import annotations

import logging
import re
import uuid
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from yunzhou.domain.errors import (
    Conflict,
    FieldProblem,
    Forbidden,
    NotFound,
    PermanentError,
    TemporaryError,
    Unauthenticated,
    UserError,
    YunzhouError,
)
from yunzhou.services import Caller

log = logging.getLogger("yunzhou.api")

MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_STATUS: list[tuple[type[YunzhouError], int, str]] = [
    (Unauthenticated, 401, "denied"),
    (Forbidden, 403, "denied"),
    (NotFound, 404, "not_found"),
    (Conflict, 409, "conflict"),
    (UserError, 422, "invalid"),
    (TemporaryError, 503, "error"),
    (PermanentError, 422, "invalid"),
]
_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
ANONYMOUS = Caller(principal="anonymous", token_id=None, scopes=frozenset())


class RequestIdMiddleware:
    """Every request gets an id (the client's X-Request-Id when well-formed); it is echoed back."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        request_id = given if _REQUEST_ID_RE.match(given) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", []).append((b"x-request-id", request_id.encode()))
            await send(message)

        await self.app(scope, receive, send_with_id)


def _body(code: str, message: str, problems: list[FieldProblem], request_id: str) -> dict[str, Any]:
    return {
        "error": {
            "code": code,
            "message": message,
            "problems": [{"path": p.path, "message": p.message} for p in problems],
            "request_id": request_id,
        }
    }


def _audit_refusal(request: Request, outcome: str, message: str) -> None:
    if request.method not in MUTATING:
        return
    route = request.scope.get("route")
    action = getattr(route, "name", None) or f"{request.method} {request.url.path}"
    params = request.path_params
    target = "/".join(params[k] for k in ("project", "env", "app") if k in params) or str(
        params.get("token_id") or params.get("principal") or request.url.path
    )
    caller: Caller = getattr(request.state, "caller", None) or ANONYMOUS
    try:
        request.app.state.control_plane.audit.record_failure(
            caller,
            action=action,
            target=target,
            project=params.get("project"),
            outcome=outcome,
            detail={"error": message[:500]},
        )
    except Exception:  # the refusal itself must still reach the client
        log.exception("could not write the audit record for a refused request")


def install_error_handlers(app: FastAPI) -> None:
    async def domain_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, YunzhouError)
        status, outcome = 500, "error"
        for cls, code, out in _STATUS:
            if isinstance(exc, cls):
                status, outcome = code, out
                break
        _audit_refusal(request, outcome, exc.message)
        headers = {}
        if isinstance(exc, TemporaryError):
            headers["Retry-After"] = str(max(1, round(exc.retry_after)))
        if isinstance(exc, Unauthenticated):
            headers["WWW-Authenticate"] = "Bearer"
        return JSONResponse(
            _body(exc.code, exc.message, exc.problems, request.state.request_id),
            status_code=status,
            headers=headers,
        )

    async def validation_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        problems = []
        for err in exc.errors():
            loc = [str(p) for p in err.get("loc", ()) if p not in ("body",)]
            problems.append(FieldProblem(".".join(loc), str(err.get("msg", "invalid"))))
        _audit_refusal(request, "invalid", "request body is invalid")
        return JSONResponse(
            _body("invalid", "request is invalid", problems, request.state.request_id), status_code=422
        )

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "error")
        return JSONResponse(
            _body(code, str(exc.detail), [], request.state.request_id),
            status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )

    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception(
            "unhandled error in %s %s (request %s)",
            request.method,
            request.url.path,
            request.state.request_id,
        )
        _audit_refusal(request, "error", f"internal error: {type(exc).__name__}")
        return JSONResponse(
            _body(
                "internal",
                "internal error; the server log has details under this request id",
                [],
                request.state.request_id,
            ),
            status_code=500,
        )

    app.add_exception_handler(YunzhouError, domain_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(Exception, unexpected)
