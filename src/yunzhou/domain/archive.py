"""What an uploaded source archive may hold, checked member by member while it is read: by the upload
(services, before anything is stored) and again while it is unpacked (runtimes.local, counting the bytes
actually written). Pure: the callers read and write; this decides.

An archive may hold regular files, directories and symlinks that stay inside its root; nothing else
(no absolute or ``..`` paths, no hardlinks, devices, fifos or sparse files, no member under a symlink,
no member twice), at most ``Limits.unpacked_files`` entries and ``Limits.unpacked_bytes`` of content.
A symlink stays inside when its target, resolved as the kernel would through the archive's other links
(also those that come later: ``finish`` checks once all members are known), never leaves the root and
needs at most ``MAX_LINK_HOPS`` links followed.
"""

from __future__ import annotations

import posixpath
import tarfile

from yunzhou.domain.errors import UserError, invalid
from yunzhou.domain.limits import Limits, format_bytes

FIELD = "body"
MAX_LINK_HOPS = 40  # Linux's MAXSYMLINKS: more in one path lookup is ELOOP
MAX_LINK_TARGET = 4095  # bytes; PATH_MAX less the NUL


def refused(message: str) -> UserError:
    return invalid(FIELD, message)


class ArchiveChecker:
    """One pass over one archive: ``admit`` each member in order, ``count`` the bytes of its content."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.entries = 0
        self.bytes = 0
        self._seen: dict[str, bool] = {}  # path → is a directory
        self._parents: set[str] = set()  # every folder some member lies in
        self._symlinks: dict[str, str] = {}  # path → target, in archive order

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

    def finish(self) -> None:
        """After the last member: every symlink, resolved through all the others, stays inside the root."""
        root, links = _Place(None), {}
        for path, target in self._symlinks.items():
            link = root
            for part in path.split("/"):
                link = link.child(part)
            link.target = target
            links[path] = link
        for path, link in links.items():
            try:
                _resolve(link, ())
            except _Escapes:
                raise refused(
                    f"symlink {path!r} points outside the archive ({link.target!r}, "
                    "resolved through the archive's other links)"
                ) from None
            except _Loops:
                raise refused(
                    f"symlink {path!r} does not resolve: it loops or needs more than {MAX_LINK_HOPS} "
                    f"links followed (the limit is {MAX_LINK_HOPS})"
                ) from None

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
            if len(member.linkname.encode()) > MAX_LINK_TARGET:  # the kernel's symlink() refuses it too
                raise refused(f"symlink {name!r} has a target over {MAX_LINK_TARGET} bytes (the limit)")
        elif member.islnk():
            raise refused(f"archive member {name!r} is a hardlink; only files, directories and symlinks")
        elif member.issparse() or not (member.isfile() or member.isdir()):
            raise refused(f"archive member {name!r} is not a file, directory or symlink")

    def _check_place(self, member: tarfile.TarInfo, path: str) -> None:
        """Not under a symlink of the same archive (whose target would decide where it lands), not twice."""
        if member.issym() and path in self._parents:  # 'a/x' came first, then the link 'a'
            raise refused(f"archive member {member.name!r} is a symlink and a folder of other members")
        parent = posixpath.dirname(path)
        while parent:
            if parent in self._symlinks:
                raise refused(f"archive member {member.name!r} lies under the symlink {parent!r}")
            self._parents.add(parent)
            parent = posixpath.dirname(parent)
        if path in self._seen and not (member.isdir() and self._seen[path]):
            raise refused(f"archive member {member.name!r} appears twice")
        self._seen[path] = member.isdir()
        if member.issym():
            self._symlinks[path] = member.linkname

    def _too_big(self) -> None:
        raise refused(
            f"archive unpacks to more than {format_bytes(self.limits.unpacked_bytes)}; "
            f"the limit is {self.limits.describe('unpacked_bytes')}"
        )


class _Escapes(Exception):
    pass


class _Loops(Exception):
    pass


class _Place:
    """A folder or link of the archive's tree; paths the links name are added as they are walked."""

    __slots__ = ("children", "parent", "resolved", "target")

    def __init__(self, parent: _Place | None) -> None:
        self.parent = parent
        self.children: dict[str, _Place] = {}
        self.target: str | None = None  # set: a symlink to this
        self.resolved: tuple[_Place, int] | None = None

    def child(self, name: str) -> _Place:
        place = self.children.get(name)
        if place is None:
            place = self.children[name] = _Place(self)
        return place


def _resolve(link: _Place, following: tuple[_Place, ...]) -> tuple[_Place, int]:
    """Where ``link`` leads and how many links that follows (itself included), as a path lookup would:
    component by component, each link replaced by where it leads, so ``..`` climbs from there. Each link is
    resolved once, however many go through it: the work is the sum of the targets' lengths."""
    if link.resolved is not None:
        return link.resolved
    if link in following or len(following) >= MAX_LINK_HOPS:
        raise _Loops
    assert link.target is not None  # only links are resolved, and the root is not one
    assert link.parent is not None
    if link.target.startswith("/"):
        raise _Escapes
    here, hops = link.parent, 1  # a folder, not a link: members under a link are refused
    for part in link.target.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if here.parent is None:
                raise _Escapes
            here = here.parent
            continue
        here = here.child(part)
        if here.target is not None:
            here, inner = _resolve(here, (*following, link))
            hops += inner
            if hops > MAX_LINK_HOPS:
                raise _Loops
    link.resolved = (here, hops)
    return link.resolved
