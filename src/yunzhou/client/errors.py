"""Errors the client raises. Every HTTP or transport failure becomes one of these, never an httpx error."""

from __future__ import annotations

from typing import Any

from yunzhou.domain.errors import FieldProblem

_CODE_BY_STATUS = {
    400: "invalid",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    409: "conflict",
    422: "invalid",
    503: "temporary",
}


class ClientError(Exception):
    """Base of everything the client raises on purpose."""


class ApiError(ClientError):
    """The server answered with a non-2xx status (or could not be reached: status 0)."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        problems: list[FieldProblem] | None = None,
        request_id: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.problems = list(problems or [])
        self.request_id = request_id
        self.retry_after = retry_after

    def __str__(self) -> str:
        lines = [self.message, *(f"  - {problem}" for problem in self.problems)]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"ApiError(status={self.status}, code={self.code!r}, message={self.message!r})"


class ServerUnreachable(ApiError):
    """Nothing answered at the configured URL (connection refused, unknown host, …)."""

    def __init__(self, url: str, reason: str = "connection refused") -> None:
        super().__init__(
            0,
            "unreachable",
            f"The Yunzhou server is not reachable at {url} ({reason}). "
            "Start one with `yunzhou server` (or `yunzhou up`), or set YUNZHOU_URL to a running server.",
        )
        self.url = url


class WaitTimeout(ClientError):
    """A rollout did not finish before the deadline; ``rollout`` is the last state seen."""

    def __init__(self, rollout: dict[str, Any], timeout: float, idle_for: float | None = None) -> None:
        state = rollout.get("state", "unknown")
        unchanged = f" and unchanged for {idle_for:.0f}s" if idle_for is not None else ""
        super().__init__(
            f"rollout {rollout.get('id')} is still {state} after {timeout:.0f}s{unchanged}; "
            "it keeps going on the server — check it with `yunzhou rollouts`"
        )
        self.rollout = rollout
        self.timeout = timeout
        self.idle_for = idle_for  # set when it gave up because nothing changed for that long


def error_from_response(status: int, body: Any, text: str, header_request_id: str | None) -> ApiError:
    """Build an ApiError from an error response, tolerating bodies that do not follow the contract."""
    code = _CODE_BY_STATUS.get(status, "error")
    message = f"HTTP {status}"
    problems: list[FieldProblem] = []
    request_id = header_request_id
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        code = str(error.get("code") or code)
        message = str(error.get("message") or message)
        request_id = str(error.get("request_id") or request_id or "") or None
        for problem in error.get("problems") or []:
            if isinstance(problem, dict):
                problems.append(FieldProblem(str(problem.get("path", "")), str(problem.get("message", ""))))
    elif isinstance(body, dict) and isinstance(body.get("detail"), list):
        # A framework-level validation error that bypassed the API's error handler.
        message = "request is invalid"
        for item in body["detail"]:
            if isinstance(item, dict):
                loc = ".".join(str(part) for part in item.get("loc", []) if part != "body")
                problems.append(FieldProblem(loc, str(item.get("msg", ""))))
    elif isinstance(body, dict) and isinstance(body.get("detail"), str):
        message = body["detail"]
    elif text.strip():
        message = f"HTTP {status}: {text.strip()[:300]}"
    return ApiError(status, code, message, problems, request_id)
