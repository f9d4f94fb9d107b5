"""Reading the audit trail, and recording requests that failed (outside their rolled-back transaction)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from yunzhou.services.base import ServiceContext
from yunzhou.services.context import Caller, record_audit
from yunzhou.services.views import audit_view
from yunzhou.store.models import AuditEvent

MAX_LIMIT = 1000


class AuditService:
    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx

    def record_failure(
        self,
        caller: Caller,
        *,
        action: str,
        target: str,
        project: str | None,
        outcome: str,
        detail: dict[str, Any],
    ) -> None:
        with self.ctx.db.transaction() as s:
            record_audit(
                s,
                caller,
                self.ctx.clock(),
                action=action,
                target=target,
                project=project,
                outcome=outcome,
                detail=detail,
            )

    def query(
        self,
        caller: Caller,
        *,
        project: str | None = None,
        actor: str | None = None,
        action: str | None = None,
        outcome: str | None = None,
        limit: int = 100,
        before_id: int | None = None,
    ) -> list[dict[str, Any]]:
        """Admins see everything; others see events of their projects and their own actions."""
        q = select(AuditEvent).order_by(AuditEvent.id.desc()).limit(max(1, min(limit, MAX_LIMIT)))
        if project is not None:
            q = q.where(AuditEvent.project == project)
        if actor is not None:
            q = q.where(AuditEvent.actor == actor)
        if action is not None:
            q = q.where(AuditEvent.action == action)
        if outcome is not None:
            q = q.where(AuditEvent.outcome == outcome)
        if before_id is not None:
            q = q.where(AuditEvent.id < before_id)
        if not caller.is_admin:
            visible = list(caller.roles)
            q = q.where(
                (AuditEvent.project.in_(visible))
                | ((AuditEvent.actor == caller.principal) & AuditEvent.project.is_(None))
            )
        with self.ctx.db.transaction() as s:
            return [audit_view(e) for e in s.scalars(q)]
