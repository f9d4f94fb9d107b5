"""Immutable, content-addressed copies of an app's source: one directory per artifact digest."""

from __future__ import annotations

import os
import re
import shutil
import stat
import tempfile
from pathlib import Path

from yunzhou.domain.errors import PermanentError, UserError
from yunzhou.domain.limits import Limits
from yunzhou.runtimes.local.unpack import unpack_archive

_HEX = re.compile(r"^[0-9a-f]{16,128}$")


def ensure_snapshot(
    archive: Path, digest: str, root: Path, *, group: int | None = None, limits: Limits | None = None
) -> Path:
    """Unpack ``archive`` (a tar.gz validated upstream) into ``root/<hex digest>/`` and return that dir.

    Atomic: unpacked into a temporary sibling, made read-only, then renamed into place, so a reader never
    sees half a snapshot. Idempotent: an existing snapshot is returned untouched (also when another
    process wins the race). Unpacked under ``limits`` (unpack.py); a refusal is a PermanentError naming
    the limit. ``digest`` is ``"sha256:<hex>"`` or bare hex. ``group`` set: everything is
    owned by root and that group, readable (and executable where the owner could) by the group only.
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
        try:
            unpack_archive(archive, tmp, limits or Limits())
        except UserError as exc:
            raise PermanentError(f"artifact {digest} cannot be unpacked: {exc.message}") from exc
        _make_read_only(tmp)
        if group is not None:
            _give_to_group(tmp, group)
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


def _give_to_group(top: Path, gid: int) -> None:
    """root:<gid>; dirs 0750, files r/x for owner and group as the owner had them, nothing for others."""
    for dirpath, dirnames, filenames in os.walk(top):
        os.chown(dirpath, 0, gid)
        os.chmod(dirpath, 0o750)  # noqa: S103 - root:<the app's gid>, nobody else
        for name in (*dirnames, *filenames):
            path = Path(dirpath, name)
            os.chown(path, 0, gid, follow_symlinks=False)
            if path.is_symlink() or path.is_dir():
                continue
            owner = path.stat().st_mode & (stat.S_IRUSR | stat.S_IXUSR)
            path.chmod(stat.S_IRUSR | owner | (owner >> 3) | stat.S_IRGRP)


def _remove(top: Path) -> None:
    for dirpath, _dirnames, filenames in os.walk(top):
        Path(dirpath).chmod(0o700)
        for name in filenames:
            path = Path(dirpath, name)
            if not path.is_symlink():
                path.chmod(0o600)
    shutil.rmtree(top, ignore_errors=True)
