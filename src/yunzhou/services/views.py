"""Plain-data views of stored objects: the shapes the API returns (see docs/api.md)."""

from __future__ import annotations

from typing import Any

from yunzhou.domain.names import default_host
from yunzhou.domain.plan import INSTANCE_HEALTH
from yunzhou.services.context import iso
from yunzhou.store.models import App, AuditEvent, Environment, Instance, Project, Release, Rollout, Token


def project_view(p: Project) -> dict[str, Any]:
    return {
        "name": p.name,
        "display_name": p.display_name,
        "created_at": iso(p.created_at),
        "version": p.version,
    }


def environment_view(e: Environment, project: str) -> dict[str, Any]:
    return {
        "project": project,
        "name": e.name,
        "target": e.target,
        "namespace": e.namespace,
        "require_signed_images": e.require_signed_images,
        "egress": e.egress,
        "names": e.names,  # the DNS naming rule (docs/names.md); None: no records
        "tls": e.tls or "off",
        "created_at": iso(e.created_at),
        "version": e.version,
    }


def rollout_view(r: Rollout, address: str) -> dict[str, Any]:
    return {
        "id": r.id,
        "app": address,
        "kind": r.kind,
        "from_release": r.from_release,
        "to_release": r.to_release,
        "replicas": r.replicas,
        "strategy": r.strategy,
        "state": r.state,
        "message": r.message,
        "created_at": iso(r.created_at),
        "created_by": r.created_by,
        "updated_at": iso(r.updated_at),
    }


def app_view(
    a: App, project: str, env: str, *, rollout: Rollout | None, router_base: str, base_domain: str
) -> dict[str, Any]:
    address = f"{project}/{env}/{a.name}"
    return {
        "project": project,
        "env": env,
        "name": a.name,
        "address": address,
        "current_release": a.current_release,
        "desired_release": a.desired_release,
        "replicas": a.replicas,
        "ready_replicas": a.ready_replicas,
        "status": "removing" if a.removing else a.status,
        "route": f"http://{default_host(a.name, env, project, base_domain)}{router_base}",
        "conditions": [{k: v for k, v in c.items() if k != "diagnosis"} for c in a.conditions],
        "diagnosis": _diagnosis(a.conditions),
        "rollout": rollout_view(rollout, address) if rollout else None,
        "created_at": iso(a.created_at),
        "updated_at": iso(a.updated_at),
        "version": a.version,
    }


def _diagnosis(conditions: list[Any]) -> dict[str, Any] | None:
    """Why the app's instances do not serve (the InstanceHealth condition's detail), None when they do."""
    for c in conditions:
        if c.get("type") == INSTANCE_HEALTH and c.get("status") == "False" and c.get("diagnosis"):
            return {"reason": c.get("reason"), "message": c.get("message"), **c["diagnosis"]}
    return None


def release_view(r: Release, address: str, *, full: bool) -> dict[str, Any]:
    out: dict[str, Any] = {
        "number": r.number,
        "app": address,
        "created_at": iso(r.created_at),
        "created_by": r.created_by,
        "cause": r.cause,
        "artifact": r.artifact,
        "image": r.image,
        "changes": r.changes,
    }
    if full:
        out["score"] = r.score
        out["settings"] = r.settings
        out["config"] = r.config or {"vars": {}, "secrets": {}}
    return out


def audit_view(e: AuditEvent) -> dict[str, Any]:
    return {
        "id": e.id,
        "time": iso(e.time),
        "actor": e.actor,
        "token_id": e.token_id,
        "action": e.action,
        "target": e.target,
        "project": e.project,
        "outcome": e.outcome,
        "request_id": e.request_id,
        "detail": e.detail,
    }


def token_view(t: Token) -> dict[str, Any]:
    return {
        "id": t.id,
        "name": t.name,
        "principal": t.principal,
        "scopes": t.scopes,
        "created_at": iso(t.created_at),
        "created_by": t.created_by,
        "expires_at": iso(t.expires_at),
        "revoked": t.revoked_at is not None,
        "last_used_at": iso(t.last_used_at),
        "parent_id": t.parent_id,
    }


def instance_view(i: Instance) -> dict[str, Any]:
    return {
        "id": i.instance_id,
        "release": i.release,
        "pid": i.pid,
        "port": i.port,
        "state": i.state,
        "ready": i.ready,
        "restarts": i.restarts,
        "last_exit": i.last_exit,
        "reason": i.reason,
        "cpu_seconds": i.cpu_seconds,
        "memory_bytes": i.memory_bytes,
        "observed_at": iso(i.observed_at),
    }
