"""Registry use-cases: registry tokens for callers (docs/images.md) and an app's images with the releases
that refer to them. Talking to the registry itself is the composition root's: it hands the image lister
in (``ServiceContext.registry_images``), so these use-cases stay free of network and processes."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import select

from yunzhou.domain.access import Scope, scope_allows
from yunzhou.domain.errors import TemporaryError, invalid
from yunzhou.registry.tokens import PUSH, REGISTRY_DIR, SERVICE, Access, TokenIssuer, grant, parse_scope
from yunzhou.services.base import ServiceContext, get_app
from yunzhou.services.context import Caller, iso, record_audit
from yunzhou.store.models import App, Build, Environment, Release


@functools.cache
def token_issuer(directory: Path) -> TokenIssuer:
    """One issuer per key directory and process (the key is read once)."""
    return TokenIssuer(directory)


def repository_of(image: str | None) -> tuple[str, str] | None:
    """``shop/web@sha256:…`` → (``shop/web``, ``sha256:…``); None for anything else."""
    if not image or "@" not in image:
        return None
    repo, _, digest = image.rpartition("@")
    return (repo, digest) if digest.startswith("sha256:") else None


class RegistryService:
    def __init__(self, ctx: ServiceContext, data_dir: Path) -> None:
        self.ctx = ctx
        self.data_dir = data_dir

    def token(self, caller: Caller, service: str | None, scopes: Sequence[str]) -> dict[str, Any]:
        """A registry token for what the caller may have of what it asked (possibly nothing: then the
        registry refuses the request). Asking for push is audited."""
        if service is not None and service != SERVICE:
            raise invalid("service", f"{service!r} is not a registry this platform issues tokens for; "
                          f"use {SERVICE!r}")  # fmt: skip
        granted = grant(
            parse_scope(scopes),
            roles=caller.roles,
            admin=caller.is_admin,
            can_write=scope_allows(caller.scopes, Scope.WRITE),
        )
        issued = token_issuer(self.data_dir / REGISTRY_DIR).issue(caller.principal, granted)
        pushes = [a for a in granted if a.type == "repository" and PUSH in a.actions]
        if pushes:
            with self.ctx.db.transaction() as s:
                for access in pushes:
                    record_audit(
                        s, caller, self.ctx.clock(),
                        action="registry.push-token",
                        target=access.name,
                        project=access.name.split("/", 1)[0],
                        detail={"actions": list(access.actions)},
                    )  # fmt: skip
        return issued.answer()

    def service_token(self, access: Sequence[Access]) -> str:
        """A token for the server itself (builds, pulls, retention): whatever it asks for."""
        return token_issuer(self.data_dir / REGISTRY_DIR).issue("yunzhou-server", access).token

    def referenced_images(self) -> set[str]:
        """Every ``repo@digest`` some release of any app refers to (retention never deletes these)."""
        with self.ctx.db.transaction() as s:
            images = s.scalars(select(Release.image).where(Release.image.is_not(None)))
            return {image for image in images if image is not None and repository_of(image) is not None}

    def builds_running(self) -> bool:
        """Whether a build job runs now (it will push soon: retention waits for it, registry/gc.py)."""
        with self.ctx.db.transaction() as s:
            return s.scalar(select(Build.id).where(Build.state == "running").limit(1)) is not None

    def images(self, project: str, env: str, app: str) -> dict[str, Any]:
        """The app's images in the registry (repository ``project/app``, shared by the project's
        environments), newest first, each with the releases (any environment) that refer to it."""
        repository = f"{project}/{app}"
        with self.ctx.db.transaction() as s:
            p, _, _ = get_app(s, project, env, app)
            rows = s.execute(
                select(Environment.name, Release.number, Release.image)
                .join(App, App.environment_id == Environment.id)
                .join(Release, Release.app_id == App.id)
                .where(Environment.project_id == p.id, App.name == app, Release.image.is_not(None))
                .order_by(Environment.name, Release.number)
            ).all()
        referrers: dict[str, list[dict[str, Any]]] = {}
        for env_name, number, pinned in rows:
            ref = repository_of(pinned)
            if ref is not None and ref[0] == repository:
                referrers.setdefault(ref[1], []).append({"env": env_name, "release": number})
        if self.ctx.registry_images is None:
            raise TemporaryError("the registry is not reachable from this server process")
        now = self.ctx.clock()
        items = []
        for image in self.ctx.registry_images(repository):
            pushed = image.get("pushed_at")
            items.append(
                {
                    "digest": image["digest"],
                    "reference": f"{repository}@{image['digest']}",
                    "size": image["size"],
                    "pushed_at": iso(pushed),
                    "age_seconds": int((now - pushed).total_seconds()) if pushed else None,
                    "tags": list(image.get("tags", ())),
                    "signed": bool(image.get("signed")),
                    "sbom": bool(image.get("sbom")),
                    "releases": referrers.get(image["digest"], []),
                }
            )
        return {"repository": repository, "items": items}
