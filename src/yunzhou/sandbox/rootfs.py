"""Root filesystems from image layers: each layer unpacked once, then a read-only overlay per container.

::

    <root>/layers/<diff id hex>/     one unpacked layer (content-addressed, shared by every container)
    <root>/layers/skeleton-2/        mount points runc needs (/proc /dev /sys /tmp /etc/hosts …, and
                                     ``/.yunzhou-init`` for an init binary bound there): the bottom
                                     layer, so an image that lacks them still starts
    <root>/mounts/<hash>.json        which layers a mounted rootfs uses (a layer in use is never pruned)
    <root>/cache.lock                shared by mounts, exclusive for prune

Unpacking (``_extract``) never follows a link on the host: every parent of an entry must be a real
directory inside the layer (an entry through a symlink is refused), names may not be absolute or contain
``..``, a hard link must name an earlier regular file of the layer, and the layer's uncompressed bytes
must hash to its diff id. Symlink *targets* are kept as they are, absolute ones included: the container
resolves them inside its own root. Owners, modes and mtimes are kept (images carry root-owned files and
Python checks mtimes); device nodes are skipped (``/dev`` is a tmpfs in the container) and the overlay is
mounted ``nosuid,nodev``. OCI whiteouts become overlay whiteouts: ``.wh.<name>`` a 0/0 character device
``<name>``, ``.wh..wh..opq`` the ``trusted.overlay.opaque`` attribute on its directory.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import gzip
import hashlib
import json
import os
import secrets
import shutil
import stat
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from yunzhou.build.oci import MEDIA_LAYER_GZIP, MEDIA_LAYER_TAR, ImageRef, ImageStore, Layer
from yunzhou.domain.errors import PermanentError
from yunzhou.sandbox.bundle import INIT_MOUNT_POINT

WHITEOUT = ".wh."
OPAQUE = ".wh..wh..opq"
SKELETON = "skeleton-2"
_DOCKER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
_DOCKER_TAR = "application/vnd.docker.image.rootfs.diff.tar"
_GZIP_TYPES = (MEDIA_LAYER_GZIP, _DOCKER_GZIP)
_TAR_TYPES = (MEDIA_LAYER_TAR, _DOCKER_TAR)
_MS_RDONLY, _MS_NOSUID, _MS_NODEV, _MS_REMOUNT, _MS_BIND = 1, 2, 4, 32, 4096
_MAX_OPTIONS = 4000  # the kernel reads mount options from one page


class LayerError(PermanentError):
    """A layer that cannot be unpacked safely (the message names the layer and the entry)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, code="bad_layer")


def _libc_call(name: str, *args: Any) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if getattr(libc, name)(*args) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def _mount(source: str, target: Path, fstype: str, flags: int, options: str) -> None:
    _libc_call("mount", source.encode(), bytes(target), fstype.encode(), flags, options.encode() or None)


def is_mounted(target: Path) -> bool:
    mountinfo = Path("/proc/self/mountinfo").read_text()
    wanted = str(target).replace(" ", "\\040")
    return any(line.split()[4] == wanted for line in mountinfo.splitlines())


class _HashingReader:
    """Reads through, hashing what passes (the layer's diff id)."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw, self.sha = raw, hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        data = self.raw.read(size)
        self.sha.update(data)
        return data


class LayerCache:
    """Unpacked layers under ``root`` (created 0700); rootfs mounts of images made of them."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.layers = root / "layers"
        self._mounts = root / "mounts"

    # ---- locking and records ---------------------------------------------------------------------------
    @contextlib.contextmanager
    def _lock(self, exclusive: bool) -> Iterator[None]:
        for d in (self.root, self.layers, self._mounts):
            d.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self.root / "cache.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            yield
        finally:
            os.close(fd)

    def _record(self, target: Path) -> Path:
        return self._mounts / (hashlib.sha256(str(target).encode()).hexdigest()[:24] + ".json")

    # ---- unpacking -------------------------------------------------------------------------------------
    def layer_dir(self, layer: Layer) -> Path:
        return self.layers / layer.diff_id.removeprefix("sha256:")

    def unpack(self, store: ImageStore, layer: Layer) -> Path:
        """The layer's directory, unpacked now unless it already was (safe against concurrent unpackers)."""
        with self._lock(exclusive=False):
            return self._unpack(store, layer)

    def _unpack(self, store: ImageStore, layer: Layer) -> Path:
        final = self.layer_dir(layer)
        if final.is_dir():
            return final
        tmp = self.layers / f".tmp-{secrets.token_hex(8)}"
        tmp.mkdir(mode=0o755)
        try:
            self._extract(store, layer, tmp)
            try:
                tmp.rename(final)
            except OSError:  # another process finished it first
                if not final.is_dir():
                    raise
        finally:
            if tmp.exists():
                shutil.rmtree(tmp)
        return final

    @staticmethod
    def _extract(store: ImageStore, layer: Layer, dest: Path) -> None:
        if layer.media_type not in _GZIP_TYPES + _TAR_TYPES:
            raise LayerError(f"layer {layer.digest}: media type {layer.media_type} is not supported")
        with open(store.blob_path(layer.digest), "rb") as blob:
            raw: IO[bytes] = blob
            if layer.media_type in _GZIP_TYPES:
                raw = gzip.GzipFile(fileobj=blob)  # type: ignore[assignment]
            reader = _HashingReader(raw)
            dirs: list[tuple[Path, tarfile.TarInfo]] = []
            try:
                with tarfile.open(fileobj=reader, mode="r|") as tar:  # type: ignore[call-overload]
                    for member in tar:
                        _Entry(layer, dest, member, tar).write(dirs)
                    while reader.read(1 << 16):  # the padding after the end-of-archive blocks
                        pass
            except (tarfile.TarError, OSError, EOFError) as exc:
                raise LayerError(f"layer {layer.digest}: cannot unpack: {exc}") from exc
        if "sha256:" + reader.sha.hexdigest() != layer.diff_id:
            raise LayerError(f"layer {layer.digest}: content does not match its diff id {layer.diff_id}")
        for path, member in reversed(dirs):  # deepest first, after their contents changed their mtimes
            if stat.S_ISDIR(os.lstat(path).st_mode):  # a later entry may have replaced it: never follow
                os.chmod(path, stat.S_IMODE(member.mode))
                os.utime(path, (member.mtime, member.mtime), follow_symlinks=False)

    def _skeleton(self) -> Path:
        path = self.layers / SKELETON
        if path.is_dir():
            return path
        tmp = self.layers / f".tmp-{secrets.token_hex(8)}"
        for d in ("proc", "dev", "sys", "etc", "run"):
            (tmp / d).mkdir(mode=0o755, parents=True)
        tmp.chmod(0o755)
        (tmp / "tmp").mkdir()
        (tmp / "tmp").chmod(0o1777)
        for f in ("etc/hosts", "etc/resolv.conf", INIT_MOUNT_POINT.lstrip("/")):
            (tmp / f).write_text("")
            (tmp / f).chmod(0o644)
        try:
            tmp.rename(path)
        except OSError:
            shutil.rmtree(tmp)
        return path

    # ---- mounting --------------------------------------------------------------------------------------
    def rootfs(self, store: ImageStore, image: ImageRef, target: Path, *, top: Path | None = None) -> Path:
        """Mount ``image``'s layers read-only (nosuid, nodev) at ``target`` (created); returns ``target``.

        ``top``: a directory of the caller's laid over the image (the mount points of its bind mounts,
        which runc cannot create in a read-only root; the local runtime's Score files and volumes).

        Layers not unpacked yet are unpacked first (from ``store``). ``release(target)`` undoes it. The same
        image already mounted there is fine (adoption after a restart); anything else mounted there is not.
        """
        with self._lock(exclusive=False):
            record = {"target": str(target), "layers": [layer.diff_id for layer in image.layers]}
            if is_mounted(target):
                if self.mounts().get(target) == record["layers"]:
                    return target  # already there (a server adopting its containers after a restart)
                raise PermanentError(f"{target} is already a mount point", code="already_mounted")
            lower = [self._unpack(store, layer) for layer in reversed(image.layers)]  # top layer first
            lower.append(self._skeleton())
            if top is not None:
                lower.insert(0, top)
            target.mkdir(parents=True, exist_ok=True)
            self._record(target).write_text(json.dumps(record))
            try:
                self._mount_dirs(lower, target)
            except OSError as exc:
                self._record(target).unlink(missing_ok=True)
                raise PermanentError(f"cannot mount the image at {target}: {exc.strerror}") from exc
        return target

    @staticmethod
    def _mount_dirs(lower: list[Path], target: Path) -> None:
        flags = _MS_RDONLY | _MS_NOSUID | _MS_NODEV
        if len(lower) == 1:
            _mount(str(lower[0]), target, "", _MS_BIND, "")
            _mount("", target, "", _MS_BIND | _MS_REMOUNT | flags, "")
            return
        if any(":" in str(d) or "," in str(d) for d in lower):
            raise OSError(22, f"a layer path contains ':' or ',' (under {lower[0].parent})")
        options = "lowerdir=" + ":".join(str(d) for d in lower)
        if len(options) > _MAX_OPTIONS:
            raise OSError(7, f"{len(lower)} layers make overlay options longer than one page")
        _mount("overlay", target, "overlay", flags, options)

    def release(self, target: Path) -> None:
        """Unmount a rootfs made by ``rootfs`` (nothing to do when not mounted); its layers become free."""
        with self._lock(exclusive=False):
            if is_mounted(target):
                try:
                    _libc_call("umount2", bytes(target), 0)
                except OSError as exc:
                    raise PermanentError(f"cannot unmount {target}: {exc.strerror}") from exc
            self._record(target).unlink(missing_ok=True)

    def mounts(self) -> dict[Path, list[str]]:
        """Every rootfs of this cache still mounted → its layers' diff ids (records of vanished mounts go)."""
        found: dict[Path, list[str]] = {}
        for record in self._mounts.glob("*.json") if self._mounts.is_dir() else ():
            with contextlib.suppress(OSError, ValueError):
                doc = json.loads(record.read_text())
                if is_mounted(Path(doc["target"])):
                    found[Path(doc["target"])] = list(doc["layers"])
                    continue
                record.unlink()
        return found

    def in_use(self) -> set[str]:
        """Diff ids of the layers under a mounted rootfs."""
        return {diff_id for layers in self.mounts().values() for diff_id in layers}

    def prune(self, keep: set[str] | frozenset[str] = frozenset()) -> int:
        """Remove unpacked layers neither in ``keep`` (diff ids) nor in use; returns how many went."""
        removed = 0
        with self._lock(exclusive=True):
            wanted = {d.removeprefix("sha256:") for d in keep | self.in_use()}
            for path in self.layers.iterdir():
                if path.name == SKELETON or path.name in wanted:
                    continue
                shutil.rmtree(path)
                removed += not path.name.startswith(".tmp-")
        return removed


class _Entry:
    """One tar member written into a layer directory without following anything on the host."""

    def __init__(self, layer: Layer, root: Path, member: tarfile.TarInfo, tar: tarfile.TarFile) -> None:
        self.layer, self.root, self.member, self.tar = layer, root, member, tar
        self.parts = self._parts(member.name)

    def _refuse(self, why: str) -> LayerError:
        return LayerError(f"layer {self.layer.digest}: entry {self.member.name!r} {why}")

    def _parts(self, name: str) -> list[str]:
        if name.startswith("/") or "\0" in name:
            raise self._refuse("has an absolute path")
        parts = [p for p in name.split("/") if p not in ("", ".")]
        if ".." in parts:
            raise self._refuse("goes up with '..'")
        return parts

    def _parent(self, parts: list[str], *, create: bool = True) -> Path:
        """The real directory holding ``parts[-1]`` (missing ones created 0755); never through a symlink."""
        path = self.root
        for part in parts[:-1]:
            path = path / part
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                if not create:
                    raise self._refuse(f"links to a path under {part!r}, which this layer lacks") from None
                os.mkdir(path, 0o755)
                continue
            if not stat.S_ISDIR(st.st_mode):
                raise self._refuse(f"goes through {part!r}, which is not a directory in this layer")
        return path

    def write(self, dirs: list[tuple[Path, tarfile.TarInfo]]) -> None:
        m = self.member
        if not self.parts:  # the layer's root itself
            dirs.append((self.root, m))
            os.lchown(self.root, m.uid, m.gid)
            return
        parent, name = self._parent(self.parts), self.parts[-1]
        if name == OPAQUE:
            os.setxattr(parent, "trusted.overlay.opaque", b"y")
            return
        if name.startswith(WHITEOUT):
            hidden = parent / name.removeprefix(WHITEOUT)
            if not os.path.lexists(
                hidden
            ):  # a file of this same layer stays (OCI: whiteouts hide lower ones)
                os.mknod(hidden, stat.S_IFCHR | 0o600, os.makedev(0, 0))
            return
        path = parent / name
        if m.isdir():
            if not os.path.isdir(path) or os.path.islink(path):
                self._clear(path)
                os.mkdir(path, 0o700)
            dirs.append((path, m))
            os.lchown(path, m.uid, m.gid)
            return
        if m.ischr() or m.isblk():
            return  # /dev is a tmpfs in the container and the overlay is nodev
        self._clear(path)
        if m.issym():
            os.symlink(m.linkname, path)
        elif m.islnk():
            target = self._parts(m.linkname)
            source = self._parent(target, create=False) / target[-1] if target else self.root
            if not os.path.lexists(source) or not stat.S_ISREG(os.lstat(source).st_mode):
                raise self._refuse(f"is a hard link to {m.linkname!r}, which is not a regular file")
            os.link(source, path, follow_symlinks=False)
            return
        elif m.isfifo():
            os.mkfifo(path, 0o600)
        elif m.isreg():
            self._write_file(path)
        else:
            raise self._refuse(f"has an unsupported type {m.type!r}")
        os.lchown(path, m.uid, m.gid)
        if not m.issym():
            os.chmod(path, stat.S_IMODE(m.mode))
        os.utime(path, (m.mtime, m.mtime), follow_symlinks=False)

    def _write_file(self, path: Path) -> None:
        source = self.tar.extractfile(self.member)
        assert source is not None
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "wb") as out:
            shutil.copyfileobj(source, out, 1 << 20)

    @staticmethod
    def _clear(path: Path) -> None:
        """Make room for a new entry at ``path`` (a later entry of a layer replaces an earlier one)."""
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return
        if stat.S_ISDIR(st.st_mode):
            shutil.rmtree(path)
        else:
            os.unlink(path)
