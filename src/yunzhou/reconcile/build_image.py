"""What the server's build worker runs: the uploaded artifact unpacked under the archive limits, built
by ``build.builder.build_image`` into the server's image store (``<data dir>/images``, tagged
``PROJECT/APP:BUILD_ID`` so it is kept until retention decides), and pushed to the registry with its
SBOM attached."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from yunzhou.build.builder import build_image
from yunzhou.build.model import BuildContext, BuildRequest, Stacks, StepRunner
from yunzhou.build.oci import ImageStore
from yunzhou.domain.errors import TemporaryError
from yunzhou.domain.limits import Limits
from yunzhou.reconcile.builds import BuildFunction, BuildJob, BuiltImage, PushFunction
from yunzhou.registry.client import RegistryClient
from yunzhou.registry.sbom import attach_sbom
from yunzhou.registry.signing import SigningKey, sign
from yunzhou.runtimes.local.unpack import unpack_archive

PUSH_ATTEMPTS = 4  # a registry restart takes ~0.4 s, its read-only GC window ~1 s (docs/images.md)


def image_store(data_dir: Path) -> ImageStore:
    return ImageStore(data_dir / "images")


def server_builder(data_dir: Path, limits: Limits) -> BuildFunction:
    """The server's build function: stacks from the shared stack cache, steps in runc containers on the
    platform bridge; the sandbox pieces are made at the first build (a server that builds nothing never
    touches runc or the network)."""
    store = image_store(data_dir)
    made: list[BuildFunction] = []
    lock = threading.Lock()

    def build(job: BuildJob) -> BuiltImage:
        with lock:
            if not made:
                from yunzhou.build.stacks import StackCatalog, default_cache_dir
                from yunzhou.build.steps import SandboxStepRunner
                from yunzhou.sandbox import LayerCache, Network, Runc

                root = data_dir / "builds"
                runner = SandboxStepRunner(
                    store, LayerCache(root / "layers"), Runc(root / "runc"), root / "steps", Network()
                )
                stacks: Stacks = StackCatalog(default_cache_dir(), store)
                # source and scratch copies a stopped server left (one server builds for a data dir: the
                # local-runtime lock); the steps' own folders are the runner's to clean
                shutil.rmtree(root / "work", ignore_errors=True)
                made.append(image_builder(data_dir, store, stacks, runner, limits=limits))
        return made[0](job)

    return build


def image_builder(
    data_dir: Path,
    store: ImageStore,
    stacks: Stacks,
    runner: StepRunner,
    *,
    limits: Limits | None = None,
    monotonic: Callable[[], float] = time.monotonic,
) -> BuildFunction:
    def build(job: BuildJob) -> BuiltImage:
        work = data_dir / "builds" / "work" / job.id
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(mode=0o700, parents=True)
        try:
            source = work / "source"
            source.mkdir()
            job.progress("unpacking the source", 0.01)
            unpack_archive(job.source, source, limits or Limits())
            command, args = _entrypoint(job.score)
            request = BuildRequest(
                source_dir=source, stack=job.stack, annotations=_annotations(job.score), command=command,
                args=args, name=f"{job.project}/{job.app}", time_limit=max(1.0, job.deadline - monotonic()),
            )  # fmt: skip
            context = BuildContext(
                store=store, stacks=stacks, runner=runner, work_dir=work / "build", log=job.log,
                progress=job.progress, cancel=job.cancel,
            )  # fmt: skip
            result = build_image(request, context)
            store.tag(f"{job.project}/{job.app}:{job.id}", result.digest)
            return BuiltImage(
                digest=result.digest, stack=result.stack, stack_version=result.stack_version,
                stack_digest=result.stack_digest, deps_cached=result.deps_cached, size=result.size,
                sbom=result.sbom,
            )  # fmt: skip
        finally:
            shutil.rmtree(work, ignore_errors=True)

    return build


def registry_pusher(
    store: ImageStore,
    client: Callable[[], RegistryClient],
    signing_dir: Path | None = None,
    *,
    sleep: Callable[[float], None] = time.sleep,
) -> PushFunction:
    """Push to ``PROJECT/APP`` (blobs the registry has are skipped), attach the SBOM and, with
    ``signing_dir`` (where the platform's signing key is: ``<data dir>/registry``), sign the image, so
    environments that require signed images release it (services/image_signatures.py). A temporary
    error (the registry restarting or read-only for garbage collection) is retried a few times."""

    def push(project: str, app: str, built: BuiltImage, log: Callable[[str], None]) -> None:
        for attempt in range(1, PUSH_ATTEMPTS + 1):  # all of it is idempotent: blobs there are skipped
            try:
                push_once(project, app, built, log)
            except TemporaryError as exc:  # restarting, or read-only while garbage is collected
                if attempt == PUSH_ATTEMPTS:
                    raise
                log(f"the registry is not writable now ({exc.message}); retrying in {exc.retry_after:.0f} s")
                sleep(exc.retry_after)
            else:
                return

    def push_once(project: str, app: str, built: BuiltImage, log: Callable[[str], None]) -> None:
        repo = f"{project}/{app}"
        with client() as registry:
            result = registry.push(store, repo, built.digest)
            sent, present = len(result.uploaded), len(result.skipped)
            log(f"pushed {repo}@{built.digest}: {sent} blobs sent, {present} already there")
            if built.sbom:
                attach_sbom(registry, repo, built.digest, built.sbom)
                log(f"attached the SBOM to {repo}@{built.digest}")
            if signing_dir is not None:
                sign(registry, SigningKey.load(signing_dir), repo, built.digest)
                log(f"signed {repo}@{built.digest} with the platform key")

    return push


def _container(score: dict[str, Any] | None) -> dict[str, Any]:
    containers = (score or {}).get("containers") or {}
    return dict(containers[sorted(containers)[0]]) if containers else {}


def _entrypoint(score: dict[str, Any] | None) -> tuple[tuple[str, ...] | None, tuple[str, ...] | None]:
    """The Score container's command and args (the image's default command); None: the stack's."""
    container = _container(score)
    command, args = container.get("command"), container.get("args")
    return (tuple(command) if command else None, tuple(args) if args else None)


def _annotations(score: dict[str, Any] | None) -> dict[str, str]:
    annotations = ((score or {}).get("metadata") or {}).get("annotations") or {}
    return {str(k): str(v) for k, v in annotations.items()}
