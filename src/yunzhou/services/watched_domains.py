"""The platform's watch list of registered domains (platform admins): add, list, remove; and what the
expiry checker needs — which domains are due for an RDAP lookup, and a place to record its result.

Intent here, action elsewhere: adding a domain stores it unchecked; ``reconcile/domain_expiry.py`` looks it
up (at once for a new one, then every few hours) and records the expiry or the error. One transaction +
audit per change.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select

from yunzhou.domain.errors import Conflict, Forbidden, NotFound, invalid
from yunzhou.domain.names import is_dns_name
from yunzhou.services.base import ServiceContext
from yunzhou.services.context import Caller, iso, record_audit
from yunzhou.store.models import WatchedDomain

MAX_DOMAINS = 1000
MAX_ERROR = 500  # characters of a lookup's error kept


def parse_registered_domain(value: object, field: str = "name") -> str:
    """A registered domain as a lower-case DNS name with at least two labels (``example.com``); a final dot
    is accepted. Internationalised names are written in their ASCII form (``xn--…``)."""
    text = value.strip().lower().removesuffix(".") if isinstance(value, str) else None
    if text is None or not is_dns_name(text) or "." not in text:
        raise invalid(
            field,
            "must be a registered domain such as example.com: labels of a-z, 0-9 and '-' separated by dots "
            "(at least two), at most 253 characters; IDNs in their xn-- form",
        )
    return text


def domain_view(row: WatchedDomain) -> dict[str, Any]:
    return {
        "name": row.name,
        "expires_at": iso(row.expires_at),
        "checked_at": iso(row.checked_at),
        "error": row.error,
        "created_at": iso(row.created_at),
        "created_by": row.created_by,
    }


class DomainWatchService:
    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx

    @staticmethod
    def _admin(caller: Caller) -> None:
        if not caller.is_admin:
            raise Forbidden("the registered-domain watch list is for platform admins")

    def add(self, caller: Caller, name: object) -> dict[str, Any]:
        """Watch ``name``; it is looked up by the expiry checker at once (``checked_at`` is null until)."""
        self._admin(caller)
        domain = parse_registered_domain(name)
        now = self.ctx.clock()
        with self.ctx.db.transaction() as s:
            if s.scalar(select(WatchedDomain.id).where(WatchedDomain.name == domain)) is not None:
                raise Conflict(f"domain {domain} is already watched")
            if (s.scalar(select(func.count()).select_from(WatchedDomain)) or 0) >= MAX_DOMAINS:
                raise invalid("name", f"at most {MAX_DOMAINS} domains are watched; remove one first")
            row = WatchedDomain(name=domain, created_at=now, created_by=caller.principal)
            s.add(row)
            record_audit(s, caller, now, action="domain.watch.add", target=domain, project=None)
            s.flush()
            return domain_view(row)

    def list_all(self, caller: Caller) -> list[dict[str, Any]]:
        self._admin(caller)
        with self.ctx.db.transaction() as s:
            return [domain_view(r) for r in s.scalars(select(WatchedDomain).order_by(WatchedDomain.name))]

    def remove(self, caller: Caller, name: object) -> None:
        self._admin(caller)
        domain = parse_registered_domain(name)
        with self.ctx.db.transaction() as s:
            row = s.scalar(select(WatchedDomain).where(WatchedDomain.name == domain))
            if row is None:
                raise NotFound(f"domain {domain} is not watched")
            s.delete(row)
            record_audit(
                s, caller, self.ctx.clock(), action="domain.watch.remove", target=domain, project=None
            )

    # ---- what the expiry checker needs (no caller: the server's own loop)
    def due(self, now: datetime, every: timedelta) -> list[str]:
        """Domains never looked up, or last looked up ``every`` ago or longer; never checked first."""
        with self.ctx.db.transaction() as s:
            rows = s.execute(
                select(WatchedDomain.name, WatchedDomain.checked_at)
                .where(or_(WatchedDomain.checked_at.is_(None), WatchedDomain.checked_at <= now - every))
                .order_by(WatchedDomain.checked_at.is_not(None), WatchedDomain.checked_at, WatchedDomain.name)
            ).all()
        return [name for name, _ in rows]

    def record(self, name: str, now: datetime, expires_at: datetime | None, error: str | None) -> None:
        """A lookup's outcome: the expiry (error cleared), or the error (the last known expiry kept)."""
        with self.ctx.db.transaction() as s:
            row = s.scalar(select(WatchedDomain).where(WatchedDomain.name == name))
            if row is None:  # removed while it was looked up
                return
            row.checked_at = now
            if error is None:
                row.expires_at, row.error = expires_at, None
            else:
                row.error = error[:MAX_ERROR]
