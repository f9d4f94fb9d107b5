"""The pure pieces behind deploy and settings: YAML loading and key=value overrides."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from yunzhou.cli.documents import (
    apply_overrides,
    load_yaml_file,
    nested,
    parse_assignment,
    parse_value,
    select_environment,
)
from yunzhou.domain.errors import UserError


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        ("3", 3),
        ("2.5", 2.5),
        ("true", True),
        ("off", "off"),  # YAML 1.2: only true/false are booleans
        ("no", "no"),
        ("0600", 600),
        ("0x1f", 31),
        ("null", None),
        ("", ""),
        ("canary", "canary"),
        ("25%", "25%"),
        ("'3'", "3"),
        ("2024-05-01", "2024-05-01"),
        ("[a, b]", ["a", "b"]),
        ("{min: 1}", {"min": 1}),
        ("a: b", "a: b"),
        ("@odd", "@odd"),
    ],
)
def test_parse_value(raw: str, value: Any) -> None:
    assert parse_value(raw) == value


def test_parse_assignment_splits_dotted_keys_and_keeps_equals_in_values() -> None:
    assert parse_assignment("rollout.maxSurge=2") == (["rollout", "maxSurge"], 2)
    assert parse_assignment("env.QUERY=a=b") == (["env", "QUERY"], "a=b")


@pytest.mark.parametrize("bad", ["replicas", "=1", "a..b=1", ".a=1"])
def test_parse_assignment_refuses_malformed(bad: str) -> None:
    with pytest.raises(UserError):
        parse_assignment(bad)


def test_nested_builds_a_partial_document() -> None:
    assignments = [
        parse_assignment(a) for a in ("replicas=3", "rollout.maxSurge=2", "rollout.strategy=canary")
    ]
    assert nested(assignments) == {"replicas": 3, "rollout": {"maxSurge": 2, "strategy": "canary"}}


def test_apply_overrides_does_not_touch_its_input() -> None:
    settings = {"rollout": {"maxSurge": 1}}
    result = apply_overrides(settings, [parse_assignment("rollout.maxSurge=2")], "dev")
    assert settings == {"rollout": {"maxSurge": 1}}
    assert result == {"rollout": {"maxSurge": 2}}


def test_apply_overrides_refuses_to_descend_into_a_scalar() -> None:
    with pytest.raises(UserError, match="replicas is 1, not a mapping"):
        apply_overrides({"replicas": 1}, [parse_assignment("replicas.max=2")], "dev")
    with pytest.raises(UserError, match="not an index"):
        apply_overrides({"routes": []}, [parse_assignment("routes.3.port=1")], "dev")


def test_select_environment_copies_the_named_block() -> None:
    settings = {"environments": {"production": {"replicas": 5}}}
    assert select_environment(settings, "prod", "production")["environments"]["prod"] == {"replicas": 5}
    with pytest.raises(UserError, match=r"no environments\.staging"):
        select_environment(settings, "prod", "staging")


def test_load_yaml_file(tmp_path: Path) -> None:
    path = tmp_path / "doc.yaml"
    path.write_text("")
    assert load_yaml_file(path, "settings file", required=False) == {}
    with pytest.raises(UserError, match="is empty"):
        load_yaml_file(path, "Score file")
    path.write_text("a: !!binary aGk=\nb: .nan\n")
    with pytest.raises(UserError) as caught:
        load_yaml_file(path, "Score file")
    assert [p.path for p in caught.value.problems] == ["a", "b"]
    path.write_text("a: 1\na: [\n")
    with pytest.raises(UserError) as caught:
        load_yaml_file(path, "Score file")
    assert caught.value.problems[0].path.startswith(f"{path}:")
    with pytest.raises(UserError, match="cannot read"):
        load_yaml_file(tmp_path / "missing.yaml", "Score file")


def test_documents_are_read_as_yaml_1_2_like_the_score_parser(tmp_path: Path) -> None:
    path = tmp_path / "score.yaml"
    path.write_text("variables: {DEBUG: yes, MODE: on, SINCE: 2024-05-01, FLAG: true}\nmode: 0600\n")
    assert load_yaml_file(path, "Score file") == {
        "variables": {"DEBUG": "yes", "MODE": "on", "SINCE": "2024-05-01", "FLAG": True},
        "mode": 600,
    }


def test_duplicate_keys_are_errors_with_a_position(tmp_path: Path) -> None:
    path = tmp_path / "score.yaml"
    path.write_text("metadata:\n  name: a\n  name: b\n")
    with pytest.raises(UserError) as caught:
        load_yaml_file(path, "Score file")
    assert caught.value.problems[0].path == f"{path}:3:3"
    assert "duplicate key 'name'" in caught.value.problems[0].message
