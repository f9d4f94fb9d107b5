"""``load_score``: Score YAML or JSON text → Workload.

YAML is read with the YAML 1.2 core schema, as Go's yaml.v3 (behind score-go) reads it: only
true/false are booleans (``on``, ``yes``, ``no`` stay strings), ``1:30`` and ``2024-01-01`` stay strings,
and ``0600`` is the integer 600 (so a file mode must be quoted). Duplicate keys are errors, and so are
aliases that expand into a huge or recursive document.
"""

from __future__ import annotations

import json
import re
from typing import Any

import yaml

from yunzhou.domain.errors import FieldProblem, UserError
from yunzhou.domain.score.model import Workload
from yunzhou.domain.score.parse import parse_score

MAX_VALUES = 100_000  # after expanding YAML aliases; a real Score file has a few hundred


class _Loader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 core-schema scalars and no duplicate keys."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[object] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                duplicate = key in seen
                seen.add(key)
            except TypeError:
                continue  # unhashable: the base class reports it
            if duplicate:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping",
                    node.start_mark,
                    f"duplicate key {key!r}",
                    key_node.start_mark,
                )
        return super().construct_mapping(node, deep=deep)


def _construct_int(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> int:
    text = str(loader.construct_scalar(node))
    if text.startswith("0o"):
        return int(text[2:], 8)
    if text.startswith("0x"):
        return int(text[2:], 16)
    return int(text, 10)


_Loader.yaml_implicit_resolvers = {}
for _tag, _pattern, _first in (
    ("tag:yaml.org,2002:null", r"^(?:~|null|Null|NULL|)$", ["~", "n", "N", ""]),
    ("tag:yaml.org,2002:bool", r"^(?:true|True|TRUE|false|False|FALSE)$", list("tTfF")),
    ("tag:yaml.org,2002:int", r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$", list("-+0123456789")),
    (
        "tag:yaml.org,2002:float",
        r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$",
        list("-+.0123456789"),
    ),
    ("tag:yaml.org,2002:merge", r"^(?:<<)$", ["<"]),
):
    _Loader.add_implicit_resolver(_tag, re.compile(_pattern), _first)
_Loader.add_constructor("tag:yaml.org,2002:int", _construct_int)


def load_yaml12(text: str) -> object:
    """YAML with YAML 1.2 core-schema scalars (``on``/``yes`` stay strings, dates stay strings) and no
    duplicate keys — how Score files are read, and how the CLI reads settings and values too.
    Raises ``yaml.YAMLError``; callers say where."""
    return yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader


def _invalid_text(message: str) -> UserError:
    return UserError("Score file cannot be read", problems=[FieldProblem("", message)])


def _count_values(value: object) -> int:
    """How many values the document has once aliases are expanded; raise on recursion or excess."""
    sizes: dict[int, int] = {}
    open_ids: set[int] = set()

    def size(item: object) -> int:
        if not isinstance(item, dict | list):
            return 1
        key = id(item)
        if key in sizes:
            return sizes[key]
        if key in open_ids:
            raise _invalid_text("YAML aliases must not make the document contain itself")
        open_ids.add(key)
        children = item.values() if isinstance(item, dict) else item
        total = 1
        for child in children:
            total += size(child)
            if total > MAX_VALUES:
                raise _invalid_text(
                    f"the document has more than {MAX_VALUES} values (after expanding aliases)"
                )
        open_ids.discard(key)
        sizes[key] = total
        return total

    return size(value)


def _reject_constant(name: str) -> object:
    raise ValueError(f"{name} is not JSON")


def _unique_pairs(pairs: list[tuple[str, object]]) -> dict[str, object]:
    out: dict[str, object] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r}")
        out[key] = value
    return out


def _load_json(text: str) -> object | None:
    """The document when ``text`` is JSON; None when it is not (a YAML flow mapping such as ``{a: 1}``)."""
    try:
        doc: object = json.loads(text, object_pairs_hook=_unique_pairs, parse_constant=_reject_constant)
    except json.JSONDecodeError:
        return None  # YAML will read it, or explain what is wrong with it
    except ValueError as exc:
        raise _invalid_text(str(exc)) from None
    except RecursionError:
        raise _invalid_text("the document is nested too deeply") from None
    return doc


def _load_yaml(text: str) -> object:
    try:
        return load_yaml12(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        raise _invalid_text(f"{where}{exc.problem or exc.context}") from None
    except yaml.YAMLError as exc:
        raise _invalid_text(str(exc)) from None
    except RecursionError:
        raise _invalid_text("the document is nested too deeply") from None


def load_score(text: str) -> Workload:
    """Parse Score YAML (or JSON) text and validate it; every failure is a UserError."""
    doc = _load_json(text) if text.lstrip().startswith("{") else None
    if doc is None:
        doc = _load_yaml(text)
    if not isinstance(doc, dict):
        shown = "empty" if doc is None else f"a {type(doc).__name__}"
        message = f"the top level must be a mapping with apiVersion, metadata and containers (got {shown})"
        raise UserError("Score file is invalid", problems=[FieldProblem("", message)])
    _count_values(doc)
    return parse_score(doc)
