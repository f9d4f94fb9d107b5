"""What every use-case receives: who is calling, the clock, and the audit trail."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import Session

from yunzhou.domain.access import Role, Scope
from yunzhou.store.models import AuditEvent

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Caller:
    principal: str
    token_id: str | None
    scopes: frozenset[Scope]
    request_id: str = "-"
    roles: dict[str, Role] = field(default_factory=dict)

    @property
    def is_admin(self) -> bool:
        return Scope.ADMIN in self.scopes


SYSTEM = Caller(principal="system", token_id=None, scopes=frozenset({Scope.ADMIN}), request_id="system")


def record_audit(
    session: Session,
    caller: Caller,
    now: datetime,
    *,
    action: str,
    target: str,
    project: str | None,
    outcome: str = "success",
    detail: dict[str, Any] | None = None,
) -> None:
    """One audit row, in the caller's transaction: it commits or rolls back with the change itself."""
    session.add(
        AuditEvent(
            time=now,
            actor=caller.principal,
            token_id=caller.token_id,
            action=action,
            target=target,
            project=project,
            outcome=outcome,
            request_id=caller.request_id,
            detail=detail or {},
        )
    )


def iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z") if value else None
