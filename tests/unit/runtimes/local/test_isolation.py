"""Isolation: when it applies, the per-app uids (distinct, stable, never a system user's), release copies
only the app's group can read."""

from __future__ import annotations

import io
import json
import os
import stat
import tarfile
from pathlib import Path

import pytest

from yunzhou.runtimes.local import ensure_snapshot
from yunzhou.runtimes.local.isolation import (
    DEFAULT_INSTANCE_ROOT,
    UID_BASE,
    UID_SPAN,
    UID_TABLE,
    Isolation,
    popen_identity,
)


def test_off_when_asked_or_when_not_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    off = Isolation.from_env(tmp_path, {"YUNZHOU_ISOLATE_INSTANCES": "0"})
    assert not off.enabled
    assert "YUNZHOU_ISOLATE_INSTANCES=0" in off.note
    assert off.uid_for("shop/dev/web") is None
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    unprivileged = Isolation.from_env(tmp_path, {})
    assert not unprivileged.enabled
    assert "not running as root" in unprivileged.note
    assert popen_identity(None) == {}


def test_on_by_default_as_root_with_a_root_per_data_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    a = Isolation.from_env(tmp_path / "a", {})
    b = Isolation.from_env(tmp_path / "b", {})
    assert a.enabled
    assert a.root is not None
    assert b.root is not None
    assert a.root.parent == b.root.parent == DEFAULT_INSTANCE_ROOT
    assert a.root != b.root
    custom = Isolation.from_env(tmp_path, {"YUNZHOU_INSTANCE_ROOT": "/srv/yz"}).root
    assert custom is not None
    assert custom.parent == Path("/srv/yz")  # a dir of its own below it: that one is removed at start/stop


def test_an_instance_root_others_cannot_reach_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    closed = tmp_path / "closed"
    closed.mkdir(mode=0o700)
    with pytest.raises(RuntimeError, match=r"\(YUNZHOU_INSTANCE_ROOT\): other users cannot pass through /"):
        Isolation.from_env(tmp_path, {"YUNZHOU_INSTANCE_ROOT": str(closed / "apps")})


def test_uids_are_distinct_per_app_stable_and_persisted(tmp_path: Path) -> None:
    iso = Isolation(True, "", tmp_path, tmp_path / "root")
    uids = {address: iso.uid_for(address) for address in ("shop/dev/web", "shop/prod/web", "bank/dev/web")}
    assert len(set(uids.values())) == 3
    assert all(uid is not None and UID_BASE <= uid < UID_BASE + UID_SPAN for uid in uids.values())
    assert iso.uid_for("shop/dev/web") == uids["shop/dev/web"]
    table = tmp_path / UID_TABLE
    assert stat.S_IMODE(table.stat().st_mode) == 0o600
    again = Isolation(True, "", tmp_path, tmp_path / "root")
    assert again.uid_for("bank/dev/web") == uids["bank/dev/web"]  # after a restart: the same uid


def test_a_collision_takes_the_next_free_uid(tmp_path: Path) -> None:
    first = Isolation(True, "", tmp_path, None).uid_for("shop/dev/web")
    assert first is not None
    # another app already holds the uid this address hashes to (as a collision would leave it)
    (tmp_path / UID_TABLE).write_text(json.dumps({"bank/dev/other": first}))
    assert Isolation(True, "", tmp_path, None).uid_for("shop/dev/web") == first + 1


def test_a_release_for_a_group_is_readable_by_that_group_only(tmp_path: Path) -> None:
    archive = tmp_path / "a.tgz"
    with tarfile.open(archive, "w:gz") as tar:
        for name, mode in (("app.py", 0o644), ("run.sh", 0o755), ("secret.txt", 0o600)):
            info = tarfile.TarInfo(name)
            info.size, info.mode = 1, mode
            tar.addfile(info, io.BytesIO(b"x"))
    snap = ensure_snapshot(archive, "sha256:" + "cd" * 32, tmp_path / "releases", group=2_000_000_123)
    modes = {
        p.name: (p.stat().st_uid, p.stat().st_gid, stat.S_IMODE(p.stat().st_mode)) for p in snap.iterdir()
    }
    assert modes == {
        "app.py": (0, 2_000_000_123, 0o440),
        "run.sh": (0, 2_000_000_123, 0o550),
        "secret.txt": (0, 2_000_000_123, 0o440),
    }
    assert (snap.stat().st_gid, stat.S_IMODE(snap.stat().st_mode)) == (2_000_000_123, 0o750)
