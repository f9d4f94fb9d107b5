"""What an uploaded source archive may hold, checked member by member while it is read: by the upload
(services, before anything is stored) and again while it is unpacked (runtimes.local, counting the bytes
actually written). Pure: the callers read and write; this decides.

An archive may hold regular files, directories and symlinks that stay inside its root; nothing else
(no absolute or ``..`` paths, no hardlinks, devices, fifos or sparse files, no member under a symlink,
no member twice), at most ``Limits.unpacked_files`` entries and ``Limits.unpacked_bytes`` of content.
"""

from __future__ import annotations

import posixpath
import tarfile

from yunzhou.domain.errors import UserError, invalid
from yunzhou.domain.limits import Limits, format_bytes

FIELD = "body"


def refused(message: str) -> UserError:
    return invalid(FIELD, message)


class ArchiveChecker:
    """One pass over one archive: ``admit`` each member in order, ``count`` the bytes of its content."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.entries = 0
        self.bytes = 0
        self._seen: dict[str, bool] = {}  # path → is a directory
        self._symlinks: set[str] = set()

    def admit(self, member: tarfile.TarInfo) -> str:
        """The member's normalised path inside the root ('.' for the root itself), or a UserError."""
        name = member.name
        path = posixpath.normpath(name) if name else ""
        if not path or "\x00" in name or path.startswith("/") or path == ".." or path.startswith("../"):
            raise refused(f"archive member {name!r} points outside the archive")
        self._check_kind(member, path)
        if path != ".":
            self._check_place(member, path)
        self.entries += 1
        if self.entries > self.limits.unpacked_files:
            raise refused(
                f"archive holds more than {self.limits.unpacked_files} entries; "
                f"the limit is {self.limits.describe('unpacked_files')}"
            )
        if member.isfile() and self.bytes + member.size > self.limits.unpacked_bytes:
            self._too_big()  # the header alone says so: refuse before reading the content
        return path

    def count(self, size: int) -> None:
        """``size`` more bytes of content read or written."""
        self.bytes += size
        if self.bytes > self.limits.unpacked_bytes:
            self._too_big()

    @staticmethod
    def _check_kind(member: tarfile.TarInfo, path: str) -> None:
        name = member.name
        if member.issym():
            target = posixpath.normpath(posixpath.join(posixpath.dirname(path), member.linkname))
            if member.linkname.startswith("/") or target == ".." or target.startswith("../"):
                raise refused(f"symlink {name!r} points outside the archive ({member.linkname!r})")
        elif member.islnk():
            raise refused(f"archive member {name!r} is a hardlink; only files, directories and symlinks")
        elif member.issparse() or not (member.isfile() or member.isdir()):
            raise refused(f"archive member {name!r} is not a file, directory or symlink")

    def _check_place(self, member: tarfile.TarInfo, path: str) -> None:
        """Not under a symlink of the same archive (whose target would decide where it lands), not twice."""
        parent = posixpath.dirname(path)
        while parent:
            if parent in self._symlinks:
                raise refused(f"archive member {member.name!r} lies under the symlink {parent!r}")
            parent = posixpath.dirname(parent)
        if path in self._seen and not (member.isdir() and self._seen[path]):
            raise refused(f"archive member {member.name!r} appears twice")
        self._seen[path] = member.isdir()
        if member.issym():
            self._symlinks.add(path)

    def _too_big(self) -> None:
        raise refused(
            f"archive unpacks to more than {format_bytes(self.limits.unpacked_bytes)}; "
            f"the limit is {self.limits.describe('unpacked_bytes')}"
        )
