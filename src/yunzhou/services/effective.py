"""What config a release of an app would be built with now (shared by deploys and config changes)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from yunzhou.domain.config import Available, config_references, effective_config
from yunzhou.domain.score import Workload
from yunzhou.store.models import ConfigSet, Environment, Secret


def available(s: Session, e: Environment, app: str) -> Available:
    sets = {c.app: c.vars for c in s.scalars(select(ConfigSet).where(ConfigSet.environment_id == e.id))}
    secrets: dict[str, dict[str, int]] = {"": {}, app: {}}
    rows = s.scalars(
        select(Secret).where(
            Secret.environment_id == e.id, Secret.app.in_(["", app]), Secret.current_version.is_not(None)
        )
    )
    for row in rows:
        assert row.current_version is not None
        secrets[row.app][row.name] = row.current_version
    return Available(
        env_vars=dict(sets.get("", {})),
        app_vars=dict(sets.get(app, {})) if app else {},
        env_secrets=secrets[""],
        app_secrets=secrets[app] if app else {},
    )


def release_config(s: Session, e: Environment, project: str, app: str, workload: Workload) -> dict[str, Any]:
    """Raises UserError (422) naming each field whose variable or secret is not set."""
    refs = config_references(workload)
    if not refs.vars and not refs.secrets:
        return {"vars": {}, "secrets": {}}
    return effective_config(refs, available(s, e, app), f"{project}/{e.name}", f"{project}/{e.name}/{app}")


def refreshed_config(
    s: Session,
    e: Environment,
    project: str,
    app: str,
    workload: Workload,
    current: dict[str, Any],
    changed: dict[str, set[str]],
) -> dict[str, Any]:
    """``current`` with only the ``changed`` names ({"vars": …, "secrets": …}) looked up again, so a
    change to one key never silently undoes what a rollback restored for the others."""
    refs = config_references(workload)
    narrowed = replace(
        refs,
        vars={k: v for k, v in refs.vars.items() if k in changed.get("vars", set())},
        secrets={k: v for k, v in refs.secrets.items() if k in changed.get("secrets", set())},
    )
    out = {"vars": dict(current.get("vars") or {}), "secrets": dict(current.get("secrets") or {})}
    if not narrowed.vars and not narrowed.secrets:
        return out
    fresh = effective_config(
        narrowed, available(s, e, app), f"{project}/{e.name}", f"{project}/{e.name}/{app}"
    )
    for section in ("vars", "secrets"):
        out[section].update(fresh[section])
    return out
