"""A real registry for tests: Debian's ``docker-registry`` on a free loopback port, no auth, deletes on."""

from __future__ import annotations

import secrets
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml

from yunzhou.testing.polling import wait_until
from yunzhou.testing.server import free_port

REGISTRY_BINARY = "/usr/bin/docker-registry"


@dataclass(frozen=True)
class PlainRegistry:
    url: str  # http://127.0.0.1:PORT
    storage: Path  # the filesystem driver's root directory
    config: Path  # the YAML it runs with (``docker-registry garbage-collect CONFIG`` takes it too)
    process: subprocess.Popen[bytes]


def _answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/v2/", timeout=2.0).status_code == 200
    except httpx.TransportError:
        return False


def _config(root: Path, port: int) -> Path:
    config = root / "config.yml"
    config.write_text(
        yaml.safe_dump(
            {
                "version": 0.1,
                "log": {"level": "warn", "accesslog": {"disabled": True}},
                "storage": {
                    "filesystem": {"rootdirectory": str(root / "data")},
                    "delete": {"enabled": True},
                },
                "http": {"addr": f"127.0.0.1:{port}", "secret": secrets.token_hex(16)},
            }
        )
    )
    return config


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture
def plain_registry(tmp_path: Path) -> Iterator[PlainRegistry]:
    """A running ``docker-registry serve`` with its storage under ``tmp_path``; stopped at teardown."""
    binary = shutil.which(REGISTRY_BINARY) or REGISTRY_BINARY
    root = tmp_path / "registry"
    root.mkdir()
    log_path = root / "registry.log"
    for _attempt in range(3):  # another process may take the free port before the registry binds it
        port = free_port()
        config = _config(root, port)
        url = f"http://127.0.0.1:{port}"
        with log_path.open("wb") as log:
            process = subprocess.Popen([binary, "serve", str(config)], stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_until(
                f"docker-registry on {url} (log: {log_path})",
                lambda: process.poll() is not None or _answers(url),  # noqa: B023 (used in this pass)
                timeout=60.0,
            )
        except BaseException:
            _stop(process)
            raise
        if process.poll() is None:
            break
        if "address already in use" not in log_path.read_text():
            raise AssertionError(f"docker-registry exited at start: {log_path.read_text()}")
    else:
        raise AssertionError(f"docker-registry found no free port in 3 attempts: {log_path.read_text()}")
    try:
        yield PlainRegistry(url=url, storage=root / "data", config=config, process=process)
    finally:
        _stop(process)
