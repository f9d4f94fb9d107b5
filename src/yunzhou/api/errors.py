"""The one place where errors become HTTP responses — and where refused mutations are audited."""

from __future__ import annotations

import logging
import re
import threading
import uuid
from datetime import datetime, timedelta
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from yunzhou.domain.errors import (
    Conflict,
    FieldProblem,
    Forbidden,
    NotFound,
    PayloadTooLarge,
    PermanentError,
    TemporaryError,
    Unauthenticated,
    UserError,
    YunzhouError,
)
from yunzhou.services import Caller

log = logging.getLogger("yunzhou.api")

MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_HTTP_METHODS = frozenset({"get", "put", "post", "delete", "patch", "head", "options"})
_STATUS: list[tuple[type[YunzhouError], int, str]] = [
    (Unauthenticated, 401, "denied"),
    (Forbidden, 403, "denied"),
    (NotFound, 404, "not_found"),
    (Conflict, 409, "conflict"),
    (PayloadTooLarge, 413, "invalid"),
    (UserError, 422, "invalid"),
    (TemporaryError, 503, "error"),
    (PermanentError, 422, "invalid"),
]
_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


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


class ErrorProblem(BaseModel):
    path: str = Field(description="Where in the request, e.g. containers.web.image or query.limit")
    message: str


class ErrorDetail(BaseModel):
    code: str = Field(description="invalid, not_found, conflict, unauthenticated, forbidden, …")
    message: str
    problems: list[ErrorProblem]
    request_id: str = Field(description="Also in the X-Request-Id header; the server log uses it")


class ErrorBody(BaseModel):
    """What every error answer of the API carries (docs/api.md, "Errors")."""

    error: ErrorDetail


def _error(description: str, **headers: str) -> dict[str, Any]:
    answer: dict[str, Any] = {"model": ErrorBody, "description": description}
    if headers:
        answer["headers"] = {
            name: {"description": text, "schema": {"type": "string"}} for name, text in headers.items()
        }
    return answer


# The one error handler's answers, documented on every operation (the app factory passes them to FastAPI);
# a route whose errors look different (the Prometheus-style metrics queries) documents its own.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: _error("The request could not be read (e.g. a body that is not what its Content-Type says)"),
    401: _error("No token, or an unknown, revoked or expired one", **{"WWW-Authenticate": "Bearer"}),
    403: _error("The token's scope or the caller's project role does not allow this"),
    404: _error("No such thing, or the caller may not know that it exists"),
    405: _error("The path exists but not with this method", Allow="The methods it has"),
    409: _error("A duplicate name, a stale version, or a state that does not allow this"),
    413: _error("The body is larger than the configured limit (named in the message)"),
    422: _error("The request is invalid: problems name each field"),
    500: _error("A bug: the server log has the details under the request id"),
    503: _error("Temporarily unavailable: retry after Retry-After seconds", **{"Retry-After": "Seconds"}),
}


def _validation_message(err: Any, request: Request) -> str:
    """pydantic's message in the words the domain's own checks use (what is allowed, named)."""
    message = str(err.get("msg", "invalid"))
    if err.get("type") == "literal_error":
        allowed = re.findall(r"'([^']*)'", str(err.get("ctx", {}).get("expected", "")))
        return f"{err.get('input')!r} is not allowed; allowed: {', '.join(allowed)}"
    if err.get("type") == "extra_forbidden" and tuple(err.get("loc", ()))[:1] == ("body",):
        body = getattr(getattr(request.scope.get("route"), "body_field", None), "field_info", None)
        model = getattr(body, "annotation", None)
        fields = getattr(model, "model_fields", None)
        if fields and len(err["loc"]) == 2:
            return f"unknown field; allowed: {', '.join(fields)}"
    return message.removeprefix("Value error, ")


def _body(code: str, message: str, problems: list[FieldProblem], request_id: str) -> dict[str, Any]:
    return {
        "error": {
            "code": code,
            "message": message,
            "problems": [{"path": p.path, "message": p.message} for p in problems],
            "request_id": request_id,
        }
    }


# What a refused request may write: attacker-chosen path segments and messages are cut to these sizes
# (the columns' own sizes), and unauthenticated refusals are rate-limited (docs/api.md, "Audit").
_ACTION_MAX, _TARGET_MAX, _PROJECT_MAX, _MESSAGE_MAX, _ANON_MESSAGE_MAX = 60, 300, 63, 500, 120
ANONYMOUS_AUDIT_PER_MINUTE = 60


class AnonymousAuditBudget:
    """At most ``per_window`` audit rows per window for refusals of callers with no valid token; the rest
    are counted and written as one ``audit.suppressed`` row when the next window opens, so a flood of
    unauthenticated requests grows the audit log by a bounded number of bounded rows."""

    def __init__(self, per_window: int = ANONYMOUS_AUDIT_PER_MINUTE, window_seconds: float = 60.0) -> None:
        self.per_window = per_window
        self.window = timedelta(seconds=window_seconds)
        self._lock = threading.Lock()
        self._start: datetime | None = None
        self._written = 0
        self._suppressed = 0

    def admit(self, now: datetime) -> tuple[bool, int, datetime | None]:
        """(write this row?, rows suppressed in the window that just closed, when that window began)."""
        with self._lock:
            closed, since = 0, None
            if self._start is None or now - self._start >= self.window:
                closed, since = self._suppressed, self._start
                self._start, self._written, self._suppressed = now, 0, 0
            if self._written < self.per_window:
                self._written += 1
                return True, closed, since
            self._suppressed += 1
            return False, closed, since


def _audit_refusal(request: Request, outcome: str, message: str) -> None:
    if request.method not in MUTATING:
        return
    route = request.scope.get("route")
    action = getattr(route, "name", None) or f"{request.method} {request.url.path}"
    params = request.path_params
    target = "/".join(params[k] for k in ("project", "env", "app") if k in params) or str(
        params.get("token_id") or params.get("principal") or request.url.path
    )
    project = params.get("project")
    caller: Caller | None = getattr(request.state, "caller", None)
    cp = request.app.state.control_plane
    detail: dict[str, Any] = {"error": message[:_MESSAGE_MAX]}
    if caller is None:  # no valid token: every field below is the stranger's choice; keep little of it
        caller = Caller(principal="anonymous", token_id=None, scopes=frozenset(), request_id=_rid(request))
        budget: AnonymousAuditBudget = request.app.state.anonymous_audit
        write, suppressed, since = budget.admit(cp.ctx.clock())
        if suppressed:
            _write_refusal(
                cp, caller, action="audit.suppressed", target="anonymous", project=None, outcome="denied",
                detail={"suppressed": suppressed, "since": since.isoformat() if since else None},
            )  # fmt: skip
        if not write:
            return
        detail = {"error": message[:_ANON_MESSAGE_MAX]}
    _write_refusal(
        cp,
        caller,
        action=action[:_ACTION_MAX],
        target=target[:_TARGET_MAX],
        project=project if project and len(project) <= _PROJECT_MAX else None,
        outcome=outcome,
        detail=detail,
    )


def _write_refusal(cp: Any, caller: Caller, **row: Any) -> None:
    try:
        cp.audit.record_failure(caller, **row)
    except Exception:  # the refusal itself must still reach the client
        log.exception("could not write the audit record for a refused request")


def _rid(request: Request) -> str:
    return str(getattr(request.state, "request_id", "-"))


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
            # the registry token endpoint asks for basic credentials (api/auth.py basic_credentials)
            headers["WWW-Authenticate"] = getattr(request.state, "www_authenticate", "Bearer")
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
            problems.append(FieldProblem(".".join(loc), _validation_message(err, request)))
        _audit_refusal(request, "invalid", "request body is invalid")
        return JSONResponse(
            _body("invalid", "request is invalid", problems, request.state.request_id), status_code=422
        )

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "error")
        headers = dict(getattr(exc, "headers", None) or {})
        if exc.status_code == 405:  # Starlette names only the first route of the path; list them all
            headers["Allow"] = ", ".join(allowed_methods(request.app, request.scope))
        return JSONResponse(
            _body(code, str(exc.detail), [], request.state.request_id),
            status_code=exc.status_code,
            headers=headers,
        )

    app.state.anonymous_audit = AnonymousAuditBudget()
    app.add_exception_handler(YunzhouError, domain_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    # not an exception handler for Exception: Starlette re-raises after such a handler answers, and
    # uvicorn then resets the keep-alive connection (the client's next request on it fails)
    app.add_middleware(UnexpectedErrorMiddleware)


def allowed_methods(app: Any, scope: Scope) -> list[str]:
    """Every method the API documents at this path (HEAD with GET), for a 405's Allow header."""
    table: list[tuple[re.Pattern[str], set[str]]] | None = getattr(app.state, "allow_table", None)
    if table is None:
        table = []
        for template, operations in app.openapi().get("paths", {}).items():
            pattern = re.sub(r"\\{[^/]+?\\}", "[^/]+", re.escape(template))
            methods = {m.upper() for m in operations if m in _HTTP_METHODS}
            table.append((re.compile(pattern + "$"), methods | ({"HEAD"} if "GET" in methods else set())))
        app.state.allow_table = table
    path = str(scope.get("path", ""))
    return sorted({m for pattern, methods in table if pattern.match(path) for m in methods})


class UnexpectedErrorMiddleware:
    """The innermost middleware: an exception nothing else handled becomes a 500 JSON error (logged under
    the request id, a mutation audited) and is not re-raised, so the connection stays usable."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watch(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, watch)
        except Exception as exc:
            if started:  # too late for an error response: the connection has to go
                raise
            request = Request(scope, receive)
            log.exception(
                "unhandled error in %s %s (request %s)", request.method, request.url.path, _rid(request)
            )
            _audit_refusal(request, "error", f"internal error: {type(exc).__name__}")
            message = "internal error; the server log has details under this request id"
            body = _body("internal", message, [], _rid(request))
            await JSONResponse(body, status_code=500)(scope, receive, send)
