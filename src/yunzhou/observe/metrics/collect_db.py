"""What the scrape loop reads from the state store: replica counts, each release's declared metrics
endpoint (releases are immutable, so it is cached), and — for a control plane that does not run the local
target itself — the instances as the reconcilers last reported them."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, NamedTuple

from sqlalchemy import and_, case, func, or_, select

from yunzhou.domain.errors import UserError
from yunzhou.domain.metrics import parse_metrics_endpoint
from yunzhou.domain.score import parse_score
from yunzhou.observe.metrics.collect_instances import InstanceSample
from yunzhou.store import Database
from yunzhou.store.models import App, Environment, Instance, Project, Release, WatchedDomain, WorkItem


class ReleaseFacts(NamedTuple):
    metrics_path: str | None
    memory_limit_bytes: int | None
    cpu_limit_cores: float | None = None


class StateReader:
    def __init__(self, db: Database, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.db = db
        self.clock = clock
        self._facts: dict[tuple[str, int], ReleaseFacts] = {}
        self._lock = threading.Lock()

    def replicas(self) -> list[tuple[str, int, int]]:
        with self.db.transaction() as s:
            rows = s.execute(
                select(Project.name, Environment.name, App.name, App.replicas, App.ready_replicas)
                .join(Environment, App.environment_id == Environment.id)
                .join(Project, Environment.project_id == Project.id)
                .where(App.removing.is_(False))
            )
            return [(f"{p}/{e}/{a}", desired, ready) for p, e, a, desired, ready in rows]

    def release_facts(self, app: str, release: int) -> ReleaseFacts:
        """What ``app``'s release ``release`` declares: its metrics endpoint path, memory and CPU limits."""
        key = (app, release)
        with self._lock:
            if key in self._facts:
                return self._facts[key]
        project, env, name = app.split("/")
        with self.db.transaction() as s:
            row = s.execute(
                select(Release.settings, Release.score)
                .join(App, Release.app_id == App.id)
                .join(Environment, App.environment_id == Environment.id)
                .join(Project, Environment.project_id == Project.id)
                .where(Project.name == project, Environment.name == env, App.name == name)
                .where(Release.number == release)
            ).first()
        if row is None:  # not written yet (or gone): ask again next time
            return ReleaseFacts(None, None)
        facts = ReleaseFacts(_declared_path(row.settings), *_limits(row.score))
        with self._lock:  # releases never change once written
            self._facts[key] = facts
        return facts

    def metrics_path(self, app: str, release: int) -> str | None:
        return self.release_facts(app, release).metrics_path

    def with_endpoints(self, instances: Iterable[InstanceSample]) -> list[InstanceSample]:
        """The instances with what their release declares filled in (endpoint path, memory and CPU
        limits)."""
        out = []
        for inst in instances:
            facts = self.release_facts(inst.app, inst.release)
            out.append(
                replace(
                    inst,
                    metrics_path=inst.metrics_path or facts.metrics_path,
                    memory_limit_bytes=inst.memory_limit_bytes or facts.memory_limit_bytes,
                    cpu_limit_cores=inst.cpu_limit_cores or facts.cpu_limit_cores,
                )
            )
        return out

    def reported_instances(self, *, except_target: str | None = None) -> list[InstanceSample]:
        """Instances as last written by the reconcilers: every target's for a control plane without the
        local target, the cluster targets' (``except_target="local"``) for one that reads it live."""
        with self.db.transaction() as s:
            query = (
                select(Project.name, Environment.name, App.name, Instance)
                .join(App, Instance.app_id == App.id)
                .join(Environment, App.environment_id == Environment.id)
                .join(Project, Environment.project_id == Project.id)
            )
            if except_target is not None:
                query = query.where(Environment.target != except_target)
            rows = s.execute(query)
            return [
                InstanceSample(
                    app=f"{p}/{e}/{a}",
                    instance=i.instance_id,
                    release=i.release,
                    ready=i.ready,
                    cpu_seconds=i.cpu_seconds,
                    memory_bytes=i.memory_bytes,
                    restarts=i.restarts,
                    last_exit=i.last_exit,
                    port=i.port,
                )
                for p, e, a, i in rows
            ]

    def domain_expiries(self) -> list[tuple[str, float]]:
        """(domain, registration expiry as a Unix time) of each watched domain whose expiry is known."""
        with self.db.transaction() as s:
            rows = s.execute(
                select(WatchedDomain.name, WatchedDomain.expires_at).where(
                    WatchedDomain.expires_at.is_not(None)
                )
            ).all()
        return [(name, expires.timestamp()) for name, expires in rows if expires is not None]

    def queue_depth(self) -> dict[str, int]:
        """Work items due now and not leased, by kind."""
        now = self.clock()
        with self.db.transaction() as s:
            waiting = and_(
                WorkItem.due_at <= now,
                or_(WorkItem.lease_expires_at.is_(None), WorkItem.lease_expires_at <= now),
            )
            # every kind that has items, with 0 when none is waiting: the series never vanishes
            rows = s.execute(
                select(WorkItem.kind, func.sum(case((waiting, 1), else_=0))).group_by(WorkItem.kind)
            )
            return {kind: int(count) for kind, count in rows}


def _declared_path(settings: Any) -> str | None:
    if not isinstance(settings, dict):
        return None
    try:
        endpoint = parse_metrics_endpoint(settings.get("metrics"))
    except UserError:
        return None
    return None if endpoint is None else endpoint.path


def _limits(score: Any) -> tuple[int | None, float | None]:
    """The declared (memory bytes, CPU cores) limits of a release's (single) container; None without."""
    try:
        workload = parse_score(score)
    except UserError:
        return None, None
    limits = [c.resources.limits for c in workload.containers.values() if c.resources.limits]
    memory = [m.memory_bytes for m in limits if m.memory_bytes is not None]
    millicores = [m.millicores for m in limits if m.millicores is not None]
    return (sum(memory) if memory else None), (sum(millicores) / 1000 if millicores else None)
