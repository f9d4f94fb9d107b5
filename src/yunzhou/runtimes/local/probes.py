"""Readiness and liveness checks, run on the supervisor's event loop."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path

from yunzhou.domain.errors import YunzhouError

from .isolation import popen_identity
from .spec import Probe

#: runs an exec probe inside a container: (argv, env, timeout) → (exit code, output)
ExecIn = Callable[[tuple[str, ...], Mapping[str, str], float], Awaitable[tuple[int, str]]]


async def run_probe(
    probe: Probe,
    host: str,
    port: int,
    cwd: Path,
    env: Mapping[str, str],
    user: int | None = None,
    exec_in: ExecIn | None = None,
) -> tuple[bool, str]:
    """(ok, detail). Never raises for a failing target; the detail says what went wrong. HTTP and TCP
    checks dial ``host`` (the instance's address); an exec probe runs as ``user`` (its own) when given,
    inside the instance's container through ``exec_in`` when it is one."""
    target = probe.port if probe.port is not None else port
    try:
        if probe.kind == "tcp":
            return await asyncio.wait_for(_tcp(host, target), probe.timeout)
        if probe.kind == "http":
            return await asyncio.wait_for(_http(probe, host, target), probe.timeout)
        if exec_in is not None:
            code, _output = await exec_in(probe.argv, env, probe.timeout)
            return code == 0, f"exit {code}"
        return await _exec(probe, cwd, env, user)
    except YunzhouError as exc:  # runc: no such container, a timeout (the exec'd process was killed)
        return False, exc.message
    except TimeoutError:
        return False, f"timed out after {probe.timeout:g}s"
    except OSError as exc:
        return False, _describe(exc)


def _describe(exc: OSError) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    return exc.strerror or type(exc).__name__


async def _tcp(host: str, port: int) -> tuple[bool, str]:
    _reader, writer = await asyncio.open_connection(host, port)
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True, "connected"


async def _http(probe: Probe, host: str, port: int) -> tuple[bool, str]:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        head = [f"GET {probe.path} HTTP/1.1", f"Host: {host}:{port}", "User-Agent: yunzhou-probe"]
        head += [f"{name}: {value}" for name, value in probe.headers]
        head += ["Connection: close", "", ""]
        writer.write("\r\n".join(head).encode("latin-1"))
        await writer.drain()
        status_line = await reader.readline()
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    parts = status_line.split()
    if len(parts) < 2 or not parts[1].isdigit():
        return False, "no HTTP response"
    code = int(parts[1])
    return 200 <= code < 400, f"HTTP {code}"


async def _exec(probe: Probe, cwd: Path, env: Mapping[str, str], user: int | None) -> tuple[bool, str]:
    proc = subprocess.Popen(  # type: ignore[call-overload]
        probe.argv,
        cwd=cwd,
        env=dict(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        **popen_identity(user),
    )
    try:
        await asyncio.wait_for(wait_exit(proc.pid), probe.timeout)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        await wait_exit(proc.pid)
        proc.wait()
        return False, f"timed out after {probe.timeout:g}s"
    code = proc.wait()
    return code == 0, f"exit {code}" if code >= 0 else f"signal {-code}"


async def wait_exit(pid: int) -> None:
    """Return once ``pid`` (our child) has exited — without reaping it, so its group stays addressable."""
    loop = asyncio.get_running_loop()
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    done: asyncio.Future[None] = loop.create_future()

    def readable() -> None:
        if not done.done():
            done.set_result(None)

    loop.add_reader(pidfd, readable)
    try:
        await done
    finally:
        loop.remove_reader(pidfd)
        os.close(pidfd)
