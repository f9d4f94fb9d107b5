"""Security item 5 (#14) where archives reach the disk: a snapshot is unpacked under the size and entry
limits, counting the bytes written, and refused (nothing left behind) for a bomb, too many entries, or a
member that would land outside the snapshot. First-hour 10: unpacked files carry the upload's time, not
1970, so a static server's validators change with a redeploy."""

from __future__ import annotations

import email.utils
import io
import os
import tarfile
import threading
import time
from collections.abc import Callable, Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from yunzhou.domain.archive import ArchiveChecker
from yunzhou.domain.errors import PermanentError
from yunzhou.domain.limits import Limits
from yunzhou.runtimes.local import ensure_snapshot

DIGEST = "sha256:" + "cd" * 32
Member = Callable[[tarfile.TarFile], None]


def _file(name: str, data: bytes) -> Member:
    def add(tar: tarfile.TarFile) -> None:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))

    return add


def _special(name: str, kind: bytes, linkname: str = "") -> Member:
    def add(tar: tarfile.TarFile) -> None:
        info = tarfile.TarInfo(name)
        info.type = kind
        info.linkname = linkname
        tar.addfile(info)

    return add


def _archive(path: Path, *members: Member) -> Path:
    with tarfile.open(path, "w:gz", compresslevel=9) as tar:
        for add in members:
            add(tar)
    return path


def _refused(archive: Path, root: Path, limits: Limits, match: str) -> None:
    with pytest.raises(PermanentError, match=match):
        ensure_snapshot(archive, DIGEST, root, limits=limits)
    assert list(root.iterdir()) == []  # the partial unpacking is gone


def test_a_gzip_bomb_is_refused_while_unpacking_and_leaves_nothing(tmp_path: Path) -> None:
    # 16 MiB of zeros in 32 files compress to ~16 KiB; each header is under the limit, the sum is not
    zeros = bytes(512 * 1024)
    archive = _archive(tmp_path / "bomb.tgz", *(_file(f"z{n}", zeros) for n in range(32)))
    assert archive.stat().st_size < 64 * 1024
    limits = Limits(unpacked_bytes=2 * 1024 * 1024)
    _refused(
        archive,
        tmp_path / "snapshots",
        limits,
        r"unpacks to more than 2 MiB; the limit is 2 MiB \(server setting YUNZHOU_MAX_UNPACKED_BYTES\)",
    )


def test_one_member_whose_header_is_over_the_limit_is_refused_before_its_content(tmp_path: Path) -> None:
    archive = _archive(tmp_path / "one.tgz", _file("big", bytes(4 * 1024 * 1024)))
    _refused(
        archive, tmp_path / "snapshots", Limits(unpacked_bytes=1024 * 1024), "unpacks to more than 1 MiB"
    )


def test_too_many_entries_are_refused_by_count(tmp_path: Path) -> None:
    archive = _archive(tmp_path / "many.tgz", *(_file(f"d/f{n}", b"x") for n in range(60)))
    _refused(
        archive,
        tmp_path / "snapshots",
        Limits(unpacked_files=50),
        r"more than 50 entries; the limit is 50 \(server setting YUNZHOU_MAX_UNPACKED_FILES\)",
    )


@pytest.mark.parametrize(
    ("members", "match"),
    [
        ((_file("../escape", b"x"),), "points outside the archive"),
        ((_file("/etc/passwd-yz", b"x"),), "points outside the archive"),
        ((_file("a/../../escape", b"x"),), "points outside the archive"),
        ((_special("up", tarfile.SYMTYPE, "../../etc"),), "symlink 'up' points outside"),
        ((_special("abs", tarfile.SYMTYPE, "/etc/passwd"),), "symlink 'abs' points outside"),
        # a link that stays inside, then a member written through it: refused (its target decides)
        ((_special("here", tarfile.SYMTYPE, "."), _file("here/x", b"x")), "lies under the symlink 'here'"),
        ((_file("a", b"x"), _special("h", tarfile.LNKTYPE, "a")), "is a hardlink"),
        ((_special("dev", tarfile.CHRTYPE),), "not a file, directory or symlink"),
        ((_special("fifo", tarfile.FIFOTYPE),), "not a file, directory or symlink"),
        ((_file("twice", b"1"), _file("twice", b"2")), "appears twice"),
        ((_special("l", tarfile.SYMTYPE, "x"), _file("l", b"through the link")), "appears twice"),
    ],
)
def test_members_that_would_land_outside_or_are_not_source_are_refused(
    tmp_path: Path, members: tuple[Member, ...], match: str
) -> None:
    _refused(_archive(tmp_path / "bad.tgz", *members), tmp_path / "snapshots", Limits(), match)
    assert not (tmp_path / "escape").exists()


def test_links_and_files_inside_the_archive_are_kept(tmp_path: Path) -> None:
    archive = _archive(
        tmp_path / "ok.tgz",
        _file("./pkg/mod.py", b"x = 1\n"),
        _special("pkg/alias.py", tarfile.SYMTYPE, "mod.py"),
        _special("pkg/up", tarfile.SYMTYPE, "../top.txt"),
        _file("top.txt", b"top\n"),
    )
    snap = ensure_snapshot(archive, DIGEST, tmp_path / "snapshots")
    assert (snap / "pkg" / "alias.py").read_bytes() == b"x = 1\n"
    assert (snap / "pkg" / "up").read_bytes() == b"top\n"


# the reviewer's bypass: each link alone stays inside; 'x' through 'a/up' (the root) leads to /tmp/x
CHAINED = (
    _special("a", tarfile.DIRTYPE),
    _special("a/up", tarfile.SYMTYPE, ".."),
    _special("x", tarfile.SYMTYPE, "a/up/" * 8 + "../" * 16 + "tmp/x"),
)


@pytest.mark.parametrize(
    ("members", "match"),
    [
        (CHAINED, r"symlink 'x' points outside the archive .*other links"),
        (  # through a link that comes later in the archive
            (_special("x", tarfile.SYMTYPE, "a/up/.."), *CHAINED[:2]),
            r"symlink 'x' points outside the archive \('a/up/..'",
        ),
        (
            (_special("a", tarfile.SYMTYPE, "b"), _special("b", tarfile.SYMTYPE, "a")),
            r"symlink 'a' does not resolve: it loops or needs more than 40 links followed",
        ),
    ],
)
def test_chained_links_that_lead_outside_or_loop_are_refused(
    tmp_path: Path, members: tuple[Member, ...], match: str
) -> None:
    _refused(_archive(tmp_path / "links.tgz", *members), tmp_path / "snapshots", Limits(), match)


def test_the_kernel_resolves_every_written_link_as_a_second_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Were the archive rules to miss a chain, realpath on what was written still refuses it."""
    monkeypatch.setattr(ArchiveChecker, "finish", lambda self: None)
    _refused(
        _archive(tmp_path / "links.tgz", *CHAINED),
        tmp_path / "snapshots",
        Limits(),
        "symlink 'x' points outside the archive once unpacked",
    )


def test_relative_links_through_each_other_inside_the_tree_are_kept(tmp_path: Path) -> None:
    archive = _archive(
        tmp_path / "ok.tgz",
        _file("lib/tool.py", b"print(1)\n"),
        _special("bin", tarfile.DIRTYPE),
        _special("bin/tool", tarfile.SYMTYPE, "../lib/tool.py"),
        _special("current", tarfile.SYMTYPE, "releases/v2"),  # before its target exists
        _file("releases/v2/app.py", b"v = 2\n"),
        _special("releases/v2/up", tarfile.SYMTYPE, "../../bin"),
        _special("tool", tarfile.SYMTYPE, "current/up/tool"),
    )
    snap = ensure_snapshot(archive, DIGEST, tmp_path / "snapshots")
    assert (snap / "bin" / "tool").read_bytes() == b"print(1)\n"
    assert (snap / "current" / "app.py").read_bytes() == b"v = 2\n"
    assert (snap / "tool").read_bytes() == b"print(1)\n"


def test_unpacked_files_carry_the_upload_time_not_1970(tmp_path: Path) -> None:
    archive = _archive(tmp_path / "a.tgz", _file("site/index.html", b"<p>1</p>"))
    uploaded = time.time() - 3600
    os.utime(archive, (uploaded, uploaded))
    snap = ensure_snapshot(archive, DIGEST, tmp_path / "snapshots")
    for path in (snap / "site", snap / "site" / "index.html"):
        assert path.stat().st_mtime == pytest.approx(uploaded, abs=1)


@pytest.fixture
def static_server() -> Iterator[Callable[[Path], str]]:
    """A real static file server (Python's http.server: Last-Modified + If-Modified-Since) over a dir."""
    servers: list[ThreadingHTTPServer] = []

    def serve(directory: Path) -> str:
        server = ThreadingHTTPServer(
            ("127.0.0.1", 0), partial(SimpleHTTPRequestHandler, directory=str(directory))
        )
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield serve
    for server in servers:
        server.shutdown()
        server.server_close()


def test_a_redeploy_with_new_content_is_not_answered_304(
    tmp_path: Path, static_server: Callable[[Path], str]
) -> None:
    """A browser holding release 1's Last-Modified asks release 2 (new content, same file sizes and names):
    with every mtime at 1970 the answer was 304 and the browser kept the old page."""
    old = _archive(tmp_path / "v1.tgz", _file("index.html", b"<p>release 1</p>"))
    new = _archive(tmp_path / "v2.tgz", _file("index.html", b"<p>release 2</p>"))
    os.utime(old, (time.time() - 7200, time.time() - 7200))  # uploaded two hours before the new one
    first = ensure_snapshot(old, "sha256:" + "01" * 32, tmp_path / "snapshots")
    second = ensure_snapshot(new, "sha256:" + "02" * 32, tmp_path / "snapshots")

    validator = httpx.get(static_server(first) + "/index.html").headers["Last-Modified"]
    assert email.utils.parsedate_to_datetime(validator).year > 1970
    answer = httpx.get(static_server(second) + "/index.html", headers={"If-Modified-Since": validator})
    assert (answer.status_code, answer.content) == (200, b"<p>release 2</p>")
