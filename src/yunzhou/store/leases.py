"""Leased work items: several control-plane workers share reconcile work safely.

A work item is (kind, key). Enqueueing bumps its generation and makes it due now. A worker leases due
items (token + expiry); finishing with a stale generation leaves the item due again, so intent recorded
while a pass was running is never lost. An expired lease is simply leased again by someone else.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from yunzhou.store.models import WorkItem


@dataclass(frozen=True)
class Lease:
    kind: str
    key: str
    token: str
    generation: int
    attempts: int


def enqueue(session: Session, kind: str, key: str, now: datetime) -> None:
    item = session.scalar(select(WorkItem).where(WorkItem.kind == kind, WorkItem.key == key))
    if item is None:
        session.add(WorkItem(kind=kind, key=key, due_at=now, generation=1, attempts=0))
    else:
        item.generation += 1
        item.due_at = now
        item.attempts = 0


def lease_due(session: Session, kind: str, now: datetime, ttl: timedelta, limit: int = 10) -> list[Lease]:
    """Take up to ``limit`` due, unleased (or lease-expired) items. Compare-and-set per row."""
    candidates = session.scalars(
        select(WorkItem)
        .where(
            WorkItem.kind == kind,
            WorkItem.due_at <= now,
            or_(WorkItem.lease_expires_at.is_(None), WorkItem.lease_expires_at <= now),
        )
        .order_by(WorkItem.due_at)
        .limit(limit)
    ).all()
    leases: list[Lease] = []
    for item in candidates:
        token = secrets.token_hex(16)
        taken = session.execute(
            update(WorkItem)
            .where(
                WorkItem.id == item.id,
                or_(WorkItem.lease_expires_at.is_(None), WorkItem.lease_expires_at <= now),
            )
            .values(lease_token=token, lease_expires_at=now + ttl)
            .execution_options(synchronize_session=False)
        )
        if taken.rowcount == 1:  # type: ignore[attr-defined]
            leases.append(Lease(item.kind, item.key, token, item.generation, item.attempts))
    return leases


def heartbeat(session: Session, lease: Lease, now: datetime, ttl: timedelta) -> bool:
    res = session.execute(
        update(WorkItem)
        .where(WorkItem.kind == lease.kind, WorkItem.key == lease.key, WorkItem.lease_token == lease.token)
        .values(lease_expires_at=now + ttl)
        .execution_options(synchronize_session=False)
    )
    return res.rowcount == 1  # type: ignore[attr-defined,no-any-return]


def release(
    session: Session,
    lease: Lease,
    now: datetime,
    *,
    requeue_after: timedelta | None,
    error: str | None = None,
) -> None:
    """End a lease. With ``requeue_after`` the item is due again then; otherwise it is done — unless
    new intent arrived meanwhile (generation moved on), in which case it stays due now."""
    item = session.scalar(
        select(WorkItem).where(
            WorkItem.kind == lease.kind, WorkItem.key == lease.key, WorkItem.lease_token == lease.token
        )
    )
    if item is None:
        return  # lease lost to someone else; their pass wins
    item.lease_token = None
    item.lease_expires_at = None
    item.last_error = error
    item.attempts = lease.attempts + 1 if error else 0
    if item.generation != lease.generation:
        item.due_at = now
    elif requeue_after is not None:
        item.due_at = now + requeue_after
    else:
        session.delete(item)
