"""Drive Debian's ``runc`` (1.1): one-shot runs, long-running children, exec, kill, delete, list, state.

Each ``Runc`` has its own state root (``runc --root``), so two servers (or two tests) on one machine never
see each other's containers. runc's own messages go to ``<bundle>/runc.log`` (``--log-format json``), never
to the container's stderr, and every failure becomes a ``yunzhou.domain.errors`` error carrying runc's
message: ``NotFound`` for an unknown container, ``SandboxError`` (permanent) for anything else, and
``SandboxTimeout`` / ``SandboxCancelled`` when ``run`` had to kill the container.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from yunzhou.domain.errors import NotFound, PermanentError
from yunzhou.sandbox.bundle import ContainerSpec, write_bundle

RUNC = "runc"
LOG_FILE = "runc.log"  # in the bundle directory
_POLL = 0.05
_Output = int | IO[Any] | None


@dataclass
class SandboxError(PermanentError):
    """runc refused or failed; the message carries runc's own words."""

    code: str = "sandbox_failed"


@dataclass
class SandboxTimeout(SandboxError):
    """``run`` killed the container because it ran past its time limit."""

    code: str = "timeout"


@dataclass
class SandboxCancelled(SandboxError):
    """``run`` killed the container because its cancel event was set."""

    code: str = "cancelled"


@dataclass(frozen=True)
class ContainerState:
    """What ``runc state``/``list`` report; ``status``: creating, created, running, paused or stopped."""

    id: str
    pid: int
    status: str
    bundle: Path

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> ContainerState:
        return cls(str(raw["id"]), int(raw.get("pid") or 0), str(raw["status"]), Path(str(raw["bundle"])))


def _runc_message(log: Path) -> str:
    """The error lines runc wrote to its JSON log (the last few), or "" when it wrote none."""
    try:
        lines = log.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    messages = []
    for line in lines:
        with contextlib.suppress(ValueError):
            entry = json.loads(line)
            if isinstance(entry, dict) and entry.get("level") in ("error", "fatal"):
                messages.append(str(entry.get("msg", "")))
    return "; ".join(messages[-3:])


class Runc:
    """Containers under one runc state root (created 0700)."""

    def __init__(self, state_root: Path, *, binary: str = RUNC) -> None:
        self.state_root = state_root
        self.binary = binary

    def _command(self, *args: str, log: Path | None = None) -> list[str]:
        self.state_root.mkdir(parents=True, exist_ok=True, mode=0o700)
        head = [self.binary, "--root", str(self.state_root)]
        if log is not None:
            head += ["--log", str(log), "--log-format", "json"]
        return [*head, *args]

    def _call(self, *args: str, timeout: float = 30.0, what: str) -> str:
        """Run a short runc command; its stdout, or an error with runc's stderr."""
        try:
            done = subprocess.run(
                self._command(*args), capture_output=True, text=True, timeout=timeout, check=False
            )
        except subprocess.TimeoutExpired as exc:
            raise SandboxError(f"{what}: runc did not answer within {timeout:g} s") from exc
        except OSError as exc:
            raise SandboxError(f"{what}: cannot run {self.binary}: {exc.strerror}") from exc
        if done.returncode != 0:
            message = " ".join(done.stderr.split()) or f"exit code {done.returncode}"
            if "container does not exist" in message:
                raise NotFound(f"{what}: no such container ({message})", code="container_not_found")
            raise SandboxError(f"{what}: {message}")
        return done.stdout

    # ---- starting --------------------------------------------------------------------------------------
    def spawn(
        self,
        spec: ContainerSpec,
        bundle_dir: Path,
        stdout: _Output,
        stderr: _Output,
        *,
        keep: bool = False,
        **popen: Any,
    ) -> subprocess.Popen[bytes]:
        """Start ``spec`` as a foreground ``runc run`` child and return it (for a supervisor).

        The child's exit code is the container's (128 + signal when killed: 137 for SIGKILL/OOM). runc
        forwards the signals it receives (SIGTERM, SIGINT, …) to the container's process; SIGKILL cannot be
        forwarded, so stop a container with ``kill(id, SIGKILL)``, never ``Popen.kill()``, which would
        leave it running without its runc. Call ``delete(id, force=True)`` after the child has exited,
        and ``start_failure(bundle_dir)`` to learn why when it exits before serving. ``keep``: the stopped
        container (and its cgroup, with the OOM-kill counter) stays until ``delete`` (``runc run --keep``).
        """
        write_bundle(spec, bundle_dir)
        log = bundle_dir / LOG_FILE
        log.unlink(missing_ok=True)
        keeping = ["--keep"] if keep else []
        command = self._command("run", *keeping, "--bundle", str(bundle_dir), spec.id, log=log)
        try:
            return subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr, **popen)
        except OSError as exc:
            raise SandboxError(f"container {spec.id}: cannot run {self.binary}: {exc.strerror}") from exc

    @staticmethod
    def start_failure(bundle_dir: Path) -> str:
        """runc's own error message for the last start in ``bundle_dir`` ("" when runc reported none)."""
        return _runc_message(bundle_dir / LOG_FILE)

    def run(
        self,
        spec: ContainerSpec,
        bundle_dir: Path,
        *,
        stdout: _Output = None,
        stderr: _Output = None,
        timeout: float | None = None,
        cancel: threading.Event | None = None,
    ) -> int:
        """Run ``spec`` to completion and return its exit code (one-shot, e.g. a build step).

        Past ``timeout`` seconds → the container is killed and deleted and ``SandboxTimeout`` raised; when
        ``cancel`` is set → the same with ``SandboxCancelled``. A container runc could not start raises
        ``SandboxError`` with runc's message. The container and its state are gone when this returns.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        child = self.spawn(spec, bundle_dir, stdout, stderr)
        stopped: SandboxError | None = None
        try:
            while True:
                try:
                    code = child.wait(timeout=_POLL)
                    break
                except subprocess.TimeoutExpired:
                    pass
                if cancel is not None and cancel.is_set():
                    stopped = SandboxCancelled(f"container {spec.id}: cancelled, killed")
                elif deadline is not None and time.monotonic() >= deadline:
                    stopped = SandboxTimeout(
                        f"container {spec.id}: time limit of {timeout:g} s reached, killed"
                    )
                if stopped is not None:
                    self._kill_quietly(spec.id)
                    code = child.wait()
                    break
        finally:
            if child.poll() is None:  # an exception while waiting: never leave it behind
                self._kill_quietly(spec.id)
                child.wait()
            self._delete_quietly(spec.id)
        if stopped is not None:
            raise stopped
        message = _runc_message(bundle_dir / LOG_FILE)
        if message:
            raise SandboxError(f"container {spec.id}: {message}")
        return code

    # ---- inside a running container --------------------------------------------------------------------
    def exec(
        self,
        container_id: str,
        argv: Sequence[str],
        env: Mapping[str, str] | None = None,
        timeout: float = 10.0,
    ) -> tuple[int, str]:
        """Run ``argv`` in the running container (its user, limits, seccomp); (exit code, stdout+stderr).

        Past ``timeout`` the exec'd process is killed and ``SandboxTimeout`` raised.
        """
        if not argv:
            raise SandboxError(f"exec in {container_id}: an empty command")
        pid_file = self.state_root / f".exec-{container_id}-{os.getpid()}-{threading.get_ident()}.pid"
        args = ["exec", "--pid-file", str(pid_file)]
        for name, value in (env or {}).items():
            args += ["--env", f"{name}={value}"]
        command = self._command(*args, container_id, *argv)
        try:
            done = subprocess.run(
                command, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout, check=False
            )
        except subprocess.TimeoutExpired as exc:
            self._kill_pid_file(pid_file)
            raise SandboxTimeout(f"exec in {container_id}: no answer within {timeout:g} s, killed") from exc
        finally:
            pid_file.unlink(missing_ok=True)
        output = (done.stdout + done.stderr).decode(errors="replace")
        if done.returncode != 0 and "container does not exist" in output:
            raise NotFound(f"exec in {container_id}: no such container", code="container_not_found")
        return done.returncode, output

    @staticmethod
    def _kill_pid_file(pid_file: Path) -> None:
        with contextlib.suppress(OSError, ValueError):
            os.kill(int(pid_file.read_text().strip()), signal.SIGKILL)

    # ---- lifecycle -------------------------------------------------------------------------------------
    def kill(self, container_id: str, sig: int | str = signal.SIGTERM) -> None:
        """Send ``sig`` to the container's process (with its pid namespace, init's death ends all of it)."""
        name = sig if isinstance(sig, str) else str(int(sig))
        self._call("kill", container_id, name, what=f"kill {container_id}")

    def delete(self, container_id: str, *, force: bool = False) -> None:
        """Remove a stopped container (``force``: also a running one, killing it); its cgroup goes too."""
        self._call("delete", *(["--force"] if force else []), container_id, what=f"delete {container_id}")

    def state(self, container_id: str) -> ContainerState | None:
        """The container's state, or None when this state root has no such container."""
        try:
            out = self._call("state", container_id, what=f"state of {container_id}")
        except NotFound:
            return None
        return ContainerState.from_json(json.loads(out))

    def list(self) -> list[ContainerState]:
        """Every container under this state root (to adopt or clean up what a previous run left)."""
        raw = json.loads(self._call("list", "--format", "json", what="list containers") or "null")
        return [ContainerState.from_json(item) for item in raw or []]

    def _kill_quietly(self, container_id: str) -> None:
        with contextlib.suppress(SandboxError, NotFound):
            self.kill(container_id, signal.SIGKILL)

    def _delete_quietly(self, container_id: str) -> None:
        with contextlib.suppress(SandboxError, NotFound):
            self.delete(container_id, force=True)
