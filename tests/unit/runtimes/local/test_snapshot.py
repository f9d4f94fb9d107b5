"""ensure_snapshot: content-addressed, atomic, idempotent, read-only."""

from __future__ import annotations

import io
import os
import tarfile
import threading
from pathlib import Path

import pytest

from yunzhou.domain.errors import PermanentError
from yunzhou.runtimes.local import ensure_snapshot

DIGEST = "sha256:" + "ab" * 32


def _archive(path: Path, files: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    return path


def test_unpacks_into_the_digest_dir_read_only(tmp_path: Path) -> None:
    archive = _archive(tmp_path / "a.tgz", {"app.py": b"print(1)\n", "pkg/mod.py": b"x = 1\n"})
    root = tmp_path / "snapshots"
    snap = ensure_snapshot(archive, DIGEST, root)
    assert snap == root / ("ab" * 32)
    assert (snap / "app.py").read_bytes() == b"print(1)\n"
    assert (snap / "pkg" / "mod.py").read_bytes() == b"x = 1\n"
    assert not os.stat(snap / "app.py").st_mode & 0o222
    assert [p.name for p in root.iterdir()] == [snap.name]  # no temporary dirs left


def test_is_idempotent_and_never_rewrites(tmp_path: Path) -> None:
    root = tmp_path / "snapshots"
    first = ensure_snapshot(_archive(tmp_path / "a.tgz", {"v": b"1"}), DIGEST, root)
    # same digest, different bytes: the existing snapshot wins (digests are validated upstream)
    second = ensure_snapshot(_archive(tmp_path / "b.tgz", {"v": b"2"}), DIGEST, root)
    assert first == second
    assert (first / "v").read_bytes() == b"1"


def test_concurrent_callers_get_one_complete_snapshot(tmp_path: Path) -> None:
    archive = _archive(tmp_path / "a.tgz", {f"f{n}": bytes(1000) for n in range(50)})
    root = tmp_path / "snapshots"
    results: list[Path] = []
    threads = [
        threading.Thread(target=lambda: results.append(ensure_snapshot(archive, DIGEST, root)))
        for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(results)) == 1
    assert len(list(results[0].iterdir())) == 50
    assert [p.name for p in root.iterdir()] == [results[0].name]


def test_a_broken_archive_leaves_nothing_behind(tmp_path: Path) -> None:
    bad = tmp_path / "bad.tgz"
    bad.write_bytes(b"not a tarball")
    root = tmp_path / "snapshots"
    with pytest.raises(PermanentError, match="not a gzip-compressed tar archive"):
        ensure_snapshot(bad, DIGEST, root)
    assert list(root.iterdir()) == []


@pytest.mark.parametrize("digest", ["sha256:../../etc", "", "sha256:XYZ"])
def test_rejects_digests_that_are_not_hex(tmp_path: Path, digest: str) -> None:
    with pytest.raises(ValueError, match="hex digest"):
        ensure_snapshot(tmp_path / "unused.tgz", digest, tmp_path)
