"""The build worker: leases queued builds, runs them, pushes the image and releases it.

Each build row is its own lease (token + expiry, like work items): a worker takes a queued build with a
compare-and-set, heartbeats while it runs (extending the lease, writing progress, reading cancellation)
and ends it with the same token. At most ``concurrency`` builds run in one process; a project's bound
on queued + running builds is the service's (services/builds.py).

A build runs the build function (the image builder) in a thread with a cancel event, set when someone
cancels the build or its time limit passes; the function stops its containers and returns or raises.
On success the image is pushed (when a pusher is configured; otherwise it stays in the server's local
image store, ``pushed`` false) and, when the build carries a deploy request, released through the same
deploy use-case as ``POST …/deployments``, pinned to the digest, as the build's creator. A failure,
cancellation or time limit records the state and the tool's error (also at the end of the log) and
creates no release: the running release is untouched.

A server that stops during a build leaves its lease to expire; the next pass of any worker marks the
build failed ("the server stopped during the build") rather than running it again: a build that took
the server down (out of memory, a full disk) would do it again, and its log is incomplete. Start it
again with the same artifact. If the release was already made before the stop, the build is marked
succeeded with it instead.
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from yunzhou.domain.access import Permission, Scope, may
from yunzhou.domain.errors import Unauthenticated, YunzhouError
from yunzhou.services import Caller, ControlPlane
from yunzhou.services.build_retention import PRUNE_EVERY_S, builds_to_keep, prune_builds
from yunzhou.services.builds import CANCELLED, FAILED, QUEUED, RUNNING, SUCCEEDED, image_name
from yunzhou.store.files import artifact_path
from yunzhou.store.models import App, Build, Environment, Project, Release

log = logging.getLogger("yunzhou.reconcile.builds")
SERVER_STOPPED = "the server stopped during the build (its lease expired); start the build again"
LOG_MAX_BYTES = 16 * 1024 * 1024  # a build log's size bound (the tool's output past it is dropped)
CANCEL_GRACE_S = 30.0  # how long a cancelled build function may take to stop before it is abandoned


@dataclass(frozen=True)
class BuildJob:
    """What the build function gets. ``log`` appends a line to the build log; ``progress`` says the step
    and how far the build is (0-1); ``cancel`` is set when the build must stop (cancelled or out of
    time); ``deadline`` is the time.monotonic() at which the time limit passes."""

    id: str
    project: str
    env: str
    app: str
    stack: str | None  # asked for with --stack; None: the builder detects it (as the service did)
    source: Path  # the uploaded artifact (a checked gzip'd tar)
    score: dict[str, Any] | None
    log: Callable[[str], None]
    progress: Callable[[str, float], None]
    cancel: threading.Event
    deadline: float


@dataclass(frozen=True)
class BuiltImage:
    digest: str  # the image manifest's sha256:… in the server's image store
    stack: str
    stack_version: str | None = None
    stack_digest: str | None = None
    deps_cached: bool | None = None
    size: int | None = None
    sbom: bytes | None = None  # SPDX JSON, attached to the image when it is pushed


def build_concurrency(env: Mapping[str, str] | None = None) -> int:
    """YUNZHOU_BUILD_CONCURRENCY: builds one server runs at once (default 1: a build takes a core)."""
    raw = (os.environ if env is None else env).get("YUNZHOU_BUILD_CONCURRENCY", "").strip() or "1"
    if not raw.isdigit() or not 1 <= int(raw) <= 64:
        raise ValueError(f"YUNZHOU_BUILD_CONCURRENCY={raw!r}: must be a whole number 1-64")
    return int(raw)


BuildFunction = Callable[[BuildJob], BuiltImage]
# (project, app, image, log) → pushes the image from the local store to the registry as project/app
PushFunction = Callable[[str, str, BuiltImage, Callable[[str], None]], None]


class BuildStopped(Exception):
    """The build ended without an image: ``state`` (failed or cancelled) and why."""

    def __init__(self, state: str, message: str) -> None:
        super().__init__(message)
        self.state = state
        self.message = message


class BuildWorker:
    def __init__(
        self,
        cp: ControlPlane,
        build: BuildFunction,
        *,
        push: PushFunction | None = None,
        concurrency: int = 1,
        lease_ttl: float = 30.0,
        poll: float = 0.5,
        heartbeat: float = 1.0,
        monotonic: Callable[[], float] = time.monotonic,
        keep: int | None = None,
    ) -> None:
        """``keep``: finished builds kept per app (services/build_retention.py; None: YUNZHOU_BUILD_KEEP)."""
        self.cp = cp
        self.db = cp.ctx.db
        self.clock = cp.ctx.clock
        self.build = build
        self.push = push
        self.concurrency = max(1, concurrency)
        self.lease_ttl = timedelta(seconds=lease_ttl)
        self.poll = poll
        self.heartbeat = heartbeat
        self.monotonic = monotonic
        self._running: dict[str, threading.Thread] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self.keep = builds_to_keep() if keep is None else keep
        self._pruned_at = float("-inf")

    # ---- the loop
    def run_once(self) -> int:
        """Fail builds whose worker is gone, then start queued builds into free slots; how many started.
        Every PRUNE_EVERY_S, old finished builds go (services/build_retention.py)."""
        self._expire_stale()
        if self.monotonic() - self._pruned_at >= PRUNE_EVERY_S:
            self._pruned_at = self.monotonic()
            prune_builds(self.db, self.keep)
        with self._lock:
            for build_id in [k for k, t in self._running.items() if not t.is_alive()]:
                del self._running[build_id]
            free = self.concurrency - len(self._running)
        started = 0
        while free > 0 and not self._stop.is_set():
            lease = self._take()
            if lease is None:
                break
            thread = threading.Thread(
                target=self._run, args=(lease,), name=f"yunzhou-build-{lease.id}", daemon=True
            )
            with self._lock:
                self._running[lease.id] = thread
            thread.start()
            free -= 1
            started += 1
        return started

    def run_forever(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_once()
            except Exception:
                log.exception("build worker pass failed; retrying")
            self._wake.wait(self.poll)
            self._wake.clear()

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> BuildWorker:
        self._thread = threading.Thread(target=self.run_forever, name="yunzhou-builds", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """Running builds are asked to stop; a build still running when the server exits is failed by
        the next server's first pass (its lease expires)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        with self._lock:
            threads = list(self._running.values())
        deadline = self.monotonic() + timeout
        for thread in threads:
            thread.join(max(0.0, deadline - self.monotonic()))

    def idle(self) -> bool:
        with self._lock:
            return not any(t.is_alive() for t in self._running.values())

    # ---- leases
    def _take(self) -> _Lease | None:
        now = self.clock()
        with self.db.transaction() as s:
            candidates = s.scalars(
                select(Build.id).where(Build.state == QUEUED).order_by(Build.created_at, Build.id).limit(5)
            ).all()
            for build_id in candidates:
                token = secrets.token_hex(16)
                taken = s.execute(
                    update(Build)
                    .where(Build.id == build_id, Build.state == QUEUED)
                    .values(
                        state=RUNNING,
                        lease_token=token,
                        lease_expires_at=now + self.lease_ttl,
                        started_at=now,
                        attempts=Build.attempts + 1,
                        progress_step="starting",
                    )
                    .execution_options(synchronize_session=False)
                )
                if taken.rowcount == 1:  # type: ignore[attr-defined]
                    return _load_lease(s, build_id, token)
        return None

    def _expire_stale(self) -> None:
        now = self.clock()
        with self.db.transaction() as s:
            stale = s.scalars(
                select(Build).where(Build.state == RUNNING, Build.lease_expires_at <= now).limit(20)
            ).all()
            for b in stale:
                release = _release_made(s, b)
                if release is not None:  # stopped between the release and recording it
                    _finish_row(b, now, SUCCEEDED, "", release=release)
                else:
                    _finish_row(b, now, FAILED, SERVER_STOPPED)
                    _append(Path(b.log_path), f"==> Build failed: {SERVER_STOPPED}\n")
                log.warning("build %s: lease expired; marked %s", b.id, b.state)

    def _write(self, lease: _Lease, **values: Any) -> bool:
        """Update our build row if the lease is still ours (extending it); False when it was lost."""
        now = self.clock()
        with self.db.transaction() as s:
            res = s.execute(
                update(Build)
                .where(Build.id == lease.id, Build.lease_token == lease.token, Build.state == RUNNING)
                .values(lease_expires_at=now + self.lease_ttl, **values)
                .execution_options(synchronize_session=False)
            )
            return res.rowcount == 1  # type: ignore[attr-defined,no-any-return]

    def _cancel_requested(self, lease: _Lease) -> bool:
        with self.db.transaction() as s:
            return bool(s.scalar(select(Build.cancel_requested).where(Build.id == lease.id)))

    def _finish(self, lease: _Lease, state: str, error: str, **values: Any) -> None:
        now = self.clock()
        with self.db.transaction() as s:
            b = s.scalar(select(Build).where(Build.id == lease.id, Build.lease_token == lease.token))
            if b is None or b.state != RUNNING:
                return  # someone else ended it (an expired lease); their record stands
            for key, value in values.items():
                setattr(b, key, value)
            _finish_row(b, now, state, error, release=values.get("release"))

    # ---- one build
    def _run(self, lease: _Lease) -> None:
        with _LogFile(Path(lease.log_path)) as out:
            try:
                built = self._build(lease, out)
                release = self._deliver(lease, built, out)
            except BuildStopped as stop:
                out.line(f"==> Build {stop.state}: {stop.message}")
                self._finish(lease, stop.state, stop.message)
                return
            except Exception as exc:  # a bug must not leave the build running forever
                log.exception("build %s failed", lease.id)
                message = f"internal error: {type(exc).__name__}: {exc}"
                out.line(f"==> Build failed: {message}")
                self._finish(lease, FAILED, message)
                return
            done = f"release {release}" if release is not None else "no release (a build only)"
            out.line(f"==> Build succeeded: {image_name(lease.project, lease.app, built.digest)}; {done}")
            self._finish(lease, SUCCEEDED, "", release=release, progress_step="done", progress_fraction=1.0)

    def _build(self, lease: _Lease, out: _LogFile) -> BuiltImage:
        cancel = threading.Event()
        progress: list[tuple[str, float]] = []  # the latest report only

        def report(step: str, fraction: float) -> None:
            progress[:] = [(step, min(1.0, max(0.0, fraction)))]

        deadline = self.monotonic() + lease.time_limit
        job = BuildJob(
            id=lease.id, project=lease.project, env=lease.env, app=lease.app, stack=lease.stack,
            source=artifact_path(self.cp.data_dir, lease.artifact), score=lease.score, log=out.line,
            progress=report, cancel=cancel, deadline=deadline,
        )  # fmt: skip
        out.line(f"==> Building {lease.project}/{lease.env}/{lease.app} (build {lease.id})")
        result: list[BuiltImage] = []
        failure: list[BaseException] = []

        def target() -> None:
            try:
                result.append(self.build(job))
            except BaseException as exc:  # handed to the supervising thread
                failure.append(exc)

        runner = threading.Thread(target=target, name=f"yunzhou-build-{lease.id}-run", daemon=True)
        runner.start()
        why: tuple[str, str] | None = None
        stopping_since: float | None = None
        while runner.is_alive():
            runner.join(self.heartbeat)
            step = progress[-1] if progress else None
            values = {"progress_step": step[0][:200], "progress_fraction": step[1]} if step else {}
            if not self._write(lease, **values):
                why = why or (FAILED, "the build's lease was lost (another worker ended it)")
            elif why is None and self._cancel_requested(lease):
                why = (CANCELLED, "cancelled on request")
            elif why is None and self.monotonic() >= deadline:
                why = (FAILED, f"the time limit of {lease.time_limit} s passed")
            if self._stop.is_set() and why is None:
                why = (FAILED, "the server stopped during the build; start the build again")
            if why is not None:
                cancel.set()
                stopping_since = stopping_since or self.monotonic()
                if self.monotonic() - stopping_since > CANCEL_GRACE_S:
                    out.line(f"==> the builder did not stop within {CANCEL_GRACE_S:.0f} s; abandoned")
                    break
        if why is not None:
            raise BuildStopped(*why)
        if failure:
            exc = failure[0]
            message = exc.message if isinstance(exc, YunzhouError) else f"{type(exc).__name__}: {exc}"
            raise BuildStopped(FAILED, message)
        return result[0]

    def _deliver(self, lease: _Lease, built: BuiltImage, out: _LogFile) -> int | None:
        image = image_name(lease.project, lease.app, built.digest)
        pushed = False
        if self.push is not None:
            out.line(f"==> Pushing {image}")
            self._write(lease, progress_step="pushing the image", progress_fraction=0.95)
            try:
                with self._kept(lease):  # a large image or a registry busy with GC takes its time
                    self.push(lease.project, lease.app, built, out.line)
            except YunzhouError as exc:
                raise BuildStopped(FAILED, f"pushing the image failed: {exc.message}") from exc
            pushed = True
        recorded = self._write(
            lease,
            stack=built.stack, stack_version=built.stack_version, stack_digest=built.stack_digest,
            image_digest=built.digest, image_size=built.size, deps_cached=built.deps_cached, pushed=pushed,
            progress_step="releasing" if lease.deploy else "done", progress_fraction=0.98,
        )  # fmt: skip
        if not recorded:
            raise BuildStopped(FAILED, "the build's lease was lost (another worker ended it)")
        if lease.deploy is None:
            return None
        if self._cancel_requested(lease):  # the last moment a cancel still prevents the release
            raise BuildStopped(CANCELLED, "cancelled on request (the image was built; no release)")
        creator = self._creator(lease)
        try:
            with self._kept(lease):  # pinning and signature checks may ask the registry
                deployment = self.cp.apps.deploy(
                    creator, lease.project, lease.env, lease.deploy.get("score"),
                    lease.deploy.get("settings"), lease.artifact, image=image,
                )  # fmt: skip
        except YunzhouError as exc:
            raise BuildStopped(FAILED, f"the release was refused: {exc}") from exc
        number = int(deployment["release"]["number"])
        out.line(f"==> Released {lease.project}/{lease.env}/{lease.app} as release {number}")
        return number

    @contextmanager
    def _kept(self, lease: _Lease) -> Iterator[None]:
        """Keep extending the lease while a step outside the build function runs (push, release)."""
        done = threading.Event()

        def beat() -> None:
            while not done.wait(self.heartbeat):
                self._write(lease)

        beating = threading.Thread(target=beat, name=f"yunzhou-build-{lease.id}-lease", daemon=True)
        beating.start()
        try:
            yield
        finally:
            done.set()
            beating.join()

    def _creator(self, lease: _Lease) -> Caller:
        """Who releases: the build's creator as their token stands NOW — a token revoked or expired
        during the build, or a role lost, makes no release."""
        request_id = f"build:{lease.id}"
        if lease.token_id is None:  # started in process by the platform itself (no token)
            return Caller(lease.created_by, None, frozenset({Scope.WRITE}), request_id=request_id)
        try:
            caller = self.cp.tokens.caller_by_id(lease.token_id, request_id)
        except Unauthenticated as exc:
            raise BuildStopped(FAILED, f"the release was refused: {exc.message}") from exc
        if not may(caller.scopes, caller.roles.get(lease.project), Permission.APP_DEPLOY):
            raise BuildStopped(
                FAILED,
                f"the release was refused: {caller.principal} may no longer deploy in project "
                f"{lease.project!r} (the image was built; no release)",
            )
        return caller


@dataclass(frozen=True)
class _Lease:
    id: str
    token: str
    project: str
    env: str
    app: str
    stack: str | None
    artifact: str
    score: dict[str, Any] | None
    deploy: dict[str, Any] | None
    time_limit: int
    created_by: str
    token_id: str | None
    log_path: str


def _load_lease(s: Session, build_id: str, token: str) -> _Lease:
    b, project, env = s.execute(
        select(Build, Project.name, Environment.name)
        .join(Project, Project.id == Build.project_id)
        .join(Environment, Environment.id == Build.environment_id)
        .where(Build.id == build_id)
    ).one()
    deploy = b.deploy
    return _Lease(
        id=b.id, token=token, project=project, env=env, app=b.app, stack=b.requested_stack,
        artifact=b.artifact, score=deploy.get("score") if deploy else None, deploy=deploy,
        time_limit=b.time_limit_seconds, created_by=b.created_by, token_id=b.token_id, log_path=b.log_path,
    )  # fmt: skip


def _finish_row(b: Build, now: datetime, state: str, error: str, *, release: int | None = None) -> None:
    b.state = state
    b.error = error
    b.release = release
    b.finished_at = now
    b.lease_token = None
    b.lease_expires_at = None


def _release_made(s: Session, b: Build) -> int | None:
    """The release a build made before its worker stopped (same app, its image, made since it started)."""
    if b.deploy is None or b.image_digest is None or b.started_at is None:
        return None
    project = s.scalar(select(Project.name).where(Project.id == b.project_id))
    image = image_name(project or "", b.app, b.image_digest)
    return s.scalar(
        select(Release.number)
        .join(App, App.id == Release.app_id)
        .where(
            App.environment_id == b.environment_id,
            App.name == b.app,
            Release.image == image,
            Release.created_at >= b.started_at,
        )
        .order_by(Release.number.desc())
        .limit(1)
    )


class _LogFile:
    """The build log: appended line by line, flushed at once (followers read it), 0600 in a 0700 dir.

    Bounded: past ``max_bytes`` the tool's lines are dropped (said once), so a build that prints without
    end cannot fill the disk; the worker's own ``==>`` lines, the outcome among them, are always written.
    """

    def __init__(self, path: Path, max_bytes: int | None = None) -> None:
        self.path = path
        self.max_bytes = LOG_MAX_BYTES if max_bytes is None else max_bytes
        self._lock = threading.Lock()
        self._handle: BinaryIO | None = None
        self._written = 0
        self._dropped = 0

    def __enter__(self) -> _LogFile:
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._handle = os.fdopen(fd, "ab")
        self._written = os.fstat(fd).st_size
        return self

    def __exit__(self, *_: object) -> None:
        if self._handle is not None:
            self._handle.close()

    def line(self, text: str) -> None:
        data = (text if text.endswith("\n") else text + "\n").encode("utf-8", errors="replace")
        with self._lock:
            if self._handle is None or self._handle.closed:
                return  # a builder thread abandoned after its build ended
            if self._written + len(data) > self.max_bytes and not text.startswith("==> "):
                if not self._dropped:
                    note = (
                        f"==> the log reached {self.max_bytes} bytes; the build's further output is dropped\n"
                    )
                    self._write(note.encode())
                self._dropped += 1
                return
            self._write(data)

    def _write(self, data: bytes) -> None:
        assert self._handle is not None
        self._handle.write(data)
        self._handle.flush()
        self._written += len(data)


def _append(path: Path, text: str) -> None:
    with _LogFile(path) as out:
        out.line(text)
