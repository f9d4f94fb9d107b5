"""What the scrape loop reads from the state store: replica counts, each release's declared metrics
endpoint (releases are immutable, so it is cached), and — for a control plane that does not run the local
target itself — the instances as the reconcilers last reported them."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, case, func, or_, select

from yunzhou.domain.errors import UserError
from yunzhou.domain.metrics import parse_metrics_endpoint
from yunzhou.observe.metrics.collect_instances import InstanceSample
from yunzhou.store import Database
from yunzhou.store.models import App, Environment, Instance, Project, Release, WorkItem


class StateReader:
    def __init__(self, db: Database, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.db = db
        self.clock = clock
        self._endpoints: dict[tuple[str, int], str | None] = {}
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

    def metrics_path(self, app: str, release: int) -> str | None:
        """The path of the endpoint ``app``'s release ``release`` declares, or None."""
        key = (app, release)
        with self._lock:
            if key in self._endpoints:
                return self._endpoints[key]
        project, env, name = app.split("/")
        with self.db.transaction() as s:
            settings = s.scalar(
                select(Release.settings)
                .join(App, Release.app_id == App.id)
                .join(Environment, App.environment_id == Environment.id)
                .join(Project, Environment.project_id == Project.id)
                .where(Project.name == project, Environment.name == env, App.name == name)
                .where(Release.number == release)
            )
        path = _declared_path(settings)
        if settings is not None:  # releases never change once written; one not yet written may come
            with self._lock:
                self._endpoints[key] = path
        return path

    def with_endpoints(self, instances: Iterable[InstanceSample]) -> list[InstanceSample]:
        """The instances with ``metrics_path`` filled in from their release's settings."""
        out = []
        for inst in instances:
            path = inst.metrics_path or self.metrics_path(inst.app, inst.release)
            out.append(inst if path == inst.metrics_path else _replace_path(inst, path))
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


def _replace_path(inst: InstanceSample, path: str | None) -> InstanceSample:
    return replace(inst, metrics_path=path)
