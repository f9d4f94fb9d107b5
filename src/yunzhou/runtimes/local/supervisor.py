"""``LocalSupervisor``: runs instances as real child processes from one event-loop thread."""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path

from yunzhou.runtimes.base import InstanceStatus

from . import cgroups, procfs
from .containers import ContainerHost
from .instance import Instance, Tuning
from .logs import LogPump
from .records import RecordStore, kill_orphans
from .spec import LogLine, ProcessSpec


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:  # uvloop is a speed-up, not a requirement
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


class LocalSupervisor:
    """Runs, watches, restarts and stops instances; thread-safe for callers.

    All process work happens on a private asyncio (uvloop) loop in one long-lived thread: children get
    PR_SET_PDEATHSIG, which the kernel ties to the thread that forked them.
    """

    def __init__(
        self,
        state_dir: Path,
        *,
        log_sink: Callable[[LogLine], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        backoff_base: float = 1.0,
        backoff_cap: float = 60.0,
        backoff_reset: float = 60.0,
        max_line_bytes: int = 16 * 1024,
        log_queue_size: int = 10_000,
        use_cgroups: bool = True,
        containers: ContainerHost | None = None,
    ) -> None:
        self.state_dir = state_dir
        self.containers = containers  # runs the instances whose spec has a container plan
        state_dir.mkdir(parents=True, exist_ok=True)
        self._records = RecordStore(state_dir)
        self._pump = LogPump(log_sink, log_queue_size)
        self._clock = clock
        self._tuning = Tuning(backoff_base, backoff_cap, backoff_reset, max_line_bytes)
        self._cond = threading.Condition()
        self._instances: dict[str, Instance] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._closing = False
        self._identity = (os.getpid(), procfs.start_ticks(os.getpid()) or 0)
        self._scope = hashlib.sha256(str(state_dir.resolve()).encode()).hexdigest()[:8]
        self._cgroup_layout, self._cgroup_note = (
            cgroups.detect() if use_cgroups else (None, "cgroups unavailable: disabled by configuration")
        )

    # ---- lifecycle -----------------------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("supervisor already started")
        loop = _new_loop()
        self._loop = loop
        self._thread = threading.Thread(target=self._run_loop, args=(loop,), name="yunzhou-supervisor")
        self._thread.start()

    def _run_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_forever()
            pending = asyncio.all_tasks(loop)
            for task in pending:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            loop.close()

    def close(self) -> None:
        """Stop every instance gracefully (each with its grace period), then the loop and the log sink."""
        if self._thread is None or self._loop is None:
            self._pump.close()
            return
        with self._cond:
            self._closing = True
            instances = list(self._instances.values())
        for inst in instances:
            inst.pending_spec = None
            self.stop(inst.spec.instance_id)
        longest = max((i.spec.grace_seconds for i in instances), default=0.0)
        self.wait_for(lambda _: self._all_finished(), longest + 10.0)
        for inst in instances:  # anything still alive after its grace: no survivors
            inst.kill_now()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._thread = None
        self._pump.close()

    def _all_finished(self) -> bool:
        return all(inst.finished for inst in self._instances.values())

    # ---- commands ------------------------------------------------------------------------------------
    def ensure(self, spec: ProcessSpec) -> None:
        """Start the instance if unknown; the same id with the same spec is a no-op. A different spec for a
        known id replaces it: the old process is stopped, then the new spec starts (restarts reset)."""
        with self._cond:
            if self._loop is None or self._closing:
                raise RuntimeError("supervisor is not running")
            if spec.container is not None and self.containers is None:
                raise RuntimeError("a container instance needs a supervisor with a ContainerHost")
            inst = self._instances.get(spec.instance_id)
            if inst is not None and not inst.finished:
                if inst.spec == spec and not inst.stop_requested:
                    inst.pending_spec = None
                    return
                inst.pending_spec = spec
                if not inst.stop_requested:
                    self._request_stop(inst, None)
                return
            self._launch(spec)

    def _launch(self, spec: ProcessSpec) -> None:
        """Register (visible at once as ``starting``) and schedule the instance; caller holds the lock."""
        assert self._loop is not None
        cgroup, note = self._make_cgroup(spec)
        inst = Instance(
            spec,
            cond=self._cond,
            clock=self._clock,
            pump=self._pump,
            records=self._records,
            supervisor_identity=self._identity,
            tuning=self._tuning,
            cgroup=cgroup,
            limit_note=note,
            containers=self.containers,
            # runc resolves a relative cgroupsPath against its own cgroup, the supervisor's: the group above
            cgroups_path=f"{cgroups.PARENT_NAME}/{cgroup.name}" if cgroup is not None else None,
        )
        self._instances[spec.instance_id] = inst
        self._cond.notify_all()
        self._loop.call_soon_threadsafe(self._begin, inst)

    def _make_cgroup(self, spec: ProcessSpec) -> tuple[cgroups.InstanceCgroup | None, str]:
        if self._cgroup_layout is None:
            return None, self._cgroup_note if spec.limited else ""
        name = re.sub(r"[^A-Za-z0-9_.-]", "_", spec.instance_id)[:80] + "-" + self._scope
        try:
            group = cgroups.InstanceCgroup(
                self._cgroup_layout, name, spec.memory_limit_bytes, spec.cpu_limit_millis
            )
        except OSError as exc:
            return None, f"cgroups unavailable: cannot create group {name}: {exc}" if spec.limited else ""
        return group, "; ".join(group.notes) if spec.limited else ""

    def _begin(self, inst: Instance) -> None:  # loop thread
        inst.stop_event = asyncio.Event()
        if inst.stop_requested:
            inst.stop_event.set()
        inst.task = asyncio.ensure_future(self._drive(inst))

    async def _drive(self, inst: Instance) -> None:
        await inst.run()
        with self._cond:
            inst.finished = True
            self._cond.notify_all()
            follow = inst.pending_spec
            if follow is not None and not self._closing:
                self._launch(follow)

    def stop(self, instance_id: str, *, grace: float | None = None) -> None:
        """Return at once; the instance goes ``terminating`` → ``stopped`` (TERM the group, grace, KILL)."""
        with self._cond:
            inst = self._instances.get(instance_id)
            if inst is None:
                return
            inst.pending_spec = None
            if not inst.stop_requested and not inst.finished:
                self._request_stop(inst, grace)

    def _request_stop(self, inst: Instance, grace: float | None) -> None:
        assert self._loop is not None
        inst.stop_requested = True
        inst.stop_grace = grace
        if inst.state not in ("stopped", "failed"):
            inst.state = "terminating"
            inst.ready = False
            inst.reason = "stopping"
        self._cond.notify_all()

        def signal_stop() -> None:
            if inst.stop_event is not None:
                inst.stop_event.set()

        self._loop.call_soon_threadsafe(signal_stop)

    # ---- observation ---------------------------------------------------------------------------------
    def statuses(self) -> list[InstanceStatus]:
        """A snapshot. A stopped instance is reported once more, then forgotten."""
        with self._cond:
            snapshot = [inst.status() for inst in self._instances.values()]
            for key, inst in list(self._instances.items()):
                if inst.finished and inst.state == "stopped" and inst.pending_spec is None:
                    del self._instances[key]
            return snapshot

    def peek(self) -> list[InstanceStatus]:
        """A snapshot that forgets nothing (``statuses`` reports a stopped instance once, to the pass)."""
        with self._cond:
            return [inst.status() for inst in self._instances.values()]

    def wait_for(self, predicate: Callable[[list[InstanceStatus]], bool], timeout: float) -> bool:
        """Block until ``predicate(statuses)`` holds (re-checked on every change) or ``timeout`` passes.
        Does not forget stopped instances."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                if predicate([inst.status() for inst in self._instances.values()]):
                    return True
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(min(remaining, 0.5))

    @property
    def dropped_log_lines(self) -> int:
        """Lines dropped because the log sink fell behind."""
        return self._pump.dropped

    def cleanup_orphans(self) -> list[int]:
        """Kill what a previous, dead supervisor on this state dir left behind; returns the pids killed.
        Its containers are killed and removed too (not adopted: their logs went to the dead supervisor)."""
        killed = kill_orphans(self._records)
        if self.containers is not None:
            self.containers.cleanup_leftovers()
        return killed

    @staticmethod
    def cgroup_support() -> tuple[bool, str]:
        layout, explanation = cgroups.detect()
        return layout is not None, explanation

    def __enter__(self) -> LocalSupervisor:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
