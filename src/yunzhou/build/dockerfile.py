"""Dockerfile sources, built with Debian's buildah (daemonless) on top of our stacks.

No external registry is reachable from a build, so every ``FROM`` must name one of our stacks
(``stacks/NAME`` or ``stacks/NAME:VERSION``), ``scratch`` or an earlier stage; anything else is refused
before buildah runs. The stacks are loaded from the image store into buildah's own storage
(``<data dir>/buildah``, tagged ``localhost/stacks/NAME:VERSION``), the build runs with
``--isolation oci`` (each RUN in a runc container as root inside it, buildah's memory and CPU limits),
``--timestamp 0`` and ``--layers=false`` so the same Dockerfile and files give the same digest, with the
host's network when egress is allowed (``--network host``; RUN steps see the host's CA bundle read-only)
and none otherwise. The result is pushed uncompressed to an ``oci:`` folder and put into the image store:
the stack's layers as the stack's own blobs, the new ones as reproducible gzip layers.
"""

from __future__ import annotations

import collections
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from yunzhou.build.cache import BuildCache
from yunzhou.build.detect import DOCKERFILE, SUPPORTED_STACKS, Detected
from yunzhou.build.model import (
    HOST_CA_BUNDLE,
    BuildCancelled,
    BuildContext,
    BuildFailed,
    BuildRequest,
    BuildResult,
    failure_message,
)
from yunzhou.build.oci import MEDIA_CONFIG, MEDIA_MANIFEST, ImageRef, canonical_json
from yunzhou.build.sbom import spdx_document

STACK_PREFIX = "stacks/"
_FROM = re.compile(r"^\s*FROM\s+(?P<rest>.+)$", re.IGNORECASE)
_KILL_GRACE_S = 10.0


@dataclass(frozen=True)
class FromLine:
    line: int
    image: str  # as written
    stage: str  # "AS name", lowercased ("" when unnamed)
    stack: str | None  # NAME for stacks/NAME[:VERSION]
    version: str | None


def parse_from_lines(dockerfile: str) -> list[FromLine]:
    """The FROM instructions (line continuations joined; flags such as ``--platform`` skipped)."""
    joined = re.sub(r"\\\r?\n", " ", dockerfile)
    found = []
    for number, line in enumerate(joined.splitlines(), start=1):
        match = _FROM.match(line)
        if not match:
            continue
        words = [w for w in match.group("rest").split() if not w.startswith("--")]
        image = words[0] if words else ""
        stage = words[2].lower() if len(words) >= 3 and words[1].lower() == "as" else ""
        stack = version = None
        if image.startswith(STACK_PREFIX):
            stack, _, version_text = image.removeprefix(STACK_PREFIX).partition(":")
            version = version_text or None
        found.append(FromLine(number, image, stage, stack, version))
    return found


def check_from_lines(lines: Sequence[FromLine], supported: Sequence[str]) -> list[str]:
    """Problems with the FROM lines (empty = buildable here): each names the line and what is allowed."""
    problems = []
    stages: set[str] = set()
    allowed = f"FROM stacks/NAME[:VERSION] ({', '.join(supported)}), FROM scratch or an earlier stage"
    if not lines:
        problems.append(f"the Dockerfile has no FROM line; use {allowed}")
    for entry in lines:
        ok = (
            entry.image == "scratch"
            or entry.image.lower() in stages
            or (entry.stack in supported and "$" not in entry.image)
        )
        if not ok:
            problems.append(
                f"Dockerfile line {entry.line}: FROM {entry.image} is not available: builds reach no "
                f"external registry; use {allowed}"
            )
        if entry.stage:
            stages.add(entry.stage)
    return problems


class _Buildah:
    def __init__(self, root: Path, log: Callable[[str], None]) -> None:
        self.root = root
        self.log = log

    def argv(self, *args: str) -> list[str]:
        return [
            "buildah",
            "--root",
            str(self.root / "storage"),
            "--runroot",
            str(self.root / "run"),
            "--storage-driver",
            "overlay",
            *args,
        ]

    def call(self, *args: str) -> str:
        try:
            done = subprocess.run(self.argv(*args), capture_output=True, text=True, check=False, timeout=600)
        except subprocess.TimeoutExpired:
            raise BuildFailed(f"buildah {args[0]} did not finish within 600 s") from None
        except OSError as exc:
            raise BuildFailed(f"cannot run buildah (Debian package buildah): {exc.strerror}") from None
        if done.returncode != 0:
            raise BuildFailed(f"buildah {args[0]} failed: {done.stderr.strip()[-2000:]}")
        return done.stdout.strip()

    def stream(
        self, args: Sequence[str], *, timeout: float, cancel: threading.Event
    ) -> tuple[int, list[str]]:
        """Run buildah, its output line by line to the log; (exit code, last lines). Killed on time/cancel."""
        tail: collections.deque[str] = collections.deque(maxlen=40)
        try:
            child = subprocess.Popen(
                self.argv(*args),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError as exc:
            raise BuildFailed(f"cannot run buildah (Debian package buildah): {exc.strerror}") from None
        assert child.stdout is not None

        def pump() -> None:
            assert child.stdout is not None
            for raw in child.stdout:
                line = raw.decode(errors="replace").rstrip("\n")
                tail.append(line)
                self.log(line)

        reader = threading.Thread(target=pump, daemon=True)
        reader.start()
        deadline = time.monotonic() + timeout
        stopped: str | None = None
        while child.poll() is None:
            if cancel.is_set():
                stopped = "cancelled"
            elif time.monotonic() >= deadline:
                stopped = "timeout"
            if stopped:
                _stop_group(child)
                break
            time.sleep(0.1)
        child.wait()
        reader.join(timeout=5)
        child.stdout.close()
        if stopped == "cancelled":
            raise BuildCancelled("the build was cancelled during buildah bud")
        if stopped == "timeout":
            raise BuildFailed(f"the build's time limit was reached during buildah bud ({timeout:.0f} s left)")
        return child.returncode, list(tail)


def _stop_group(child: subprocess.Popen[bytes]) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(child.pid, sig)
        except ProcessLookupError:
            return
        try:
            child.wait(timeout=_KILL_GRACE_S)
            return
        except subprocess.TimeoutExpired:
            continue


def build_dockerfile(
    request: BuildRequest, context: BuildContext, found: Detected, time_left: float
) -> BuildResult:
    dockerfile = (request.source_dir / found.artifact).read_text(errors="replace")
    supported = [n for n in SUPPORTED_STACKS if n != DOCKERFILE]
    lines = parse_from_lines(dockerfile)
    problems = check_from_lines(lines, supported)
    if problems:
        raise BuildFailed("\n".join(problems))
    buildah = _Buildah(context.buildah_root or context.store.root.parent / "buildah", context.log)
    final_stack = None
    loaded = []
    for entry in lines:
        if entry.stack is None:
            continue
        ref = context.stacks.image(entry.stack, entry.version)
        version = context.stacks.definition(entry.stack, entry.version).version
        local = f"localhost/{STACK_PREFIX}{entry.stack}:{version}"
        image_id = buildah.call(
            "pull", "--quiet", f"oci:{context.store.root}:{STACK_PREFIX}{entry.stack}:{version}"
        )
        buildah.call("tag", image_id, local)
        if entry.version is None:
            buildah.call("tag", image_id, f"localhost/{STACK_PREFIX}{entry.stack}:latest")
        final_stack = (entry.stack, version, ref)
        loaded.append(final_stack)
    tag = f"localhost/yunzhou-build-{secrets.token_hex(6)}"
    args = [
        "bud",
        "--isolation",
        "oci",
        "--pull-never",
        "--layers=false",
        "--timestamp",
        "0",
        "--network",
        "host" if request.egress else "none",
        "--memory",
        str(request.memory_limit_bytes),
        "--cpu-period",
        "100000",
        "--cpu-quota",
        str(request.cpu_limit_millis * 100),
        "-f",
        str(request.source_dir / found.artifact),
        "-t",
        tag,
    ]
    if HOST_CA_BUNDLE.is_file():
        args += ["--volume", f"{HOST_CA_BUNDLE}:{HOST_CA_BUNDLE}:ro"]
    for name, value in sorted(request.labels.items()):
        args += ["--label", f"{name}={value}"]
    args.append(str(request.source_dir))
    context.log("dockerfile: buildah bud (isolation oci, timestamp 0)")
    code, tail = buildah.stream(args, timeout=time_left, cancel=context.cancel)
    if code != 0:
        raise BuildFailed(failure_message("buildah bud", code, tail))
    out = context.work_dir / "oci"
    shutil.rmtree(out, ignore_errors=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        buildah.call("push", "--quiet", "--disable-compression", tag, f"oci:{out}:image")
        digest = _import_layout(context, out, [ref for _, _, ref in loaded])
    finally:
        subprocess.run(buildah.argv("rmi", tag), capture_output=True, check=False)
        shutil.rmtree(out, ignore_errors=True)
    image = context.store.image(digest)
    packages = BuildCache(context.store).stack_packages(final_stack[2]) if final_stack else []
    context.log(f"image: {image.digest} ({image.size} bytes, {len(image.layers)} layers)")
    return BuildResult(
        digest=image.digest,
        config_digest=image.config_digest,
        size=image.size,
        stack="dockerfile",
        stack_version=f"{final_stack[0]}:{final_stack[1]}" if final_stack else "scratch",
        stack_digest=final_stack[2].digest if final_stack else "",
        deps_cached=False,
        sbom=spdx_document(request.name, image.digest, packages),
        detected=found.reason,
    )


def _import_layout(context: BuildContext, layout: Path, bases: Sequence[ImageRef]) -> str:
    """Put the one image of an (uncompressed) OCI layout folder into the image store; its digest.

    A layer whose diff_id is one of a stack's is that stack's compressed blob (not compressed again, and
    shared with the stack in the store and the registry); the others become reproducible gzip layers.
    """
    blobs = layout / "blobs" / "sha256"
    index = json.loads((layout / "index.json").read_bytes())
    manifest = json.loads((blobs / index["manifests"][0]["digest"].removeprefix("sha256:")).read_bytes())
    config_digest = manifest["config"]["digest"]
    config_bytes = (blobs / config_digest.removeprefix("sha256:")).read_bytes()
    diff_ids = json.loads(config_bytes)["rootfs"]["diff_ids"]
    known = {layer.diff_id: layer for base in bases for layer in base.layers}
    layers = []
    for descriptor, diff_id in zip(manifest["layers"], diff_ids, strict=True):
        layer = known.get(diff_id)
        if layer is None:
            layer = context.store.add_layer_from_tar(blobs / descriptor["digest"].removeprefix("sha256:"))
            if layer.diff_id != diff_id:
                raise BuildFailed(f"buildah wrote a layer whose content is {layer.diff_id}, not {diff_id}")
        layers.append(layer)
    if context.store.put_bytes(config_bytes) != config_digest:
        raise BuildFailed("buildah wrote an image config that does not match its digest")
    doc = {
        "schemaVersion": 2,
        "mediaType": MEDIA_MANIFEST,
        "config": {"mediaType": MEDIA_CONFIG, "digest": config_digest, "size": len(config_bytes)},
        "layers": [{"mediaType": x.media_type, "digest": x.digest, "size": x.size} for x in layers],
    }
    return context.store.put_bytes(canonical_json(doc))
