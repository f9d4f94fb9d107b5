"""deploy, settings, scale, rollback, release show: what is sent, what is printed, how --wait ends."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from tests.unit.cli.conftest import Run
from tests.unit.client.fake_api import FakeApi
from yunzhou.client import artifact_digest, build_artifact

SETTINGS = """\
replicas: 1
rollout: {strategy: rolling, maxSurge: 1, maxUnavailable: 0}
routes:
  - {host: orders.example.test, path: /, port: 8080}
environments:
  prod: {replicas: 4, rollout: {maxUnavailable: 1}}
  production-eu: {replicas: 6}
"""


def _sent(fake: FakeApi) -> dict[str, Any]:
    body = fake.bodies("POST", "/deployments")[-1]
    assert isinstance(body, dict)
    return body


def test_deploy_sends_the_parsed_score_and_prints_the_release(
    shop: Run, fake: FakeApi, score_file: Path
) -> None:
    result = shop("deploy", "shop/dev", "-f", str(score_file))
    assert result.exit_code == 0, result.output
    assert result.stdout == "Deployed shop/dev/orders as release 1\n"
    body = _sent(fake)
    assert body == {"score": yaml.safe_load(score_file.read_text()), "settings": None, "artifact": None}


def test_settings_default_to_yunzhou_yaml_beside_the_score(
    shop: Run, fake: FakeApi, score_file: Path
) -> None:
    (score_file.parent / "yunzhou.yaml").write_text(SETTINGS)
    assert shop("deploy", "shop/dev", "-f", str(score_file)).exit_code == 0
    assert _sent(fake)["settings"] == yaml.safe_load(SETTINGS)


def test_explicit_settings_file(shop: Run, fake: FakeApi, score_file: Path, tmp_path: Path) -> None:
    settings = tmp_path / "platform.yaml"
    settings.write_text("replicas: 2\n")
    (score_file.parent / "yunzhou.yaml").write_text(SETTINGS)  # ignored: --settings wins
    assert shop("deploy", "shop/dev", "-f", str(score_file), "--settings", str(settings)).exit_code == 0
    assert _sent(fake)["settings"] == {"replicas": 2}


def test_set_overrides_are_merged_as_dotted_keys(shop: Run, fake: FakeApi, score_file: Path) -> None:
    (score_file.parent / "yunzhou.yaml").write_text(SETTINGS)
    args = ["--set", "replicas=3", "--set", "rollout.maxSurge=2", "--set", "rollout.paused=false"]
    args += ["--set", "routes.0.port=9090", "--set", "owner=team-a", "--set", "scaling.min=1"]
    assert shop("deploy", "shop/dev", "-f", str(score_file), *args).exit_code == 0
    settings = _sent(fake)["settings"]
    assert settings["replicas"] == 3
    assert settings["rollout"] == {"strategy": "rolling", "maxSurge": 2, "maxUnavailable": 0, "paused": False}
    assert settings["routes"] == [{"host": "orders.example.test", "path": "/", "port": 9090}]
    assert settings["owner"] == "team-a"
    assert settings["scaling"] == {"min": 1}
    assert settings["environments"]["prod"] == {"replicas": 4, "rollout": {"maxUnavailable": 1}}


def test_set_wins_over_the_environment_block(shop: Run, fake: FakeApi, score_file: Path) -> None:
    (score_file.parent / "yunzhou.yaml").write_text(SETTINGS)
    assert shop("deploy", "shop/prod", "-f", str(score_file), "--set", "replicas=3").exit_code == 0
    settings = _sent(fake)["settings"]
    assert settings["replicas"] == 3
    assert settings["environments"]["prod"]["replicas"] == 3
    assert fake.apps[("shop", "prod", "orders")]["replicas"] == 3


def test_set_without_a_settings_file(shop: Run, fake: FakeApi, score_file: Path) -> None:
    assert shop("deploy", "shop/dev", "-f", str(score_file), "--set", "replicas=2").exit_code == 0
    assert _sent(fake)["settings"] == {"replicas": 2}


def test_env_name_picks_the_environment_block(shop: Run, fake: FakeApi, score_file: Path) -> None:
    (score_file.parent / "yunzhou.yaml").write_text(SETTINGS)
    result = shop("deploy", "shop/prod", "-f", str(score_file), "--env-name", "production-eu")
    assert result.exit_code == 0, result.output
    assert _sent(fake)["settings"]["environments"]["prod"] == {"replicas": 6}
    assert fake.apps[("shop", "prod", "orders")]["replicas"] == 6


def test_env_name_must_exist_in_the_settings(shop: Run, score_file: Path) -> None:
    (score_file.parent / "yunzhou.yaml").write_text(SETTINGS)
    result = shop("deploy", "shop/prod", "-f", str(score_file), "--env-name", "staging")
    assert result.exit_code == 1
    assert "no environments.staging block (it has: prod, production-eu)" in result.stderr


def _source(tmp_path: Path, name: str, text: str) -> Path:
    source = tmp_path / "src"
    source.mkdir()
    (source / name).write_text(text)
    return source


def test_source_is_uploaded_built_and_its_image_released(
    shop: Run, fake: FakeApi, score_file: Path, tmp_path: Path
) -> None:
    source = _source(tmp_path, "main.py", "print('orders')\n")
    result = shop("deploy", "shop/dev", "-f", str(score_file), "--source", str(source), "--stack", "python")
    assert result.exit_code == 0, result.output
    digest = artifact_digest(build_artifact(source))
    [started] = fake.bodies("POST", "/builds")
    assert started["artifact"] == digest
    assert started["stack"] == "python"
    assert started["score"] == yaml.safe_load(score_file.read_text())
    assert fake.bodies("POST", "/deployments") == []  # the build deploys, not the CLI
    assert f"Uploaded {source} as {digest}" in result.stderr
    assert "Building shop/dev/orders (build b000000000001, stack python)" in result.stderr
    assert "Successfully installed flask-3.0.0" in result.stderr  # the build's log, followed
    assert "Built shop/orders@sha256:abab" in result.stderr
    assert result.stdout == "Deployed shop/dev/orders as release 1\n"


def test_source_whose_build_fails_exits_1_with_the_tools_error_and_deploys_nothing(
    shop: Run, fake: FakeApi, score_file: Path, tmp_path: Path
) -> None:
    fake.build_outcome = "failed"
    source = _source(tmp_path, "requirements.txt", "nosuchpkg\n")
    result = shop("deploy", "shop/dev", "-f", str(score_file), "--source", str(source), "--wait")
    assert result.exit_code == 1
    assert "ERROR: No matching distribution found for nosuchpkg" in result.stderr
    assert "Error: build b000000000001 failed: pip install failed (exit 1)" in result.stderr
    assert "the running release is unchanged" in result.stderr
    assert result.stdout == ""
    assert fake.releases == {}


def test_no_build_releases_the_uploaded_directory_as_before(
    shop: Run, fake: FakeApi, score_file: Path, tmp_path: Path
) -> None:
    source = _source(tmp_path, "main.py", "print('orders')\n")
    result = shop("deploy", "shop/dev", "-f", str(score_file), "--source", str(source), "--no-build")
    assert result.exit_code == 0, result.output
    assert _sent(fake)["artifact"] == artifact_digest(build_artifact(source))
    assert fake.bodies("POST", "/builds") == []
    assert result.stdout == "Deployed shop/dev/orders as release 1\n"


def test_stack_without_source_is_refused(shop: Run, score_file: Path) -> None:
    result = shop("deploy", "shop/dev", "-f", str(score_file), "--stack", "python")
    assert result.exit_code == 1
    assert "--stack goes with --source DIR" in result.stderr


def test_wait_follows_the_rollout_to_success(shop: Run, fake: FakeApi, score_file: Path) -> None:
    result = shop("deploy", "shop/dev", "-f", str(score_file), "--wait")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "Deployed shop/dev/orders as release 1",
        "Rollout ro-1 of shop/dev/orders succeeded",
    ]
    assert "progressing: 1 of 2 instances ready" in result.stderr


def test_wait_exits_1_when_the_rollout_fails(shop: Run, fake: FakeApi, score_file: Path) -> None:
    fake.rollout_outcome = "failed"
    result = shop("deploy", "shop/dev", "-f", str(score_file), "--wait")
    assert result.exit_code == 1
    assert "Error: rollout ro-1 of shop/dev/orders failed: readiness probe failed" in result.stderr
    assert "yunzhou rollback shop/dev/orders" in result.stderr


def test_wait_exits_1_at_the_timeout(shop: Run, fake: FakeApi, score_file: Path) -> None:
    fake.rollout_outcome = "progressing"
    result = shop("deploy", "shop/dev", "-f", str(score_file), "--wait", "--timeout", "10")
    assert result.exit_code == 1
    assert "rollout ro-1 of shop/dev/orders is still progressing after 10s" in result.stderr
    assert "`yunzhou rollouts shop/dev/orders`" in result.stderr
    assert sum(fake.slept) == 10


def test_settings_set_patches_a_nested_partial_document(shop: Run, fake: FakeApi, score_file: Path) -> None:
    assert shop("deploy", "shop/dev", "-f", str(score_file)).exit_code == 0
    result = shop(
        "settings", "set", "shop/dev/orders", "replicas=3", "rollout.maxSurge=25%", "rollout.paused=no"
    )
    assert result.exit_code == 0, result.output
    assert result.stdout == "Updated settings of shop/dev/orders as release 2\n"
    body = fake.bodies("PATCH", "/settings")[-1]
    assert body == {"settings": {"replicas": 3, "rollout": {"maxSurge": "25%", "paused": "no"}}}
    shown = shop("settings", "show", "shop/dev/orders")
    assert shown.stdout.startswith("# settings of shop/dev/orders, version")
    assert yaml.safe_load(shown.stdout) == {"replicas": 3, "rollout": {"maxSurge": "25%", "paused": "no"}}


def test_settings_set_with_version_and_wait(shop: Run, fake: FakeApi, score_file: Path) -> None:
    assert shop("deploy", "shop/dev", "-f", str(score_file)).exit_code == 0
    result = shop("settings", "set", "shop/dev/orders", "replicas=2", "--version", "1", "--wait")
    assert result.exit_code == 0, result.output
    assert fake.bodies("PATCH", "/settings")[-1] == {"settings": {"replicas": 2}, "version": 1}
    assert "succeeded" in result.stdout


def test_release_show_prints_score_and_settings_as_yaml(shop: Run, score_file: Path) -> None:
    (score_file.parent / "yunzhou.yaml").write_text(SETTINGS)
    assert shop("deploy", "shop/dev", "-f", str(score_file)).exit_code == 0
    result = shop("release", "show", "shop/dev/orders", "1")
    assert result.exit_code == 0
    assert result.stdout.startswith("# release 1 of shop/dev/orders\n")
    document = yaml.safe_load(result.stdout)
    assert document == {"score": yaml.safe_load(score_file.read_text()), "settings": yaml.safe_load(SETTINGS)}


def test_scale_and_rollback(shop: Run, fake: FakeApi, score_file: Path) -> None:
    assert shop("deploy", "shop/dev", "-f", str(score_file)).exit_code == 0
    assert shop("deploy", "shop/dev", "-f", str(score_file), "--set", "replicas=2").exit_code == 0
    scaled = shop("scale", "shop/dev/orders", "5", "--wait")
    assert scaled.exit_code == 0, scaled.output
    assert scaled.stdout.splitlines()[0] == "Scaled shop/dev/orders to 5 replicas"
    assert fake.bodies("PUT", "/replicas")[-1] == {"replicas": 5}
    rolled = shop("rollback", "shop/dev/orders", "--to", "1")
    assert rolled.exit_code == 0
    assert rolled.stdout == "Rolled back shop/dev/orders as release 3\n"
    assert fake.bodies("POST", "/rollback")[-1] == {"to": 1}
    assert shop("rollback", "shop/dev/orders").exit_code == 0
    assert fake.bodies("POST", "/rollback")[-1] == {"to": None}


def test_remove_records_the_intent(shop: Run, fake: FakeApi, score_file: Path) -> None:
    assert shop("deploy", "shop/dev", "-f", str(score_file)).exit_code == 0
    result = shop("remove", "shop/dev/orders")
    assert result.exit_code == 0
    assert result.stdout.startswith("Removing shop/dev/orders")
    assert fake.apps[("shop", "dev", "orders")]["status"] == "removing"


def test_dates_in_yaml_stay_strings(shop: Run, fake: FakeApi, score_file: Path) -> None:
    score_file.write_text(score_file.read_text() + "  annotations:\n    released: 2024-05-01\n")
    score_file.write_text(score_file.read_text().replace("  annotations", "metadata_extra:\n  annotations"))
    assert shop("deploy", "shop/dev", "-f", str(score_file)).exit_code == 0
    assert _sent(fake)["score"]["metadata_extra"]["annotations"]["released"] == "2024-05-01"


def test_wait_without_timeout_waits_for_the_outcome_past_the_old_300s(
    shop: Run, fake: FakeApi, score_file: Path
) -> None:
    fake.rollout_outcome = "progressing"  # it never ends: the wait gives up once it stops changing
    result = shop("deploy", "shop/dev", "-f", str(score_file), "--wait")
    assert result.exit_code == 1
    # the default progress deadline (600 s) plus a minute without any change, not a fixed 300 s
    assert "is still progressing and unchanged for 660s (its progress deadline plus 60s)" in result.stderr
    assert 660 <= sum(fake.slept) <= 662


def test_wait_follows_the_apps_own_progress_deadline(shop: Run, fake: FakeApi, score_file: Path) -> None:
    fake.rollout_outcome = "progressing"
    args = ("deploy", "shop/dev", "-f", str(score_file), "--set", "rollout.progressDeadlineSeconds=30")
    result = shop(*args, "--wait")
    assert result.exit_code == 1
    assert "unchanged for 90s (its progress deadline plus 60s)" in result.stderr
    fake.rollout_outcome = "failed"  # an outcome within the deadline is reported as it is
    result = shop(*args, "--wait")
    assert "Error: rollout ro-2 of shop/dev/orders failed: readiness probe failed" in result.stderr
