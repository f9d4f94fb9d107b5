"""`yunzhou builds`, `yunzhou build show|logs|cancel` and Ctrl-C while deploy --source follows a build."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.unit.cli.conftest import Run
from tests.unit.client.fake_api import FakeApi
from tests.unit.client.fake_builds import BUILD_LOG
from yunzhou.client import YunzhouClient


def _deploy(shop: Run, score_file: Path, tmp_path: Path) -> Any:
    source = tmp_path / "src"
    source.mkdir(exist_ok=True)
    (source / "app.py").write_text("print(1)\n")
    return shop("deploy", "shop/dev", "-f", str(score_file), "--source", str(source))


def test_builds_lists_an_apps_builds_newest_first_and_as_json(
    shop: Run, fake: FakeApi, score_file: Path, tmp_path: Path
) -> None:
    assert _deploy(shop, score_file, tmp_path).exit_code == 0
    fake.build_outcome = "failed"
    assert _deploy(shop, score_file, tmp_path).exit_code == 1
    table = shop("builds", "shop/dev/orders")
    assert table.exit_code == 0, table.output
    rows = [line.split()[:3] for line in table.stdout.splitlines()[2:]]
    assert rows == [["b000000000002", "failed", "python"], ["b000000000001", "succeeded", "python"]]
    assert "shop/orders@sha256:abab" in table.stdout
    as_json = json.loads(shop("builds", "shop/dev/orders", "-o", "json").stdout)
    assert [b["id"] for b in as_json] == ["b000000000002", "b000000000001"]


def test_build_logs_prints_the_whole_log_and_follows_it(shop: Run, score_file: Path, tmp_path: Path) -> None:
    assert _deploy(shop, score_file, tmp_path).exit_code == 0
    assert shop("build", "logs", "b000000000001").stdout == BUILD_LOG
    followed = shop("build", "logs", "b000000000001", "-f")
    assert (followed.exit_code, followed.stdout) == (0, BUILD_LOG)


def test_build_logs_follow_of_a_failed_build_exits_1(
    shop: Run, fake: FakeApi, score_file: Path, tmp_path: Path
) -> None:
    fake.build_outcome = "failed"
    _deploy(shop, score_file, tmp_path)
    followed = shop("build", "logs", "b000000000001", "-f")
    assert followed.exit_code == 1
    assert followed.stdout.endswith("ERROR: No matching distribution found for nosuchpkg\n")


def test_build_show_and_cancel(shop: Run, fake: FakeApi, score_file: Path, tmp_path: Path) -> None:
    fake.build_outcome = "running"
    fake.builds["b000000000009"] = {
        "id": "b000000000009", "project": "shop", "env": "dev", "app": "orders", "state": "running",
        "address": "shop/dev/orders", "progress": {"step": "dependencies", "fraction": 0.4}, "error": "",
    }  # fmt: skip
    shown = shop("build", "show", "b000000000009")
    assert shown.exit_code == 0, shown.output
    assert "dependencies (40%)" in shown.stdout
    result = shop("build", "cancel", "b000000000009")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("Cancelling build b000000000009")
    assert fake.builds["b000000000009"]["cancel_requested"] is True
    missing = shop("build", "show", "b00000000000f")
    assert missing.exit_code == 1
    assert "build 'b00000000000f' not found" in missing.stderr


def test_ctrl_c_while_following_leaves_the_build_running_and_says_how_to_cancel(
    shop: Run, score_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupted(self: YunzhouClient, build_id: str, offset: int = 0) -> Any:
        yield {"offset": 0, "text": "Collecting flask\n"}
        raise KeyboardInterrupt

    monkeypatch.setattr(YunzhouClient, "follow_build_log", interrupted)
    result = _deploy(shop, score_file, tmp_path)
    assert result.exit_code == 130
    assert "Stopped following; build b000000000001 goes on on the server" in result.stderr
    assert "`yunzhou build cancel b000000000001` stops it" in result.stderr
