"""Shared plumbing for use-cases: the database, the clock, and look-ups by name."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from yunzhou.domain.errors import Conflict, NotFound
from yunzhou.domain.limits import Limits
from yunzhou.services.context import Clock
from yunzhou.services.image_pinning import ImagePinning
from yunzhou.services.image_signatures import SignedImages
from yunzhou.store import Database
from yunzhou.store.crypto import SecretBox
from yunzhou.store.models import App, Environment, Member, Project


@dataclass
class ServiceContext:
    db: Database
    clock: Clock
    base_domain: str = "localhost"
    router_base: str = ":8080"
    secret_box: SecretBox | None = None  # encrypts secrets at rest (keys outside the database)
    # (app id, release number) → what the app's runtime would be given; injected by the composition root
    renderer: Callable[[int, int], list[dict[str, Any]]] | None = None
    # app id + filters → log lines read from the app's runtime (pod logs on a cluster target)
    runtime_logs: Callable[..., list[dict[str, Any]]] | None = None
    # request bodies and uploaded archives (YUNZHOU_MAX_*); the composition root sets the server's
    limits: Limits = field(default_factory=Limits)
    # resolves a deploy's Score image tags to digests (services/image_pinning.py); None: kept as written
    image_pinning: ImagePinning | None = None
    # verifies platform signatures where an environment requires them (services/image_signatures.py);
    # None: such an environment refuses every release that chooses an image
    signed_images: SignedImages | None = None
    # repository → its images in the registry (services/registry.py); injected by the composition root
    registry_images: Callable[[str], list[dict[str, Any]]] | None = None
    # the local target runs instances as containers of their release's image (the server's default): a
    # release without one is refused at deploy. False: host processes (YUNZHOU_INSTANCE_MODE=process)
    local_runs_images: bool = False


def check_version(expected: int | None, actual: int, what: str) -> None:
    """Optimistic concurrency at the API: a stated version that is not the stored one changes nothing."""
    if expected is not None and expected != actual:
        raise Conflict(f"{what} is at version {actual}, not {expected}; reload and retry")


def get_project(session: Session, name: str) -> Project:
    project = session.scalar(select(Project).where(Project.name == name))
    if project is None:
        raise NotFound(f"project {name!r} not found", problems=[])
    return project


def get_environment(session: Session, project: str, env: str) -> tuple[Project, Environment]:
    p = get_project(session, project)
    e = session.scalar(select(Environment).where(Environment.project_id == p.id, Environment.name == env))
    if e is None:
        raise NotFound(f"environment {project}/{env} not found")
    return p, e


def get_app(session: Session, project: str, env: str, app: str) -> tuple[Project, Environment, App]:
    p, e = get_environment(session, project, env)
    a = session.scalar(select(App).where(App.environment_id == e.id, App.name == app))
    if a is None:
        raise NotFound(f"app {project}/{env}/{app} not found")
    return p, e, a


def member_role(session: Session, project_id: int, principal: str) -> str | None:
    return session.scalar(
        select(Member.role).where(Member.project_id == project_id, Member.principal == principal)
    )
