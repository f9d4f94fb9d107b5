"""Registered Kubernetes clusters. Registering one contacts its API server (through a probe the composition
root injects — services never import a runtime) and stores the kubeconfig encrypted."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import func, select

from yunzhou.domain.errors import Conflict, NotFound, PermanentError, invalid
from yunzhou.domain.image_refs import check_registry_address
from yunzhou.domain.kubeconfig import check_kubeconfig
from yunzhou.domain.names import check_label, is_dns_name
from yunzhou.services.apps import WORK_KIND, work_key
from yunzhou.services.base import ServiceContext
from yunzhou.services.context import Caller, iso, record_audit
from yunzhou.store.leases import enqueue
from yunzhou.store.models import App, Cluster, Environment


@dataclass(frozen=True)
class ProbeResult:
    server: str
    version: str
    context: str


ClusterProbe = Callable[[str, dict[str, Any], str | None], ProbeResult]


class Sealer(Protocol):
    """Authenticated encryption for credentials kept in the database."""

    def seal(self, plaintext: bytes) -> str: ...

    def open(self, sealed: str) -> bytes: ...


def cluster_view(c: Cluster, environments: int) -> dict[str, Any]:
    return {
        "name": c.name,
        "server": c.server,
        "server_version": c.server_version,
        "context": c.context,
        "base_domain": c.base_domain,
        # host[:port] its nodes pull platform images from; None: the platform registry's own address
        "registry": c.registry_address,
        "environments": environments,
        "created_at": iso(c.created_at),
        "created_by": c.created_by,
        "version": c.version,
    }


class ClusterService:
    def __init__(
        self,
        ctx: ServiceContext,
        probe: ClusterProbe | None,
        sealer: Sealer | None,
        *,
        allow_exec: bool = False,
    ) -> None:
        self.ctx = ctx
        self.probe = probe
        self.sealer = sealer
        self.allow_exec = allow_exec  # the operator's YUNZHOU_KUBECONFIG_EXEC

    def add(
        self,
        caller: Caller,
        name: str,
        kubeconfig: object,
        context: str | None,
        base_domain: str | None,
        registry: str | None = None,
    ) -> dict[str, Any]:
        check_label(name, "name")
        if registry is not None:
            check_registry_address(registry, "registry")
        # before anything connects: nothing in it may run a command or read a file on this host
        doc = check_kubeconfig(kubeconfig, allow_exec=self.allow_exec)
        domain = base_domain or f"{name}.localhost"
        if not is_dns_name(domain):
            raise invalid("base_domain", "must be a lower-case DNS name such as apps.example.com")
        if self.probe is None or self.sealer is None:
            raise PermanentError("this server was started without Kubernetes support (no cluster probe)")
        with self.ctx.db.transaction() as s:
            if s.scalar(select(Cluster.id).where(Cluster.name == name)) is not None:
                raise Conflict(f"cluster {name!r} is already registered; remove it first to replace it")
        info = self.probe(name, doc, context)  # contacts the API server; raises a clear error if it can't
        now = self.ctx.clock()
        with self.ctx.db.transaction() as s:
            cluster = Cluster(
                name=name, server=info.server, server_version=info.version, context=info.context,
                base_domain=domain, kubeconfig_ciphertext=self.sealer.seal(json.dumps(doc).encode()),
                created_at=now, created_by=caller.principal, registry_address=registry,
            )  # fmt: skip
            s.add(cluster)
            s.flush()
            record_audit(
                s, caller, now, action="cluster.add", target=name, project=None,
                detail={"server": info.server, "version": info.version, "registry": registry},
            )  # fmt: skip
            return cluster_view(cluster, 0)

    def set_registry(self, caller: Caller, name: str, registry: str | None) -> dict[str, Any]:
        """The registry address the cluster's nodes pull platform images from (None: the platform
        registry's own). Every app on the cluster is reconciled again, which rolls its pods."""
        if registry is not None:
            check_registry_address(registry, "registry")
        now = self.ctx.clock()
        with self.ctx.db.transaction() as s:
            cluster = s.scalar(select(Cluster).where(Cluster.name == name))
            if cluster is None:
                raise NotFound(f"cluster {name!r} is not registered (see `yunzhou cluster list`)")
            before = cluster.registry_address
            cluster.registry_address = registry
            s.flush()
            record_audit(
                s, caller, now, action="cluster.update", target=name, project=None,
                detail={"registry": registry, "previous": before},
            )  # fmt: skip
            apps = s.scalars(
                select(App.id)
                .join(Environment, App.environment_id == Environment.id)
                .where(Environment.target == f"cluster:{name}")
            )
            for app_id in apps:
                enqueue(s, WORK_KIND, work_key(app_id), now)
            used = s.scalar(
                select(func.count()).select_from(Environment).where(Environment.target == f"cluster:{name}")
            )
            return cluster_view(cluster, used or 0)

    def list_clusters(self) -> list[dict[str, Any]]:
        with self.ctx.db.transaction() as s:
            counts = dict(
                s.execute(
                    select(Environment.target, func.count())
                    .where(Environment.target.like("cluster:%"))
                    .group_by(Environment.target)
                ).all()
            )
            return [
                cluster_view(c, counts.get(f"cluster:{c.name}", 0))
                for c in s.scalars(select(Cluster).order_by(Cluster.name))
            ]

    def remove(self, caller: Caller, name: str) -> None:
        now = self.ctx.clock()
        with self.ctx.db.transaction() as s:
            cluster = s.scalar(select(Cluster).where(Cluster.name == name))
            if cluster is None:
                raise NotFound(f"cluster {name!r} is not registered (see `yunzhou cluster list`)")
            used = s.scalar(
                select(func.count()).select_from(Environment).where(Environment.target == f"cluster:{name}")
            )
            if used:
                raise Conflict(f"cluster {name!r} is the target of {used} environment(s); delete them first")
            s.delete(cluster)
            record_audit(s, caller, now, action="cluster.remove", target=name, project=None)
