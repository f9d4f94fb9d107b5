"""Manual control of a progressive rollout: ``promote`` (skip the remaining steps) and ``abort``.

The command is intent like any other: it is written to the active rollout (``strategy.command``) with an
audit row in one transaction, and the app's reconcile work is woken; the runtime acts on it.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from yunzhou.domain.errors import Conflict, invalid
from yunzhou.services.apps import ACTIVE_STATES, WORK_KIND, work_key
from yunzhou.services.base import ServiceContext, get_app
from yunzhou.services.context import Caller, record_audit
from yunzhou.services.views import rollout_view
from yunzhou.store.leases import enqueue
from yunzhou.store.models import Release, Rollout

COMMANDS = ("promote", "abort")
PROGRESSIVE = ("canary", "blue-green")


class TrafficService:
    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx

    def rollout_command(
        self, caller: Caller, project: str, env: str, app: str, command: str
    ) -> dict[str, Any]:
        if command not in COMMANDS:
            raise invalid("command", f"must be one of: {', '.join(COMMANDS)}")
        now = self.ctx.clock()
        address = f"{project}/{env}/{app}"
        with self.ctx.db.transaction() as s:
            _, _, a = get_app(s, project, env, app)
            rollout = s.scalar(
                select(Rollout)
                .where(Rollout.app_id == a.id, Rollout.state.in_(ACTIVE_STATES))
                .order_by(Rollout.id.desc())
            )
            if rollout is None:
                raise Conflict(f"{address} has no rollout in progress to {command}")
            release = s.scalar(
                select(Release).where(Release.app_id == a.id, Release.number == rollout.to_release)
            )
            strategy = ((release.settings if release else {}) or {}).get("rollout", {}).get("strategy")
            if strategy not in PROGRESSIVE:
                raise Conflict(
                    f"rollout {rollout.id} of {address} is a {strategy or 'rolling'} update; "
                    f"only canary and blue-green rollouts can be {command}d"
                )
            rollout.strategy = {
                **(rollout.strategy or {}),
                "command": command,
                "command_by": caller.principal,
            }
            rollout.updated_at = now
            record_audit(
                s,
                caller,
                now,
                action=f"rollout.{command}",
                target=address,
                project=project,
                detail={"rollout": rollout.id, "release": rollout.to_release},
            )
            enqueue(s, WORK_KIND, work_key(a.id), now)
            s.flush()
            return rollout_view(rollout, address)
