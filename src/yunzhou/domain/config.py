"""Configuration and secrets, the pure part: key names, what a workload references, the effective config
a release is built with, and how two of them differ. Secret *values* never reach this module.

A Score resource of ``type: environment`` exposes the config variables (``${resources.env.DEBUG}``); one
of ``type: secret`` exposes the secrets (``${resources.creds.API_KEY}``). App-level entries win over
environment-level ones. A release records::

    {"vars": {"DEBUG": "1"}, "secrets": {"API_KEY": {"scope": "env", "version": 3}}}

— the plain values of the variables it references and, for secrets, only which version of which scope.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from yunzhou.domain.errors import FieldProblem, UserError
from yunzhou.domain.score import Workload, resource_references

CONFIG_TYPE = "environment"
SECRET_TYPE = "secret"  # noqa: S105 (a Score resource type, not a password)
KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,254}$")
KEY_RULE = "must be 1-255 characters of A-Z, a-z, 0-9 and '_', not starting with a digit"
MAX_VAR_BYTES = 32 * 1024
MAX_SECRET_BYTES = 64 * 1024


def key_problem(name: object) -> str | None:
    if not isinstance(name, str):
        return f"must be a string; {KEY_RULE}"
    return None if KEY_RE.match(name) else f"{name!r} {KEY_RULE}"


def check_vars(values: object, path: str) -> dict[str, str]:
    """A mapping of variable names to string values (numbers and booleans are written as text)."""
    if not isinstance(values, Mapping):
        raise UserError(f"{path} must be a mapping", problems=[FieldProblem(path, "must be a mapping")])
    problems: list[FieldProblem] = []
    out: dict[str, str] = {}
    for name, value in values.items():
        where = f"{path}.{name}"
        if (p := key_problem(name)) is not None:
            problems.append(FieldProblem(where, p))
            continue
        if isinstance(value, bool):
            value = "true" if value else "false"
        elif isinstance(value, int | float):
            value = str(value)
        if not isinstance(value, str):
            problems.append(FieldProblem(where, "must be a string"))
        elif len(value.encode()) > MAX_VAR_BYTES:
            problems.append(FieldProblem(where, f"must be at most {MAX_VAR_BYTES} bytes"))
        else:
            out[name] = value
    if problems:
        raise UserError("config is invalid: nothing was changed", problems=problems)
    return out


@dataclass(frozen=True)
class ConfigReferences:
    """Which config variables and secrets a workload uses, each with the first field that uses it."""

    vars: Mapping[str, str] = field(default_factory=dict)
    secrets: Mapping[str, str] = field(default_factory=dict)
    config_resources: tuple[str, ...] = ()
    secret_resources: tuple[str, ...] = ()


def config_references(workload: Workload) -> ConfigReferences:
    """Raises UserError for a reference without exactly one key (``${resources.env}``, ``….A.B``)."""
    kinds = {name: r.type for name, r in workload.resources.items() if r.type in (CONFIG_TYPE, SECRET_TYPE)}
    found: dict[str, dict[str, str]] = {CONFIG_TYPE: {}, SECRET_TYPE: {}}
    problems: list[FieldProblem] = []
    for path, resource, keys in resource_references(workload):
        kind = kinds.get(resource)
        if kind is None:
            continue
        what = "config variable" if kind == CONFIG_TYPE else "secret"
        if len(keys) != 1 or key_problem(keys[0]) is not None:
            problems.append(
                FieldProblem(
                    path, f"a resource of type {kind} takes one {what} name: ${{resources.{resource}.NAME}}"
                )
            )
            continue
        found[kind].setdefault(keys[0], path)
    if problems:
        raise UserError("Score file refers to config in a way that cannot work", problems=problems)
    return ConfigReferences(
        vars=found[CONFIG_TYPE],
        secrets=found[SECRET_TYPE],
        config_resources=tuple(sorted(n for n, k in kinds.items() if k == CONFIG_TYPE)),
        secret_resources=tuple(sorted(n for n, k in kinds.items() if k == SECRET_TYPE)),
    )


@dataclass(frozen=True)
class Available:
    """What is set in one environment, for one app: variables and current secret versions per scope."""

    env_vars: Mapping[str, str]
    app_vars: Mapping[str, str]
    env_secrets: Mapping[str, int]
    app_secrets: Mapping[str, int]


def effective_config(
    refs: ConfigReferences, available: Available, env_address: str, app_address: str
) -> dict[str, Any]:
    """The config a release records; raises UserError naming every field whose key is not set."""
    problems: list[FieldProblem] = []
    vars_: dict[str, str] = {}
    for name, path in sorted(refs.vars.items()):
        if name in available.app_vars:
            vars_[name] = available.app_vars[name]
        elif name in available.env_vars:
            vars_[name] = available.env_vars[name]
        else:
            problems.append(
                FieldProblem(
                    path,
                    f"config variable {name} is not set in {env_address}: run `yunzhou config set "
                    f"{env_address} {name}=…` (or {app_address} for this app only)",
                )
            )
    secrets: dict[str, dict[str, Any]] = {}
    for name, path in sorted(refs.secrets.items()):
        if name in available.app_secrets:
            secrets[name] = {"scope": "app", "version": available.app_secrets[name]}
        elif name in available.env_secrets:
            secrets[name] = {"scope": "env", "version": available.env_secrets[name]}
        else:
            problems.append(
                FieldProblem(
                    path,
                    f"secret {name} is not set in {env_address}: run `yunzhou secret set {env_address} "
                    f"{name}` with the value on stdin (or {app_address} for this app only)",
                )
            )
    if problems:
        raise UserError(
            "configuration the Score file needs is missing: nothing was changed", problems=problems
        )
    return {"vars": vars_, "secrets": secrets}


def config_changes(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[str]:
    """``config.vars.DEBUG: changed`` lines, names only (a variable's or secret's value never shows)."""
    lines: list[str] = []
    for section in ("vars", "secrets"):
        old, new = before.get(section) or {}, after.get(section) or {}
        for name in sorted(old.keys() | new.keys()):
            if name not in old:
                lines.append(f"config.{section}.{name}: added")
            elif name not in new:
                lines.append(f"config.{section}.{name}: removed")
            elif old[name] != new[name]:
                lines.append(f"config.{section}.{name}: changed")
    return lines


def changed_names(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[str]:
    """The names whose entry differs, vars then secrets, each once."""
    names: list[str] = []
    for line in config_changes(before, after):
        name = line.split(":", 1)[0].split(".", 2)[2]
        if name not in names:
            names.append(name)
    return names


def config_cause(names: Iterable[str]) -> str:
    listed = ", ".join(names)
    cause = f"config: {listed} changed"
    return cause if len(cause) <= 100 else cause[:97] + "…"
