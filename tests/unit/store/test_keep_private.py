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
