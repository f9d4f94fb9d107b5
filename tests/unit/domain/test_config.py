"""Pure config rules: key names, what a workload references, the effective config and its changes."""

from __future__ import annotations

from typing import Any

import pytest

from yunzhou.domain.config import (
    Available,
    changed_names,
    check_vars,
    config_cause,
    config_changes,
    config_references,
    effective_config,
)
from yunzhou.domain.errors import UserError
from yunzhou.domain.score import parse_score


def workload(**variables: str) -> Any:
    return parse_score(
        {
            "apiVersion": "score.dev/v1b1",
            "metadata": {"name": "orders"},
            "containers": {
                "web": {"image": "x", "variables": variables, "args": ["--db=${resources.db.host}"]}
            },
            "resources": {
                "env": {"type": "environment"},
                "creds": {"type": "secret"},
                "db": {"type": "postgres"},
            },
        }
    )


def test_references_name_the_first_field_and_ignore_other_resource_types() -> None:
    refs = config_references(
        workload(A="${resources.env.DEBUG}-${resources.creds.KEY}", B="${resources.env.DEBUG}")
    )
    assert refs.vars == {"DEBUG": "containers.web.variables.A"}
    assert refs.secrets == {"KEY": "containers.web.variables.A"}
    assert refs.config_resources == ("env",)
    assert refs.secret_resources == ("creds",)


@pytest.mark.parametrize("text", ["${resources.env}", "${resources.creds.A.B}", "${resources.env.1X}"])
def test_a_reference_needs_exactly_one_valid_name(text: str) -> None:
    with pytest.raises(UserError) as caught:
        config_references(workload(X=text))
    assert caught.value.problems[0].path == "containers.web.variables.X"


def test_app_level_wins_and_missing_keys_say_how_to_set_them() -> None:
    refs = config_references(workload(A="${resources.env.DEBUG}", B="${resources.creds.KEY}"))
    both = Available({"DEBUG": "env"}, {"DEBUG": "app"}, {"KEY": 3}, {"KEY": 1})
    assert effective_config(refs, both, "shop/dev", "shop/dev/orders") == {
        "vars": {"DEBUG": "app"},
        "secrets": {"KEY": {"scope": "app", "version": 1}},
    }
    env_only = Available({"DEBUG": "env"}, {}, {"KEY": 3}, {})
    assert effective_config(refs, env_only, "shop/dev", "shop/dev/orders")["secrets"] == {
        "KEY": {"scope": "env", "version": 3}
    }
    with pytest.raises(UserError) as caught:
        effective_config(refs, Available({}, {}, {}, {}), "shop/dev", "shop/dev/orders")
    messages = {p.path: p.message for p in caught.value.problems}
    assert "`yunzhou config set shop/dev DEBUG=…`" in messages["containers.web.variables.A"]
    assert "`yunzhou secret set shop/dev KEY`" in messages["containers.web.variables.B"]


def test_changes_are_names_only() -> None:
    before = {"vars": {"A": "1", "B": "2"}, "secrets": {"K": {"scope": "env", "version": 1}}}
    after = {
        "vars": {"A": "9", "C": "3"},
        "secrets": {"K": {"scope": "env", "version": 2}, "N": {"scope": "app", "version": 1}},
    }
    lines = config_changes(before, after)
    assert lines == [
        "config.vars.A: changed",
        "config.vars.B: removed",
        "config.vars.C: added",
        "config.secrets.K: changed",
        "config.secrets.N: added",
    ]
    assert not any("9" in line for line in lines)
    assert changed_names(before, after) == ["A", "B", "C", "K", "N"]
    assert config_cause(["DEBUG", "API_KEY"]) == "config: DEBUG, API_KEY changed"
    assert len(config_cause([f"NAME_{i}" for i in range(40)])) <= 100
    assert config_changes(before, before) == []


def test_vars_are_checked_with_paths() -> None:
    assert check_vars({"A": 1, "B": True, "C": "x"}, "set") == {"A": "1", "B": "true", "C": "x"}
    with pytest.raises(UserError) as caught:
        check_vars({"1A": "x", "B": ["no"], "C": "x" * 40000}, "set")
    assert [p.path for p in caught.value.problems] == ["set.1A", "set.B", "set.C"]
