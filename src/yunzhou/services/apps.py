"""App use-cases. Each records intent — a release and/or a rollout plus a work item — and an audit row,
in one transaction. Nothing here runs anything; reconcilers do."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from yunzhou.domain.errors import (
    Conflict,
    FieldProblem,
    Forbidden,
    NotFound,
    TemporaryError,
    UserError,
    invalid,
)
from yunzhou.domain.image_refs import pinned_image
from yunzhou.domain.local_target import local_run_warnings, missing_image
from yunzhou.domain.names import AppAddress
from yunzhou.domain.score import Workload, parse_score
from yunzhou.domain.settings import MAX_REPLICAS, PlatformSettings, merge_patch, parse_settings
from yunzhou.services.base import ServiceContext, check_version, get_app, get_environment
from yunzhou.services.context import Caller, record_audit
from yunzhou.services.diff import describe_changes
from yunzhou.services.effective import release_config
from yunzhou.services.image_signatures import no_verifier, required_but_unchecked
from yunzhou.services.projects import TARGET_LOCAL
from yunzhou.services.routes import claim_routes
from yunzhou.services.views import app_view, instance_view, release_view, rollout_view
from yunzhou.store.leases import enqueue
from yunzhou.store.models import App, Artifact, Environment, Instance, Release, Rollout

WORK_KIND = "app"
ACTIVE_STATES = ("pending", "progressing")


def work_key(app_id: int) -> str:
    return str(app_id)


class AppService:
    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx

    # ---- reads
    def _view(self, s: Session, a: App, project: str, env: str) -> dict[str, Any]:
        rollout = s.scalar(select(Rollout).where(Rollout.app_id == a.id).order_by(Rollout.id.desc()).limit(1))
        return app_view(
            a,
            project,
            env,
            rollout=rollout,
            router_base=self.ctx.router_base,
            base_domain=self.ctx.base_domain,
        )

    def list_apps(self, project: str, env: str) -> list[dict[str, Any]]:
        with self.ctx.db.transaction() as s:
            _, e = get_environment(s, project, env)
            apps = s.scalars(select(App).where(App.environment_id == e.id).order_by(App.name))
            return [self._view(s, a, project, env) for a in apps]

    def get(self, project: str, env: str, app: str) -> dict[str, Any]:
        with self.ctx.db.transaction() as s:
            _, _, a = get_app(s, project, env, app)
            return self._view(s, a, project, env)

    def releases(self, project: str, env: str, app: str) -> list[dict[str, Any]]:
        address = str(AppAddress(project, env, app))
        with self.ctx.db.transaction() as s:
            _, _, a = get_app(s, project, env, app)
            rows = s.scalars(select(Release).where(Release.app_id == a.id).order_by(Release.number.desc()))
            return [release_view(r, address, full=False) for r in rows]

    def release(self, project: str, env: str, app: str, number: int) -> dict[str, Any]:
        with self.ctx.db.transaction() as s:
            _, _, a = get_app(s, project, env, app)
            return release_view(_release(s, a, number), str(AppAddress(project, env, app)), full=True)

    def rollouts(self, project: str, env: str, app: str) -> list[dict[str, Any]]:
        address = str(AppAddress(project, env, app))
        with self.ctx.db.transaction() as s:
            _, _, a = get_app(s, project, env, app)
            rows = s.scalars(select(Rollout).where(Rollout.app_id == a.id).order_by(Rollout.id.desc()))
            return [rollout_view(r, address) for r in rows]

    def rollout(self, project: str, env: str, app: str, rollout_id: int) -> dict[str, Any]:
        with self.ctx.db.transaction() as s:
            _, _, a = get_app(s, project, env, app)
            r = s.scalar(select(Rollout).where(Rollout.app_id == a.id, Rollout.id == rollout_id))
            if r is None:
                raise NotFound(f"rollout {rollout_id} of {project}/{env}/{app} not found")
            return rollout_view(r, str(AppAddress(project, env, app)))

    def instances(self, project: str, env: str, app: str) -> list[dict[str, Any]]:
        """What the runtime last reported (reconcilers write it); never desired state."""
        with self.ctx.db.transaction() as s:
            _, _, a = get_app(s, project, env, app)
            rows = s.scalars(select(Instance).where(Instance.app_id == a.id).order_by(Instance.instance_id))
            return [instance_view(i) for i in rows]

    def render(
        self, caller: Caller, project: str, env: str, app: str, number: int | None, show_secrets: bool
    ) -> list[dict[str, Any]]:
        """The release as its target would receive it. Secret values are redacted unless an admin asks
        (`--show-secrets`), and that request is audited."""
        if show_secrets and not caller.is_admin:
            raise Forbidden("only an admin may render with secret values shown")
        if self.ctx.renderer is None:
            raise TemporaryError("this server renders nothing: it runs without reconcilers")
        with self.ctx.db.transaction() as s:
            _, _, a = get_app(s, project, env, app)
            release = _release(s, a, number or a.desired_release).number
            app_id = a.id
        objects = self.ctx.renderer(app_id, release)
        if show_secrets:
            with self.ctx.db.transaction() as s:
                record_audit(
                    s, caller, self.ctx.clock(), action="app.render-secrets", target=f"{project}/{env}/{app}",
                    project=project, detail={"release": release},
                )  # fmt: skip
            return objects
        return [_redacted(o) for o in objects]

    def runtime_logs(
        self, project: str, env: str, app: str, *, since_seconds: int | None, instance: str | None, limit: int
    ) -> list[dict[str, Any]] | None:
        """Logs of an app on a cluster target, read from its pods; None when the target is local
        (whose logs are in the control plane's own log store)."""
        with self.ctx.db.transaction() as s:
            _, e, a = get_app(s, project, env, app)
            if not e.target.startswith("cluster:"):
                return None
            app_id = a.id
        if self.ctx.runtime_logs is None:
            raise TemporaryError("this server reads no cluster logs: it runs without reconcilers")
        return self.ctx.runtime_logs(app_id, since_seconds=since_seconds, instance=instance, limit=limit)

    def settings(self, project: str, env: str, app: str) -> dict[str, Any]:
        with self.ctx.db.transaction() as s:
            _, _, a = get_app(s, project, env, app)
            return {"settings": _release(s, a, a.desired_release).settings, "version": a.version}

    # ---- intent
    def deploy(
        self,
        caller: Caller,
        project: str,
        env: str,
        score: object,
        settings: object,
        artifact: str | None,
        *,
        image: str | None = None,
    ) -> dict[str, Any]:
        """``image``: the image the release runs, pinned to a digest (``project/app@sha256:…``, what a
        build job passes); None keeps the Score's containers' images."""
        workload, effective = validate_deployment(score, settings, env)
        name = workload.metadata.name
        # tags resolved to digests first: the network stays out of the transaction (image_pinning.py)
        pinning = self.ctx.image_pinning
        unpinned: list[FieldProblem] = []
        if pinning is None:
            document = workload.to_dict()
        else:
            with self.ctx.db.transaction() as s:  # outside images run on a cluster only
                cluster = get_environment(s, project, env)[1].target != TARGET_LOCAL
            document, unpinned = pinning.pin(project, workload.to_dict(), runs_outside_images=cluster)
        kept: list[FieldProblem] = []
        if image is None and artifact is None:  # image "." and no source: a redeploy keeps the built image
            image, kept = self._built_image_kept(project, env, workload)
        checked = self._check_signed(project, env, document, image)  # network too: before the transaction
        with self.ctx.db.transaction() as s:
            _, e = get_environment(s, project, env)
            if e.require_signed_images and not checked:
                raise required_but_unchecked(project, env)
            a = check_deploy_target(s, project, e, name, artifact)
            config = release_config(s, e, project, name, workload)
            # said now rather than as a failed rollout later (domain/local_target.py)
            local = e.target == TARGET_LOCAL
            pinned = parse_score(document) if local else workload  # its images as the release runs them
            containers = self.ctx.local_runs_images
            no_image = missing_image(pinned, image, project, containers=containers) if local else []
            if no_image and containers:  # before the release is written: a refusal writes nothing
                raise UserError(f"{no_image[0].path}: {no_image[0].message}", problems=no_image)
            result = self._new_release(
                s,
                caller,
                project,
                e,
                a,
                name,
                score=document,
                settings=effective.to_dict(),
                artifact=artifact,
                image=image,
                cause="deploy",
                config=config,
                action="app.deploy",
                replicas=effective.replicas,
            )
            cannot_run = (
                [*local_run_warnings(pinned, artifact is not None, project=project, image=image), *no_image]
                if local
                else []
            )
            result["warnings"] = [
                {"path": p.path, "message": p.message} for p in [*kept, *unpinned, *cannot_run]
            ]
            return result

    def update_settings(
        self, caller: Caller, project: str, env: str, app: str, partial: object, version: int | None
    ) -> dict[str, Any]:
        if not isinstance(partial, dict) or not partial:
            raise invalid("settings", "must be a non-empty mapping of the settings to change")
        with self.ctx.db.transaction() as s:
            _, e, a = get_app(s, project, env, app)
            check_version(version, a.version, f"app {a.name!r}")
            current = _release(s, a, a.desired_release)
            merged = parse_settings(merge_patch(current.settings, partial))  # null removes a key
            return self._new_release(
                s,
                caller,
                project,
                e,
                a,
                app,
                score=current.score,
                settings=merged.to_dict(),
                artifact=current.artifact,
                image=current.image,
                cause="settings",
                action="app.settings",
                replicas=merged.replicas if "replicas" in partial else None,
            )

    def rollback(self, caller: Caller, project: str, env: str, app: str, to: int | None) -> dict[str, Any]:
        with self.ctx.db.transaction() as s:  # the target release's images are verified before the write
            _, _, a = get_app(s, project, env, app)
            target_number = to if to is not None else a.desired_release - 1
            old = s.scalar(select(Release).where(Release.app_id == a.id, Release.number == target_number))
            score, image = (old.score, pinned_image(old.image)) if old is not None else ({}, None)
        checked = old is not None and self._check_signed(project, env, score, image)
        with self.ctx.db.transaction() as s:
            _, e, a = get_app(s, project, env, app)
            if a.removing:
                raise Conflict(f"app {project}/{env}/{app} is being removed")
            target_number = to if to is not None else a.desired_release - 1
            if target_number < 1:
                raise Conflict(f"{project}/{env}/{app} has no earlier release to roll back to")
            if to is not None and to == a.desired_release:
                raise Conflict(f"release {to} is already the desired release of {project}/{env}/{app}")
            old = _release(s, a, target_number)
            if e.require_signed_images and not checked:
                raise required_but_unchecked(project, env)
            if e.target == TARGET_LOCAL and self.ctx.local_runs_images:
                no_image = missing_image(
                    parse_score(old.score), pinned_image(old.image), project, containers=True
                )
                if no_image:  # a release made on a host-process server: it cannot run here
                    raise UserError(
                        f"release {target_number} cannot run on this server: {no_image[0].message}",
                        problems=no_image,
                    )
            return self._new_release(
                s,
                caller,
                project,
                e,
                a,
                app,
                score=old.score,
                settings=old.settings,
                artifact=old.artifact,
                image=old.image,
                config=old.config,
                cause=f"rollback to {target_number}",
                action="app.rollback",
                replicas=None,
            )

    def scale(
        self, caller: Caller, project: str, env: str, app: str, replicas: object, version: int | None
    ) -> dict[str, Any]:
        if isinstance(replicas, bool) or not isinstance(replicas, int) or not 0 <= replicas <= MAX_REPLICAS:
            raise invalid("replicas", f"must be an integer 0-{MAX_REPLICAS}")
        now = self.ctx.clock()
        with self.ctx.db.transaction() as s:
            _, _, a = get_app(s, project, env, app)
            check_version(version, a.version, f"app {a.name!r}")
            if a.removing:
                raise Conflict(f"app {project}/{env}/{app} is being removed")
            before = a.replicas
            a.replicas = replicas
            a.updated_at = now
            self._start_rollout(s, caller, a, kind="scale", to_release=a.desired_release, strategy=None)
            record_audit(
                s,
                caller,
                now,
                action="app.scale",
                target=f"{project}/{env}/{app}",
                project=project,
                detail={"replicas": replicas, "previous": before},
            )
            s.flush()
            return self._view(s, a, project, env)

    def remove(self, caller: Caller, project: str, env: str, app: str) -> dict[str, Any]:
        now = self.ctx.clock()
        with self.ctx.db.transaction() as s:
            _, _, a = get_app(s, project, env, app)
            if not a.removing:
                a.removing = True
                a.updated_at = now
                self._start_rollout(s, caller, a, kind="remove", to_release=a.desired_release, strategy=None)
            record_audit(
                s, caller, now, action="app.remove", target=f"{project}/{env}/{app}", project=project
            )
            s.flush()
            return self._view(s, a, project, env)

    # ---- shared steps
    def _built_image_kept(
        self, project: str, env: str, workload: Workload
    ) -> tuple[str | None, list[FieldProblem]]:
        """Score ``image: "."`` means "built from this app's source". A deploy with no build (new settings,
        variables, a Score change) keeps the image of the app's current release when a build made it, and
        says so; None when there is none to keep."""
        if len(workload.containers) != 1:
            return None, []
        name, container = next(iter(workload.containers.items()))
        if container.image != ".":
            return None, []
        with self.ctx.db.transaction() as s:
            _, e = get_environment(s, project, env)
            a = s.scalar(select(App).where(App.environment_id == e.id, App.name == workload.metadata.name))
            current = _release(s, a, a.desired_release) if a is not None and a.desired_release else None
            image = pinned_image(current.image) if current is not None else None
            if current is None or image is None:
                return None, []
            note = (
                f"'.' is the image built from the app's source and no build ran: this release keeps release "
                f"{current.number}'s image {image}; deploy with --source DIR to build a new one"
            )
            return image, [FieldProblem(f"containers.{name}.image", note)]

    def _check_signed(self, project: str, env: str, score: dict[str, Any], image: str | None) -> bool:
        """Whether the environment requires signed images — and then the release's images are verified
        (a 422 naming each unsigned one; services/image_signatures.py). Network I/O: no transaction open."""
        with self.ctx.db.transaction() as s:
            required = get_environment(s, project, env)[1].require_signed_images
        if required:
            if self.ctx.signed_images is None:
                raise no_verifier(project, env)
            self.ctx.signed_images.check(project, env, score, image)
        return required

    def _new_release(
        self,
        s: Session,
        caller: Caller,
        project: str,
        e: Environment,
        a: App | None,
        name: str,
        *,
        score: dict[str, Any],
        settings: dict[str, Any],
        artifact: str | None,
        cause: str,
        action: str,
        replicas: int | None,
        config: dict[str, Any] | None = None,
        image: str | None = None,
    ) -> dict[str, Any]:
        """``config`` None: keep the previous release's config (a settings change). ``image`` None: the
        Score's images (a release that runs no pinned image)."""
        now = self.ctx.clock()
        previous: Release | None = None
        if a is None:
            a = App(
                environment_id=e.id,
                name=name,
                desired_release=1,
                replicas=replicas if replicas is not None else 1,
                created_at=now,
                updated_at=now,
                conditions=[],
                status="pending",
            )
            s.add(a)
            s.flush()
            number = 1
        else:
            previous = _release(s, a, a.desired_release)
            number = (s.scalar(select(func.max(Release.number)).where(Release.app_id == a.id)) or 0) + 1
            a.desired_release = number
            if replicas is not None:
                a.replicas = replicas
            a.updated_at = now
        claim_routes(s, caller, e.project, e.name, a, settings, self.ctx.base_domain)  # 409 if taken
        release = Release(
            app_id=a.id,
            number=number,
            score=score,
            settings=settings,
            artifact=artifact,
            image=image if image is not None else _images(score),
            cause=cause,
            changes=describe_changes(previous, score, settings, artifact, config),
            config=config if config is not None else (previous.config if previous else {}),
            created_at=now,
            created_by=caller.principal,
        )
        s.add(release)
        rollout = self._start_rollout(
            s, caller, a, kind=action.split(".", 1)[1], to_release=number, strategy=settings.get("rollout")
        )
        address = f"{project}/{e.name}/{name}"
        record_audit(
            s,
            caller,
            now,
            action=action,
            target=address,
            project=project,
            detail={"release": number, "cause": cause, "changes": release.changes},
        )
        s.flush()
        return {
            "app": self._view(s, a, project, e.name),
            "release": release_view(release, address, full=False),
            "rollout": rollout_view(rollout, address),
        }

    def _start_rollout(
        self,
        s: Session,
        caller: Caller,
        a: App,
        *,
        kind: str,
        to_release: int,
        strategy: dict[str, Any] | None,
    ) -> Rollout:
        """Supersede whatever rollout was still under way, record the new one and wake the reconciler."""
        now = self.ctx.clock()
        s.execute(
            update(Rollout)
            .where(Rollout.app_id == a.id, Rollout.state.in_(ACTIVE_STATES))
            .values(state="superseded", message="superseded by a newer operation", updated_at=now)
            .execution_options(synchronize_session=False)
        )
        rollout = Rollout(
            app_id=a.id,
            kind=kind,
            from_release=a.current_release,
            to_release=to_release,
            replicas=a.replicas,
            strategy=strategy or {},
            state="pending",
            message="waiting for the reconciler",
            created_at=now,
            created_by=caller.principal,
            updated_at=now,
        )
        s.add(rollout)
        enqueue(s, WORK_KIND, work_key(a.id), now)
        s.flush()
        return rollout


def validate_deployment(score: object, settings: object, env: str) -> tuple[Workload, PlatformSettings]:
    """The Score and settings of a deploy, every problem at once (422 naming each field)."""
    problems: list[FieldProblem] = []
    workload = None
    try:
        workload = parse_score(score)
    except UserError as exc:
        problems += exc.problems or [FieldProblem("score", exc.message)]
    effective: PlatformSettings | None = None
    try:
        effective = parse_settings(settings, env)
    except UserError as exc:
        problems += exc.problems
    if problems or workload is None or effective is None:
        raise UserError("deployment is invalid: nothing was changed", problems=problems)
    return workload, effective


def check_deploy_target(
    s: Session, project: str, e: Environment, name: str, artifact: str | None
) -> App | None:
    """The app a deploy of ``name`` would change (None: a new one); the artifact must be uploaded."""
    if artifact is not None and s.get(Artifact, artifact) is None:
        raise invalid("artifact", f"{artifact} was not uploaded; upload the source first (POST /artifacts)")
    a = s.scalar(select(App).where(App.environment_id == e.id, App.name == name))
    if a is not None and a.removing:
        raise Conflict(f"app {project}/{e.name}/{name} is being removed; wait until it is gone")
    return a


def _redacted(obj: dict[str, Any]) -> dict[str, Any]:
    if obj.get("kind") != "Secret":
        return obj
    out = dict(obj)
    for key in ("data", "stringData"):
        if isinstance(out.get(key), dict):
            out[key] = dict.fromkeys(out[key], "<redacted>")
    return out


def _release(s: Session, a: App, number: int) -> Release:
    r = s.scalar(select(Release).where(Release.app_id == a.id, Release.number == number))
    if r is None:
        raise NotFound(f"release {number} of app {a.name!r} not found")
    return r


def _images(score: dict[str, Any]) -> str:
    containers = score.get("containers", {})
    return ", ".join(f"{name}={c.get('image', '')}" for name, c in sorted(containers.items()))
