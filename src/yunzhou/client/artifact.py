"""Deterministic source archives: the same tree always gives the same bytes, hence the same digest.

Some things in a source folder are not the app's source, and are left out (``pack_source`` says which,
how much, and why, so ``yunzhou deploy --source`` can tell the user; docs/cli.md):

- ``.venv``, ``node_modules``: dependencies built for this machine (its paths, its binaries); the app
  runs with what its target has installed.
- ``.git``, ``__pycache__``: history and bytecode caches.
- ``.yunzhou``: a server's data dir (the admin token, the database); never uploaded, whatever is asked.
- ``score.yaml`` and ``yunzhou.yaml`` at the top, and the Score and settings files the deploy reads
  (``leave_out``): the deploy's description, which a static app would otherwise serve to anyone.

``include`` keeps any of these by name (but ``.yunzhou``).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import stat
import tarfile
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

from yunzhou.domain.errors import invalid

# Never part of an app's source. `.yunzhou` is a server data dir: it holds the admin token and the database.
SKIPPED_NAMES = frozenset({".git", "__pycache__", ".venv", "node_modules", ".yunzhou"})
PLATFORM_FILES = frozenset({"score.yaml", "yunzhou.yaml"})  # at the source's top
NEVER_INCLUDED = frozenset({".yunzhou"})
DEPENDENCIES = frozenset({".venv", "node_modules"})


@dataclass
class LeftOut:
    """One kind of thing left out of an archive: a name, where it was found and how much it held."""

    name: str
    folders: int = 0  # folders of that name left out (0: files of that name)
    files: int = 0  # files left out, in those folders or by name
    bytes: int = 0

    @property
    def why(self) -> str:
        if self.name in DEPENDENCIES:
            return "dependencies"
        if self.name in NEVER_INCLUDED:
            return "data dir"
        if self.name in SKIPPED_NAMES:
            return "cache"
        return "platform file"


@dataclass(frozen=True)
class SourceArchive:
    data: bytes
    left_out: tuple[LeftOut, ...]

    @property
    def digest(self) -> str:
        return artifact_digest(self.data)


class _Walk:
    def __init__(self, root: Path, leave_out: Collection[Path], include: Collection[str]) -> None:
        self.root = root
        self.skipped = (SKIPPED_NAMES - set(include)) | NEVER_INCLUDED
        top_files = {_place(root / name) for name in PLATFORM_FILES - set(include)}
        asked = {_place(Path(path)) for path in leave_out if Path(path).name not in include}
        self.files_left_out = top_files | asked
        self.left_out: dict[str, LeftOut] = {}

    def entries(self) -> list[Path]:
        found: list[Path] = []
        for dirpath, dirnames, filenames in os.walk(self.root, followlinks=False):
            base = Path(dirpath)
            for name in [name for name in dirnames if name in self.skipped]:
                self._count_dir(base / name)
            dirnames[:] = sorted(name for name in dirnames if name not in self.skipped)
            found.extend(base / name for name in dirnames)
            for name in filenames:
                path = base / name
                if name in self.skipped or _place(path) in self.files_left_out:
                    self._record(path.name, folder=False, files=1, size=path.lstat().st_size)
                else:
                    found.append(path)
        return sorted(found, key=lambda path: path.relative_to(self.root).as_posix())

    def _count_dir(self, top: Path) -> None:
        files = size = 0
        for dirpath, _dirnames, filenames in os.walk(top, followlinks=False):
            for name in filenames:
                files += 1
                try:
                    size += Path(dirpath, name).lstat().st_size
                except OSError:
                    continue  # gone meanwhile: it would not have been uploaded either
        self._record(top.name, folder=True, files=files, size=size)

    def _record(self, name: str, *, folder: bool, files: int, size: int) -> None:
        item = self.left_out.setdefault(name, LeftOut(name))
        item.folders += 1 if folder else 0
        item.files += files
        item.bytes += size


def _place(path: Path) -> Path:
    """Where a file is, however its folder was named (relative, through a symlink); not its target."""
    return path.parent.resolve() / path.name


def _tar_info(path: Path, root: Path) -> tarfile.TarInfo | None:
    st = path.lstat()
    info = tarfile.TarInfo(path.relative_to(root).as_posix())
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    if stat.S_ISLNK(st.st_mode):
        info.type = tarfile.SYMTYPE
        info.linkname = os.readlink(path)
        info.mode = 0o777
    elif stat.S_ISDIR(st.st_mode):
        info.type = tarfile.DIRTYPE
        info.mode = 0o755
    elif stat.S_ISREG(st.st_mode):
        info.size = st.st_size
        info.mode = 0o755 if st.st_mode & stat.S_IXUSR else 0o644
    else:
        return None  # sockets, fifos, devices: not source
    return info


def pack_source(
    source_dir: Path, *, leave_out: Collection[Path] = (), include: Collection[str] = ()
) -> SourceArchive:
    """A tar.gz of ``source_dir`` (sorted entries, zeroed times and owners, normalised modes) and what
    was left out of it. ``leave_out``: more files to leave out (the deploy's Score and settings);
    ``include``: names to keep although they are normally left out."""
    root = Path(source_dir)
    if not root.is_dir():
        raise invalid("source", f"{root} is not a directory")
    walk = _Walk(root, leave_out, include)
    buffer = io.BytesIO()
    # mtime=0 and no file name keep the gzip header stable too.
    with (
        gzip.GzipFile(filename="", mode="wb", fileobj=buffer, mtime=0) as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        for path in walk.entries():
            info = _tar_info(path, root)
            if info is None:
                continue
            if info.isreg():
                with path.open("rb") as handle:
                    tar.addfile(info, handle)
            else:
                tar.addfile(info)
    left_out = tuple(sorted(walk.left_out.values(), key=lambda item: item.name))
    return SourceArchive(buffer.getvalue(), left_out)


def build_artifact(source_dir: Path) -> bytes:
    """The archive ``pack_source`` makes with nothing asked: the same tree gives the same bytes."""
    return pack_source(source_dir).data


def artifact_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()
