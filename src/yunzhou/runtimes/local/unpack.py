"""Unpack an uploaded source archive under limits, counting what is actually written.

The upload already checked the archive (services/artifacts.py), but what is on disk is decided here: the
same member rules (domain/archive.py) are applied again while streaming, and the bytes counted are the
bytes written, so a wrong header, an archive stored before the limits existed or a lowered limit cannot
fill the disk. Once written, every symlink is resolved by the kernel (realpath) and must stay inside.
Runs in the reconcile worker's thread, never on the API's event loop.
"""

from __future__ import annotations

import gzip
import os
import tarfile
import zlib
from pathlib import Path

from yunzhou.domain.archive import ArchiveChecker, refused
from yunzhou.domain.limits import Limits

CHUNK = 1024 * 1024


def unpack_archive(archive: Path, into: Path, limits: Limits) -> None:
    """Unpack the tar.gz ``archive`` into the empty directory ``into``; a UserError naming the broken rule
    or limit otherwise (the caller removes ``into``).

    Every entry gets the archive file's mtime: archives are built with zeroed times so that the same tree
    gives the same digest, and the archive file's time is when this content was uploaded, so a static
    server's Last-Modified/ETag change with the content instead of all being 1970 (which made clients
    holding the old release's validators get 304 for the new one).
    """
    stamp = archive.stat().st_mtime
    try:
        _unpack(archive, into, ArchiveChecker(limits))
    except (tarfile.TarError, gzip.BadGzipFile, EOFError, zlib.error) as exc:  # not disk errors: those stay
        raise refused(f"not a gzip-compressed tar archive ({exc})") from exc
    _check_links_stay_inside(into)
    for dirpath, dirnames, filenames in os.walk(into):
        for name in (*dirnames, *filenames):
            os.utime(Path(dirpath, name), (stamp, stamp), follow_symlinks=False)
    os.utime(into, (stamp, stamp))


def _unpack(archive: Path, into: Path, checker: ArchiveChecker) -> None:
    with gzip.open(archive, "rb") as stream, tarfile.open(fileobj=stream, mode="r|") as tar:  # as the upload
        for member in tar:
            path = checker.admit(member)
            target = into if path == "." else into.joinpath(*path.split("/"))
            if member.isdir():
                target.mkdir(parents=True, exist_ok=True)
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                if member.issym():
                    os.symlink(member.linkname, target)
                else:
                    _write_file(tar, member, target, checker)
    checker.finish()


def _check_links_stay_inside(into: Path) -> None:
    """What the kernel makes of every symlink written, against the root: an exact second line behind the
    archive rules (which resolve links from the archive's names alone)."""
    root = os.path.realpath(into)
    for dirpath, dirnames, filenames in os.walk(into):  # does not descend into linked folders
        for name in (*dirnames, *filenames):
            link = os.path.join(dirpath, name)
            if os.path.islink(link) and os.path.commonpath((root, os.path.realpath(link))) != root:
                relative = os.path.relpath(link, into)  # not where it lands: the host's paths stay private
                raise refused(f"symlink {relative!r} points outside the archive once unpacked")


def _write_file(tar: tarfile.TarFile, member: tarfile.TarInfo, target: Path, checker: ArchiveChecker) -> None:
    source = tar.extractfile(member)
    assert source is not None  # a regular file always has content (possibly empty)
    # O_EXCL: never through an existing file or symlink of the same name
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as out:
        while chunk := source.read(CHUNK):
            checker.count(len(chunk))
            out.write(chunk)
    os.chmod(target, 0o755 if member.mode & 0o100 else 0o644)
