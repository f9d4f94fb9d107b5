"""keep_private: the data dir is 0700 and nothing in it keeps group/other permissions."""

from __future__ import annotations

import stat
from pathlib import Path

from yunzhou.store import keep_private


def test_the_data_dir_and_everything_in_it_lose_group_and_other_permissions(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "logs").mkdir(parents=True)
    data.chmod(0o755)
    (data / "logs").chmod(0o755)
    (data / "state.db").write_text("db")
    (data / "state.db").chmod(0o644)
    (data / "logs" / "seg.db").write_text("log")
    (data / "logs" / "seg.db").chmod(0o666)
    (data / "admin-token").write_text("t")
    (data / "admin-token").chmod(0o600)
    (data / "link").symlink_to("state.db")

    assert keep_private(data) == 3
    modes = {p.relative_to(tmp_path).as_posix(): stat.S_IMODE(p.lstat().st_mode) for p in data.rglob("*")}
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    assert modes["data/logs"] == 0o700
    assert modes["data/state.db"] == 0o600
    assert modes["data/logs/seg.db"] == 0o600
    assert modes["data/admin-token"] == 0o600
    assert keep_private(data) == 0  # nothing left to change


def test_image_content_keeps_the_images_own_modes(tmp_path: Path) -> None:
    """Found by a restart: the build steps' unpacked layers became 0700 and the next build's non-root step
    could not find python3 in /usr/bin."""
    data = tmp_path / "data"
    layer_bin = data / "builds" / "layers" / "layers" / "abc" / "usr" / "bin"
    layer_bin.mkdir(parents=True)
    (layer_bin / "python3").write_text("#!")
    (layer_bin / "python3").chmod(0o755)
    for d in (layer_bin, *layer_bin.parents):
        if d == data:
            break
        d.chmod(0o755)
    (data / "builds" / "b1.log").write_text("log")
    (data / "builds" / "b1.log").chmod(0o644)

    assert keep_private(data) == 2  # the builds folder itself and the log; nothing under the layers
    assert stat.S_IMODE((layer_bin / "python3").stat().st_mode) == 0o755
    assert stat.S_IMODE(layer_bin.stat().st_mode) == 0o755
    assert stat.S_IMODE((data / "builds" / "b1.log").stat().st_mode) == 0o600
