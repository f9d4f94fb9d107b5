"""Immutable, content-addressed copies of an app's source: one directory per artifact digest."""

from __future__ import annotations

import os
import re
import shutil
import stat
import tarfile
import tempfile
from pathlib import Path

_HEX = re.compile(r"^[0-9a-f]{16,128}$")


def ensure_snapshot(archive: Path, digest: str, root: Path) -> Path:
    """Unpack ``archive`` (a tar.gz validated upstream) into ``root/<hex digest>/`` and return that dir.

    Atomic: unpacked into a temporary sibling, made read-only, then renamed into place, so a reader never
    sees half a snapshot. Idempotent: an existing snapshot is returned untouched (also when another
    process wins the race). ``digest`` is ``"sha256:<hex>"`` or bare hex.
    """
    hex_digest = digest.split(":", 1)[1] if ":" in digest else digest
    hex_digest = hex_digest.lower()
    if not _HEX.match(hex_digest):
        raise ValueError(f"not a hex digest: {digest!r}")
    final = root / hex_digest
    if final.is_dir():
        return final
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{hex_digest[:12]}-", dir=root))
    try:
        with tarfile.open(archive, "r:gz") as tar:
            tar.extractall(tmp, filter="data")
        _make_read_only(tmp)
        try:
            os.rename(tmp, final)
        except OSError:
            if not final.is_dir():  # not a lost race: a real failure
                raise
            _remove(tmp)
    except BaseException:
        if tmp.exists():
            _remove(tmp)
        raise
    return final


def _make_read_only(top: Path) -> None:
    for dirpath, _dirnames, filenames in os.walk(top):
        for name in filenames:
            path = Path(dirpath, name)
            if not path.is_symlink():
                mode = path.stat().st_mode
                path.chmod(mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))


def _remove(top: Path) -> None:
    for dirpath, _dirnames, filenames in os.walk(top):
        Path(dirpath).chmod(0o700)
        for name in filenames:
            path = Path(dirpath, name)
            if not path.is_symlink():
                path.chmod(0o600)
    shutil.rmtree(top, ignore_errors=True)
