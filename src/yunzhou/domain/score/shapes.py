"""The JSON shapes every Score field is checked against, each failure recorded as a FieldProblem.

``Checker`` methods never raise: they record the problem and return a stand-in value (None, 0, ""), so one
pass over a document finds every problem.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TypeVar

from yunzhou.domain.errors import FieldProblem
from yunzhou.domain.score import rules
from yunzhou.domain.score.model import FrozenMap, JSONValue
from yunzhou.domain.score.paths import at

_T = TypeVar("_T")
MAX_DEPTH = 64


def kind(value: object) -> str:
    """The JSON name of a value's type, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    names = {int: "integer", float: "number", str: "string", list: "list", dict: "mapping"}
    return next((n for t, n in names.items() if isinstance(value, t)), type(value).__name__)


def show(value: str) -> str:
    return repr(value if len(value) <= 60 else value[:57] + "...")


def as_int(value: object) -> int | None:
    """JSON Schema's integer: a number with no fractional part (80.0 counts), never a boolean."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    return None


def find_cycle(graph: Mapping[str, list[str]]) -> list[str] | None:
    """One cycle of ``graph`` as ``[a, b, ..., a]``, or None; nodes are visited in insertion order."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in graph.get(node, []):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)) is not None:
                return found
        stack.pop()
        state[node] = 2
        return None

    for start in graph:
        if start not in state and (cycle := visit(start)) is not None:
            return cycle
    return None


class Checker:
    def __init__(self) -> None:
        self.problems: list[FieldProblem] = []

    def add(self, path: str, message: str) -> None:
        self.problems.append(FieldProblem(path, message))

    def mapping(
        self, value: object, path: str, fields: tuple[str, ...] | None, required: tuple[str, ...] = ()
    ) -> dict[Any, object] | None:
        if not isinstance(value, dict):
            self.add(path, f"must be a mapping (got {kind(value)})")
            return None
        for key in value:
            if not isinstance(key, str):
                self.add(path, f"keys must be strings (got {kind(key)} {key!r}; quote it)")
            elif fields is not None and key not in fields:
                self.add(at(path, key), f"unknown field {key!r}; allowed: {', '.join(fields)}")
        for key in required:
            if key not in value:
                self.add(at(path, key), "required")
        return value

    def items(self, value: dict[Any, object]) -> Iterator[tuple[str, object]]:
        return ((k, v) for k, v in value.items() if isinstance(k, str))

    def field(
        self, raw: dict[Any, object], key: str, path: str, parse: Callable[[object, str], _T], default: _T
    ) -> _T:
        return parse(raw[key], at(path, key)) if key in raw else default

    def string(self, value: object, path: str, *, non_empty: bool = False) -> str | None:
        if not isinstance(value, str):
            self.add(path, f"must be a string (got {kind(value)})")
            return None
        if non_empty and not value:
            self.add(path, "must not be empty")
            return None
        return value

    def non_empty(self, value: object, path: str) -> str | None:
        return self.string(value, path, non_empty=True)

    def rule(self, ok: Callable[[str], bool], rule: str) -> Callable[[object, str], str | None]:
        """A field parser for strings that must satisfy ``ok``."""
        return lambda value, path: self.matching(value, path, ok, rule)

    def matching(self, value: object, path: str, ok: Callable[[str], bool], rule: str) -> str | None:
        if isinstance(value, int | float) and not isinstance(value, bool):
            self.add(path, f"must be a string (got {kind(value)}; quote it): {rule}")
            return None
        text = self.string(value, path)
        if text is not None and not ok(text):
            self.add(path, f"{rule} (got {show(text)})")
            return None
        return text

    def choice(self, value: object, path: str, choices: tuple[str, ...]) -> Any:
        if value not in choices or not isinstance(value, str):
            shown = show(value) if isinstance(value, str) else kind(value)
            self.add(path, f"must be one of: {', '.join(choices)} (got {shown})")
            return None
        return value

    def boolean(self, value: object, path: str) -> bool | None:
        if not isinstance(value, bool):
            self.add(path, f"must be true or false (got {kind(value)})")
            return None
        return value

    def port(self, value: object, path: str) -> int:
        number = as_int(value)
        if number is None or not 1 <= number <= 65535:
            got = repr(value) if number is not None else kind(value)
            self.add(path, f"{rules.PORT_RULE} (got {got})")
            return 0
        return number

    def strings(self, value: object, path: str) -> tuple[str, ...]:
        """A list of strings; an item that is not a string is reported and stands as "" (indices stay)."""
        if not isinstance(value, list):
            self.add(path, f"must be a list of strings (got {kind(value)})")
            return ()
        return tuple(self.string(item, at(path, index)) or "" for index, item in enumerate(value))

    def named(self, value: object, path: str, what: str) -> Iterator[tuple[str, object, str]]:
        """Entries of a mapping keyed by Score names (containers, ports, resources, before)."""
        raw = self.mapping(value, path, None)
        for name, item in self.items(raw or {}):
            if not rules.is_name(name):
                self.add(at(path, name), f"{what} name {rules.NAME_RULE} (got {show(name)})")
            yield name, item, at(path, name)

    def json(self, value: object, path: str, depth: int = 0) -> JSONValue:
        if depth > MAX_DEPTH:
            self.add(path, f"is nested more than {MAX_DEPTH} levels deep")
            return None
        if value is None or isinstance(value, str | bool | int):
            return value
        if isinstance(value, float):
            if not math.isfinite(value):
                self.add(path, f"must be a finite number (got {value!r})")
            return value
        if isinstance(value, list):
            return tuple(self.json(v, at(path, i), depth + 1) for i, v in enumerate(value))
        if isinstance(value, dict):
            self.mapping(value, path, None)
            return FrozenMap((k, self.json(v, at(path, k), depth + 1)) for k, v in self.items(value))
        self.add(
            path, f"must be JSON data: a string, number, boolean, null, list or mapping (got {kind(value)})"
        )
        return None
