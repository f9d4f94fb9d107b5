"""The builder's vocabulary: what a build is asked (``BuildRequest``), what it runs with (``BuildContext``:
the image store, the stack catalog, a step runner, callbacks), what it gives (``BuildResult``) and how it
fails (``BuildFailed`` with the tool's own words, ``BuildCancelled``)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

from yunzhou.build.oci import ImageRef, ImageStore
from yunzhou.domain.errors import PermanentError

HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
TAIL_LINES = 40
_ERROR_MARKERS = ("ERROR:", "npm ERR!", "npm error", "*** Error compiling", "SyntaxError", "Error:")

LogLine = Callable[[str], None]
Progress = Callable[[str, float], None]


@dataclass
class BuildFailed(PermanentError):
    """The build could not make an image; ``message`` holds the failing tool's own error lines."""

    code: str = "build_failed"


@dataclass
class BuildCancelled(BuildFailed):
    code: str = "cancelled"


@dataclass(frozen=True)
class BuildRequest:
    """What to build. ``command``/``args`` are the Score container's (the image's default command);
    ``labels`` are extra ``org.opencontainers.image.*`` labels (``source``, ``revision``); ``name`` is the
    image's title (``project/app``); ``time_limit`` covers the whole build, in seconds."""

    source_dir: Path
    stack: str | None = None
    annotations: Mapping[str, str] = field(default_factory=dict)
    stack_version: str | None = None
    command: tuple[str, ...] | None = None
    args: tuple[str, ...] | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    name: str = "app"
    time_limit: float = 900.0
    egress: bool = True
    memory_limit_bytes: int = 2 << 30
    cpu_limit_millis: int = 2000


@dataclass(frozen=True)
class BuildStep:
    """One command in a sandbox container on ``image``: ``mounts`` are (container path, host path,
    writable); the runner adds network (egress when asked), limits, and streams the output to ``log``."""

    name: str
    image: ImageRef
    args: tuple[str, ...]
    env: Mapping[str, str]
    cwd: str
    mounts: tuple[tuple[str, Path, bool], ...]
    uid: int
    gid: int
    egress: bool
    memory_limit_bytes: int
    cpu_limit_millis: int


class StepRunner(Protocol):
    def run(self, step: BuildStep, log: LogLine, *, timeout: float, cancel: threading.Event) -> int:
        """Run ``step`` to its end; its exit code. Past ``timeout`` or on ``cancel``: kill it and raise
        ``BuildFailed`` / ``BuildCancelled``."""
        ...


class Stacks(Protocol):
    """What the builder needs of ``build.stacks.StackCatalog``."""

    def image(
        self,
        name: str,
        version: str | None = None,
        progress: Progress | None = None,
        *,
        purpose: Literal["run", "build"] = "run",
        cancel: threading.Event | None = None,
    ) -> ImageRef: ...

    def definition(self, name: str, version: str | None = None) -> StackDefinitionLike: ...


class StackDefinitionLike(Protocol):
    @property
    def version(self) -> str: ...

    @property
    def layout(self) -> Mapping[str, str]: ...

    @property
    def uid_gid(self) -> tuple[int, int]: ...


@dataclass
class BuildContext:
    """Where and with what a build runs. ``work_dir``: a scratch folder for this build (emptied)."""

    store: ImageStore
    stacks: Stacks
    runner: StepRunner
    work_dir: Path
    log: LogLine = field(default=lambda line: None)
    progress: Progress = field(default=lambda step, fraction: None)
    cancel: threading.Event = field(default_factory=threading.Event)
    buildah_root: Path | None = None  # buildah's storage for Dockerfile builds (default <store>/../buildah)


@dataclass(frozen=True)
class BuildResult:
    digest: str
    config_digest: str
    size: int
    stack: str
    stack_version: str
    stack_digest: str
    deps_cached: bool
    sbom: bytes
    detected: str = ""  # why this stack (one line)


def failure_message(what: str, code: int, tail: Sequence[str]) -> str:
    """``what`` failed, with the tool's own error lines: from its first error line (and the lines before it
    when that is the very last one, a wrapper's summary such as buildah's), else its last lines."""
    lines = [line.rstrip() for line in tail if line.strip()]
    start = next((i for i, line in enumerate(lines) if line.lstrip().startswith(_ERROR_MARKERS)), None)
    shown = lines[-8:] if start is None or start == len(lines) - 1 else lines[start:][:12]
    head = f"{what} failed (exit code {code})"
    return head + (":\n" + "\n".join(shown) if shown else "")
