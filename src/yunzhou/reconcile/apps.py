"""The app controller. One pass: load → skip if gone → build the intent → runtime.apply → record
status, conditions, the rollout's state and the instances → requeue (fast while progressing)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from yunzhou.domain.errors import NotFound, PermanentError, TemporaryError
from yunzhou.domain.image_refs import pinned_image
from yunzhou.domain.names import default_host
from yunzhou.domain.plan import INSTANCE_RESTART
from yunzhou.domain.settings import DEFAULT_PROGRESS_DEADLINE_S
from yunzhou.reconcile.config import resource_outputs
from yunzhou.reconcile.diagnosis import CONDITION as HEALTH
from yunzhou.reconcile.diagnosis import diagnose, mask
from yunzhou.reconcile.worker import Outcome
from yunzhou.runtimes.protocol import AppIntent, AppObservation, RouteSpec, Runtime
from yunzhou.services.context import iso
from yunzhou.services.names import app_name
from yunzhou.store import Database
from yunzhou.store.crypto import SecretBox, SecretKeyError
from yunzhou.store.files import artifact_path
from yunzhou.store.models import (
    App,
    CustomDomain,
    DnsRecordRow,
    Environment,
    Instance,
    Project,
    Release,
    Rollout,
    RouteClaim,
)

log = logging.getLogger("yunzhou.reconcile.apps")
ACTIVE = ("pending", "progressing")
KIND = "app"


@dataclass(frozen=True)
class Timing:
    progressing_requeue: float = 0.2
    steady_resync: float = 2.0
    progress_deadline: float = float(DEFAULT_PROGRESS_DEADLINE_S)  # unless rollout.progressDeadlineSeconds


class AppController:
    kind = KIND

    def __init__(
        self,
        db: Database,
        runtimes: Mapping[str, Runtime],
        data_dir: Path,
        clock: Callable[[], datetime],
        *,
        base_domain: str = "localhost",
        timing: Timing = Timing(),
        secret_box: SecretBox | None = None,
    ) -> None:
        self.secret_box = secret_box  # decrypts the secrets a release names, into AppIntent only
        self.db = db
        self.runtimes = runtimes
        self.data_dir = data_dir
        self.clock = clock
        self.base_domain = base_domain
        self.timing = timing
        self.actions = 0  # total runtime actions, for idempotence checks (passes run in several threads)
        self._actions_lock = threading.Lock()

    def reconcile(self, key: str) -> Outcome:
        app_id = int(key)
        try:
            loaded = self._load(app_id)
        except SecretKeyError as exc:  # names the secret and key, never a value
            self._record_failure(app_id, None, "SecretUnavailable", exc.message)
            return Outcome(requeue_after=30.0)
        if loaded is None:
            for each in self.runtimes.values():
                self._count(each.forget(app_id))
            return Outcome()
        intent, target, rollout_id, rollout_started = loaded
        runtime = self.runtimes.get(target.split(":", 1)[0])
        if runtime is None:
            self._record_failure(app_id, rollout_id, "TargetUnavailable", f"no runtime for target {target!r}")
            return Outcome(requeue_after=30.0)
        try:
            observation = runtime.apply(intent)
        except TemporaryError as exc:
            self._condition_only(app_id, "Progressing", "Unknown", "RuntimeUnavailable", exc.message)
            return Outcome(error=exc.message)
        except PermanentError as exc:
            self._record_failure(app_id, rollout_id, "InvalidRelease", str(exc))
            return Outcome(requeue_after=self.timing.steady_resync)
        self._count(observation.actions)
        self._record(app_id, intent, observation, rollout_id, rollout_started)
        if intent.removing and observation.gone:
            return Outcome()
        converged = observation.converged or (intent.removing and observation.gone)
        if converged:
            return Outcome(requeue_after=self.timing.steady_resync)
        return Outcome(requeue_after=self._progress_poll(rollout_started))

    def _count(self, actions: int) -> None:
        with self._actions_lock:
            self.actions += actions

    def _progress_poll(self, rollout_started: datetime | None) -> float:
        """Look again soon while a rollout is young, then less often (a tenth of its age, at most
        steady_resync): a thousand progressing apps must not swamp the worker with passes."""
        if rollout_started is None:
            return self.timing.progressing_requeue
        age = (self.clock() - rollout_started).total_seconds()
        return min(max(self.timing.progressing_requeue, age / 10), self.timing.steady_resync)

    # ---- load
    def render(self, app_id: int, release: int) -> list[dict[str, Any]]:
        """What the app's target would be given for ``release``: manifests, or process specs locally."""
        loaded = self._load(app_id, release)
        if loaded is None:
            raise NotFound(f"release {release} not found")
        intent, target, _, _ = loaded
        runtime = self.runtimes.get(target.split(":", 1)[0])
        if runtime is None:
            raise PermanentError(f"no runtime for target {target!r}")
        return runtime.render(intent)

    def logs(self, app_id: int, **filters: Any) -> list[dict[str, Any]]:
        """Logs the app's runtime keeps itself (pods on a cluster); the local target's go to the log store."""
        loaded = self._load(app_id)
        if loaded is None:
            raise NotFound("app not found")
        intent, target, _, _ = loaded
        runtime = self.runtimes.get(target.split(":", 1)[0])
        reader = getattr(runtime, "logs", None)
        if reader is None:
            raise PermanentError(f"target {target!r} keeps no logs of its own")
        result: list[dict[str, Any]] = reader(intent, **filters)
        return result

    def _load(
        self, app_id: int, release_number: int | None = None
    ) -> tuple[AppIntent, str, int | None, datetime | None] | None:
        with self.db.transaction() as s:
            row = s.execute(
                select(App, Environment, Project)
                .join(Environment, App.environment_id == Environment.id)
                .join(Project, Environment.project_id == Project.id)
                .where(App.id == app_id)
            ).one_or_none()
            if row is None:
                return None
            app, env, project = row
            number = release_number or app.desired_release
            release = s.scalar(select(Release).where(Release.app_id == app.id, Release.number == number))
            if release is None:
                return None
            rollout = s.scalar(
                select(Rollout)
                .where(Rollout.app_id == app.id, Rollout.state.in_(ACTIVE))
                .order_by(Rollout.id.desc())
            )
            own = _own_routes(s, app, env, project.name, self.base_domain)
            routes = [*own, *(r for r in _routes(release) if r not in own)]
            intent = AppIntent(
                app_id=app.id,
                address=f"{project.name}/{env.name}/{app.name}",
                release=release.number,
                score=release.score,
                # a manual promote/abort of the rollout in progress travels with the settings it steers
                settings=(
                    {
                        **release.settings,
                        "rollout": {**release.settings.get("rollout", {}), "command": command},
                    }
                    if rollout is not None and (command := (rollout.strategy or {}).get("command"))
                    else release.settings
                ),
                artifact=artifact_path(self.data_dir, release.artifact) if release.artifact else None,
                artifact_digest=release.artifact,
                replicas=app.replicas,
                removing=app.removing,
                routes=tuple(routes),
                target=env.target,
                namespace=env.namespace,
                image=pinned_image(release.image),
                egress=env.egress,
                tls=env.tls,
                replace_instances=_replacing(rollout),
                resource_outputs={}
                if app.removing
                else resource_outputs(s, self.secret_box, env.id, app.name, release.score, release.config),
            )
            previous = _replaced(s, rollout, release)
            if previous is not None and not app.removing:
                config = (previous.score, previous.config)
                outputs = resource_outputs(s, self.secret_box, env.id, app.name, *config)
                intent = replace(intent, previous=self._intent_of(intent, previous, own, outputs))
            return (
                intent,
                env.target,
                rollout.id if rollout else None,
                rollout.created_at if rollout else None,
            )

    def _intent_of(
        self,
        intent: AppIntent,
        release: Release,
        own: tuple[RouteSpec, ...],
        outputs: Mapping[str, Mapping[str, str]],
    ) -> AppIntent:
        """``intent`` (the app as it is now) with ``release``'s content instead of its own."""
        return replace(
            intent,
            release=release.number,
            score=release.score,
            settings=release.settings,
            artifact=artifact_path(self.data_dir, release.artifact) if release.artifact else None,
            artifact_digest=release.artifact,
            image=pinned_image(release.image),
            routes=(*own, *(r for r in _routes(release) if r not in own)),
            replace_instances=(),
            resource_outputs=outputs,
        )

    # ---- record
    def _record(
        self,
        app_id: int,
        intent: AppIntent,
        obs: AppObservation,
        rollout_id: int | None,
        rollout_started: datetime | None,
    ) -> None:
        now = self.clock()
        secrets = intent.secret_values() | (intent.previous.secret_values() if intent.previous else set())
        diagnosis = None if intent.removing else diagnose(obs.instances, intent.release, secrets)
        if obs.failure:
            obs = replace(obs, failure=_with_stderr(mask(obs.failure, secrets), diagnosis))
        with self.db.transaction() as s:
            if intent.removing and obs.gone:
                s.execute(delete(App).where(App.id == app_id))
                return
            app = s.get(App, app_id)
            if app is None:
                return
            # Kubernetes keeps its own progress deadline (reported as a failure by the runtime); ours is
            # the local target's, where nothing else watches the clock.
            overdue = (
                rollout_started is not None
                and intent.target == "local"
                and not obs.converged
                and now - rollout_started > timedelta(seconds=self._progress_deadline(intent))
            )
            if obs.converged:
                status = "running" if intent.replicas else "stopped"
            elif obs.failure:
                status = "degraded" if obs.ready else "failed"
            elif rollout_id is not None:
                status = "progressing"
            else:
                status = "degraded"
            conditions = _conditions(app.conditions, now, intent, obs, overdue, diagnosis)
            values: dict[str, Any] = {}
            if app.ready_replicas != obs.ready:
                values["ready_replicas"] = obs.ready
            if app.status != status:
                values["status"] = status
            if conditions != app.conditions:
                values["conditions"] = conditions
            if obs.converged and app.current_release != intent.release:
                values["current_release"] = intent.release
            if values:
                # a Core UPDATE: observed state must not move the version users' writes are checked against
                s.execute(
                    update(App)
                    .where(App.id == app_id)
                    .values(**values)
                    .execution_options(synchronize_session=False)
                )
            if rollout_id is not None:
                self._advance_rollout(s, rollout_id, now, obs, overdue)
            self._sync_instances(s, app_id, obs, now)

    def _progress_deadline(self, intent: AppIntent) -> float:
        """The release's ``rollout.progressDeadlineSeconds``, else the controller's default."""
        value = (intent.settings.get("rollout") or {}).get("progressDeadlineSeconds")
        return float(value) if isinstance(value, int) else self.timing.progress_deadline

    @staticmethod
    def _advance_rollout(
        s: Session, rollout_id: int, now: datetime, obs: AppObservation, overdue: bool
    ) -> None:
        rollout = s.get(Rollout, rollout_id)
        if rollout is None or rollout.state not in ACTIVE:
            return
        state, message = "progressing", obs.waiting_for or "converging"
        if obs.converged:
            state, message = (
                "succeeded",
                f"{obs.ready_current} instance(s) of release {rollout.to_release} ready",
            )
        elif obs.failure:
            state, message = "failed", obs.failure
        elif overdue:
            state, message = "failed", f"ProgressDeadlineExceeded: {obs.waiting_for}"
        if (state, message) != (rollout.state, rollout.message):
            s.execute(
                update(Rollout)
                .where(Rollout.id == rollout_id, Rollout.state.in_(ACTIVE))
                .values(state=state, message=message[:2000], updated_at=now)
                .execution_options(synchronize_session=False)
            )

    @staticmethod
    def _sync_instances(s: Session, app_id: int, obs: AppObservation, now: datetime) -> None:
        existing = {i.instance_id: i for i in s.scalars(select(Instance).where(Instance.app_id == app_id))}
        seen = set()
        for st in obs.instances:
            seen.add(st.instance_id)
            values = {
                "release": st.release, "pid": st.pid, "port": st.port, "state": st.state, "ready": st.ready,
                "restarts": st.restarts, "last_exit": st.last_exit, "reason": st.reason[:2000],
                "cpu_seconds": round(st.cpu_seconds, 2), "memory_bytes": st.memory_bytes,
            }  # fmt: skip
            row = existing.get(st.instance_id)
            if row is None:
                s.add(Instance(app_id=app_id, instance_id=st.instance_id, observed_at=now, **values))
            elif any(getattr(row, k) != v for k, v in values.items()):
                for k, v in values.items():
                    setattr(row, k, v)
                row.observed_at = now
        for instance_id, row in existing.items():
            if instance_id not in seen:
                s.delete(row)

    def _record_failure(self, app_id: int, rollout_id: int | None, reason: str, message: str) -> None:
        now = self.clock()
        with self.db.transaction() as s:
            app = s.get(App, app_id)
            if app is None:
                return
            conditions = _set_condition(app.conditions, now, "Progressing", "False", reason, message)
            if conditions != app.conditions or app.status != "failed":
                s.execute(update(App).where(App.id == app_id).values(conditions=conditions, status="failed"))
            if rollout_id is not None:
                s.execute(
                    update(Rollout)
                    .where(Rollout.id == rollout_id, Rollout.state.in_(ACTIVE))
                    .values(state="failed", message=f"{reason}: {message}"[:2000], updated_at=now)
                )

    def _condition_only(self, app_id: int, ctype: str, status: str, reason: str, message: str) -> None:
        now = self.clock()
        with self.db.transaction() as s:
            app = s.get(App, app_id)
            if app is None:
                return
            conditions = _set_condition(app.conditions, now, ctype, status, reason, message)
            if conditions != app.conditions:
                s.execute(update(App).where(App.id == app_id).values(conditions=conditions))


def _own_routes(
    s: Session, app: App, env: Environment, project: str, base_domain: str
) -> tuple[RouteSpec, ...]:
    """The hosts an app has whatever its release says: its default host, its name by the environment's
    naming rule (unless another app holds that name: the names reconciler reports the conflict), and
    its verified custom domains (docs/names.md)."""
    hosts = [default_host(app.name, env.name, project, base_domain)]
    named = app_name(env, project, app.name)
    if named is not None and named not in hosts:
        held = s.scalar(
            select(DnsRecordRow.id).where(
                DnsRecordRow.name == named, DnsRecordRow.app_id.is_not(None), DnsRecordRow.app_id != app.id
            )
        ) or s.scalar(select(RouteClaim.id).where(RouteClaim.host == named, RouteClaim.app_id != app.id))
        if held is None:
            hosts.append(named)
    verified = s.scalars(
        select(CustomDomain.host)
        .where(CustomDomain.app_id == app.id, CustomDomain.state == "verified")
        .order_by(CustomDomain.host)
    )
    hosts += [h for h in verified if h not in hosts]
    return tuple(RouteSpec(h, "/") for h in hosts)


def _routes(release: Release) -> list[RouteSpec]:
    return [RouteSpec(r["host"], r.get("path", "/")) for r in release.settings.get("routes", [])]


def _replaced(s: Session, rollout: Rollout | None, release: Release) -> Release | None:
    """The release a canary/blue-green rollout in progress replaces (None for any other rollout)."""
    strategy = (release.settings.get("rollout") or {}).get("strategy")
    if rollout is None or strategy not in ("canary", "blue-green") or rollout.to_release != release.number:
        return None
    if rollout.from_release is None or rollout.from_release == release.number:
        return None
    return s.scalar(
        select(Release).where(Release.app_id == release.app_id, Release.number == rollout.from_release)
    )


def _replacing(rollout: Rollout | None) -> tuple[str, ...]:
    """The instances a restart of instances in progress (rollout kind ``restart-instances``) replaces."""
    if rollout is None or rollout.kind != INSTANCE_RESTART:
        return ()
    return tuple(str(i) for i in (rollout.strategy or {}).get("instances", ()))


def _set_condition(
    current: list[Any], now: datetime, ctype: str, status: str, reason: str, message: str
) -> list[dict[str, Any]]:
    """Replace one condition; its last_transition moves only when its status changes."""
    out: list[dict[str, Any]] = []
    found = False
    for c in current:
        if c.get("type") == ctype:
            found = True
            moved = c.get("status") != status
            out.append({"type": ctype, "status": status, "reason": reason, "message": message,
                        "last_transition": iso(now) if moved else c.get("last_transition")})  # fmt: skip
        else:
            out.append(c)
    if not found:
        out.append(
            {
                "type": ctype,
                "status": status,
                "reason": reason,
                "message": message,
                "last_transition": iso(now),
            }
        )
    return out


def _with_stderr(failure: str, diagnosis: dict[str, Any] | None) -> str:
    """A crash's failure message with the crashed instance's last stderr line (what `--wait` prints)."""
    if diagnosis is None or not diagnosis["stderr"] or "last stderr:" in failure:
        return failure
    if diagnosis["reason"] not in ("CrashLoopBackOff", "Failed") or "CrashLoopBackOff" not in failure:
        return failure
    return f"{failure}; last stderr: {diagnosis['stderr'][-1]}"


def _health(current: list[Any], now: datetime, diagnosis: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The InstanceHealth condition: False with the diagnosis while an instance fails; once there was
    one, True again when none does (like Rendered, absent for an app that never had a problem)."""
    if diagnosis is None:
        if not any(c.get("type") == HEALTH for c in current):
            return list(current)
        return _set_condition(current, now, HEALTH, "True", "Healthy", "no instance is failing")
    out = _set_condition(current, now, HEALTH, "False", diagnosis["reason"], diagnosis["message"])
    detail = {k: v for k, v in diagnosis.items() if k not in ("reason", "message")}
    return [{**c, "diagnosis": detail} if c.get("type") == HEALTH else c for c in out]


def _conditions(
    current: list[Any],
    now: datetime,
    intent: AppIntent,
    obs: AppObservation,
    overdue: bool,
    diagnosis: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    want = intent.replicas
    if want == 0:
        available = ("True", "ScaledToZero", "replicas is 0")
    elif obs.ready >= want:
        available = ("True", "MinimumReplicasAvailable", f"{obs.ready}/{want} ready")
    elif obs.ready > 0:
        available = ("False", "NotEnoughReplicas", f"{obs.ready}/{want} ready")
    else:
        available = ("False", "NoReplicasReady", f"0/{want} ready")
    if obs.converged:
        progressing = ("True", "ReleaseAvailable", f"release {intent.release} is serving")
    elif obs.failure:
        if obs.failure.startswith("CrashLoopBackOff"):
            reason = "CrashLoopBackOff"
        elif obs.failure.startswith(("canary aborted", "blue-green aborted")):
            reason = "RolloutAborted"  # the release may be fine: its analysis (or a user) stopped it
        else:
            reason = "InvalidRelease"
        progressing = ("False", reason, obs.failure)
    elif overdue:
        progressing = ("False", "ProgressDeadlineExceeded", obs.waiting_for)
    else:
        progressing = ("True", "RolloutInProgress", obs.waiting_for)
    out = _set_condition(current, now, "Available", *available)
    out = _set_condition(out, now, "Progressing", *progressing)
    out = _health(out, now, diagnosis)
    if obs.not_rendered or any(c.get("type") == "Rendered" for c in out):
        out = _set_condition(out, now, "Rendered", *_rendered(obs.not_rendered))
    if obs.not_routed or any(c.get("type") == "Routed" for c in out):
        routed = ("False", "RouteNotServed", "; ".join(obs.not_routed)) if obs.not_routed else None
        out = _set_condition(out, now, "Routed", *(routed or ("True", "AllRouted", "every route is served")))
    if obs.not_secured or any(c.get("type") == "Secured" for c in out):
        out = _set_condition(out, now, "Secured", *_secured(intent.tls, obs.not_secured))
    return out


def _secured(tls: str | None, notes: tuple[str, ...]) -> tuple[str, str, str]:
    """The Secured condition (HTTPS on the local target): False while a host has no certificate yet."""
    if tls in (None, "off"):
        return ("True", "TlsOff", "the environment serves its apps over plain HTTP (tls off)")
    if not notes:
        return ("True", "CertificatesIssued", "every host served over HTTPS has its certificate")
    issuing = all(n.endswith("is being issued") for n in notes)
    return ("False", "CertificateIssuing" if issuing else "CertificateFailed", "; ".join(notes))


def _rendered(notes: tuple[str, ...]) -> tuple[str, str, str]:
    """The Rendered condition: False while the target leaves objects out, message "Kind → why; …"."""
    if not notes:
        return ("True", "AllRendered", "every object the release asks for was rendered")
    reason = "MissingAPIs" if any("does not serve" in n for n in notes) else "NotSupported"
    return ("False", reason, "; ".join(n.replace(" not rendered: ", " → ", 1) for n in notes))
