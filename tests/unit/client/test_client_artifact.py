from __future__ import annotations

import io
import os
import shutil
import tarfile
from pathlib import Path

import pytest

from yunzhou.client import artifact_digest, build_artifact
from yunzhou.domain.errors import UserError


def _make_tree(root: Path) -> Path:
    (root / "src" / "pkg").mkdir(parents=True)
    (root / "src" / "pkg" / "app.py").write_text("print('hi')\n")
    (root / "README.md").write_text("# app\n")
    run = root / "run.sh"
    run.write_text("#!/bin/sh\nexec python src/pkg/app.py\n")
    run.chmod(0o755)
    for skipped in (".git", "__pycache__", ".venv", "node_modules", ".yunzhou", "src/pkg/__pycache__"):
        (root / skipped).mkdir(parents=True, exist_ok=True)
        (root / skipped / "junk").write_text("not source")
    (root / "link").symlink_to("README.md")
    return root


def _members(data: bytes) -> list[tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        return tar.getmembers()


def test_same_directory_gives_the_same_digest(tmp_path: Path) -> None:
    tree = _make_tree(tmp_path / "a")
    assert artifact_digest(build_artifact(tree)) == artifact_digest(build_artifact(tree))


def test_digest_ignores_times_owners_and_where_the_tree_lives(tmp_path: Path) -> None:
    first = _make_tree(tmp_path / "a")
    second = tmp_path / "b"
    shutil.copytree(first, second, symlinks=True)
    os.utime(second / "README.md", (1_000_000, 1_000_000))
    (second / "src" / "pkg" / "app.py").chmod(0o600)  # only the executable bit is kept
    assert build_artifact(first) == build_artifact(second)


def test_content_change_changes_the_digest(tmp_path: Path) -> None:
    tree = _make_tree(tmp_path / "a")
    before = artifact_digest(build_artifact(tree))
    (tree / "README.md").write_text("# changed\n")
    assert artifact_digest(build_artifact(tree)) != before


def test_entries_are_sorted_normalised_and_skip_non_source(tmp_path: Path) -> None:
    members = _members(build_artifact(_make_tree(tmp_path / "a")))
    names = [m.name for m in members]
    assert names == ["README.md", "link", "run.sh", "src", "src/pkg", "src/pkg/app.py"]
    assert all(m.mtime == 0 and m.uid == 0 and m.gid == 0 and not m.uname and not m.gname for m in members)
    modes = {m.name: m.mode for m in members}
    assert modes["run.sh"] == 0o755
    assert modes["README.md"] == 0o644
    link = next(m for m in members if m.name == "link")
    assert link.issym()
    assert link.linkname == "README.md"


def test_gzip_header_carries_no_time_or_name(tmp_path: Path) -> None:
    data = build_artifact(_make_tree(tmp_path / "a"))
    assert data[:2] == b"\x1f\x8b"
    assert data[4:8] == b"\x00\x00\x00\x00"  # MTIME
    assert data[3] & 0x08 == 0  # no FNAME


def test_source_must_be_a_directory(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="is not a directory"):
        build_artifact(tmp_path / "missing")
