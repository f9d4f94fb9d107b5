"""Deterministic source archives: the same tree always gives the same bytes, hence the same digest."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import stat
import tarfile
from pathlib import Path

from yunzhou.domain.errors import invalid

# Never part of an app's source. `.yunzhou` is a server data dir: it holds the admin token and the database.
SKIPPED_NAMES = frozenset({".git", "__pycache__", ".venv", "node_modules", ".yunzhou"})


def _entries(root: Path) -> list[Path]:
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = sorted(name for name in dirnames if name not in SKIPPED_NAMES)
        base = Path(dirpath)
        found.extend(base / name for name in dirnames)
        found.extend(base / name for name in filenames if name not in SKIPPED_NAMES)
    return sorted(found, key=lambda path: path.relative_to(root).as_posix())


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


def build_artifact(source_dir: Path) -> bytes:
    """A tar.gz of ``source_dir``: sorted entries, zeroed times and owners, normalised modes."""
    root = Path(source_dir)
    if not root.is_dir():
        raise invalid("source", f"{root} is not a directory")
    buffer = io.BytesIO()
    # mtime=0 and no file name keep the gzip header stable too.
    with (
        gzip.GzipFile(filename="", mode="wb", fileobj=buffer, mtime=0) as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        for path in _entries(root):
            info = _tar_info(path, root)
            if info is None:
                continue
            if info.isreg():
                with path.open("rb") as handle:
                    tar.addfile(info, handle)
            else:
                tar.addfile(info)
    return buffer.getvalue()


def artifact_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()
