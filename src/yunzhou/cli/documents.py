"""Score and settings documents: YAML files as JSON-ready data, and ``key=value`` overrides."""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

import yaml

from yunzhou.domain.errors import FieldProblem, UserError
from yunzhou.domain.score.text import load_yaml12

Json = dict[str, Any]
SETTINGS_FILE = "yunzhou.yaml"


def _load(text: str) -> Any:
    # The domain's reader: the same YAML 1.2 rules as Score files (and Go's yaml.v3 behind score-go).
    return load_yaml12(text)


def load_yaml_file(path: Path, what: str, *, required: bool = True) -> Json:
    """Parse a YAML mapping; syntax errors name the line and column. Empty → {} unless ``required``."""
    try:
        source = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UserError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise UserError(f"{what} {path} is not UTF-8 text") from None
    try:
        document = _load(source)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        detail = " ".join(part for part in (exc.context, exc.problem) if part) or "syntax error"
        raise UserError(f"{what} {path} is not valid YAML", problems=[FieldProblem(where, detail)]) from None
    except yaml.YAMLError as exc:
        raise UserError(f"{what} {path} is not valid YAML: {exc}") from None
    if document is None:
        if required:
            raise UserError(f"{what} {path} is empty")
        return {}
    if not isinstance(document, dict):
        raise UserError(f"{what} {path} must be a mapping at the top level, not a {type(document).__name__}")
    problems = list(_non_json(document, ""))
    if problems:
        raise UserError(f"{what} {path} has values JSON cannot carry", problems=problems)
    return document


def _non_json(value: Any, path: str) -> list[FieldProblem]:
    if isinstance(value, dict):
        return [
            p for key, item in value.items() for p in _non_json(item, f"{path}.{key}" if path else str(key))
        ]
    if isinstance(value, list):
        return [p for index, item in enumerate(value) for p in _non_json(item, f"{path}[{index}]")]
    if isinstance(value, float) and not math.isfinite(value):
        return [FieldProblem(path, "must be a finite number")]
    if value is None or isinstance(value, str | int | float | bool):
        return []
    return [FieldProblem(path, f"a YAML {type(value).__name__} cannot be sent; quote it as a string")]


def default_settings_path(score_path: Path) -> Path | None:
    """``yunzhou.yaml`` beside the Score file, when there is one."""
    candidate = score_path.parent / SETTINGS_FILE
    return candidate if candidate.is_file() else None


# -- key=value overrides ---------------------------------------------------------------------------

Assignment = tuple[list[str], Any]


def parse_value(raw: str) -> Any:
    """A YAML 1.2 scalar (``3`` → 3, ``true`` → True, ``null`` → None; ``no`` stays text), or a flow
    list/mapping; anything else is the raw text."""
    stripped = raw.strip()
    if not stripped:
        return ""
    try:
        value = _load(stripped)
    except yaml.YAMLError:
        if stripped[0] in "[{":
            raise UserError(f"{raw!r} is not a valid YAML list or mapping") from None
        return raw
    if stripped[0] in "[{" or value is None or isinstance(value, str | int | float | bool):
        return value
    return raw  # e.g. "a: b" is text here, not a mapping


def parse_assignment(text: str) -> Assignment:
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise UserError(f"{text!r} is not key=value (e.g. replicas=3 or rollout.maxSurge=2)")
    parts = key.split(".")
    if any(not part.strip() for part in parts):
        raise UserError(f"{key!r} has an empty part; use dotted keys such as rollout.maxSurge")
    return [part.strip() for part in parts], parse_value(raw)


def set_path(document: Json, parts: list[str], value: Any) -> None:
    """Set ``a.b.c`` in place, creating mappings on the way; list items are addressed by index."""
    node: Any = document
    for depth, part in enumerate(parts):
        last = depth == len(parts) - 1
        where = ".".join(parts[: depth + 1])
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise UserError(f"cannot set {'.'.join(parts)}: {where} is not an index of the list")
            index = int(part)
            if last:
                node[index] = value
            else:
                node = node[index]
            continue
        if not isinstance(node, dict):
            raise UserError(f"cannot set {'.'.join(parts)}: {'.'.join(parts[:depth])} is not a mapping")
        if last:
            node[part] = value
            continue
        if node.get(part) is None:
            node[part] = {}
        elif not isinstance(node[part], dict | list):
            raise UserError(f"cannot set {'.'.join(parts)}: {where} is {node[part]!r}, not a mapping")
        node = node[part]


def nested(assignments: list[Assignment]) -> Json:
    """``[(['rollout','maxSurge'], 2)]`` → ``{"rollout": {"maxSurge": 2}}`` (a partial settings document)."""
    document: Json = {}
    for parts, value in assignments:
        set_path(document, parts, value)
    return document


def apply_overrides(settings: Json, assignments: list[Assignment], env: str) -> Json:
    """Merge ``--set`` overrides into a settings document (a copy).

    They go in at the top level; where the ``environments.<env>`` block overrides the same key, they
    go there too, so the command line wins over the per-environment value the server applies later.
    """
    result = copy.deepcopy(settings)
    env_block = (
        (result.get("environments") or {}).get(env) if isinstance(result.get("environments"), dict) else None
    )
    for parts, value in assignments:
        set_path(result, parts, copy.deepcopy(value))
        if isinstance(env_block, dict) and parts[0] in env_block:
            set_path(env_block, parts, copy.deepcopy(value))
    return result


def select_environment(settings: Json, env: str, env_name: str) -> Json:
    """Use the ``environments.<env_name>`` block of the settings file for environment ``env`` (a copy)."""
    environments = settings.get("environments")
    if not isinstance(environments, dict) or env_name not in environments:
        known = ", ".join(sorted(str(key) for key in environments)) if isinstance(environments, dict) else ""
        raise UserError(
            f"--env-name {env_name}: the settings file has no environments.{env_name} block"
            + (f" (it has: {known})" if known else "")
        )
    result = copy.deepcopy(settings)
    result["environments"][env] = copy.deepcopy(environments[env_name])
    return result
