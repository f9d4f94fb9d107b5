"""Real router processes in front of real backend processes, all on 127.0.0.1 with kernel-chosen ports."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from yunzhou.router import RouterProcess

BACKEND_SCRIPT = Path(__file__).with_name("backend.py")
HOST = "orders.dev.shop.localhost"
APP = "shop/dev/orders"


def wait_for(condition: Callable[[], Any], what: str, timeout: float = 10.0) -> Any:
    """Poll ``condition`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.01)


@dataclass
class Backend:
    name: str
    port: int
    proc: subprocess.Popen[bytes]

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def entry(self, release: int = 1, backend_id: str | None = None) -> dict[str, Any]:
        return {"id": backend_id or self.name, "address": self.address, "release": release}

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_backend(name: str, workdir: Path, script: Path = BACKEND_SCRIPT) -> Backend:
    ready = workdir / f"backend-{name}.json"
    proc = subprocess.Popen([sys.executable, str(script), name, str(ready)], stdin=subprocess.DEVNULL)
    try:
        wait_for(lambda: ready.exists() or proc.poll() is not None, f"backend {name} to listen")
        if proc.poll() is not None:
            raise AssertionError(f"backend {name} exited with {proc.returncode}")
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    return Backend(name, json.loads(ready.read_text())["port"], proc)


@pytest.fixture(scope="session")
def backends(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Backend]]:
    """Six long-lived backends: a1..a3 (set A) and b1..b3 (set B). Tests must not stop them."""
    workdir = tmp_path_factory.mktemp("backends")
    started: dict[str, Backend] = {}
    try:
        for name in ("a1", "a2", "a3", "b1", "b2", "b3"):
            started[name] = start_backend(name, workdir)
        yield started
    finally:
        for backend in started.values():
            backend.stop()


@pytest.fixture
def backend_factory(tmp_path: Path) -> Iterator[Callable[..., Backend]]:
    """Backends owned by one test (for tests that stop them); ``script`` picks another backend program."""
    started: list[Backend] = []

    def start(name: str, script: Path = BACKEND_SCRIPT) -> Backend:
        backend = start_backend(name, tmp_path, script)
        started.append(backend)
        return backend

    yield start
    for backend in started:
        backend.stop()


@pytest.fixture
def router_factory(tmp_path: Path) -> Iterator[Callable[..., RouterProcess]]:
    """Start routers with given options; each is stopped (SIGTERM, then SIGKILL) however the test ends."""
    started: list[RouterProcess] = []

    def start(**options: Any) -> RouterProcess:
        index = len(started)
        router = RouterProcess(log_file=tmp_path / f"router-{index}.log")
        started.append(router)
        options.setdefault("access_log", str(tmp_path / f"access-{index}.log"))
        router.start("127.0.0.1:0", "127.0.0.1:0", **options)
        return router

    yield start
    for router in started:
        router.stop(timeout=10)
        if router.log_file is not None and router.log_file.exists():
            print(f"--- {router.log_file.name}\n{router.log_file.read_text()}")  # shown when a test fails


@pytest.fixture
def router(router_factory: Callable[..., RouterProcess]) -> RouterProcess:
    return router_factory()


def route(
    host: str, backends: list[dict[str, Any]], app: str = APP, path_prefix: str = "/"
) -> dict[str, Any]:
    return {"host": host, "path_prefix": path_prefix, "app": app, "backends": backends}


def snapshot(version: int, *routes: dict[str, Any]) -> dict[str, Any]:
    return {"version": version, "routes": list(routes)}


def proxy_client(router: RouterProcess, **kwargs: Any) -> httpx.Client:
    kwargs.setdefault("timeout", 10.0)
    return httpx.Client(base_url=router.proxy_url, trust_env=False, **kwargs)


def admin_client(router: RouterProcess, **kwargs: Any) -> httpx.Client:
    """A client of the router's admin API carrying its token, as the control plane's requests do."""
    kwargs.setdefault("timeout", 10.0)
    kwargs.setdefault("headers", router.admin_headers)
    return httpx.Client(base_url=f"http://{router.admin}", trust_env=False, **kwargs)


def free_port() -> int:
    """A port nothing listens on (bound, then released): connecting to it is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def metric_value(text: str, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus text; 0 when the series is absent."""
    wanted = ",".join(f'{k}="{v}"' for k, v in labels.items())
    prefix = f"{name}{{{wanted}}} " if labels else f"{name} "
    for line in text.splitlines():
        if line.startswith(prefix):
            return float(line[len(prefix) :])
    return 0.0


def read_response(reader: Any) -> tuple[int, dict[str, str], bytes]:
    """One Content-Length-framed HTTP/1.1 response from a socket's binary file (for raw-socket tests)."""
    status = int(reader.readline().split()[1])
    headers: dict[str, str] = {}
    while (line := reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers, reader.read(int(headers.get("content-length", "0")))
