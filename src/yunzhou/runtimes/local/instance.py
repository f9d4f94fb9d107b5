"""One supervised instance: spawn, watch, probe, restart with backoff, stop. Runs on the supervisor loop."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import functools
import os
import shutil
import signal
import subprocess
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from yunzhou.domain.errors import YunzhouError
from yunzhou.runtimes.base import (
    STDERR_TAIL_LINES,
    InstanceState,
    InstanceStatus,
    ProbeResult,
    stderr_tail,
)

from . import procfs
from .cgroups import InstanceCgroup
from .containers import ContainerHost
from .isolation import popen_identity
from .logs import LineSplitter, LogPump
from .probes import run_probe, wait_exit
from .records import InstanceRecord, RecordStore
from .spec import LogStream, Probe, ProcessSpec

_PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(None, use_errno=True)
#: Readiness when the spec has none: TCP connect to PORT.
DEFAULT_READINESS = Probe("tcp", period=1.0, timeout=1.0, failure_threshold=3)
#: Before an instance is first ready, probes run at least this often so it joins traffic promptly.
FAST_PROBE_PERIOD = 0.1


@dataclass(frozen=True)
class Tuning:
    backoff_base: float
    backoff_cap: float
    backoff_reset: float
    max_line_bytes: int


class Instance:
    """Mutable state of one instance. Fields are written on the loop thread under ``cond``; read anywhere
    under ``cond`` (see ``status``)."""

    def __init__(
        self,
        spec: ProcessSpec,
        *,
        cond: threading.Condition,
        clock: Callable[[], float],
        pump: LogPump,
        records: RecordStore,
        supervisor_identity: tuple[int, int],
        tuning: Tuning,
        cgroup: InstanceCgroup | None,
        limit_note: str,
        containers: ContainerHost | None = None,
        cgroups_path: str | None = None,
    ) -> None:
        self.spec = spec
        self.pending_spec: ProcessSpec | None = None  # ensure() with a new spec: start it after this stops
        self.cond = cond
        self.clock = clock
        self.pump = pump
        self.records = records
        self.supervisor_identity = supervisor_identity
        self.tuning = tuning
        self.cgroup = cgroup
        self.limit_note = limit_note
        # a container instance: the machine side, and the cgroup (relative to runc's own) runc puts it in
        self.containers = containers if spec.container is not None else None
        self.cgroups_path = cgroups_path
        self.state: InstanceState = "starting"
        self.ready = False
        self.restarts = 0
        self.last_exit: str | None = None
        self.reason = "starting"
        self.pid: int | None = None
        self.started_at: float | None = None
        self.next_restart_at: float | None = None
        self.stop_requested = False
        self.stop_grace: float | None = None
        self.stop_event: asyncio.Event | None = None  # created on the loop
        self.task: asyncio.Task[None] | None = None
        self.finished = False
        self._popen: subprocess.Popen[bytes] | None = None
        self._oom_before = -1  # the group's OOM-kill counter when the current process started
        self._failcnt_before = 0
        self._stderr: deque[str] = deque(maxlen=STDERR_TAIL_LINES)  # across restarts: why it crashed
        self._probes: dict[str, ProbeResult] = {}  # "readiness"/"liveness" → its last result

    # ---- reading (any thread, caller holds cond) ---------------------------------------------------
    def status(self) -> InstanceStatus:
        cpu, memory = 0.0, 0
        if self.cgroup is not None:
            cg_cpu, cg_memory = self.cgroup.usage()
            cpu, memory = cg_cpu or 0.0, cg_memory or 0
        elif self.pid is not None:
            cpu, memory = procfs.group_usage(self.pid)
        reason = "; ".join(r for r in (self.reason, self.limit_note) if r)
        spec = self.spec
        return InstanceStatus(
            instance_id=spec.instance_id,
            app=spec.app,
            release=spec.release,
            pid=self.pid,
            port=spec.port,
            state=self.state,
            ready=self.ready,
            restarts=self.restarts,
            last_exit=self.last_exit,
            reason=reason,
            cpu_seconds=cpu,
            memory_bytes=memory,
            started_at=self.started_at,
            next_restart_at=self.next_restart_at,
            stderr_tail=stderr_tail(list(self._stderr)),
            last_probe=self._last_probe(),
            host=spec.host,
        )

    def _last_probe(self) -> ProbeResult | None:
        """A failing liveness check, else a failing readiness check, else the latest (caller holds cond)."""
        found = [p for p in (self._probes.get("liveness"), self._probes.get("readiness")) if p is not None]
        failing = [p for p in found if not p.ok]
        if failing:
            return failing[0]
        return max(found, key=lambda p: p.at) if found else None

    def note_stderr(self, raw: bytes) -> None:
        """Keep a stderr line for the status (any thread)."""
        with self.cond:
            self._stderr.append(raw.decode("utf-8", errors="replace").rstrip("\r"))

    def _note_probe(self, which: str, probe: Probe, ok: bool, detail: str) -> None:
        """Record a check's result (caller holds cond); ``since`` moves only when the outcome changes."""
        now = time.time()
        before = self._probes.get(which)
        since = before.since if before is not None and before.ok == ok else now
        self._probes[which] = ProbeResult(which, probe.kind, _probe_target(probe, self.spec.port), ok,
                                          detail, now, since)  # fmt: skip

    def _set(self, **changes: object) -> None:
        with self.cond:
            changed = False
            for name, value in changes.items():
                if getattr(self, name) != value:
                    setattr(self, name, value)
                    changed = True
            if changed:
                self.cond.notify_all()

    # ---- lifecycle (loop thread) --------------------------------------------------------------------
    async def run(self) -> None:
        """Start, watch and restart until a stop is requested; always ends in ``stopped`` or ``failed``."""
        assert self.stop_event is not None
        final: InstanceState = "stopped"
        final_reason = "stopped"
        try:
            streak = 0  # consecutive quick exits: the backoff exponent
            while not self.stop_requested:
                started = self.clock()
                spawned = (
                    await self._spawn_container(self.containers)
                    if self.containers is not None
                    else self._spawn()
                )
                if spawned:
                    await self._watch()
                if self.stop_requested:
                    break
                if self.clock() - started >= self.tuning.backoff_reset:
                    streak = 0
                delay = min(self.tuning.backoff_base * 2**streak, self.tuning.backoff_cap)
                streak += 1
                self._set(
                    state="crashloop",
                    ready=False,
                    pid=None,
                    next_restart_at=self.clock() + delay,
                    reason=f"back-off {delay:g}s restarting failed instance: {self.reason}",
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stop_event.wait(), delay)
                if not self.stop_requested:
                    self._set(restarts=self.restarts + 1, next_restart_at=None)
        except Exception as exc:  # a supervisor bug must leave a recorded reason, not a silent task death
            final, final_reason = "failed", f"supervisor error: {exc!r}"
            self.kill_now()
        finally:
            if self.containers is not None:
                await asyncio.get_running_loop().run_in_executor(
                    None, self.containers.release, self.spec.instance_id
                )
            await self._release_cgroup()
            if self.spec.home is not None:
                shutil.rmtree(self.spec.home, ignore_errors=True)
            self._set(state=final, ready=False, pid=None, next_restart_at=None, reason=final_reason)

    def _spawn(self) -> bool:
        spec = self.spec
        env = spec.child_env()
        join_fds = []
        try:
            if spec.home is not None and spec.user is not None:
                _make_home(spec.home, spec.user)
            if self.cgroup is not None:
                join_fds = [os.open(p, os.O_WRONLY | os.O_CLOEXEC) for p in self.cgroup.procs_files]
            self._oom_before = self.cgroup.oom_kills() if self.cgroup else -1
            self._failcnt_before = self.cgroup.memory_failures() if self.cgroup else 0
            self._popen = subprocess.Popen(  # type: ignore[call-overload]
                spec.argv,
                cwd=spec.cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
                # the uid/gid switch happens before preexec_fn: PDEATHSIG (cleared by a credential change)
                # is set after it, and the cgroup.procs fds were opened as root, which is what counts
                preexec_fn=_child_setup(os.getpid(), join_fds),
                **popen_identity(spec.user),
            )
        except (OSError, subprocess.SubprocessError) as exc:
            self._set(last_exit="spawn error", reason=f"cannot start {spec.argv[0]!r}: {exc}")
            return False
        finally:
            for fd in join_fds:
                os.close(fd)
        self._started(self._popen.pid)
        return True

    async def _spawn_container(self, containers: ContainerHost) -> bool:
        """``runc run`` in the foreground: runc is the child (its exit code is the container's); runc puts
        the container into the instance's cgroup (fresh each run: ``runc delete`` removes it). The rootfs,
        network and bundle are prepared off the loop; runc is forked on it (PDEATHSIG follows the thread)."""
        spec = self.spec
        self._oom_before, self._failcnt_before = 0, 0
        loop = asyncio.get_running_loop()
        try:
            prepared = await loop.run_in_executor(None, containers.prepare, spec, self.cgroups_path)
            self._popen = containers.start(
                prepared, start_new_session=True, preexec_fn=_child_setup(os.getpid(), [])
            )
        except (OSError, subprocess.SubprocessError, YunzhouError) as exc:
            message = exc.message if isinstance(exc, YunzhouError) else str(exc)
            image = spec.container.image if spec.container else "?"
            self._set(last_exit="spawn error", reason=f"cannot start a container of {image}: {message}")
            return False
        self._started(self._popen.pid)
        return True

    def _started(self, pid: int) -> None:
        spec = self.spec
        start = procfs.start_ticks(pid)
        self.records.write(
            InstanceRecord(
                instance_id=spec.instance_id,
                pid=pid,
                pgid=pid,
                start_ticks=start if start is not None else 0,
                supervisor_pid=self.supervisor_identity[0],
                supervisor_start_ticks=self.supervisor_identity[1],
                cgroups=tuple(str(d) for d in (self.cgroup.dirs if self.cgroup else [])),
            )
        )
        self._set(
            pid=pid, state="starting", ready=False, started_at=self.clock(), reason="waiting for readiness"
        )

    async def _watch(self) -> None:
        """Run until the current process has exited and been reaped; record how it ended."""
        assert self._popen is not None
        assert self.stop_event is not None
        popen, spec = self._popen, self.spec
        pid = popen.pid
        loop = asyncio.get_running_loop()
        eofs = [
            _read_lines(loop, popen.stdout, "stdout", self),
            _read_lines(loop, popen.stderr, "stderr", self),
        ]
        exited = asyncio.ensure_future(wait_exit(pid))
        stop = asyncio.ensure_future(self.stop_event.wait())
        readiness = asyncio.ensure_future(self._readiness(spec.readiness or DEFAULT_READINESS))
        liveness = asyncio.ensure_future(self._liveness(spec.liveness)) if spec.liveness else None
        watched: set[asyncio.Future[object]] = {exited, stop}  # type: ignore[arg-type]
        if liveness is not None:
            watched.add(liveness)  # type: ignore[arg-type]
        kill_reason: str | None = None
        try:
            await asyncio.wait(watched, return_when=asyncio.FIRST_COMPLETED)
            if not exited.done():
                if liveness is not None and liveness.done():
                    kill_reason = liveness.result()
                    self._set(ready=False, reason=kill_reason)
                    grace = spec.grace_seconds
                else:
                    grace = self.stop_grace if self.stop_grace is not None else spec.grace_seconds
                    self._set(state="terminating", ready=False, reason="stopping")
                await _terminate(pid, exited, grace, self._kill_container)
        finally:
            for task in (stop, readiness, liveness):
                if task is not None:
                    task.cancel()
            await exited
        # The leader is a zombie now, so its pid cannot be reused: kill stragglers in its group, then reap.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
        code = popen.wait()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*eofs), 1.0)
        for stream in (popen.stdout, popen.stderr):
            if stream is not None:
                with contextlib.suppress(Exception):
                    loop.remove_reader(stream.fileno())
                stream.close()
        self.records.remove(spec.instance_id)
        exit_text = self._describe_exit(code)
        if self.containers is not None:  # described (the cgroup read): now the container may go
            failure = await loop.run_in_executor(None, self.containers.start_failure, spec.instance_id)
            if failure:
                self.note_stderr(f"runc: {failure}".encode())
            await loop.run_in_executor(None, self.containers.delete, spec.instance_id)
        reason = kill_reason or ("stopped" if self.stop_requested else f"process ended: {exit_text}")
        self._set(last_exit=exit_text, reason=reason, ready=False)

    def _describe_exit(self, code: int) -> str:
        if self.containers is not None and code > 128:  # runc reports a killed container as 128 + signal
            code = 128 - code
        if self.cgroup is not None:
            kills = self.cgroup.oom_kills()
            if kills >= 0 and kills > self._oom_before:
                return "OOMKilled"
            if kills < 0 and code == -signal.SIGKILL and self.cgroup.memory_failures() > self._failcnt_before:
                return "OOMKilled"
        return f"exit {code}" if code >= 0 else f"signal {-code}"

    async def _kill_container(self) -> bool:
        """SIGKILL a container (runc cannot forward it: ``runc kill``); False for a host process."""
        if self.containers is None:
            return False
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self.containers.kill, self.spec.instance_id, signal.SIGKILL)
        return True

    async def _readiness(self, probe: Probe) -> None:
        await asyncio.sleep(probe.initial_delay)
        failures = 0
        while True:
            ok, detail = await self._check(probe)
            with self.cond:
                if self.stop_requested:
                    return  # terminating: readiness no longer matters
                self._note_probe("readiness", probe, ok, detail)
                if ok:
                    failures = 0
                    if not self.ready:
                        self._set(ready=True, state="ready", reason="ready")
                else:
                    failures += 1
                    if self.ready and failures >= probe.failure_threshold:
                        why = f"readiness probe failed {failures} times: {detail}"
                        self._set(ready=False, state="running", reason=why)
                    elif not self.ready:
                        self._set(reason=f"waiting for readiness: {detail}")
                period = probe.period if self.ready or self.state == "running" else FAST_PROBE_PERIOD
            await asyncio.sleep(min(period, probe.period))

    async def _liveness(self, probe: Probe) -> str:
        """Returns (the reason) once the probe failed ``failure_threshold`` times in a row.

        Counting starts once the instance has been ready (an implicit startup probe, what Kubernetes
        users add by hand): a start slowed down by a busy machine is not killed before it could listen.
        An instance that never gets ready fails its rollout's progress deadline instead."""
        await asyncio.sleep(probe.initial_delay)
        while not self.ready:
            await asyncio.sleep(min(probe.period, FAST_PROBE_PERIOD))
        failures = 0
        while True:
            ok, detail = await self._check(probe)
            with self.cond:
                self._note_probe("liveness", probe, ok, detail)
            failures = 0 if ok else failures + 1
            if failures >= probe.failure_threshold:
                return f"liveness probe failed {failures} times: {detail}"
            await asyncio.sleep(probe.period)

    async def _check(self, probe: Probe) -> tuple[bool, str]:
        spec = self.spec
        inside = self._exec if self.containers is not None else None
        return await run_probe(probe, spec.host, spec.port, spec.cwd, spec.child_env(), spec.user, inside)

    async def _exec(self, argv: tuple[str, ...], env: Mapping[str, str], timeout: float) -> tuple[int, str]:
        """An exec probe inside the container (``runc exec``: its user, namespaces and limits)."""
        assert self.containers is not None
        loop = asyncio.get_running_loop()
        call = functools.partial(self.containers.exec, self.spec.instance_id, argv, env, timeout)
        return await loop.run_in_executor(None, call)

    def kill_now(self) -> None:
        """SIGKILL the current process group (or container) and reap it (last-resort cleanup)."""
        popen = self._popen
        if popen is not None and popen.returncode is None:
            if self.containers is not None:
                self.containers.kill(self.spec.instance_id, signal.SIGKILL)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(popen.pid, signal.SIGKILL)
            popen.wait()
            for stream in (popen.stdout, popen.stderr):
                if stream is not None:
                    stream.close()
            self.records.remove(self.spec.instance_id)

    async def _release_cgroup(self) -> None:
        if self.cgroup is None:
            return
        for _ in range(100):  # killed members take a moment to leave the group
            if self.cgroup.remove():
                return
            await asyncio.sleep(0.02)


def _probe_target(probe: Probe, port: int) -> str:
    """What a check looks at, as a person would say it: ``GET /healthz``, ``TCP port 8080``."""
    if probe.kind == "http":
        return f"GET {probe.path}" + (f" on port {probe.port}" if probe.port is not None else "")
    if probe.kind == "tcp":
        return f"TCP port {probe.port if probe.port is not None else port}"
    return "exec " + " ".join(probe.argv)[:200]


def _make_home(home: Path, uid: int) -> None:
    """The instance's private, writable HOME: 0700 and owned by its uid (kept across restarts)."""
    home.mkdir(mode=0o700, exist_ok=True)
    os.chown(home, uid, uid, follow_symlinks=False)
    os.chmod(home, 0o700, follow_symlinks=False)


def _child_setup(parent: int, join_fds: list[int]) -> Callable[[], None]:
    def setup() -> None:  # runs in the child between fork and exec: keep it to syscalls
        _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # the supervisor died before prctl took effect
            os._exit(1)
        for fd in join_fds:
            os.write(fd, b"0")  # "0" = the writing process: join the cgroup before exec

    return setup


async def _terminate(
    pid: int, exited: asyncio.Future[None], grace: float, kill_container: Callable[[], Awaitable[bool]]
) -> None:
    """SIGTERM the group (runc forwards it into a container), SIGKILL after ``grace``."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGTERM)
    try:
        await asyncio.wait_for(asyncio.shield(exited), grace)
    except TimeoutError:
        if await kill_container():  # runc exits with its container
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(exited), 5.0)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)


def _read_lines(
    loop: asyncio.AbstractEventLoop, stream: object, name: LogStream, inst: Instance
) -> asyncio.Future[None]:
    """Read a child's pipe without blocking; the returned future completes at EOF."""
    fileno = stream.fileno()  # type: ignore[attr-defined]
    os.set_blocking(fileno, False)
    splitter = LineSplitter(inst.tuning.max_line_bytes)
    eof: asyncio.Future[None] = loop.create_future()
    spec = inst.spec

    def emit(lines: list[bytes]) -> None:
        for line in lines:
            inst.pump.offer(spec.app, spec.instance_id, spec.release, name, line, spec.log_mask)
            if name == "stderr":
                inst.note_stderr(line)

    def readable() -> None:
        for _ in range(8):  # bounded, so one chatty child cannot starve the loop
            try:
                chunk = os.read(fileno, 65536)
            except BlockingIOError:
                return
            except OSError:
                chunk = b""
            if not chunk:
                emit(splitter.flush())
                loop.remove_reader(fileno)
                if not eof.done():
                    eof.set_result(None)
                return
            emit(splitter.feed(chunk))

    loop.add_reader(fileno, readable)
    return eof
