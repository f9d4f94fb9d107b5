"""Source → OCI image: the stack's layers + a dependency layer + an app layer + configuration.

``build_image(request, context)`` detects the stack (``detect``), gets the stack's images from the
catalog, stages the app (the source minus VCS, dependency and cache folders; root-owned, modes 0644/0755,
so the app user can read and never write it), installs dependencies in a sandbox container on the
stack's build image (``deps``; the layer is reused from ``cache`` when its key is known, so a warm
rebuild runs no pip or npm), checks Python sources with ``compileall``, writes the image and its SBOM.
Every step's output goes to the log callback line by line; a step that fails raises ``BuildFailed``
with the tool's own last words. Dockerfile sources go to ``dockerfile.build_dockerfile`` (buildah).
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import shutil
import stat
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from yunzhou.build.cache import BuildCache, CachedLayer
from yunzhou.build.deps import SCRATCH_MOUNT, SOURCE_MOUNT, DependencyStep, plan_dependencies
from yunzhou.build.detect import DOCKERFILE, Detected, detect, list_source
from yunzhou.build.dockerfile import build_dockerfile
from yunzhou.build.model import (
    HOST_CA_BUNDLE,
    TAIL_LINES,
    BuildCancelled,
    BuildContext,
    BuildFailed,
    BuildRequest,
    BuildResult,
    BuildStep,
    LogLine,
    Progress,
    StackDefinitionLike,
    Stacks,
    StepRunner,
    failure_message,
)
from yunzhou.build.oci import ImageConfig, ImageRef, ImageStore, Layer
from yunzhou.build.sbom import Package, parse_npm_lock, read_inside, spdx_document, venv_packages

__all__ = [
    "BuildCancelled",
    "BuildContext",
    "BuildFailed",
    "BuildRequest",
    "BuildResult",
    "BuildStep",
    "LogLine",
    "Progress",
    "StackDefinitionLike",
    "Stacks",
    "StepRunner",
    "build_image",
    "failure_message",
    "image_config",
    "step_env",
]

DEFAULT_PORT = 8080
CREATED = (
    "1970-01-01T00:00:00Z"  # org.opencontainers.image.created: EPOCH, so equal sources give equal digests
)
SOURCE_DATE_EPOCH = "315532800"  # 1980-01-01: zip (wheels) cannot hold earlier times
# Never part of the app layer: version control, dependency folders (the dependency layer has them), caches.
APP_EXCLUDE = frozenset({".git", ".hg", ".svn", "__pycache__", "node_modules", ".venv", ".yunzhou"})
APP_EXCLUDE_TOP = frozenset({"venv"})


class _Clock:
    def __init__(self, limit: float, cancel: threading.Event) -> None:
        self.deadline = time.monotonic() + limit
        self.limit = limit
        self.cancel = cancel

    def left(self, what: str) -> float:
        if self.cancel.is_set():
            raise BuildCancelled(f"the build was cancelled before {what}")
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise BuildFailed(f"the build's time limit of {self.limit:g} s was reached before {what}")
        return left


def build_image(request: BuildRequest, context: BuildContext) -> BuildResult:
    """Build ``request.source_dir`` into an image in ``context.store`` (see the module's docstring)."""
    clock = _Clock(request.time_limit, context.cancel)
    listing = list_source(request.source_dir)
    found = detect(listing, stack=request.stack, annotations=request.annotations)
    context.log(f"stack: {found.stack} ({found.reason})")
    if found.stack == DOCKERFILE:
        return build_dockerfile(request, context, found, clock.left("the Dockerfile build"))
    context.progress("stack", 0.05)
    definition = context.stacks.definition(found.stack, request.stack_version)
    run_image = context.stacks.image(
        found.stack, request.stack_version, _scaled(context.progress, 0.05, 0.3), cancel=context.cancel
    )
    context.log(f"stack image: stacks/{found.stack}:{definition.version} {run_image.digest}")
    work = context.work_dir
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        stage = work / "app"
        app_dest = _stage_app(request.source_dir, found, definition.layout, stage)
        step = plan_dependencies(
            found.stack,
            listing,
            lambda name: _read(request.source_dir, name),
            lambda: _tree_digest(stage),
            definition.layout,
        )
        build_image_ref = run_image
        if step is not None or found.stack == "python":
            build_image_ref = context.stacks.image(
                found.stack, request.stack_version, purpose="build", cancel=context.cancel
            )
        layers: list[Layer] = []
        packages: list[Package] = []
        deps_cached = False
        if step is not None:
            context.progress("dependencies", 0.35)
            cached = _dependencies(
                request, context, step, run_image, build_image_ref, stage, definition, clock
            )
            deps_cached = cached[1]
            layers.append(cached[0].layer)
            packages.extend(cached[0].packages)
        if found.stack == "python":
            context.progress("check", 0.8)
            _check_python(request, context, build_image_ref, stage, definition, clock)
        context.progress("app", 0.85)
        layers.append(context.store.add_layer_from_dir(stage, dest=app_dest))
        config = image_config(
            request, found, definition.version, run_image, _node_command(request.source_dir)
        )
        image = context.store.write_image(config, layers, base=run_image)
        _warn_missing_default(context, found.stack, listing, context.store.config(image.digest))
        context.progress("sbom", 0.95)
        packages.extend(BuildCache(context.store).stack_packages(run_image))
        sbom = spdx_document(request.name, image.digest, packages)
        context.log(f"image: {image.digest} ({image.size} bytes, {len(image.layers)} layers)")
        context.progress("done", 1.0)
        return BuildResult(
            digest=image.digest,
            config_digest=image.config_digest,
            size=image.size,
            stack=found.stack,
            stack_version=definition.version,
            stack_digest=run_image.digest,
            deps_cached=deps_cached,
            sbom=sbom,
            detected=found.reason,
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _warn_missing_default(
    context: BuildContext, stack: str, listing: list[str], config: dict[str, Any]
) -> None:
    """Say so when the image's command runs a file of the app (``app.py``) that the source lacks."""
    cmd = (config.get("config") or {}).get("Cmd") or []
    script = next((a for a in cmd[1:2] if a.endswith((".py", ".js")) and not a.startswith("/")), None)
    if script is not None and script not in listing:
        context.log(
            f"warning: the image runs `{shlex.join(cmd)}` but the source has no {script}: set the Score "
            f"container's command (or add {script}); the {stack} stack's default needs it"
        )


def image_config(
    request: BuildRequest,
    found: Detected,
    stack_version: str,
    stack_image: ImageRef,
    node_default: tuple[str, ...] | None = None,
) -> ImageConfig:
    """The app image's configuration on top of the stack's (which keeps its entrypoint, user, workdir).

    The stack's entrypoint (``yunzhou-start``: checks ``PORT``, then runs its arguments) stays; the
    command is the Score ``command`` + ``args``, or ``args`` alone, or (node) package.json's start
    script or main file, or the stack's default command.
    """
    if request.command:
        cmd: tuple[str, ...] = tuple(request.command) + tuple(request.args or ())
    elif request.args:
        cmd = tuple(request.args)
    else:
        cmd = (node_default or ()) if found.stack == "node" else ()
    labels = {
        "org.opencontainers.image.created": CREATED,
        "org.opencontainers.image.title": request.name,
        "org.opencontainers.image.base.name": f"stacks/{found.stack}:{stack_version}",
        "org.opencontainers.image.base.digest": stack_image.digest,
        **request.labels,
    }
    return ImageConfig(cmd=cmd, env={"PORT": str(DEFAULT_PORT)}, labels=labels, exposed_ports=(DEFAULT_PORT,))


def _scaled(progress: Progress, start: float, end: float) -> Progress:
    return lambda step, fraction: progress(f"stack: {step}", start + (end - start) * fraction)


def _read(source: Path, name: str) -> bytes | None:
    path = source / name
    if path.is_symlink() or not path.is_file():
        return None
    return path.read_bytes()


def _tree_digest(root: Path) -> str:
    """sha256 over the staged tree's names, modes and contents (sorted): the `pip install .` cache key."""
    h = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            path = Path(dirpath, name)
            st = path.lstat()
            h.update(f"{path.relative_to(root).as_posix()}\0{st.st_mode:o}\0".encode())
            h.update(os.readlink(path).encode() if stat.S_ISLNK(st.st_mode) else path.read_bytes())
    return "sha256:" + h.hexdigest()


def _special(directory: str, name: str) -> bool:
    """A FIFO, socket or device: never part of an image (copying a FIFO would wait forever)."""
    mode = os.lstat(os.path.join(directory, name)).st_mode
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode) or stat.S_ISLNK(mode))


def _ignore(top: Path) -> Callable[[str, list[str]], set[str]]:
    def ignore(directory: str, names: list[str]) -> set[str]:
        skipped = {n for n in names if n in APP_EXCLUDE or n.endswith(".pyc") or _special(directory, n)}
        if Path(directory) == top:
            skipped |= {n for n in names if n in APP_EXCLUDE_TOP}
        return skipped

    return ignore


def _stage_app(source: Path, found: Detected, layout: Mapping[str, str], stage: Path) -> str:
    """Copy what goes into the app layer to ``stage``; returns where it goes in the image (``app``)."""
    artifact = source / found.artifact
    if found.artifact and (artifact.is_symlink() or not _inside(source, artifact)):
        raise BuildFailed(f"{found.artifact} is a symbolic link; the {found.stack} stack needs the real file")
    if found.stack in ("java", "tomcat"):
        kind = "jar" if found.stack == "java" else "war"
        folder, name = layout.get(kind, f"/app/app.{kind}").rsplit("/", 1)
        stage.mkdir()
        shutil.copyfile(artifact, stage / name)
        dest = folder
    else:
        root = artifact if found.stack == "static" else source
        shutil.copytree(root, stage, symlinks=True, ignore=_ignore(root))
        dest = layout.get("root" if found.stack == "static" else "app", "/app")
    _normalise_modes(stage)
    return dest.strip("/")


def _inside(root: Path, path: Path) -> bool:
    return Path(os.path.realpath(path)).is_relative_to(os.path.realpath(root))


def _normalise_modes(root: Path) -> None:
    """0755 folders and executables, 0644 other files: readable by the app user, writable by nobody."""
    for dirpath, _dirnames, filenames in os.walk(root):
        os.chmod(dirpath, 0o755)  # noqa: S103 (an image's app folder: world-readable on purpose)
        for name in filenames:
            path = Path(dirpath, name)
            mode = path.lstat().st_mode
            if stat.S_ISREG(mode):
                path.chmod(0o755 if mode & 0o111 else 0o644)


def _node_command(source: Path) -> tuple[str, ...] | None:
    """package.json's ``scripts.start`` (run by sh) or ``main`` (run by node); None → the stack's default."""
    try:
        doc = json.loads(_read(source, "package.json") or b"null")
    except ValueError:
        return None
    if not isinstance(doc, dict):
        return None
    scripts = doc.get("scripts")
    start = scripts.get("start") if isinstance(scripts, dict) else None
    if isinstance(start, str) and start.strip():
        words = shlex.split(start) if not any(c in start for c in "|&;<>()$`\\\"'*?[]#~=%") else []
        if words and words[0] == "node":
            return tuple(words)
        return ("/bin/sh", "-c", f"exec {start}")
    main = doc.get("main")
    if isinstance(main, str) and main.strip():
        return ("node", main)
    return None


def _image_env(store: ImageStore, image: ImageRef) -> dict[str, str]:
    items = store.config(image.digest).get("config", {}).get("Env") or []
    return dict(item.split("=", 1) for item in items if "=" in item)


def step_env(store: ImageStore, image: ImageRef) -> dict[str, str]:
    """The environment of a build step: the image's own, home and caches in scratch, the host's CA bundle
    for pip and npm (never the host's PIP_*/npm settings: those would leak its configuration inside)."""
    env = _image_env(store, image)
    ca = str(HOST_CA_BUNDLE)
    env.update(
        {
            "HOME": f"{SCRATCH_MOUNT}/home",
            "TMPDIR": SCRATCH_MOUNT,
            "LANG": env.get("LANG", "C.UTF-8"),
            "SOURCE_DATE_EPOCH": SOURCE_DATE_EPOCH,
            "PIP_CERT": ca,
            "PIP_DEFAULT_TIMEOUT": "120",
            "SSL_CERT_FILE": ca,
            "NODE_EXTRA_CA_CERTS": ca,
            "npm_config_cafile": ca,
            "npm_config_cache": f"{SCRATCH_MOUNT}/npm-cache",
            "npm_config_update_notifier": "false",
            "npm_config_fund": "false",
            "npm_config_audit": "false",
        }
    )
    return env


def _mounts(stage: Path, scratch: Path) -> list[tuple[str, Path, bool]]:
    mounts = [(SOURCE_MOUNT, stage, False), (SCRATCH_MOUNT, scratch, True)]
    if HOST_CA_BUNDLE.is_file():
        mounts.append((str(HOST_CA_BUNDLE), HOST_CA_BUNDLE, False))
    return mounts


def _run(context: BuildContext, step: BuildStep, clock: _Clock, tail: list[str]) -> int:
    def log(line: str) -> None:
        tail.append(line)
        del tail[:-TAIL_LINES]
        context.log(line)

    return context.runner.run(step, log, timeout=clock.left(f"the {step.name} step"), cancel=context.cancel)


def _dependencies(
    request: BuildRequest,
    context: BuildContext,
    step: DependencyStep,
    run_image: ImageRef,
    build_image_ref: ImageRef,
    stage: Path,
    definition: StackDefinitionLike,
    clock: _Clock,
) -> tuple[CachedLayer, bool]:
    cache = BuildCache(context.store)
    key = step.cache_key(f"{run_image.digest} {build_image_ref.digest}")
    for note in step.notes:
        context.log(f"dependencies: {note}")
    hit = cache.dependency_layer(key)
    if hit is not None:
        context.log(
            f"dependencies: reusing the cached layer {hit.layer.digest} "
            f"({', '.join(n for n, _ in step.inputs)} unchanged; {step.tool} not run)"
        )
        return hit, True
    scratch = context.work_dir / "scratch"
    out = context.work_dir / "deps"
    uid, gid = definition.uid_gid
    for folder in (scratch, scratch / "home", out):
        folder.mkdir(parents=True, exist_ok=True)
        os.chown(folder, uid, gid)
    for path, content in step.generated:
        generated = scratch / Path(path).relative_to(SCRATCH_MOUNT)
        generated.write_bytes(content)
        generated.chmod(0o644)
    parent, name = step.output.rsplit("/", 1)
    mounts = [*_mounts(stage, scratch), (parent or "/", out, True)]
    context.log(f"dependencies: {step.tool} ({'; '.join(step.script.splitlines()[1:])})")
    tail: list[str] = []
    build_step = BuildStep(
        name=f"{step.tool} install",
        image=build_image_ref,
        args=("/bin/sh", "-c", step.script),
        env=step_env(context.store, build_image_ref),
        cwd=step.cwd,
        mounts=tuple(mounts),
        uid=uid,
        gid=gid,
        egress=request.egress,
        memory_limit_bytes=request.memory_limit_bytes,
        cpu_limit_millis=request.cpu_limit_millis,
    )
    started = time.monotonic()
    code = _run(context, build_step, clock, tail)
    if code != 0:
        raise BuildFailed(failure_message(f"{step.tool} install", code, tail))
    context.log(f"dependencies: {step.tool} finished in {time.monotonic() - started:.1f} s")
    output = out / name
    if output.is_symlink() or (os.path.lexists(output) and not output.is_dir()):
        # the step could leave a link to any host folder here; layering it would publish that folder
        raise BuildFailed(f"{step.tool} install left {step.output} as something other than a folder")
    output.mkdir(exist_ok=True)
    packages = venv_packages(output) if step.tool == "pip" else _npm_packages(output)
    layer = context.store.add_layer_from_dir(output, dest=step.output.strip("/"))
    cached = CachedLayer(layer, tuple(packages), step.tool)
    cache.remember_dependency_layer(key, cached)
    return cached, False


def _npm_packages(node_modules: Path) -> list[Package]:
    content = read_inside(node_modules, node_modules / ".package-lock.json")
    return parse_npm_lock(content) if content is not None else []


def _check_python(
    request: BuildRequest,
    context: BuildContext,
    image: ImageRef,
    stage: Path,
    definition: StackDefinitionLike,
    clock: _Clock,
) -> None:
    """Byte-compile the app into scratch (thrown away): a syntax error fails the build in Python's words.

    The image ships no .pyc files (their bytes are not reproducible); the check is what compiling buys.
    """
    scratch = context.work_dir / "scratch"
    uid, gid = definition.uid_gid
    scratch.mkdir(exist_ok=True)
    os.chown(scratch, uid, gid)
    env = {**step_env(context.store, image), "PYTHONPYCACHEPREFIX": f"{SCRATCH_MOUNT}/pycache"}
    tail: list[str] = []
    step = BuildStep(
        name="syntax check",
        image=image,
        args=("python3", "-m", "compileall", "-q", "-x", r"(^|/)(\.venv|venv|node_modules)/", "."),
        env=env,
        cwd=SOURCE_MOUNT,
        mounts=tuple(_mounts(stage, scratch)),
        uid=uid,
        gid=gid,
        egress=False,
        memory_limit_bytes=request.memory_limit_bytes,
        cpu_limit_millis=request.cpu_limit_millis,
    )
    context.log("check: python3 -m compileall (syntax)")
    code = _run(context, step, clock, tail)
    if code != 0:
        raise BuildFailed(failure_message("python3 -m compileall", code, tail))
