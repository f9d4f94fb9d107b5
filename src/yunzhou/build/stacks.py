"""Stacks: the base images Yunzhou builds itself from Debian packages (``python``, ``node``, ``java``,
``tomcat``, ``static``), defined as data in ``stacks.toml`` next to this module.

A stack image has two layers: the Debian root file system (mmdebstrap, ``build.debian``) and the stack's
own small layer (the ``app`` user in /etc/passwd and /etc/group, the entrypoint and start scripts, /app).
Built images are cached in an OCI layout (``~/.cache/yunzhou/stacks`` or ``YUNZHOU_STACK_CACHE``) under a
key made of the stack's definition and the apt sources file's content; ``StackCatalog.image`` builds or
reuses one and tags it ``stacks/NAME:VERSION`` in the image store it serves. Same inputs, same digest.
"""

from __future__ import annotations

import fcntl
import os
import secrets
import shutil
import tarfile
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from yunzhou.build.debian import Cancel, build_rootfs, find_apt_sources, no_sources_error
from yunzhou.build.oci import ImageRef, ImageStore
from yunzhou.build.stack_defs import (
    BUILD_SUFFIX,
    CACHE_ENV,
    LABEL_DEFINITION,
    LABEL_PURPOSE,
    LABEL_STACK,
    RECIPE_VERSION,
    STACKS,
    STACKS_FILE,
    TAG_PREFIX,
    Purpose,
    StackDefinition,
    StackFile,
    cache_key,
    default_cache_dir,
    definition_key,
    load_stacks,
    parse_stacks,
    stack_definition,
    supported,
)
from yunzhou.build.truststore import jks_truststore, pem_certificates
from yunzhou.domain.errors import Conflict, PermanentError, UserError

__all__ = [
    "BUILD_SUFFIX",
    "CACHE_ENV",
    "LABEL_DEFINITION",
    "LABEL_PURPOSE",
    "LABEL_STACK",
    "RECIPE_VERSION",
    "STACKS",
    "STACKS_FILE",
    "TAG_PREFIX",
    "Progress",
    "Purpose",
    "StackCatalog",
    "StackDefinition",
    "StackFile",
    "StackInfo",
    "cache_key",
    "default_cache_dir",
    "definition_key",
    "load_stacks",
    "parse_stacks",
    "stack_definition",
    "supported",
    "write_stack_files",
]

Progress = Callable[[str, float], None]
CA_BUNDLE = "etc/ssl/certs/ca-certificates.crt"


# --- the stack's own layer --------------------------------------------------------------------------------


def _read_members(rootfs_tar: Path, names: Sequence[str]) -> dict[str, bytes]:
    """The contents of a few files of the Debian root file system tar (``etc/passwd``, ``etc/group``)."""
    wanted = set(names)
    found: dict[str, bytes] = {}
    with tarfile.open(rootfs_tar, "r|") as tar:
        for member in tar:
            name = member.name.removeprefix("./")
            if name in wanted and member.isfile():
                f = tar.extractfile(member)
                assert f is not None
                found[name] = f.read()
                if len(found) == len(wanted):
                    break
    return found


def _with_line(existing: bytes, name: str, line: str) -> bytes:
    lines = existing.decode().splitlines()
    lines = [entry for entry in lines if entry.split(":", 1)[0] != name] + [line]
    return ("\n".join(lines) + "\n").encode()


def write_stack_files(definition: StackDefinition, rootfs_tar: Path, target: Path) -> None:
    """The stack's own layer as a directory: passwd/group with the app user, the files, the workdir."""
    uid, gid = definition.uid_gid
    user = definition.user_name
    needed = ["etc/passwd", "etc/group"] + ([CA_BUNDLE] if definition.java_truststore else [])
    base = _read_members(rootfs_tar, needed)
    missing = set(needed) - set(base)
    if missing:
        raise UserError(f"the Debian root file system has no {', '.join(sorted(missing))}")
    passwd = _with_line(
        base["etc/passwd"], user, f"{user}:x:{uid}:{gid}:Yunzhou app:{definition.workdir}:/usr/sbin/nologin"
    )
    group = _with_line(base["etc/group"], user, f"{user}:x:{gid}:")
    files = [
        StackFile("/etc/passwd", 0o644, passwd.decode()),
        StackFile("/etc/group", 0o644, group.decode()),
        *definition.files,
    ]
    target.mkdir(mode=0o755)
    _directory(target, definition.workdir)
    if definition.java_truststore:
        store = jks_truststore(pem_certificates(base[CA_BUNDLE]), definition.source_date_epoch * 1000)
        (_directory(target, "/etc/ssl/certs/java") / "cacerts").write_bytes(store)
        (target / "etc/ssl/certs/java/cacerts").chmod(0o644)
    for f in files:
        dest = _directory(target, str(PurePosixPath(f.path).parent)) / PurePosixPath(f.path).name
        if f.link is not None:
            os.symlink(f.link, dest)
        else:
            dest.write_text(f.text or "")
            dest.chmod(f.mode)


def _directory(root: Path, path: str) -> Path:
    """``root/path``, each level created with mode 0755 whatever the umask (the layer records modes)."""
    current = root
    for part in PurePosixPath(path).parts[1:]:
        current = current / part
        if not current.is_dir():
            current.mkdir()
            current.chmod(0o755)
    return current


# --- the catalog -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StackInfo:
    name: str
    version: str
    description: str
    packages: tuple[str, ...]
    build_packages: tuple[str, ...]
    image: str  # the tag in the image store
    digest: str | None  # None: not built (or not imported) yet
    size: int | None
    current: bool  # built from this Yunzhou's definition (False: a rebuild is due)


class StackCatalog:
    """Builds stacks into the cache (``cache_dir``, an OCI layout and locks) and serves them from ``store``.

    ``apt_sources``: the apt sources file (default: the host's, ``build.debian.find_apt_sources``);
    ``offline``: never build, only serve what is cached or imported (a machine without a package mirror).
    """

    def __init__(
        self,
        cache_dir: Path,
        store: ImageStore,
        *,
        stacks: Mapping[str, StackDefinition] = STACKS,
        apt_sources: Path | None = None,
        offline: bool = False,
        timeout: float = 1800.0,
        cancel: threading.Event | None = None,
    ) -> None:
        self.cache_dir = Path(cache_dir)
        self.cache = ImageStore(self.cache_dir / "images")
        self.store = store
        self.stacks = stacks
        self._apt_sources = apt_sources
        self.offline = offline
        self.timeout = timeout
        self.cancel = cancel  # set: a running mmdebstrap is stopped (the server is stopping)

    def definition(self, name: str, version: str | None = None) -> StackDefinition:
        return stack_definition(name, version, self.stacks)

    def apt_sources(self) -> Path | None:
        if self.offline:
            return None
        return self._apt_sources or find_apt_sources()

    def image(
        self,
        name: str,
        version: str | None = None,
        progress: Progress | None = None,
        *,
        purpose: Purpose = "run",
        cancel: threading.Event | None = None,
    ) -> ImageRef:
        """The stack's image in ``store`` (tagged ``stacks/NAME:VERSION``): reused from the cache when its
        key matches, otherwise built. ``progress(step, fraction)`` is told how far it is. ``cancel`` (an
        app build's): set, it stops the wait for another build of the stack, or this call's own stack
        build (mmdebstrap), with a PermanentError; the cache keeps nothing half-built."""
        definition = self.definition(name, version)
        if purpose == "build" and definition.build_packages:  # otherwise the run image serves builds too
            definition = definition.for_build()
        report = progress or _quiet
        with self._locked(definition_key(definition), cancel, report):
            digest = self._cached(definition)
            if digest is None:
                digest = self._build(definition, report, _AnyOf(self.cancel, cancel))
            ref = self._publish(definition, digest)
        report("ready", 1.0)
        return ref

    def build(self, name: str, progress: Progress | None = None) -> ImageRef:
        """The stack's run image and, when it has build packages, its build image too (what
        `yunzhou stacks build` does); returns the run image."""
        definition = self.definition(name)
        report = progress or _quiet
        if not definition.build_packages:
            return self.image(name, progress=report)
        run = self.image(name, progress=lambda step, f: report(step, f * 0.5))
        self.image(
            name, progress=lambda step, f: report(f"build image: {step}", 0.5 + f * 0.5), purpose="build"
        )
        return run

    def list(self) -> list[StackInfo]:
        names = self.store.names()
        items = []
        for definition in self.stacks.values():
            digest = names.get(definition.tag)
            size = current = None
            if digest is not None:
                size = self.store.image(digest).size
                labels = self.store.config(digest).get("config", {}).get("Labels") or {}
                current = labels.get(LABEL_DEFINITION) == definition_key(definition)
            items.append(
                StackInfo(
                    name=definition.name,
                    version=definition.version,
                    description=definition.description,
                    packages=definition.packages,
                    build_packages=definition.build_packages,
                    image=definition.tag,
                    digest=digest,
                    size=size,
                    current=bool(current),
                )
            )
        return items

    def export(self, names: Sequence[str], out: Path) -> tuple[str, ...]:
        """An OCI layout tar of the stacks (with their build images) for a machine without a mirror."""
        tags: list[str] = []
        known = self.store.names()
        for name in dict.fromkeys(names):
            definition = self.definition(name)
            wanted = [definition] + ([definition.for_build()] if definition.build_packages else [])
            for d in wanted:
                if d.tag not in known:  # the request is fine; this server's state does not allow it yet
                    raise Conflict(
                        f"stack {name} is not built here ({d.tag} is missing): `yunzhou stacks build {name}`"
                    )
                tags.append(d.tag)
        if not tags:
            raise UserError(f"name at least one stack to export: {supported()}")
        self.store.export(tags, out)
        return tuple(tags)

    def import_archive(self, path: Path) -> dict[str, str]:
        """Register the stacks of an exported archive (every blob checked against its digest). Each must
        have been built from this Yunzhou's definition of that stack; returns tag → digest.

        The archive is loaded into a staging layout first: its names never reach the cache's own index
        (a name like ``cache/<key>`` in an archive must not replace what this machine built)."""
        work_root = self.cache_dir / "work"
        work_root.mkdir(parents=True, exist_ok=True)
        staging_dir = Path(tempfile.mkdtemp(prefix="import-", dir=work_root))
        try:
            staging = ImageStore(staging_dir)
            imported = staging.import_archive(path)
            accepted = [
                (self._check_import(staging, tag, digest), digest) for tag, digest in imported.items()
            ]
            if not accepted:
                raise UserError(f"{path} holds no stacks (images tagged {TAG_PREFIX}NAME:VERSION)")
            for definition, digest in accepted:
                ref = staging.image(digest)
                for blob in (digest, ref.config_digest, *(layer.digest for layer in ref.layers)):
                    if not self.cache.has(blob):
                        _link_or_copy(staging, self.cache, blob)
                self.cache.tag(f"imported/{definition_key(definition)}", digest)
                self._publish(definition, digest)
        finally:
            shutil.rmtree(staging_dir, ignore_errors=True)
        return {d.tag: digest for d, digest in accepted}

    # --- inside ------------------------------------------------------------------------------------------

    def _check_import(self, staging: ImageStore, tag: str, digest: str) -> StackDefinition:
        name, _, version = tag.removeprefix(TAG_PREFIX).partition(":")
        if not tag.startswith(TAG_PREFIX) or name not in self.stacks:
            raise UserError(f"the archive's image {tag} is not a stack ({supported()})")
        definition = self.stacks[name]
        if version == definition.version + BUILD_SUFFIX:
            definition = definition.for_build()
        elif version != definition.version:
            raise UserError(
                f"the archive's {tag}: this Yunzhou's {name} stack is version {definition.version}"
            )
        labels = staging.config(digest).get("config", {}).get("Labels") or {}
        if labels.get(LABEL_DEFINITION) != definition_key(definition):
            raise UserError(
                f"the archive's {tag} was built from another definition of the {name} stack than this "
                "Yunzhou's (another Yunzhou version?): export it from a machine running this version"
            )
        return definition

    def _cached(self, definition: StackDefinition) -> str | None:
        sources = self.apt_sources()
        if sources is not None:
            digest = self.cache.resolve(f"cache/{cache_key(definition, sources.read_bytes())}")
            if digest is not None and self._complete(self.cache, digest):
                return digest
        digest = self.cache.resolve(f"imported/{definition_key(definition)}")
        if digest is not None and self._complete(self.cache, digest):
            return digest
        if sources is None:
            raise no_sources_error()
        return None

    @staticmethod
    def _complete(store: ImageStore, digest: str) -> bool:
        try:
            ref = store.image(digest)
        except UserError:
            return False
        return all(store.has(layer.digest) for layer in ref.layers)

    def _build(self, definition: StackDefinition, report: Progress, cancel: Cancel) -> str:
        sources = self.apt_sources()
        if sources is None:
            raise no_sources_error()
        key = cache_key(definition, sources.read_bytes())
        work_root = self.cache_dir / "work"
        work_root.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=f"{definition.name}-", dir=work_root))
        try:
            rootfs = work / "rootfs.tar"
            report("Debian packages", 0.0)
            build_rootfs(
                definition.recipe,
                rootfs,
                sources,
                progress=lambda step, f: report(step, f * 0.75),
                timeout=self.timeout,
                cancel=cancel,
            )
            report("compressing the Debian layer", 0.75)
            debian = self.cache.add_layer_from_tar(rootfs)
            report("adding the stack's own files", 0.95)
            write_stack_files(definition, rootfs, work / "files")
            rootfs.unlink()
            own = self.cache.add_layer_from_dir(work / "files")
            ref = self.cache.write_image(definition.image_config(), [debian, own])
            self.cache.tag(f"cache/{key}", ref.digest)
            return ref.digest
        finally:
            shutil.rmtree(work, ignore_errors=True)

    def _publish(self, definition: StackDefinition, digest: str) -> ImageRef:
        """Make the image's blobs present in ``store`` (hard links where possible) and tag it there."""
        ref = self.cache.image(digest)
        if self.store.root.resolve() != self.cache.root.resolve():
            for blob in (digest, ref.config_digest, *(layer.digest for layer in ref.layers)):
                if not self.store.has(blob):
                    _link_or_copy(self.cache, self.store, blob)
        self.store.tag(definition.tag, digest)
        return self.store.image(digest)

    @contextmanager
    def _locked(
        self, key: str, cancel: threading.Event | None = None, report: Progress | None = None
    ) -> Iterator[None]:
        """One build of a definition at a time, across processes (tests and servers share the cache).
        Waiting for another one ends early when ``cancel`` is set (PermanentError)."""
        locks = self.cache_dir / "locks"
        locks.mkdir(parents=True, exist_ok=True)
        with open(locks / f"{key}.lock", "w") as handle:
            waited = False
            while True:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if not waited and report is not None:
                        report("waiting for another build of this stack", 0.0)
                        waited = True
                    if cancel is None:
                        fcntl.flock(handle, fcntl.LOCK_EX)
                        break
                    if cancel.wait(LOCK_POLL_S):
                        raise PermanentError("stopped while waiting for another build of the stack") from None
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def _link_or_copy(source: ImageStore, target: ImageStore, digest: str) -> None:
    src = source.blob_path(digest)
    tmp = target.blob_path(digest).with_name(f".link-{secrets.token_hex(6)}")
    try:
        os.link(src, tmp)
    except OSError:  # another filesystem: copy (and hash) it
        target.put_file(src)
        return
    os.replace(tmp, target.blob_path(digest))


def _quiet(step: str, fraction: float) -> None:
    return None


LOCK_POLL_S = 0.2  # how often a wait for another build of a stack looks at its cancel event


class _AnyOf:
    """Set when any of the events is (the server stopping, or the app build that asked cancelled)."""

    def __init__(self, *events: threading.Event | None) -> None:
        self.events = [e for e in events if e is not None]

    def is_set(self) -> bool:
        return any(e.is_set() for e in self.events)
