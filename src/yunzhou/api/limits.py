"""Every request body is bounded before it is read (docs/api.md, "Limits").

``BodyLimitMiddleware`` wraps each request's ``receive`` with a counter whose limit depends on what the
path takes: an archive upload, the console's deploy form (which may carry one), another console form, or
JSON. Nothing is read here; whoever reads the body first (FastAPI, a route streaming an upload, a console
form) gets ``PayloadTooLarge`` (413, naming the limit and its setting) as soon as a declared
Content-Length exceeds the limit, or as soon as the bytes received (chunked bodies too) do.

Reading is lazy on purpose: a route authenticates before anything reads its body (``auth.operation``,
the console's form check), so a request without valid credentials is refused without its body being read.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from yunzhou.domain.errors import FieldProblem, PayloadTooLarge
from yunzhou.domain.limits import Limits, format_bytes

API_PREFIX = "/api/"
ARTIFACT_UPLOAD = re.compile(r"^/api/v1/artifacts/?$")
STACK_IMPORT = re.compile(r"^/api/v1/stacks/import/?$")
CONSOLE_DEPLOY = re.compile(r"^/projects/[^/]+/[^/]+/deploy/?$")  # web/deploy.py: Score + an archive


def body_limit(path: str, limits: Limits) -> tuple[int, str]:
    """(bytes, the limit's description) for a request to ``path``."""
    if ARTIFACT_UPLOAD.match(path):
        return limits.artifact_body, f"an archive upload may be at most {limits.describe('artifact_body')}"
    if STACK_IMPORT.match(path):
        return (
            limits.stack_archive_body,
            f"a stack archive may be at most {limits.describe('stack_archive_body')}",
        )
    if path.startswith(API_PREFIX):
        return limits.json_body, f"a JSON request may be at most {limits.describe('json_body')}"
    if CONSOLE_DEPLOY.match(path):
        total = limits.artifact_body + limits.form_body
        return total, (
            f"the deploy form may be at most {format_bytes(total)} ({limits.describe('artifact_body')} "
            f"for the archive + {limits.describe('form_body')} for the rest)"
        )
    return limits.form_body, f"a console form may be at most {limits.describe('form_body')}"


def too_large(size: int, limit: str, *, declared: bool) -> PayloadTooLarge:
    told = f"is {format_bytes(size)}" if declared else f"passed {format_bytes(size)}"
    message = f"the request body {told}: {limit}"
    return PayloadTooLarge(message, problems=[FieldProblem("body", message)])


class BodyLimitMiddleware:
    """Bounds every HTTP request body; ``limits`` is read per request (the server's current settings)."""

    def __init__(self, app: ASGIApp, limits: Callable[[], Limits]) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit, described = body_limit(scope["path"], self.limits())
        declared = _content_length(scope)
        received = 0

        async def bounded() -> Message:
            nonlocal received
            if declared is not None and declared > limit:
                raise too_large(declared, described, declared=True)  # refused before reading a byte
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise too_large(received, described, declared=False)
            return message

        await self.app(scope, bounded, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
