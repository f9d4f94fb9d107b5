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


def test_traffic_check_validates_a_settings_file_offline(shop: Run, tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text("traffic: {rateLimit: {rps: 5}}\n")
    result = shop("traffic", "check", str(good))
    assert result.exit_code == 0, result.output
    assert "burst: 5" in result.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text("traffic: {routes: [{name: x, to: [{release: stable, weight: 50}]}]}\n")
    result = shop("traffic", "check", str(bad))
    assert result.exit_code != 0
    assert "settings.traffic.routes.0.to: weights must sum to 100" in result.output


def test_strategy_blue_green(shop: Run, fake: FakeApi, score_file: Path) -> None:
    # A settings file written for a canary still deploys blue-green: the steps are dropped, the preview
    # host kept.
    (score_file.parent / "yunzhou.yaml").write_text(
        "rollout: {strategy: canary, previewHost: preview.orders.example.test,"
        " steps: [{weight: 30, pause: 5s}]}\n"
    )
    result = shop("deploy", "shop/dev", "-f", str(score_file), "--strategy", "blue-green")
    assert result.exit_code == 0, result.output
    body = fake.bodies("POST", "/deployments")[-1]
    assert isinstance(body, dict)
    assert body["settings"]["rollout"] == {
        "strategy": "blue-green",
        "previewHost": "preview.orders.example.test",
    }
    result = shop("deploy", "shop/dev", "-f", str(score_file), "--strategy", "rolling")
    assert result.exit_code == 0, result.output
    body = fake.bodies("POST", "/deployments")[-1]
    assert isinstance(body, dict)
    assert body["settings"]["rollout"] == {"strategy": "rolling"}


def test_allow_no_traffic_sets_it_in_the_rollout(shop: Run, fake: FakeApi, score_file: Path) -> None:
    args = ("deploy", "shop/dev", "-f", str(score_file), "--strategy", "canary", "--allow-no-traffic")
    assert shop(*args).exit_code == 0
    rollout = fake.bodies("POST", "/deployments")[-1]["settings"]["rollout"]
    assert (rollout["strategy"], rollout["allowNoTraffic"]) == ("canary", True)
