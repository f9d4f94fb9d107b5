"""Debian root file systems from packages, with mmdebstrap: the command line (pure), the host's apt sources
and the run itself (progress from mmdebstrap's ``I:`` lines, its last lines when it fails).

The mirror is never written here: mmdebstrap gets the host's apt sources file as its MIRROR argument, so a
machine uses whatever mirror (or snapshot, or proxy) its own apt uses.
"""

from __future__ import annotations

import collections
import contextlib
import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from yunzhou.domain.errors import PermanentError, UserError

APT_SOURCES_ENV = "YUNZHOU_APT_SOURCES"
#: looked at in this order when YUNZHOU_APT_SOURCES is not set
APT_SOURCES_CANDIDATES = (Path("/etc/apt/sources.list.d/debian.sources"), Path("/etc/apt/sources.list"))
TAIL_LINES = 25
DEFAULT_TIMEOUT = 1800.0

#: mmdebstrap's progress lines → how far the root file system is (0..1)
_PHASES = (
    ("I: running apt-get update", 0.05),
    ("I: downloading packages", 0.15),
    ("I: extracting archives", 0.40),
    ("I: installing essential packages", 0.50),
    ("I: installing remaining packages", 0.65),
    ("I: cleaning package lists", 0.85),
    ("I: creating tarball", 0.90),
    ("I: success", 1.0),
)

Progress = Callable[[str, float], None]


@dataclass(frozen=True)
class RootfsRecipe:
    """What mmdebstrap is asked for: a suite, a variant, packages and dpkg's path filters."""

    suite: str
    variant: str
    packages: tuple[str, ...]
    source_date_epoch: int
    path_exclude: tuple[str, ...] = ()
    path_include: tuple[str, ...] = ()
    # files removed from the finished tree (one that is not reproducible and that a layer above replaces)
    remove: tuple[str, ...] = ()


_PLAIN_PATH = re.compile(r"/[A-Za-z0-9._/-]+")


def mmdebstrap_argv(recipe: RootfsRecipe, out: Path, sources: Path) -> list[str]:
    """The command line (no shell): a tar of the root file system at ``out``."""
    argv = [
        "mmdebstrap",
        "--mode=root",
        f"--variant={recipe.variant}",
        "--format=tar",
        '--aptopt=Acquire::Retries "3"',
    ]
    if recipe.packages:
        argv.append("--include=" + ",".join(sorted(recipe.packages)))
    # dpkg applies the filters in order: excludes first, then what is taken back (copyright files)
    argv += [f"--dpkgopt=path-exclude={p}" for p in recipe.path_exclude]
    argv += [f"--dpkgopt=path-include={p}" for p in recipe.path_include]
    for path in recipe.remove:
        if not _PLAIN_PATH.fullmatch(path) or ".." in path:
            raise ValueError(f"remove: {path!r} is not a plain absolute path")
        argv.append(f'--customize-hook=rm -f -- "$1"{path}')  # our data, checked above: never user input
    argv += [recipe.suite, str(out), str(sources)]
    return argv


def mmdebstrap_env(recipe: RootfsRecipe, environ: Mapping[str, str]) -> dict[str, str]:
    env = {k: v for k, v in environ.items() if not k.startswith(("DEB", "APT_", "DPKG"))}
    env["SOURCE_DATE_EPOCH"] = str(recipe.source_date_epoch)  # clamps every mtime: same input, same tar
    env["LC_ALL"] = "C.UTF-8"
    return env


def find_apt_sources(
    environ: Mapping[str, str] | None = None, candidates: Sequence[Path] = APT_SOURCES_CANDIDATES
) -> Path | None:
    """The host's apt sources file (``YUNZHOU_APT_SOURCES`` first), or None when the machine has none."""
    environ = os.environ if environ is None else environ
    chosen = environ.get(APT_SOURCES_ENV, "").strip()
    if chosen:
        path = Path(chosen)
        if not path.is_file():
            raise UserError(f"{APT_SOURCES_ENV}={chosen}: no such file (an apt .sources or sources.list)")
        return path
    for path in candidates:
        if path.is_file() and _has_entries(path):
            return path
    return None


def _has_entries(path: Path) -> bool:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return False
    return any(line.strip() and not line.lstrip().startswith("#") for line in lines)


def no_sources_error() -> UserError:
    where = " or ".join(str(p) for p in APT_SOURCES_CANDIDATES)
    return UserError(
        f"this machine has no apt sources ({where}) to build stacks from: set {APT_SOURCES_ENV} to an apt "
        "sources file, or bring built stacks from another machine (`yunzhou stacks export` there, "
        "`yunzhou stacks import` here)"
    )


class Cancel(Protocol):
    """A threading.Event, or anything that says whether to stop (several events at once)."""

    def is_set(self) -> bool: ...


def build_rootfs(
    recipe: RootfsRecipe,
    out: Path,
    sources: Path,
    *,
    progress: Progress | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    cancel: Cancel | None = None,
    environ: Mapping[str, str] | None = None,
) -> None:
    """Run mmdebstrap; a failure (or ``timeout``, or ``cancel`` set) is a PermanentError ending with
    mmdebstrap's last lines. Its processes are gone when this returns."""
    argv = mmdebstrap_argv(recipe, out, sources)
    tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
    try:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=mmdebstrap_env(recipe, os.environ if environ is None else environ),
            start_new_session=True,  # its apt and dpkg children are stopped with it on a timeout
        )
    except FileNotFoundError:
        raise PermanentError("mmdebstrap is not installed (Debian package mmdebstrap)") from None
    done = threading.Event()
    stopped: list[str] = []

    def watch() -> None:
        deadline = time.monotonic() + timeout
        while not done.wait(0.2):
            if cancel is not None and cancel.is_set():
                stopped.append("was stopped")
            elif time.monotonic() > deadline:
                stopped.append(f"did not finish within {timeout:g}s")
            else:
                continue
            with contextlib.suppress(ProcessLookupError):  # the group may be gone already
                os.killpg(proc.pid, signal.SIGTERM)
            return

    watcher = threading.Thread(target=watch, name="mmdebstrap-watch", daemon=True)
    watcher.start()
    try:
        assert proc.stdout is not None
        for raw in proc.stdout:
            line = raw.decode(errors="replace").rstrip()
            tail.append(line)
            if progress is not None:
                for prefix, fraction in _PHASES:
                    if line.startswith(prefix):
                        progress(line.removeprefix("I: ").rstrip("."), fraction)
        code = proc.wait()
    finally:
        done.set()
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        watcher.join()
        if proc.stdout is not None:
            proc.stdout.close()
    if stopped:
        raise PermanentError(f"mmdebstrap {stopped[0]}:\n" + "\n".join(tail))
    if code != 0:
        raise PermanentError(f"mmdebstrap failed (exit {code}):\n" + "\n".join(tail))
