"""The values in the docs' ``yunzhou`` command lines are ones the server would take, not only well-formed.

``test_docs_commands.py`` checks that every documented command line parses through the CLI's command
tree. Some values pass that parse and are judged only by the server (or by the CLI after it has
connected), so a wrong one in the docs would be found only by a reader. Here each such value goes through
the same pure parser the server (or the CLI) uses:

- ``deploy --set`` (with ``--strategy``) and ``settings set KEY=VALUE``: the partial settings document
  the CLI builds, merged as the server merges it, is valid settings (``parse_settings``);
- ``token create --expires``: the CLI's own ``parse_expires``;
- ``alerts silence create``: each ``-m`` matcher (``parse_matchers``) and ``-d`` (``parse_duration``);
- ``logs``: ``--where`` filters (``parse_filters``), ``--since`` / ``--until`` (``parse_time_bound``).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer._click import ClickException, Context

from tests.unit.cli.test_docs_commands import (
    EXAMPLES,
    FILE_ARGUMENT,
    ROOT_COMMAND,
    Example,
    _check,
    _invocations,
)
from tests.unit.cli.test_docs_commands import _synopsis_to_example as synopsis_to_example
from yunzhou.cli.admin import parse_expires
from yunzhou.cli.deploy import _with_strategy
from yunzhou.cli.documents import apply_overrides, nested, parse_assignment
from yunzhou.domain.alerts import parse_duration, parse_matchers
from yunzhou.domain.errors import UserError
from yunzhou.domain.settings import merge_patch, parse_settings
from yunzhou.observe.logs.timespec import parse_time_bound
from yunzhou.observe.logs.where import parse_filters


def _settings(assignments: list[str]) -> None:
    parse_settings(merge_patch({}, nested([parse_assignment(a) for a in assignments])))


def _deploy(params: dict[str, Any]) -> None:
    """What the CLI sends with an empty settings file: ``--set`` values, then ``--strategy``."""
    settings = apply_overrides({}, [parse_assignment(a) for a in params.get("overrides") or ()], "dev")
    if params.get("strategy") is not None:
        settings = _with_strategy(settings, getattr(params["strategy"], "value", params["strategy"]))
    parse_settings(settings)


def _logs(params: dict[str, Any]) -> None:
    parse_filters(params.get("where") or ())
    for bound in ("since", "until"):
        if params.get(bound):
            parse_time_bound(params[bound], now=1_800_000_000.0, field=bound)


def _silence(params: dict[str, Any]) -> None:
    parse_matchers(list(params["matchers"]))
    parse_duration(params["duration"], "duration")


def _expires(params: dict[str, Any]) -> None:
    parse_expires(params["expires"])


CHECKS: dict[str, Callable[[dict[str, Any]], None]] = {
    "yunzhou deploy": _deploy,
    "yunzhou settings set": lambda params: _settings(list(params["assignments"])),
    "yunzhou token create": _expires,
    "yunzhou alerts silence create": _silence,
    "yunzhou logs": _logs,
}


def _contexts(example: Example, where: Path) -> list[Context]:
    """Parse the example's invocations in ``where``, where the files it names exist (empty)."""
    calls = _invocations(synopsis_to_example(example.line))
    for name in (arg for args in calls for arg in args if FILE_ARGUMENT.match(arg)):
        (where / name).parent.mkdir(parents=True, exist_ok=True)
        (where / name).touch()
    before = Path.cwd()
    os.chdir(where)
    try:
        return [_check(ROOT_COMMAND, args) for args in calls]
    finally:
        os.chdir(before)


CHECKED = [e for e in EXAMPLES if any(f"{path} " in f"{e.line} " for path in CHECKS)]


def test_each_kind_of_value_is_checked_somewhere(tmp_path: Path) -> None:
    paths = {ctx.command_path for example in CHECKED for ctx in _contexts(example, tmp_path)}
    assert paths >= set(CHECKS)
    assert len(CHECKED) >= 20


@pytest.mark.parametrize("example", CHECKED, ids=str)
def test_documented_values_are_accepted(example: Example, tmp_path: Path) -> None:
    for ctx in _contexts(example, tmp_path):
        check = CHECKS.get(ctx.command_path)
        if check is None:
            continue
        try:
            check(ctx.params)
        except UserError as exc:
            problems = "; ".join(map(str, exc.problems))
            pytest.fail(f"{example.where}: `{example.line}`: {exc} {problems}")
        except ClickException as exc:
            pytest.fail(f"{example.where}: `{example.line}`: {exc.format_message()}")


@pytest.mark.parametrize(
    "line",
    [
        "yunzhou deploy shop/dev -f score.yaml --set rollout.maxSurge=0 --set rollout.maxUnavailable=0",
        "yunzhou deploy shop/dev -f score.yaml --set rollout.previewHost=p.example.test",  # rolling
        "yunzhou settings set shop/dev/orders replicas=1001",
        "yunzhou token create --name ci --scope read --expires 30days",
        "yunzhou alerts silence create shop -m app -d 2h",
        "yunzhou alerts silence create shop -m 'app=\"web\"' -d 'two hours'",
        "yunzhou logs shop/dev/orders --where level",
        "yunzhou logs shop/dev/orders --since yesterday",
    ],
)
def test_a_wrong_value_is_caught(line: str, tmp_path: Path) -> None:
    """The checker itself: each of these parses as a command line but would be refused."""
    (ctx,) = _contexts(Example("test", line), tmp_path)
    with pytest.raises((UserError, ClickException)):
        CHECKS[ctx.command_path](ctx.params)
