"""Healing use-cases behind alert rules' actions: the action budget (cool-down, cap per hour), the
release a rollback returns to, a rolling restart or a restart of named instances, and the record of each
action taken, refused or failed in the app's timeline and the audit trail. One transaction each; the
reconciler does the work (observe/alerts/healing.py decides when)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from sqlalchemy import and_, func, select

from yunzhou.domain.alerts import AlertRule, AlertState
from yunzhou.domain.errors import Conflict, NotFound
from yunzhou.domain.plan import INSTANCE_RESTART
from yunzhou.services.alerts import desired_release
from yunzhou.services.apps import ACTIVE_STATES, AppService
from yunzhou.services.base import ServiceContext, get_app
from yunzhou.services.context import Caller, iso, record_audit
from yunzhou.services.views import rollout_view
from yunzhou.store.models import AlertEvent, Instance, Release, Rollout

HEALTHY_SEVERITY = "critical"  # a release during whose life an alert of this severity fired is not healthy


class HealingService:
    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx

    def action_budget(
        self, rule_key: str, project: str, env: str, app: str, rule: AlertRule
    ) -> tuple[int, str]:
        """How many actions may run now, and why not (more): the cool-down, or what is left of the cap."""
        now = self.ctx.clock()
        with self.ctx.db.transaction() as s:
            where = and_(
                AlertEvent.kind == "action",
                AlertEvent.rule_key == rule_key,
                AlertEvent.project == project,
                AlertEvent.env == env,
                AlertEvent.app == app,
                AlertEvent.state.in_(("done", "failed")),  # a failing action must not retry every pass
            )
            last = s.scalar(select(func.max(AlertEvent.time)).where(where))
            if last is not None and (now - last).total_seconds() < rule.cooldown_s:
                return 0, f"cooling down until {iso(last + timedelta(seconds=rule.cooldown_s))}"
            hour = (
                s.scalar(select(func.count()).where(where, AlertEvent.time > now - timedelta(hours=1))) or 0
            )
        left = max(0, rule.max_actions_per_hour - hour)
        return left, f"the cap of {rule.max_actions_per_hour} action(s) per hour is reached"

    def rollback_target(self, project: str, env: str, app: str) -> tuple[int | None, str]:
        """The newest release, other than the desired one, whose rollout succeeded and during whose life
        as the desired release no critical alert fired for the app — and why there is none, when the
        desired release already runs that release's content (an earlier rollback did its work)."""
        with self.ctx.db.transaction() as s:
            _, _, a = get_app(s, project, env, app)
            succeeded = set(
                s.scalars(
                    select(Rollout.to_release).where(Rollout.app_id == a.id, Rollout.state == "succeeded")
                )
            )
            fired = s.scalars(
                select(AlertEvent).where(
                    AlertEvent.kind == "alert", AlertEvent.state == "firing", AlertEvent.project == project,
                    AlertEvent.env == env, AlertEvent.app == app,
                )
            )  # fmt: skip
            unhealthy = {
                e.release for e in fired if e.detail.get("labels", {}).get("severity") == HEALTHY_SEVERITY
            }
            releases = list(
                s.scalars(select(Release).where(Release.app_id == a.id).order_by(Release.number.desc()))
            )
            desired = next(r for r in releases if r.number == a.desired_release)
            for r in releases:
                if r.number != desired.number and r.number in succeeded and r.number not in unhealthy:
                    if _same_content(r, desired):
                        return None, f"release {desired.number} already runs release {r.number}'s content"
                    return r.number, ""
        return None, "no earlier release is known healthy"

    def restart(self, caller: Caller, project: str, env: str, app: str, reason: str) -> dict[str, Any]:
        """A rolling restart: a new release with the desired release's content (cause "restart: …"), so
        the reconciler replaces every instance under the app's rollout strategy (maxSurge/maxUnavailable)."""
        with self.ctx.db.transaction() as s:
            _, e, a = get_app(s, project, env, app)
            if a.removing:
                raise Conflict(f"app {project}/{env}/{app} is being removed")
            current = s.scalar(
                select(Release).where(Release.app_id == a.id, Release.number == a.desired_release)
            )
            if current is None:
                raise NotFound(f"release {a.desired_release} of {project}/{env}/{app} not found")
            return AppService(self.ctx)._new_release(
                s, caller, project, e, a, app, score=current.score, settings=current.settings,
                artifact=current.artifact, image=current.image, config=current.config,
                cause=f"restart: {reason}"[:100],
                action="app.restart", replicas=None,
            )  # fmt: skip

    def restart_instances(
        self, caller: Caller, project: str, env: str, app: str, named: Iterable[str], reason: str
    ) -> tuple[dict[str, Any] | None, str]:
        """Replace only the ``named`` instances by fresh ones of the desired release: a rollout of kind
        ``restart-instances`` (the reconciler replaces them under the app's rollout strategy, so readiness
        and maxUnavailable hold). Returns the rollout — or None and why not: none of them runs any more,
        or another rollout is under way (it replaces instances itself)."""
        named = sorted(set(named))
        address = f"{project}/{env}/{app}"
        now = self.ctx.clock()
        with self.ctx.db.transaction() as s:
            _, _, a = get_app(s, project, env, app)
            if a.removing:
                raise Conflict(f"app {address} is being removed")
            running = set(s.scalars(select(Instance.instance_id).where(Instance.app_id == a.id)))
            wanted = set(named) & running
            if not wanted:
                return None, f"no instance of {address} is named {', '.join(named)} any more"
            active = s.scalar(
                select(Rollout)
                .where(Rollout.app_id == a.id, Rollout.state.in_(ACTIVE_STATES))
                .order_by(Rollout.id.desc())
            )
            if active is not None and active.kind != INSTANCE_RESTART:
                return None, f"rollout {active.id} ({active.kind}) of {address} is under way"
            if active is not None:  # it is superseded below: what it had left to replace carries over
                wanted |= set((active.strategy or {}).get("instances", ())) & running
            rollout = AppService(self.ctx)._start_rollout(
                s, caller, a, kind=INSTANCE_RESTART, to_release=a.desired_release,
                strategy={"instances": sorted(wanted)},
            )  # fmt: skip
            record_audit(
                s, caller, now, action="app.restart", target=address, project=project,
                detail={"instances": sorted(wanted), "release": a.desired_release,
                        "cause": f"restart: {reason}"[:100]},
            )  # fmt: skip
            s.flush()
            return rollout_view(rollout, address), ""

    def record_action(
        self,
        caller: Caller,
        rule_key: str,
        alert: AlertState,
        where: tuple[str, str, str],
        action: str,
        outcome: str,
        detail: dict[str, Any],
    ) -> None:
        """An action taken (done), refused (skipped) or failed, in the app's timeline and the audit trail."""
        project, env, app = where
        now = self.ctx.clock()
        with self.ctx.db.transaction() as s:
            full = {"action": action, "labels": dict(alert.labels), **detail}
            s.add(
                AlertEvent(
                    time=now,
                    kind="action",
                    project=project,
                    env=env,
                    app=app,
                    rule_key=rule_key,
                    alertname=alert.labels.get("alertname", ""),
                    state=outcome,
                    fingerprint=alert.fingerprint,
                    release=desired_release(s, project, env, app),
                    detail=full,
                )
            )
            record_audit(
                s,
                caller,
                now,
                action=f"alert.action.{action}",
                target=f"{project}/{env}/{app}",
                project=project,
                outcome="success" if outcome == "done" else outcome,
                detail=full,
            )


def _same_content(a: Release, b: Release) -> bool:
    return (a.score, a.settings, a.artifact, a.config) == (b.score, b.settings, b.artifact, b.config)
