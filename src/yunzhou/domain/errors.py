"""The one error tree. Every layer raises these; the API maps them to HTTP once.

- UserError       → 4xx (422 by default) with field paths: the request is wrong, retrying will not help.
- NotFound        → 404.
- Forbidden       → 403 / Unauthenticated → 401.
- Conflict        → 409: the request collides with current state (stale version, duplicate name).
- TemporaryError  → retried with backoff by reconcilers; 503 + Retry-After at the API.
- PermanentError  → recorded as a condition; the operation cannot succeed without a change of intent.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class FieldProblem:
    """One problem at one place in a document, e.g. ``containers.web.image: required``."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


@dataclass
class YunzhouError(Exception):
    message: str
    code: str = "error"
    problems: list[FieldProblem] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__init__(self.message)

    def __str__(self) -> str:
        if not self.problems:
            return self.message
        return self.message + "\n" + "\n".join(f"  - {p}" for p in self.problems)


@dataclass
class UserError(YunzhouError):
    code: str = "invalid"


@dataclass
class PayloadTooLarge(UserError):
    """→ 413: a request body over a configured limit (the message names it and its setting)."""

    code: str = "payload_too_large"


@dataclass
class NotFound(YunzhouError):
    code: str = "not_found"


@dataclass
class Unauthenticated(YunzhouError):
    code: str = "unauthenticated"


@dataclass
class Forbidden(YunzhouError):
    code: str = "forbidden"


@dataclass
class Conflict(YunzhouError):
    code: str = "conflict"


@dataclass
class TemporaryError(YunzhouError):
    code: str = "temporary"
    retry_after: float = 1.0


@dataclass
class PermanentError(YunzhouError):
    code: str = "permanent"


def invalid(path: str, message: str) -> UserError:
    """A single-field user error: ``invalid("replicas", "must be an integer 0-1000")``."""
    return UserError(f"{path}: {message}" if path else message, problems=[FieldProblem(path, message)])
