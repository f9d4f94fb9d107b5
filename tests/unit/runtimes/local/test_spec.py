"""Spec validation and cgroup mount parsing helpers."""

from __future__ import annotations

from pathlib import Path

import pytest

from yunzhou.runtimes.local import Probe, ProcessSpec
from yunzhou.runtimes.local.cgroups import _group_dir, _Mount


def test_probe_rejects_unknown_kinds_and_bad_numbers() -> None:
    with pytest.raises(ValueError, match="kind"):
        Probe("grpc")
    with pytest.raises(ValueError, match="argv"):
        Probe("exec")
    with pytest.raises(ValueError, match="failure_threshold"):
        Probe("tcp", failure_threshold=0)


def test_spec_equality_drives_idempotent_ensure() -> None:
    def spec(**env: str) -> ProcessSpec:
        return ProcessSpec("i", "p/e/a", 1, ("app",), Path("/"), env, 8000)

    assert spec(A="1") == spec(A="1")
    assert spec(A="1") != spec(A="2")
    assert not spec().limited
    with pytest.raises(ValueError, match="port"):
        ProcessSpec("i", "p/e/a", 1, ("app",), Path("/"), {}, 0)


def test_group_dir_strips_the_mount_root() -> None:
    mount = _Mount(Path("/sys/fs/cgroup/memory"), "/outer", "cgroup", frozenset({"memory"}))
    assert _group_dir(mount, "/outer/inner") == Path("/sys/fs/cgroup/memory/inner")
    root = _Mount(Path("/sys/fs/cgroup"), "/", "cgroup2", frozenset())
    assert _group_dir(root, "/a/b") == Path("/sys/fs/cgroup/a/b")
