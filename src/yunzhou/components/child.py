"""``ChildProcess``: a managed child process with a readiness check and an orderly stop."""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from yunzhou.domain.errors import PermanentError, TemporaryError

_PR_SET_PDEATHSIG = 1


def die_with_parent(parent: int) -> Callable[[], None]:
    """A ``preexec_fn``: the child gets SIGKILL when ``parent`` dies (even by kill -9), so a crashed
    server never leaves a component holding its port or its data. Linux ties this to the *thread* that
    started the child: start components from threads that live as long as the server (the main thread,
    the worker's loop, the retention loop)."""

    def arm() -> None:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # it died before the signal was armed
            os._exit(1)

    return arm


def terminate(proc: subprocess.Popen[Any], timeout: float) -> int:
    """SIGTERM, wait up to ``timeout``, then SIGKILL; the exit code (a process already gone keeps its own)."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


class ChildProcess:
    """One component process. ``start`` returns when ``ready()`` is true; exiting first is a
    PermanentError, not getting ready in time a TemporaryError (each with the log's last lines)."""

    def __init__(self, name: str, log_file: Path) -> None:
        self.name = name
        self.log_file = log_file
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def start(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str],
        ready: Callable[[], bool],
        timeout: float = 30.0,
        cwd: Path | None = None,
    ) -> None:
        if self.running():
            raise RuntimeError(f"{self.name} is already running")
        self.stop()  # a previous run that exited by itself: reap it and close its log
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_file, "ab")  # noqa: SIM115 - lives as long as the process
        self._proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=dict(env),
            cwd=cwd,
            preexec_fn=die_with_parent(os.getpid()),
        )
        deadline = time.monotonic() + timeout
        while not ready():
            code = self._proc.poll()
            if code is not None:
                self._close_log()
                raise PermanentError(
                    f"{self.name} exited with code {code} before it was ready{self.log_tail()}"
                )
            if time.monotonic() > deadline:
                self.stop(timeout=5)
                raise TemporaryError(f"{self.name} was not ready within {timeout:g} s{self.log_tail()}")
            time.sleep(0.02)

    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int:
        if self._proc is None:
            raise RuntimeError(f"{self.name} is not started")
        return self._proc.pid

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM, wait up to ``timeout``, then SIGKILL; returns the exit code (None: never started)."""
        proc, self._proc = self._proc, None
        if proc is None:
            return None
        code = terminate(proc, timeout)
        self._close_log()
        return code

    def log_tail(self, lines: int = 5) -> str:
        try:
            tail = self.log_file.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-lines:]
        except OSError:
            return ""
        return f"; {self.name} log ({self.log_file}):\n" + "\n".join(tail) if tail else ""

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> ChildProcess:
        return self

    def __exit__(self, *_: Any) -> None:
        self.stop()
