"""Build jobs: a source artifact built into an image, then released pinned to its digest.

``start`` validates everything a deploy would (Score, settings, artifact, app, stack) BEFORE it queues,
so a build that would be refused at the end is refused at once and writes nothing. The build itself runs
in a reconcile worker (reconcile/builds.py): services never run tools. Builds are visible to members of
their project only; anyone else is told the build does not exist.
"""

from __future__ import annotations

import gzip
import os
import secrets
import tarfile
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from yunzhou.build.detect import detect
from yunzhou.domain.access import Permission, Role
from yunzhou.domain.errors import Conflict, FieldProblem, Forbidden, NotFound, UserError, invalid
from yunzhou.domain.names import label_problem
from yunzhou.services.apps import check_deploy_target, validate_deployment
from yunzhou.services.base import ServiceContext, get_environment
from yunzhou.services.context import Caller, iso, record_audit
from yunzhou.store.files import artifact_path
from yunzhou.store.models import Build, Environment, Project

QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED = "queued", "running", "succeeded", "failed", "cancelled"
ACTIVE_STATES = (QUEUED, RUNNING)
FINISHED_STATES = (SUCCEEDED, FAILED, CANCELLED)
LOG_PAGE_BYTES = 256 * 1024


@dataclass(frozen=True)
class BuildPolicy:
    """How many builds a project may have queued + running, and how long one may run (seconds)."""

    max_active_per_project: int = 2
    time_limit_seconds: int = 1800
    max_time_limit_seconds: int = 7200

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> BuildPolicy:
        env = os.environ if env is None else env
        values = {
            "max_active_per_project": positive_setting(
                env, "YUNZHOU_BUILD_MAX_ACTIVE", cls.max_active_per_project
            ),
            "time_limit_seconds": positive_setting(env, "YUNZHOU_BUILD_TIME_LIMIT", cls.time_limit_seconds),
            "max_time_limit_seconds": positive_setting(
                env, "YUNZHOU_BUILD_MAX_TIME_LIMIT", cls.max_time_limit_seconds
            ),
        }
        return cls(**values)


def positive_setting(env: Mapping[str, str], name: str, default: int) -> int:
    """A server setting that is a whole number of at least 1 (``default`` when unset)."""
    raw = env.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or int(raw) < 1:
        raise ValueError(f"{name}={raw!r}: must be a whole number of at least 1")
    return int(raw)


def build_log_path(data_dir: Path, build_id: str) -> Path:
    return data_dir / "builds" / f"{build_id}.log"


def image_name(project: str, app: str, digest: str) -> str:
    """What a build's release records: registry-relative, pinned (each target prefixes its registry)."""
    return f"{project}/{app}@{digest}"


def build_view(b: Build, project: str, env: str) -> dict[str, Any]:
    return {
        "id": b.id,
        "project": project,
        "env": env,
        "app": b.app,
        "address": f"{project}/{env}/{b.app}",
        "state": b.state,
        "stack": b.stack,
        "stack_version": b.stack_version,
        "stack_digest": b.stack_digest,
        "artifact": b.artifact,
        "image": image_name(project, b.app, b.image_digest) if b.image_digest else None,
        "image_digest": b.image_digest,
        "image_size": b.image_size,
        "deps_cached": b.deps_cached,
        "pushed": b.pushed,
        "error": b.error,
        "progress": {"step": b.progress_step, "fraction": b.progress_fraction},
        "deploy": b.deploy is not None,
        "release": b.release,
        "time_limit_seconds": b.time_limit_seconds,
        "cancel_requested": b.cancel_requested,
        "created_by": b.created_by,
        "created_at": iso(b.created_at),
        "started_at": iso(b.started_at),
        "finished_at": iso(b.finished_at),
    }


def _may(caller: Caller, project: str, permission: Permission) -> bool:
    role: Role | None = caller.roles.get(project)
    needed = permission.role
    return caller.is_admin or (role is not None and needed is not None and role.includes(needed))


class BuildService:
    def __init__(self, ctx: ServiceContext, data_dir: Path, policy: BuildPolicy) -> None:
        self.ctx = ctx
        self.data_dir = data_dir
        self.policy = policy

    # ---- intent
    def start(
        self,
        caller: Caller,
        project: str,
        env: str,
        *,
        artifact: object,
        score: object = None,
        settings: object = None,
        app: str | None = None,
        stack: str | None = None,
        time_limit_seconds: int | None = None,
    ) -> dict[str, Any]:
        """Queue a build of ``artifact``; with a Score, its success deploys the image as a new release."""
        if not caller.is_admin and project not in caller.roles:  # as the API: a stranger learns nothing
            raise NotFound(f"project {project!r} not found")
        if not _may(caller, project, Permission.APP_DEPLOY):
            raise Forbidden(f"starting a build in project {project!r} needs the developer role or higher")
        if not isinstance(artifact, str) or not artifact:
            raise invalid("artifact", "required: the sha256:… digest POST /artifacts returned")
        limit = self._time_limit(time_limit_seconds)
        deploy: dict[str, Any] | None = None
        annotations: Mapping[str, str] = {}
        if score is not None:
            workload, effective = validate_deployment(score, settings, env)
            if app is not None and app != workload.metadata.name:
                raise invalid("app", f"{app!r} is not the Score's metadata.name ({workload.metadata.name!r})")
            app = workload.metadata.name
            annotations = workload.metadata.annotations
            deploy = {"score": workload.to_dict(), "settings": effective.to_dict()}
        elif settings is not None:
            raise invalid("settings", "settings are deployed with a Score; send score too, or neither")
        if app is None:
            raise invalid("app", "required without a Score: the app whose image this builds")
        if (problem := label_problem(app)) is not None:
            raise invalid("app", problem)
        with self.ctx.db.transaction() as s:  # 404/422 before reading the archive
            _, e = get_environment(s, project, env)
            check_deploy_target(s, project, e, app, artifact)
        detected = detect(self._listing(artifact), stack=stack, annotations=annotations)
        now = self.ctx.clock()
        with self.ctx.db.transaction() as s:
            p, e = get_environment(s, project, env)
            check_deploy_target(s, project, e, app, artifact)
            self._check_bound(s, p)
            build_id = "b" + secrets.token_hex(6)
            log_path = build_log_path(self.data_dir, build_id)
            b = Build(
                id=build_id, project_id=p.id, environment_id=e.id, app=app, state=QUEUED,
                stack=detected.stack, requested_stack=stack or None, artifact=artifact, pushed=False,
                error="",
                progress_step=f"queued ({detected.reason})", progress_fraction=0.0, deploy=deploy,
                time_limit_seconds=limit, cancel_requested=False, attempts=0, log_path=str(log_path),
                created_by=caller.principal, token_id=caller.token_id, created_at=now,
            )  # fmt: skip
            s.add(b)
            record_audit(
                s, caller, now, action="build.start", target=f"{project}/{env}/{app}", project=project,
                detail={"build": build_id, "artifact": artifact, "stack": detected.stack,
                        "deploy": deploy is not None},
            )  # fmt: skip
            s.flush()
            return build_view(b, project, env)

    def _time_limit(self, requested: int | None) -> int:
        if requested is None:
            return self.policy.time_limit_seconds
        most = self.policy.max_time_limit_seconds
        if isinstance(requested, bool) or not isinstance(requested, int) or not 1 <= requested <= most:
            raise invalid("time_limit_seconds", f"must be a whole number of seconds 1-{most}")
        return requested

    def _check_bound(self, s: Session, p: Project) -> None:
        # one counter at a time per project: SQLite serialises writers anyway; PostgreSQL locks the row
        s.execute(select(Project.id).where(Project.id == p.id).with_for_update())
        active = s.scalar(
            select(func.count())
            .select_from(Build)
            .where(Build.project_id == p.id, Build.state.in_(ACTIVE_STATES))
        )
        most = self.policy.max_active_per_project
        if (active or 0) >= most:
            raise Conflict(
                f"project {p.name!r} already has {active} builds queued or running (at most {most}, "
                "YUNZHOU_BUILD_MAX_ACTIVE); wait for one to finish or cancel one (`yunzhou build cancel ID`)"
            )

    def _listing(self, artifact: str) -> list[str]:
        """The archive's member names (checked at upload: relative, inside the root)."""
        path = artifact_path(self.data_dir, artifact)
        try:
            with gzip.open(path, "rb") as stream, tarfile.open(fileobj=stream, mode="r|") as tar:
                return [m.name.removeprefix("./") for m in tar if m.isfile()]
        except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
            raise UserError(
                f"artifact {artifact} cannot be read ({exc}); upload the source again",
                problems=[FieldProblem("artifact", "unreadable")],
            ) from exc

    def cancel(self, caller: Caller, build_id: str) -> dict[str, Any]:
        """A queued build ends now; a running one is asked to stop (the worker ends it within seconds)."""
        now = self.ctx.clock()
        with self.ctx.db.transaction() as s:
            b, project, env = self._load(s, caller, build_id)
            if not _may(caller, project, Permission.APP_DEPLOY):
                raise Forbidden(
                    f"cancelling a build in project {project!r} needs the developer role or higher"
                )
            if b.state == QUEUED:
                b.state, b.finished_at, b.error = (
                    CANCELLED,
                    now,
                    f"cancelled by {caller.principal} before it started",
                )
            elif b.state == RUNNING:
                b.cancel_requested = True
            record_audit(
                s, caller, now, action="build.cancel", target=f"{project}/{env}/{b.app}", project=project,
                detail={"build": b.id, "state": b.state},
            )  # fmt: skip
            s.flush()
            return build_view(b, project, env)

    # ---- reads
    def list(
        self, caller: Caller, project: str, env: str, app: str | None, limit: int = 50
    ) -> list[dict[str, Any]]:
        with self.ctx.db.transaction() as s:
            _, e = get_environment(s, project, env)
            query = select(Build).where(Build.environment_id == e.id)
            if app is not None:
                query = query.where(Build.app == app)
            rows = s.scalars(query.order_by(Build.created_at.desc(), Build.id).limit(limit))
            return [build_view(b, project, env) for b in rows]

    def get(self, caller: Caller, build_id: str) -> dict[str, Any]:
        with self.ctx.db.transaction() as s:
            b, project, env = self._load(s, caller, build_id)
            return build_view(b, project, env)

    def log(self, caller: Caller, build_id: str, offset: int, limit: int = LOG_PAGE_BYTES) -> dict[str, Any]:
        """Bytes of the build log from ``offset`` (at most ``limit``), where to go on, and whether it is
        complete (the build finished and nothing is left to read)."""
        with self.ctx.db.transaction() as s:
            b, _, _ = self._load(s, caller, build_id)
            finished, state, path = b.state in FINISHED_STATES, b.state, Path(b.log_path)
        data = _read_from(path, offset, limit)
        if not finished or len(data) == limit:
            data = _whole_characters(data)  # the next read starts at the character's first byte
        next_offset = offset + len(data)
        done = finished and len(data) < limit and next_offset >= _size(path)
        return {
            "text": data.decode("utf-8", errors="replace"),
            "offset": offset,
            "next_offset": next_offset,
            "state": state,
            "done": done,
        }

    def _load(self, s: Session, caller: Caller, build_id: str) -> tuple[Build, str, str]:
        row = s.execute(
            select(Build, Project.name, Environment.name)
            .join(Project, Project.id == Build.project_id)
            .join(Environment, Environment.id == Build.environment_id)
            .where(Build.id == build_id)
        ).first()
        if row is None or not _may(caller, row[1], Permission.APP_READ):
            raise NotFound(f"build {build_id!r} not found")  # another project's builds do not exist for you
        return row[0], row[1], row[2]


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _whole_characters(data: bytes) -> bytes:
    """``data`` up to its last complete UTF-8 character (a read can end inside one being written)."""
    for back in range(1, min(4, len(data)) + 1):
        byte = data[-back]
        if byte & 0xC0 == 0x80:  # a continuation byte: its lead is further back
            continue
        if byte < 0xC0:  # ASCII (or a stray byte): complete
            return data
        needed = 2 if byte < 0xE0 else 3 if byte < 0xF0 else 4
        return data[:-back] if back < needed else data
    return data


def _read_from(path: Path, offset: int, limit: int) -> bytes:
    try:
        with path.open("rb") as handle:
            handle.seek(offset)
            return handle.read(limit)
    except FileNotFoundError:
        return b""
