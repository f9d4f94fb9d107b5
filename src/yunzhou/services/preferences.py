"""A caller's own preferences (the console's language), kept per principal so they follow the user."""

from __future__ import annotations

from typing import Any

from yunzhou.domain.preferences import FIELDS, parse_preferences
from yunzhou.services.base import ServiceContext
from yunzhou.services.context import Caller, record_audit
from yunzhou.store.models import UserPreference


def _view(row: UserPreference | None) -> dict[str, Any]:
    return {"language": row.language if row else None}


class PreferenceService:
    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx

    def get(self, caller: Caller) -> dict[str, Any]:
        """The caller's preferences; a field never chosen is ``None``."""
        with self.ctx.db.transaction() as s:
            return _view(s.get(UserPreference, caller.principal))

    def update(self, caller: Caller, body: dict[str, Any]) -> dict[str, Any]:
        """Set the fields in ``body`` (validated first: a rejected request writes nothing), audited."""
        changes = parse_preferences(body)
        now = self.ctx.clock()
        with self.ctx.db.transaction() as s:
            row = s.get(UserPreference, caller.principal)
            if row is None:
                row = UserPreference(principal=caller.principal, updated_at=now)
                s.add(row)
            for key in FIELDS:
                if key in changes:
                    setattr(row, key, changes[key])
            row.updated_at = now
            record_audit(
                s,
                caller,
                now,
                action="preferences.update",
                target=f"principal/{caller.principal}",
                project=None,
                detail=changes,
            )
            return _view(row)
