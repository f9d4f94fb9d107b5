"""``yunzhou deploy --strategy``: what is sent."""

from __future__ import annotations

from pathlib import Path

from tests.unit.cli.conftest import Run
from tests.unit.client.fake_api import FakeApi


def test_strategy_canary_adds_default_steps(shop: Run, fake: FakeApi, score_file: Path) -> None:
    result = shop("deploy", "shop/dev", "-f", str(score_file), "--strategy", "canary")
    assert result.exit_code == 0, result.output
    body = fake.bodies("POST", "/deployments")[-1]
    assert isinstance(body, dict)
    rollout = body["settings"]["rollout"]
    assert rollout["strategy"] == "canary"
    assert [step["weight"] for step in rollout["steps"]] == [10, 50]


def test_strategy_keeps_steps_from_the_settings(shop: Run, fake: FakeApi, score_file: Path) -> None:
    (score_file.parent / "yunzhou.yaml").write_text("rollout: {steps: [{weight: 30, pause: 5s}]}\n")
    result = shop("deploy", "shop/dev", "-f", str(score_file), "--strategy", "canary")
    assert result.exit_code == 0, result.output
    body = fake.bodies("POST", "/deployments")[-1]
    assert isinstance(body, dict)
    assert body["settings"]["rollout"] == {"strategy": "canary", "steps": [{"weight": 30, "pause": "5s"}]}


def test_unknown_strategy_is_refused(shop: Run, score_file: Path) -> None:
    result = shop("deploy", "shop/dev", "-f", str(score_file), "--strategy", "big-bang")
    assert result.exit_code != 0
    assert "--strategy" in result.output
