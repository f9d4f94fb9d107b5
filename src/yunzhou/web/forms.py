"""Pure helpers behind the console's forms: a Score document and settings from the visual deploy form,
API problem paths mapped back to the fields that caused them, and the diff between two releases."""

from __future__ import annotations

import difflib
import re
import shlex
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from yunzhou.domain.errors import FieldProblem

Json = dict[str, Any]
CONTAINER = "web"
_VARIABLE_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
_NUMBER_RE = re.compile(r"^-?\d+(\.\d+)?$")

# API problem paths (after dropping a leading ``score.``/``settings.``) → the form field they concern.
_FIELD_PREFIXES: tuple[tuple[str, str], ...] = (
    ("metadata.name", "name"),
    ("metadata", "name"),
    (f"containers.{CONTAINER}.image", "image"),
    (f"containers.{CONTAINER}.command", "command"),
    (f"containers.{CONTAINER}.args", "command"),
    (f"containers.{CONTAINER}.variables", "variables"),
    (f"containers.{CONTAINER}.readinessProbe", "probe_path"),
    ("service.ports", "port"),
    ("replicas", "replicas"),
    ("routes", "routes"),
    ("artifact", "source"),
    ("source", "source"),
)


@dataclass
class DeployForm:
    """What a person types into the visual deploy form; ``build`` turns it into Score + settings."""

    name: str = ""
    image: str = "python:3.11-slim"
    command: str = ""
    port: str = "8080"
    variables: str = ""
    replicas: str = "1"
    probe_path: str = ""
    artifact: str = ""

    @classmethod
    def from_form(cls, form: Mapping[str, Any]) -> DeployForm:
        values = {name: str(form.get(name) or "").strip() for name in cls.__dataclass_fields__}
        values["variables"] = str(form.get("variables") or "")
        return cls(**values)

    def build(self) -> tuple[Json, Json, list[FieldProblem]]:
        """(score, settings, problems): problems carry form field names, found before anything is sent."""
        problems: list[FieldProblem] = []
        container: Json = {"image": self.image}
        if self.command:
            try:
                container["command"] = shlex.split(self.command)
            except ValueError as exc:
                problems.append(FieldProblem("command", str(exc)))
        variables = parse_variables(self.variables, problems)
        if variables:
            container["variables"] = variables
        port = _int(self.port, "port", problems, low=1, high=65535) if self.port else None
        if self.probe_path:
            probe: Json = {"path": self.probe_path}
            if port is not None:
                probe["port"] = port
            container["readinessProbe"] = {"httpGet": probe}
        score: Json = {
            "apiVersion": "score.dev/v1b1",
            "metadata": {"name": self.name},
            "containers": {CONTAINER: container},
        }
        if port is not None:
            score["service"] = {"ports": {CONTAINER: {"port": port, "targetPort": port}}}
        settings: Json = {}
        if self.replicas:
            replicas = _int(self.replicas, "replicas", problems, low=0, high=1000)
            if replicas is not None:
                settings["replicas"] = replicas
        if self.artifact and not _DIGEST_RE.match(self.artifact):
            problems.append(FieldProblem("source", "an artifact digest looks like sha256:<64 hex digits>"))
        return score, settings, problems


def _int(text: str, name: str, problems: list[FieldProblem], *, low: int, high: int) -> int | None:
    try:
        value = int(text)
    except ValueError:
        problems.append(FieldProblem(name, f"must be a whole number from {low} to {high}"))
        return None
    if not low <= value <= high:
        problems.append(FieldProblem(name, f"must be a whole number from {low} to {high}"))
        return None
    return value


def parse_variables(text: str, problems: list[FieldProblem]) -> dict[str, str]:
    """``KEY=VALUE`` lines (blank lines and ``#`` comments skipped)."""
    variables: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        key, sep, value = stripped.partition("=")
        key = key.strip()
        if not sep or not _VARIABLE_RE.match(key):
            problems.append(FieldProblem("variables", f"line {number}: write NAME=value"))
            continue
        variables[key] = value.strip()
    return variables


def field_for(path: str) -> str | None:
    for prefix in ("score.", "settings.", "body."):
        path = path.removeprefix(prefix)
    for known, name in _FIELD_PREFIXES:
        if path == known or path.startswith(known + "."):
            return name
    return None


@dataclass
class FieldErrors:
    by_field: dict[str, list[str]] = field(default_factory=dict)
    general: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.by_field or self.general)


def field_errors(problems: Iterable[FieldProblem], known_fields: Iterable[str]) -> FieldErrors:
    """Sort problems to the field they concern; the rest are shown above the form with their path."""
    known = set(known_fields)
    errors = FieldErrors()
    for problem in problems:
        name = problem.path if problem.path in known else field_for(problem.path)
        if name in known and name is not None:
            detail = problem.message if name == problem.path else f"{problem.path}: {problem.message}"
            errors.by_field.setdefault(name, []).append(detail)
        else:
            errors.general.append(f"{problem.path}: {problem.message}" if problem.path else problem.message)
    return errors


def number_or_text(text: str) -> int | float | str:
    """A number when the text reads as one (so the API judges its range), else the text as typed."""
    if _NUMBER_RE.match(text):
        return float(text) if "." in text else int(text)
    return text


def errors_by_prefix(
    problems: Iterable[FieldProblem], fields: Iterable[str], prefixes: Iterable[tuple[str, str]]
) -> FieldErrors:
    """Problems sorted to form fields: a problem already named by its field, or an API path (``settings.``
    dropped) under one of ``prefixes`` (prefix → field, first match wins); the rest go above the form."""
    known, table = set(fields), list(prefixes)
    errors = FieldErrors()
    for problem in problems:
        if problem.path in known:
            errors.by_field.setdefault(problem.path, []).append(problem.message)
            continue
        path = problem.path.removeprefix("body.").removeprefix("settings.")
        name = next((n for prefix, n in table if path == prefix or path.startswith(prefix + ".")), None)
        detail = f"{problem.path}: {problem.message}" if problem.path else problem.message
        if name is None:
            errors.general.append(detail)
        else:
            errors.by_field.setdefault(name, []).append(detail)
    return errors


def to_yaml(document: object) -> str:
    return yaml.safe_dump(document, sort_keys=False, allow_unicode=True, default_flow_style=False)


def spec_diff(old: Json, new: Json, old_label: str, new_label: str) -> list[tuple[str, str]]:
    """Unified diff of two releases' Score + settings as (kind, line); kind is add, remove, hunk or same."""
    lines = difflib.unified_diff(
        to_yaml(old).splitlines(), to_yaml(new).splitlines(), old_label, new_label, lineterm="", n=3
    )
    out: list[tuple[str, str]] = []
    for line in lines:
        if line.startswith(("---", "+++")):
            continue
        kind = {"+": "add", "-": "remove", "@": "hunk"}.get(line[:1], "same")
        out.append((kind, line))
    return out
