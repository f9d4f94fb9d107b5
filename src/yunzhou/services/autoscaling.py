"""Autoscaling use-cases: which apps the local autoscaler drives, applying its decisions through the normal
scale path (desired replicas + rollout + audit), and the decision history."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from yunzhou.domain.access import Scope
from yunzhou.domain.autoscale import AutoscalingPolicy
from yunzhou.domain.errors import FieldProblem, NotFound, TemporaryError, UserError, YunzhouError
from yunzhou.domain.settings import MAX_REPLICAS, parse_settings
from yunzhou.services.apps import AppService
from yunzhou.services.base import ServiceContext, get_app
from yunzhou.services.context import Caller, record_audit
from yunzhou.store.models import App, AutoscaleDecision, Environment, Project, Release, ScaleHook

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
        """Apps on ``target_kind`` environments whose desired release has an ``autoscaling:`` policy
        (``cluster``: any ``cluster:NAME`` target)."""
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
                on_target = e.target == target_kind or e.target.startswith(f"{target_kind}:")
                if not on_target or not (r.settings or {}).get("autoscaling"):
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


HOOK_ACTIONS = ("up", "down", "set")


class RateLimited(TemporaryError):
    """A scale hook called again within its minimum interval (503 with Retry-After at the API)."""


def _hook_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _hook_view(h: ScaleHook) -> dict[str, Any]:
    return {
        "id": h.id,
        "action": h.action,
        "step": h.step,
        "replicas": h.replicas,
        "min_interval_seconds": h.min_interval_seconds,
        "created_at": h.created_at.isoformat(),
        "created_by": h.created_by,
        "last_used_at": h.last_used_at.isoformat() if h.last_used_at else None,
        "revoked": h.revoked_at is not None,
    }


class ScaleHookService:
    """Secret URLs that scale one app: created and revoked by members, fired by anyone holding the URL."""

    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx

    def create(
        self,
        caller: Caller,
        project: str,
        env: str,
        app: str,
        *,
        action: object,
        step: object = 1,
        replicas: object = None,
        min_interval_seconds: object = 10,
    ) -> dict[str, Any]:
        problems: list[FieldProblem] = []
        if action not in HOOK_ACTIONS:
            problems.append(FieldProblem("action", f"{action!r} is not allowed; allowed: up, down, set"))
        if isinstance(step, bool) or not isinstance(step, int) or not 1 <= step <= 100:
            problems.append(FieldProblem("step", "must be an integer 1-100"))
        if action == "set" and (
            isinstance(replicas, bool) or not isinstance(replicas, int) or not 0 <= replicas <= MAX_REPLICAS
        ):
            problems.append(FieldProblem("replicas", f"required for set: an integer 0-{MAX_REPLICAS}"))
        if action != "set" and replicas is not None:
            problems.append(FieldProblem("replicas", "only for action set"))
        interval = min_interval_seconds
        if isinstance(interval, bool) or not isinstance(interval, int) or not 1 <= interval <= 3600:
            problems.append(FieldProblem("min_interval_seconds", "must be an integer 1-3600"))
        if problems:
            raise UserError("the scale hook is invalid", problems=problems)
        assert isinstance(step, int)
        assert isinstance(interval, int)
        set_to = replicas if action == "set" and isinstance(replicas, int) else None
        token = secrets.token_urlsafe(32)
        now = self.ctx.clock()
        with self.ctx.db.transaction() as s:
            _, _, a = get_app(s, project, env, app)
            hook = ScaleHook(
                id=secrets.token_hex(8),
                app_id=a.id,
                action=str(action),
                step=step,
                replicas=set_to,
                min_interval_seconds=interval,
                secret_hash=_hook_hash(token),
                created_at=now,
                created_by=caller.principal,
            )
            s.add(hook)
            record_audit(
                s, caller, now, action="scale_hook.create", target=f"{project}/{env}/{app}", project=project,
                detail={"hook": hook.id, "action": hook.action, "step": hook.step, "replicas": hook.replicas},
            )  # fmt: skip
            s.flush()
            return {**_hook_view(hook), "path": f"/api/v1/hooks/scale/{token}", "token": token}

    def list(self, project: str, env: str, app: str) -> list[dict[str, Any]]:
        with self.ctx.db.transaction() as s:
            _, _, a = get_app(s, project, env, app)
            rows = s.scalars(select(ScaleHook).where(ScaleHook.app_id == a.id).order_by(ScaleHook.created_at))
            return [_hook_view(h) for h in rows]

    def revoke(self, caller: Caller, project: str, env: str, app: str, hook_id: str) -> dict[str, Any]:
        now = self.ctx.clock()
        with self.ctx.db.transaction() as s:
            _, _, a = get_app(s, project, env, app)
            hook = s.scalar(select(ScaleHook).where(ScaleHook.app_id == a.id, ScaleHook.id == hook_id))
            if hook is None:
                raise NotFound(f"scale hook {hook_id!r} of {project}/{env}/{app} not found")
            if hook.revoked_at is None:
                hook.revoked_at = now
            record_audit(
                s, caller, now, action="scale_hook.revoke", target=f"{project}/{env}/{app}", project=project,
                detail={"hook": hook.id},
            )  # fmt: skip
            s.flush()
            return _hook_view(hook)

    def fire(self, token: str) -> dict[str, Any]:
        """Scale the hook's app within its autoscaling min/max (0-1000 without a policy). Unknown and
        revoked hooks are NotFound alike; a second call within ``min_interval_seconds`` is refused."""
        now = self.ctx.clock()
        with self.ctx.db.transaction() as s:
            hook = s.scalar(select(ScaleHook).where(ScaleHook.secret_hash == _hook_hash(token)))
            if hook is None or hook.revoked_at is not None:
                raise NotFound("unknown or revoked scale hook")
            if hook.last_used_at is not None:
                wait = hook.min_interval_seconds - (now - hook.last_used_at).total_seconds()
                if wait > 0:
                    raise RateLimited(
                        f"this hook was used {hook.min_interval_seconds - wait:.0f}s ago", retry_after=wait
                    )
            hook.last_used_at = now
            a = s.get(App, hook.app_id)
            assert a is not None
            e = s.get(Environment, a.environment_id)
            assert e is not None
            release = s.scalar(
                select(Release).where(Release.app_id == a.id, Release.number == a.desired_release)
            )
            policy = parse_settings(release.settings).autoscaling if release is not None else None
            lo, hi = (policy.min_replicas, policy.max_replicas) if policy else (0, MAX_REPLICAS)
            wanted = {"up": a.replicas + hook.step, "down": a.replicas - hook.step}.get(
                hook.action, hook.replicas
            )
            target = (
                e.project.name,
                e.name,
                a.name,
                a.version,
                a.replicas,
                min(hi, max(lo, int(wanted or 0))),
                hook.id,
            )
        project, env, app, version, before, replicas, hook_id = target
        caller = Caller(
            principal=f"scale-hook:{hook_id}",
            token_id=None,
            scopes=frozenset({Scope.ADMIN}),
            request_id=hook_id,
        )
        if replicas != before:
            AppService(self.ctx).scale(caller, project, env, app, replicas, version)
        return {"app": f"{project}/{env}/{app}", "previous": before, "replicas": replicas, "hook": hook_id}
