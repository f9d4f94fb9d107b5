"""A real builder for the build integration tests: the image store in a temporary folder, the stacks from
the shared stack cache (~/.cache/yunzhou/stacks; built on first use), runc steps on the platform bridge."""

from __future__ import annotations

import contextlib
import signal
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from yunzhou.build.builder import BuildContext, BuildRequest, BuildResult, BuildStep, build_image
from yunzhou.build.oci import ImageStore
from yunzhou.build.stacks import StackCatalog, default_cache_dir
from yunzhou.build.steps import SandboxStepRunner
from yunzhou.sandbox import ContainerSpec, LayerCache, Network, Runc


@dataclass
class _Recording:
    """The real runner, remembering the names of the steps it ran."""

    inner: SandboxStepRunner
    ran: list[str] = field(default_factory=list)

    def run(self, step: BuildStep, log, *, timeout: float, cancel: threading.Event) -> int:
        self.ran.append(step.name)
        return self.inner.run(step, log, timeout=timeout, cancel=cancel)


@dataclass
class Builder:
    store: ImageStore
    runner: _Recording
    stacks: StackCatalog
    work: Path
    layers: LayerCache
    runc: Runc
    lines: list[str] = field(default_factory=list)

    def build(self, source: Path, *, cancel_at: str = "", **request: object) -> BuildResult:
        """Build ``source``; with ``cancel_at``, the build is cancelled when a log line starts with it."""
        self.lines.clear()
        self.runner.ran.clear()
        cancel = threading.Event()

        def log(line: str) -> None:
            self.lines.append(line)
            if cancel_at and line.startswith(cancel_at):
                cancel.set()

        context = BuildContext(
            self.store, self.stacks, self.runner, self.work / "build", log=log, cancel=cancel
        )
        return build_image(BuildRequest(source, name="test/app", **request), context)  # type: ignore[arg-type]

    @contextlib.contextmanager
    def serve(self, digest: str, work: Path) -> Iterator[tuple[str, Callable[[str], str]]]:
        """Run the image as its config says (entrypoint, command, user, env) in runc on the bridge;
        yields the container's name and a GET of a path on its port 8080 (waits up to 60 s for it)."""
        config = self.store.config(digest)["config"]
        uid, gid = (int(n) for n in config["User"].split(":"))
        rootfs, name, network = work / "rootfs", "yzbuildtest-run", Network()
        self.layers.rootfs(self.store, self.store.image(digest), rootfs)
        attachment = network.attach(name)
        child = None

        def get(path: str) -> str:
            deadline = time.monotonic() + 60
            while True:
                try:
                    with urllib.request.urlopen(f"http://{attachment.ip}:8080{path}", timeout=2) as response:
                        return str(response.read().decode())
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.2)

        try:
            spec = ContainerSpec(
                id=name, rootfs=rootfs, args=(*config["Entrypoint"], *config["Cmd"]),
                env=dict(item.split("=", 1) for item in config["Env"]), cwd=config.get("WorkingDir", "/"),
                uid=uid, gid=gid, network=attachment,
            )  # fmt: skip
            child = self.runc.spawn(spec, work / "bundle", None, None)
            yield name, get
        finally:
            if child is not None:
                self.runc.kill(name, signal.SIGKILL)
                child.wait(timeout=30)
                self.runc.delete(name, force=True)
            network.detach(name)
            self.layers.release(rootfs)


@pytest.fixture(scope="session")
def builder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Builder]:
    root = tmp_path_factory.mktemp("builder")
    store = ImageStore(root / "images")
    layers = LayerCache(root / "layers")
    runc = Runc(root / "runc")
    runner = SandboxStepRunner(store, layers, runc, root / "steps", Network())
    yield Builder(store, _Recording(runner), StackCatalog(default_cache_dir(), store), root, layers, runc)
    assert runc.list() == []
    assert not (root / "steps").exists() or not any((root / "steps").iterdir())
