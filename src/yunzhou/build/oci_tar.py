"""Reproducible tar streams: a directory (or an existing tar) → a gzip layer, hashed while it is written.

Same inputs give the same bytes: entries in sorted depth-first order, every mtime ``EPOCH``, owners
normalised to one uid/gid with empty user/group names, PAX headers only where ustar cannot hold a
value (long or non-ASCII names), gzip with mtime 0, no file name and a fixed level. Hard links and
symbolic links are kept; device nodes, sockets and FIFOs are skipped (each reported with a reason).
Nothing is ever held in memory whole: a 150 MB stack layer streams through in 1 MiB pieces.
"""

from __future__ import annotations

import fnmatch
import gzip
import hashlib
import logging
import os
import stat
import tarfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, BinaryIO, Protocol

from yunzhou.domain.errors import UserError

EPOCH = 0
GZIP_LEVEL = 6  # fixed: another level gives other bytes, so another digest
CHUNK = 1 << 20

log = logging.getLogger(__name__)

SkipReport = Callable[[str, str], None]  # (path inside the layer, why it was left out)


class Sink(Protocol):
    def write(self, data: bytes, /) -> object: ...
    def flush(self) -> object: ...


class DiffSink:
    """Hashes the uncompressed tar (the layer's diff_id) and passes it on to the gzip stream."""

    def __init__(self, target: Sink) -> None:
        self._target = target
        self._hash = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes, /) -> int:
        self._hash.update(data)
        self.size += len(data)
        self._target.write(data)
        return len(data)

    def flush(self) -> None:
        self._target.flush()

    @property
    def digest(self) -> str:
        return "sha256:" + self._hash.hexdigest()


def gzip_writer(target: Sink) -> gzip.GzipFile:
    """A gzip stream whose header carries no time and no name, so equal input gives equal output."""
    return gzip.GzipFile(filename="", mode="wb", compresslevel=GZIP_LEVEL, fileobj=target, mtime=0)


def _excluded(rel: str, patterns: Sequence[str]) -> bool:
    name = rel.rsplit("/", 1)[-1]
    return any(fnmatch.fnmatchcase(rel, p) or fnmatch.fnmatchcase(name, p) for p in patterns)


def _walk(src: Path, rel: str, exclude: Sequence[str]) -> Iterator[tuple[str, Path, os.stat_result]]:
    """Depth-first, siblings sorted by name: parents always come before their children."""
    with os.scandir(src) as it:
        entries = sorted(it, key=lambda e: e.name)
    for entry in entries:
        child_rel = f"{rel}/{entry.name}" if rel else entry.name
        if _excluded(child_rel, exclude):
            continue
        st = entry.stat(follow_symlinks=False)
        yield child_rel, Path(entry.path), st
        if stat.S_ISDIR(st.st_mode):
            yield from _walk(Path(entry.path), child_rel, exclude)


def _info(name: str, st_mode: int, owner: tuple[int, int]) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.mode = stat.S_IMODE(st_mode)
    info.mtime = EPOCH
    info.uid, info.gid = owner
    info.uname = info.gname = ""
    return info


def write_dir_tar(
    out: Sink,
    src: Path,
    *,
    dest: str = "",
    owner: tuple[int, int] = (0, 0),
    exclude: Sequence[str] = (),
    on_skip: SkipReport | None = None,
) -> None:
    """Write ``src``'s tree as a tar to ``out``, under the directory ``dest`` inside the layer.

    ``dest``'s parent directories are written root-owned with mode 0755; ``dest`` itself and everything
    under it get ``owner``. ``exclude`` holds glob patterns matched against the path relative to ``src``
    and against the bare name (``".git"``, ``"*.pyc"``, ``"node_modules"``); an excluded directory is
    left out with all it holds.
    """
    if not src.is_dir():
        raise UserError(f"layer source {src} is not a directory")
    prefix = dest.strip("/")
    if any(part in ("", ".", "..") for part in prefix.split("/")) and prefix:
        raise UserError(f"layer destination {dest!r} must be a plain path inside the image")
    links: dict[tuple[int, int], str] = {}
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:  # type: ignore[call-overload]
        if prefix:
            parts = prefix.split("/")
            for i in range(1, len(parts)):
                tar.addfile(_dir_info("/".join(parts[:i]), 0o755, (0, 0)))
            tar.addfile(_dir_info(prefix, src.stat().st_mode, owner))
        for rel, path, st in _walk(src, "", exclude):
            name = f"{prefix}/{rel}" if prefix else rel
            _add_entry(tar, name, path, st, owner, links, on_skip)


def _dir_info(name: str, mode: int, owner: tuple[int, int]) -> tarfile.TarInfo:
    info = _info(name, mode, owner)
    info.type = tarfile.DIRTYPE
    return info


def _add_entry(
    tar: tarfile.TarFile,
    name: str,
    path: Path,
    st: os.stat_result,
    owner: tuple[int, int],
    links: dict[tuple[int, int], str],
    on_skip: SkipReport | None,
) -> None:
    mode = st.st_mode
    if stat.S_ISDIR(mode):
        tar.addfile(_dir_info(name, mode, owner))
        return
    info = _info(name, mode, owner)
    if stat.S_ISLNK(mode):
        info.type = tarfile.SYMTYPE
        info.linkname = os.readlink(path)
        tar.addfile(info)
        return
    if not stat.S_ISREG(mode):
        kind = "device node" if stat.S_ISBLK(mode) or stat.S_ISCHR(mode) else _kind(mode)
        reason = f"a {kind} cannot be part of an image"
        log.info("layer: skipped %s: %s", name, reason)
        if on_skip is not None:
            on_skip(name, reason)
        return
    key = (st.st_dev, st.st_ino)
    if st.st_nlink > 1:
        first = links.get(key)
        if first is not None:
            info.type = tarfile.LNKTYPE
            info.linkname = first
            tar.addfile(info)
            return
        links[key] = name
    info.size = st.st_size
    with open(path, "rb") as f:
        tar.addfile(info, _Exactly(f, st.st_size, name))


def _kind(mode: int) -> str:
    if stat.S_ISSOCK(mode):
        return "socket"
    if stat.S_ISFIFO(mode):
        return "FIFO"
    return "special file"


class _Exactly:
    """Reads a file that must still have the size it had when it was listed (tar headers carry it)."""

    def __init__(self, f: BinaryIO, size: int, name: str) -> None:
        self._f, self._left, self._name = f, size, name

    def read(self, n: int = -1) -> bytes:
        want = self._left if n < 0 else min(n, self._left)
        data = self._f.read(want)
        if len(data) < want:
            raise UserError(f"{self._name} changed while it was being added to a layer (it shrank)")
        self._left -= len(data)
        return data


def copy_stream(src: IO[bytes], out: Sink) -> None:
    while chunk := src.read(CHUNK):
        out.write(chunk)


def is_gzip(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(2) == b"\x1f\x8b"


def gunzip_digest(path: Path) -> str:
    """The diff_id of an already-compressed layer: the sha256 of its uncompressed tar."""
    h = hashlib.sha256()
    with gzip.open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return "sha256:" + h.hexdigest()
