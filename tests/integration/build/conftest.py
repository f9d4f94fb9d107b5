"""A real builder for the build integration tests: the image store in a temporary folder, the stacks from
the shared stack cache (~/.cache/yunzhou/stacks; built on first use), runc steps on the platform bridge."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from yunzhou.build.builder import BuildContext, BuildRequest, BuildResult, BuildStep, build_image
from yunzhou.build.oci import ImageStore
from yunzhou.build.stacks import StackCatalog, default_cache_dir
from yunzhou.build.steps import SandboxStepRunner
from yunzhou.sandbox import LayerCache, Network, Runc


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

    def build(self, source: Path, **request: object) -> BuildResult:
        self.lines.clear()
        self.runner.ran.clear()
        context = BuildContext(
            self.store, self.stacks, self.runner, self.work / "build", log=self.lines.append
        )
        return build_image(BuildRequest(source, name="test/app", **request), context)  # type: ignore[arg-type]


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
