"""Alert use-cases: rules and default-rule tunings at global/project/environment/app scope, receivers,
silences, active alerts, history and the app timeline — and what the evaluator needs from the store
(the rules to evaluate, their states). Healing actions are in ``services/healing.py``. One transaction +
audit per change."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from yunzhou.domain.access import Permission
from yunzhou.domain.alert_routing import Route, is_receiver_name, parse_receiver_config, parse_route
from yunzhou.domain.alerts import (
    ALERT_NAME,
    DEFAULT_RULES,
    DEFAULTS_BY_NAME,
    PLATFORM_RULES,
    PLATFORM_RULES_BY_NAME,
    AlertRule,
    AlertState,
    Matcher,
    Transition,
    parse_duration,
    parse_matchers,
    parse_override,
    parse_rule,
    render_default,
)
from yunzhou.domain.errors import Conflict, Forbidden, NotFound, UserError, invalid
from yunzhou.services.alert_deliveries import (
    DeliveryOutcome,
    deliveries,
    delivery_view,
    record_outcomes,
    refuse_receiver_to_self,
    stored_problem,
)
from yunzhou.services.base import ServiceContext, check_version, get_app, get_environment, get_project
from yunzhou.services.context import Caller, iso, record_audit
from yunzhou.store.models import (
    ActiveAlert,
    AlertDelivery,
    AlertEvent,
    AlertReceiver,
    AlertRuleHealth,
    AlertRuleRow,
    AlertSilence,
    App,
    Environment,
    Project,
)

MAX_LIMIT = 1000


@dataclass(frozen=True)
class RuleScope:
    """ "" project = global; "" env = the whole project; "" app = the whole environment."""

    project: str = ""
    env: str = ""
    app: str = ""

    def __post_init__(self) -> None:
        if (self.env and not self.project) or (self.app and not self.env):
            raise invalid("app" if self.app else "env", "a narrower scope needs the wider one named too")

    def __str__(self) -> str:
        return "/".join(p for p in (self.project, self.env, self.app) if p) or "global"

    def covers(self, project: str, env: str, app: str) -> bool:
        return all(
            mine in ("", theirs)
            for mine, theirs in ((self.project, project), (self.env, env), (self.app, app))
        )

    @property
    def rank(self) -> int:
        return sum(1 for p in (self.project, self.env, self.app) if p)


@dataclass(frozen=True)
class RuleInstance:
    """One rule as the evaluator runs it: a default rule for one app, or a stored rule."""

    key: str
    rule: AlertRule
    scope: RuleScope


@dataclass(frozen=True)
class Receiver:
    id: int
    project: str
    name: str
    kind: str
    config: Mapping[str, Any]
    route: Route
    problem: str = ""  # why the stored receiver cannot be used: each delivery fails with it, recorded


def _scope_of(row: AlertRuleRow | AlertSilence | AlertReceiver) -> RuleScope:
    if isinstance(row, AlertRuleRow):
        return RuleScope(row.project, row.env, row.app)
    return RuleScope(row.project)


def rule_row_view(r: AlertRuleRow) -> dict[str, Any]:
    return {
        "id": r.id,
        "scope": str(_scope_of(r)),
        "project": r.project or None,
        "env": r.env or None,
        "app": r.app or None,
        "name": r.name,
        "kind": r.kind,
        "spec": r.spec,
        "created_at": iso(r.created_at),
        "created_by": r.created_by,
        "updated_at": iso(r.updated_at),
        "version": r.version,
    }


def event_view(e: AlertEvent) -> dict[str, Any]:
    return {
        "id": e.id,
        "time": iso(e.time),
        "kind": e.kind,
        "project": e.project,
        "env": e.env,
        "app": e.app,
        "alertname": e.alertname,
        "state": e.state,
        "fingerprint": e.fingerprint,
        "release": e.release,
        "rule": e.rule_key,
        **e.detail,
    }


def silence_view(s: AlertSilence, now: datetime) -> dict[str, Any]:
    state = "expired" if s.ends_at <= now else ("active" if s.starts_at <= now else "pending")
    return {
        "id": s.id,
        "project": s.project or None,
        "matchers": s.matchers,
        "starts_at": iso(s.starts_at),
        "ends_at": iso(s.ends_at),
        "comment": s.comment,
        "created_by": s.created_by,
        "state": state,
    }


def receiver_view(r: AlertReceiver, delivery: AlertDelivery | None = None) -> dict[str, Any]:
    return {
        "name": r.name,
        "project": r.project or None,
        "kind": r.kind,
        "config": r.config,
        "route": r.route,
        "created_at": iso(r.created_at),
        "created_by": r.created_by,
        "version": r.version,
        "delivery": delivery_view(delivery),
    }


def active_view(a: ActiveAlert) -> dict[str, Any]:
    d = a.data
    return {
        "alertname": a.alertname,
        "state": a.state,
        "project": a.project,
        "env": a.env,
        "app": a.app,
        "labels": d["labels"],
        "annotations": d["annotations"],
        "value": d["value"],
        "active_at": d["active_at"],
        "fired_at": d["fired_at"],
        "fingerprint": a.fingerprint,
        "rule": a.rule_key,
    }


class AlertService:
    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx

    # ---- scope checks
    def _check_scope(self, s: Session, caller: Caller, scope: RuleScope) -> None:
        if not scope.project:
            if not caller.is_admin:
                raise Forbidden("global alert rules, receivers and silences are for platform admins")
            return
        if scope.env:
            get_environment(s, scope.project, scope.env)
        else:
            get_project(s, scope.project)

    def _audit(
        self, s: Session, caller: Caller, action: str, scope: RuleScope, detail: dict[str, Any]
    ) -> None:
        record_audit(
            s,
            caller,
            self.ctx.clock(),
            action=action,
            target=str(scope),
            project=scope.project or None,
            detail=detail,
        )

    # ---- rules
    def list_rules(self, caller: Caller, scope: RuleScope) -> list[dict[str, Any]]:
        """What is stored at exactly this scope."""
        with self.ctx.db.transaction() as s:
            self._check_readable(s, caller, scope)
            rows = s.scalars(
                select(AlertRuleRow)
                .where(AlertRuleRow.project == scope.project, AlertRuleRow.env == scope.env)
                .where(AlertRuleRow.app == scope.app)
                .order_by(AlertRuleRow.name)
            )
            health = {h.rule_key: h for h in s.scalars(select(AlertRuleHealth))}
            out = []
            for r in rows:
                h = health.get(f"rule:{r.id}")  # a tuning's health is per app: see effective_rules
                out.append(rule_row_view(r) | ({"health": h.health, "last_error": h.last_error} if h else {}))
            return out

    def _check_readable(self, s: Session, caller: Caller, scope: RuleScope) -> None:
        if scope.project:
            self._check_scope(s, caller, scope)

    def effective_rules(self, project: str, env: str, app: str) -> list[dict[str, Any]]:
        """The rules that apply to one app after every scope's tuning, as the evaluator runs them."""
        with self.ctx.db.transaction() as s:
            get_app(s, project, env, app)
            rows = list(s.scalars(select(AlertRuleRow)))
            health = {h.rule_key: h for h in s.scalars(select(AlertRuleHealth))}
        out = []
        for inst in _instances_for_app(rows, project, env, app):
            out.append(
                {
                    "key": inst.key,
                    "scope": str(inst.scope),
                    "default": inst.rule.alert in DEFAULTS_BY_NAME,
                    **inst.rule.to_dict(),
                    "health": health[inst.key].health if inst.key in health else "unknown",
                    "last_error": health[inst.key].last_error if inst.key in health else "",
                }
            )
        for d in DEFAULT_RULES:
            if not any(o["alert"] == d.alert for o in out):
                out.append(
                    {
                        "key": f"{d.alert}@{project}/{env}/{app}",
                        "alert": d.alert,
                        "default": True,
                        "enabled": False,
                    }
                )
        return out

    def put_rule(
        self, caller: Caller, scope: RuleScope, name: str, doc: object, version: int | None = None
    ) -> dict[str, Any]:
        """A default rule's name tunes it (threshold, window, for, enabled …); another name is a rule."""
        if not ALERT_NAME.match(name):
            raise invalid("name", "letters, digits and _ (e.g. HighErrorRate)")
        if name in PLATFORM_RULES_BY_NAME and scope.project:
            raise invalid("scope", f"{name} is a platform rule: tune it at the global scope only")
        if name in DEFAULTS_BY_NAME or name in PLATFORM_RULES_BY_NAME:
            kind, spec = "override", parse_override(doc, "rule")
        else:
            if isinstance(doc, Mapping) and doc.get("alert", name) != name:
                raise invalid("rule.alert", f"must be {name!r} (the name in the path) or left out")
            rule = parse_rule({**doc, "alert": name} if isinstance(doc, Mapping) else doc, "rule")
            kind, spec = "rule", rule.to_dict()
        now = self.ctx.clock()
        with self.ctx.db.transaction() as s:
            self._check_scope(s, caller, scope)
            if scope.app:  # a typo'd app would hold a rule that never runs (deleting one stays possible)
                get_app(s, scope.project, scope.env, scope.app)
            row = s.scalar(_rule_query(scope, name))
            if row is None:
                if version is not None:
                    raise Conflict(
                        f"rule {name} does not exist at {scope}; leave out the version to create it"
                    )
                row = AlertRuleRow(
                    project=scope.project,
                    env=scope.env,
                    app=scope.app,
                    name=name,
                    kind=kind,
                    spec=spec,
                    created_at=now,
                    created_by=caller.principal,
                    updated_at=now,
                )
                s.add(row)
            else:
                check_version(version, row.version, f"rule {name} at {scope}")
                row.kind, row.spec, row.updated_at = kind, spec, now
            self._audit(s, caller, "alert.rule.put", scope, {"name": name, "kind": kind, "spec": spec})
            s.flush()
            return rule_row_view(row)

    def delete_rule(self, caller: Caller, scope: RuleScope, name: str) -> None:
        with self.ctx.db.transaction() as s:
            self._check_scope(s, caller, scope)
            row = s.scalar(_rule_query(scope, name))
            if row is None:
                raise NotFound(f"no rule {name} at {scope}")
            s.delete(row)
            s.execute(delete(ActiveAlert).where(ActiveAlert.rule_key == f"rule:{row.id}"))
            self._audit(s, caller, "alert.rule.delete", scope, {"name": name})

    # ---- receivers
    def list_receivers(self, caller: Caller, project: str) -> list[dict[str, Any]]:
        with self.ctx.db.transaction() as s:
            self._check_readable(s, caller, RuleScope(project))
            rows = list(
                s.scalars(
                    select(AlertReceiver).where(AlertReceiver.project == project).order_by(AlertReceiver.name)
                )
            )
            outcome = deliveries(s, (r.id for r in rows))
            views = [receiver_view(r, outcome.get(r.id)) for r in rows]
        if not _may_write(caller, project):  # a webhook URL is a credential (Slack, DingTalk …)
            for v in views:
                if "url" in v["config"]:
                    url, v["config"] = v["config"]["url"], {**v["config"], "url": REDACTED}
                    if v["delivery"] and v["delivery"]["last_error"]:
                        v["delivery"]["last_error"] = v["delivery"]["last_error"].replace(str(url), REDACTED)
        return views

    def put_receiver(
        self, caller: Caller, project: str, name: str, kind: object, config: object, route: object
    ) -> dict[str, Any]:
        if not is_receiver_name(name):
            raise invalid("name", "a DNS label: lowercase letters, digits and -")
        cfg = parse_receiver_config(kind, config)
        parsed_route = parse_route(route)
        refuse_receiver_to_self(str(kind), cfg)  # resolves the host: on the API's worker thread
        now = self.ctx.clock()
        scope = RuleScope(project)
        with self.ctx.db.transaction() as s:
            self._check_scope(s, caller, scope)
            row = s.scalar(
                select(AlertReceiver).where(AlertReceiver.project == project, AlertReceiver.name == name)
            )
            if row is None:
                row = AlertReceiver(
                    project=project,
                    name=name,
                    kind=str(kind),
                    config=cfg,
                    route=parsed_route.to_dict(),
                    created_at=now,
                    created_by=caller.principal,
                )
                s.add(row)
            else:
                row.kind, row.config, row.route = str(kind), cfg, parsed_route.to_dict()
                s.execute(delete(AlertDelivery).where(AlertDelivery.receiver_id == row.id))  # a fresh start
            self._audit(s, caller, "alert.receiver.put", scope, {"name": name, "kind": kind})
            s.flush()
            return receiver_view(row)

    def delete_receiver(self, caller: Caller, project: str, name: str) -> None:
        scope = RuleScope(project)
        with self.ctx.db.transaction() as s:
            self._check_scope(s, caller, scope)
            row = s.scalar(
                select(AlertReceiver).where(AlertReceiver.project == project, AlertReceiver.name == name)
            )
            if row is None:
                raise NotFound(f"no receiver {name!r} in {scope}")
            s.delete(row)
            self._audit(s, caller, "alert.receiver.delete", scope, {"name": name})

    # ---- silences
    def create_silence(
        self,
        caller: Caller,
        project: str,
        matchers: object,
        *,
        duration: object = None,
        ends_at: datetime | None = None,
        starts_at: datetime | None = None,
        comment: str = "",
    ) -> dict[str, Any]:
        parsed = parse_matchers(matchers)
        now = self.ctx.clock()
        start = starts_at or now
        if ends_at is None:
            if duration is None:
                raise invalid("duration", "say how long (e.g. 2h) or give ends_at")
            ends_at = start + timedelta(seconds=parse_duration(duration, "duration"))
        if ends_at <= start or ends_at <= now:
            raise invalid("ends_at", "must be after starts_at and in the future")
        scope = RuleScope(project)
        with self.ctx.db.transaction() as s:
            self._check_scope(s, caller, scope)
            row = AlertSilence(
                project=project,
                matchers=[m.to_dict() for m in parsed],
                starts_at=start,
                ends_at=ends_at,
                comment=comment[:2000],
                created_at=now,
                created_by=caller.principal,
            )
            s.add(row)
            s.flush()
            self._audit(
                s, caller, "alert.silence.create", scope, {"id": row.id, "matchers": [str(m) for m in parsed]}
            )
            return silence_view(row, now)

    def list_silences(
        self, caller: Caller, project: str, *, include_expired: bool = False
    ) -> list[dict[str, Any]]:
        now = self.ctx.clock()
        with self.ctx.db.transaction() as s:
            self._check_readable(s, caller, RuleScope(project))
            q = select(AlertSilence).where(AlertSilence.project == project).order_by(AlertSilence.id.desc())
            if not include_expired:
                q = q.where(AlertSilence.ends_at > now)
            return [silence_view(r, now) for r in s.scalars(q)]

    def expire_silence(self, caller: Caller, project: str, silence_id: int) -> dict[str, Any]:
        now = self.ctx.clock()
        scope = RuleScope(project)
        with self.ctx.db.transaction() as s:
            self._check_scope(s, caller, scope)
            row = s.scalar(
                select(AlertSilence).where(AlertSilence.project == project, AlertSilence.id == silence_id)
            )
            if row is None:
                raise NotFound(f"no silence {silence_id} in {scope}")
            if row.ends_at > now:
                row.ends_at = now
                row.starts_at = min(row.starts_at, now)
            self._audit(s, caller, "alert.silence.expire", scope, {"id": silence_id})
            s.flush()
            return silence_view(row, now)

    # ---- reads: active alerts, history, the app's timeline
    def active(
        self, caller: Caller, project: str, env: str | None = None, app: str | None = None
    ) -> list[dict[str, Any]]:
        with self.ctx.db.transaction() as s:
            self._check_readable(s, caller, RuleScope(project))
            q = select(ActiveAlert).where(ActiveAlert.project == project).order_by(ActiveAlert.id)
            if env:
                q = q.where(ActiveAlert.env == env)
            if app:
                q = q.where(ActiveAlert.app == app)
            return [active_view(a) for a in s.scalars(q)]

    def history(
        self,
        caller: Caller,
        project: str,
        env: str | None = None,
        app: str | None = None,
        *,
        kind: str | None = None,
        limit: int = 100,
        before_id: int | None = None,
    ) -> list[dict[str, Any]]:
        """Newest first. kind: "alert" (pending/firing/resolved) or "action" (healing actions)."""
        with self.ctx.db.transaction() as s:
            self._check_readable(s, caller, RuleScope(project))
            q = select(AlertEvent).where(AlertEvent.project == project)
            if env:
                q = q.where(AlertEvent.env == env)
            if app:
                q = q.where(AlertEvent.app == app)
            if kind:
                q = q.where(AlertEvent.kind == kind)
            if before_id is not None:
                q = q.where(AlertEvent.id < before_id)
            q = q.order_by(AlertEvent.id.desc()).limit(max(1, min(limit, MAX_LIMIT)))
            return [event_view(e) for e in s.scalars(q)]

    def timeline(
        self, caller: Caller, project: str, env: str, app: str, limit: int = 100
    ) -> list[dict[str, Any]]:
        """The app's events: alerts firing and resolving, healing actions taken (pending is left out)."""
        with self.ctx.db.transaction() as s:
            get_app(s, project, env, app)
            q = (
                select(AlertEvent)
                .where(AlertEvent.project == project, AlertEvent.env == env, AlertEvent.app == app)
                .where(AlertEvent.state != "pending")
                .order_by(AlertEvent.id.desc())
                .limit(max(1, min(limit, MAX_LIMIT)))
            )
            return [event_view(e) for e in s.scalars(q)]

    # ---- what the evaluator needs
    def evaluation_plan(self) -> list[RuleInstance]:
        with self.ctx.db.transaction() as s:
            rows = list(s.scalars(select(AlertRuleRow)))
            apps = s.execute(
                select(Project.name, Environment.name, App.name)
                .join(Environment, Environment.project_id == Project.id)
                .join(App, App.environment_id == Environment.id)
                .where(App.removing.is_(False))
                .order_by(App.id)
            ).all()
        plan: list[RuleInstance] = []
        for p, e, a in apps:
            plan += [i for i in _instances_for_app(rows, p, e, a) if i.key.startswith(i.rule.alert + "@")]
        plan += _platform_instances(rows)
        for r in rows:
            if r.kind == "rule":
                plan.append(RuleInstance(f"rule:{r.id}", parse_rule(r.spec), _scope_of(r)))
        return plan

    def load_states(self) -> dict[str, dict[str, AlertState]]:
        out: dict[str, dict[str, AlertState]] = {}
        with self.ctx.db.transaction() as s:
            for a in s.scalars(select(ActiveAlert)):
                out.setdefault(a.rule_key, {})[a.fingerprint] = AlertState.from_dict(a.data)
        return out

    def save_evaluation(
        self, inst: RuleInstance, states: Mapping[str, AlertState], changes: Iterable[Transition]
    ) -> None:
        """The rule's new states and the transitions worth keeping, in one transaction."""
        now = self.ctx.clock()
        with self.ctx.db.transaction() as s:
            existing = {
                a.fingerprint: a
                for a in s.scalars(select(ActiveAlert).where(ActiveAlert.rule_key == inst.key))
            }
            for fp, row in existing.items():
                if fp not in states:
                    s.delete(row)
            for fp, st in states.items():
                project, env, app = where_of(inst.scope, st.labels)
                found = existing.get(fp)
                if found is None:
                    s.add(
                        ActiveAlert(
                            rule_key=inst.key,
                            fingerprint=fp,
                            alertname=inst.rule.alert,
                            state=st.state,
                            project=project,
                            env=env,
                            app=app,
                            data=st.to_dict(),
                            updated_at=now,
                        )
                    )
                elif found.data != st.to_dict() or found.state != st.state:
                    found.state, found.data, found.updated_at = st.state, st.to_dict(), now
            for c in changes:
                if c.to == "inactive":
                    continue
                project, env, app = where_of(inst.scope, c.alert.labels)
                s.add(
                    AlertEvent(
                        time=datetime.fromtimestamp(c.at, UTC),  # the evaluation's time, not this write's
                        kind="alert",
                        project=project,
                        env=env,
                        app=app,
                        rule_key=inst.key,
                        alertname=inst.rule.alert,
                        state=c.to,
                        fingerprint=c.alert.fingerprint,
                        release=desired_release(s, project, env, app),
                        detail={
                            "labels": dict(c.alert.labels),
                            "annotations": dict(c.alert.annotations),
                            "value": c.alert.value,
                        },
                    )
                )

    def forget(self, keys_in_plan: set[str]) -> None:
        """States of rules that no longer exist (deleted, switched off, app removed) are dropped silently."""
        with self.ctx.db.transaction() as s:
            s.execute(delete(ActiveAlert).where(ActiveAlert.rule_key.not_in(keys_in_plan)))
            s.execute(delete(AlertRuleHealth).where(AlertRuleHealth.rule_key.not_in(keys_in_plan)))

    def record_health(self, changed: Mapping[str, tuple[str, str]]) -> None:
        """Rules whose evaluation started or stopped failing in a pass: key → (health, last_error)."""
        if not changed:
            return
        now = self.ctx.clock()
        with self.ctx.db.transaction() as s:
            rows = {
                h.rule_key: h
                for h in s.scalars(select(AlertRuleHealth).where(AlertRuleHealth.rule_key.in_(changed)))
            }
            for key, (health, error) in changed.items():
                row = rows.get(key)
                if row is None:
                    s.add(AlertRuleHealth(rule_key=key, health=health, last_error=error, changed_at=now))
                elif (row.health, row.last_error) != (health, error):
                    row.health, row.last_error, row.changed_at = health, error, now

    def prune_history(self, keep: timedelta) -> int:
        """Drop history older than ``keep``; returns how many rows went."""
        with self.ctx.db.transaction() as s:
            result = s.execute(delete(AlertEvent).where(AlertEvent.time < self.ctx.clock() - keep))
            return int(getattr(result, "rowcount", 0) or 0)

    def receivers(self) -> list[Receiver]:
        """Every receiver, each checked as the API checks it: one stored invalid (before validation was
        strict, or written around the API) is returned with its problem instead of failing them all."""
        with self.ctx.db.transaction() as s:
            rows = list(s.scalars(select(AlertReceiver).order_by(AlertReceiver.id)))
        out = []
        for r in rows:
            problem = stored_problem(r.kind, r.config, r.route)
            try:
                route = parse_route(r.route)
            except UserError:  # unusable: fail (and say why) at once, not after the default group_wait
                route = Route(group_wait_s=0.0)
            out.append(Receiver(r.id, r.project, r.name, r.kind, r.config, route, problem))
        return out

    def record_deliveries(self, outcomes: Iterable[DeliveryOutcome]) -> None:
        with self.ctx.db.transaction() as s:
            record_outcomes(s, outcomes, self.ctx.clock())

    def active_silences(self, now: datetime) -> list[tuple[str, tuple[Matcher, ...]]]:
        with self.ctx.db.transaction() as s:
            rows = s.scalars(
                select(AlertSilence).where(AlertSilence.starts_at <= now, AlertSilence.ends_at > now)
            )
            return [(r.project, parse_matchers(r.matchers)) for r in rows]


REDACTED = "<secret>"  # what Alertmanager shows in place of a secret URL


def _may_write(caller: Caller, project: str) -> bool:
    role, needed = caller.roles.get(project), Permission.ALERT_WRITE.role
    return caller.is_admin or (role is not None and needed is not None and role.includes(needed))


def _rule_query(scope: RuleScope, name: str) -> Any:
    return select(AlertRuleRow).where(
        AlertRuleRow.project == scope.project,
        AlertRuleRow.env == scope.env,
        AlertRuleRow.app == scope.app,
        AlertRuleRow.name == name,
    )


def _instances_for_app(rows: Iterable[AlertRuleRow], project: str, env: str, app: str) -> list[RuleInstance]:
    """Default rules (tuned by overrides, least specific scope first) and the app-scoped custom rules."""
    applying = sorted(
        (r for r in rows if _scope_of(r).covers(project, env, app)), key=lambda r: _scope_of(r).rank
    )
    out: list[RuleInstance] = []
    for d in DEFAULT_RULES:
        overrides = [r.spec for r in applying if r.kind == "override" and r.name == d.alert]
        rule = render_default(d, project, env, app, overrides)
        if rule is not None:
            out.append(RuleInstance(f"{d.alert}@{project}/{env}/{app}", rule, RuleScope(project, env, app)))
    out += [
        RuleInstance(f"rule:{r.id}", parse_rule(r.spec), _scope_of(r)) for r in applying if r.kind == "rule"
    ]
    return out


def _platform_instances(rows: Iterable[AlertRuleRow]) -> list[RuleInstance]:
    """The platform default rules (certificate and domain expiry) after their global tuning."""
    out: list[RuleInstance] = []
    for d in PLATFORM_RULES:
        overrides = [
            r.spec for r in rows if r.kind == "override" and r.name == d.alert and not _scope_of(r).project
        ]
        rule = render_default(d, "", "", "", overrides)
        if rule is not None:
            out.append(RuleInstance(f"{d.alert}@platform", rule, RuleScope()))
    return out


def where_of(scope: RuleScope, labels: Mapping[str, str]) -> tuple[str, str, str]:
    """Which app an alert is about: the rule's scope wins over labels, so a project's rule never names (or
    acts on) another project's app. Labels fill in only below a scope they agree with: a series of
    shop/prod/web seen by a rule of project ``bank`` is about no app of bank (not bank/prod/web)."""
    out: list[str] = []
    agrees = True
    for mine, key in ((scope.project, "project"), (scope.env, "env"), (scope.app, "app")):
        theirs = labels.get(key, "")
        if mine:
            agrees = agrees and theirs in ("", mine)
            out.append(mine)
        else:
            out.append(theirs if agrees else "")
    return out[0], out[1], out[2]


def desired_release(s: Session, project: str, env: str, app: str) -> int | None:
    if not (project and env and app):
        return None
    return s.scalar(
        select(App.desired_release)
        .join(Environment, Environment.id == App.environment_id)
        .join(Project, Project.id == Environment.project_id)
        .where(Project.name == project, Environment.name == env, App.name == app)
    )
