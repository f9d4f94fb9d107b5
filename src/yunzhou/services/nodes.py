"""Node autoscaling events: what the node autoscaler did on a cluster (added, removed, or could not add a
node, and why). They are audit rows (``cluster.node.add`` / ``.remove`` / ``.blocked`` by
``system:node-autoscaler``, target = the cluster's name), so they also show in `yunzhou audit`; this
service records them for the reconciler and lists one cluster's."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, Protocol

from sqlalchemy import select

from yunzhou.domain.access import Scope
from yunzhou.domain.errors import NotFound
from yunzhou.services.base import ServiceContext
from yunzhou.services.context import Caller, iso, record_audit
from yunzhou.store.models import AuditEvent, Cluster

NODE_AUTOSCALER = Caller(
    principal="system:node-autoscaler",
    token_id=None,
    scopes=frozenset({Scope.ADMIN}),
    request_id="node-autoscaler",
)
ACTION_PREFIX = "cluster.node."
MAX_LIMIT = 1000


class NodeEvent(Protocol):
    """One node action (the runtime's ``NodeAction`` has these fields)."""

    @property
    def action(self) -> str: ...  # add | remove | blocked

    @property
    def node(self) -> str: ...

    @property
    def reason(self) -> str: ...

    @property
    def at(self) -> float: ...  # unix seconds


class NodeEventService:
    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx

    def record(self, cluster: str, provider: str, events: Iterable[NodeEvent]) -> int:
        """One audit row per action, in one transaction; returns how many."""
        count = 0
        with self.ctx.db.transaction() as s:
            for e in events:
                record_audit(
                    s, NODE_AUTOSCALER, datetime.fromtimestamp(e.at, UTC),
                    action=ACTION_PREFIX + e.action, target=cluster, project=None,
                    detail={"node": e.node, "reason": e.reason, "provider": provider},
                )  # fmt: skip
                count += 1
        return count

    def list(self, cluster: str, limit: int = 100) -> list[dict[str, Any]]:
        """Newest first: time, action (add/remove/blocked), node, reason, provider."""
        q = (
            select(AuditEvent)
            .where(AuditEvent.action.like(ACTION_PREFIX + "%"), AuditEvent.target == cluster)
            .order_by(AuditEvent.id.desc())
            .limit(max(1, min(limit, MAX_LIMIT)))
        )
        with self.ctx.db.transaction() as s:
            rows = list(s.scalars(q))
            if not rows and s.scalar(select(Cluster.id).where(Cluster.name == cluster)) is None:
                raise NotFound(f"cluster {cluster!r} is not registered (see `yunzhou cluster list`)")
            return [
                {
                    "time": iso(e.time),
                    "action": e.action.removeprefix(ACTION_PREFIX),
                    "node": e.detail.get("node", ""),
                    "reason": e.detail.get("reason", ""),
                    "provider": e.detail.get("provider", ""),
                }
                for e in rows
            ]
