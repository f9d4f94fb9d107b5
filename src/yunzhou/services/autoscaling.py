"""Autoscaling use-cases: which apps the local autoscaler drives, applying its decisions through the normal
scale path (desired replicas + rollout + audit), and the decision history."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from yunzhou.domain.access import Scope
from yunzhou.domain.autoscale import AutoscalingPolicy
from yunzhou.domain.errors import YunzhouError
from yunzhou.domain.settings import parse_settings
from yunzhou.services.apps import AppService
from yunzhou.services.base import ServiceContext, get_app
from yunzhou.services.context import Caller
from yunzhou.store.models import App, AutoscaleDecision, Environment, Project, Release

# The autoscaler scales as a system principal, so the audit log says who changed the count.
AUTOSCALER_CALLER = Caller(
    principal="system:autoscaler", token_id=None, scopes=frozenset({Scope.ADMIN}), request_id="autoscaler"
)


@dataclass(frozen=True)
class AutoscaleTarget:
    app_id: int
    project: str
    env: str
    app: str
    replicas: int
    version: int
    release: int
    policy: AutoscalingPolicy


class AutoscalingService:
    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx

    def targets(self, target_kind: str = "local") -> list[AutoscaleTarget]:
        """Apps on ``target_kind`` environments whose desired release has an ``autoscaling:`` policy."""
        out: list[AutoscaleTarget] = []
        with self.ctx.db.transaction() as s:
            rows = s.execute(
                select(App, Environment, Project, Release)
                .join(Environment, App.environment_id == Environment.id)
                .join(Project, Environment.project_id == Project.id)
                .join(Release, (Release.app_id == App.id) & (Release.number == App.desired_release))
                .where(App.removing.is_(False))
            ).all()
            for a, e, p, r in rows:
                if e.target != target_kind or not (r.settings or {}).get("autoscaling"):
                    continue
                try:
                    policy = parse_settings(r.settings).autoscaling
                except YunzhouError:
                    continue  # a release is validated when made; an older format is skipped, not fatal
                if policy is not None:
                    out.append(
                        AutoscaleTarget(a.id, p.name, e.name, a.name, a.replicas, a.version, r.number, policy)
                    )
        return out

    def record(self, target: AutoscaleTarget, decision: dict[str, Any], *, apply: bool) -> bool:
        """Store one decision; with ``apply`` and a new count, scale the app through the normal path
        (desired replicas, a scale rollout, an ``app.scale`` audit row by ``system:autoscaler``).
        Returns whether the count was applied (a concurrent change of the app wins: not applied)."""
        applied = False
        if apply and decision["desired"] != decision["current"]:
            try:
                AppService(self.ctx).scale(
                    AUTOSCALER_CALLER,
                    target.project,
                    target.env,
                    target.app,
                    decision["desired"],
                    target.version,
                )
                applied = True
            except YunzhouError as exc:
                decision = {**decision, "reason": f"{decision['reason']} (not applied: {exc.message})"}
        with self.ctx.db.transaction() as s:
            s.add(
                AutoscaleDecision(
                    app_id=target.app_id,
                    time=datetime.fromtimestamp(decision["time"], UTC),
                    current=decision["current"],
                    desired=decision["desired"],
                    applied=applied,
                    mode=decision["mode"][:80],
                    reason=decision["reason"],
                    inputs=decision.get("inputs", {}),
                )
            )
        return applied

    def decisions(self, project: str, env: str, app: str, limit: int = 100) -> list[dict[str, Any]]:
        with self.ctx.db.transaction() as s:
            _, _, a = get_app(s, project, env, app)
            rows = s.scalars(
                select(AutoscaleDecision)
                .where(AutoscaleDecision.app_id == a.id)
                .order_by(AutoscaleDecision.time.desc(), AutoscaleDecision.id.desc())
                .limit(max(1, min(limit, 1000)))
            ).all()
            return [
                {
                    "time": r.time.isoformat(),
                    "current": r.current,
                    "desired": r.desired,
                    "applied": r.applied,
                    "mode": r.mode,
                    "reason": r.reason,
                    "inputs": r.inputs,
                }
                for r in rows
            ]
