"""The Prometheus text exposition format (version 0.0.4): parse what the router and apps serve, render what
the control plane's ``/metrics`` serves.

Parsing is strict about structure and forgiving about what it does not need (HELP text, unknown
comments): a malformed line raises ``ExpositionError`` with its line number, and the caller decides what a
bad endpoint costs (the scrape loop counts it and drops that target's scrape, never the loop).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
METRIC_TYPES = ("counter", "gauge", "histogram", "summary", "untyped")
_NAME_RE = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL_RE = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_ESCAPES = {"\\": "\\", '"': '"', "n": "\n"}
MAX_LINE = 64 * 1024


class ExpositionError(ValueError):
    """The text is not the Prometheus exposition format; ``line`` is 1-based."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(f"line {line}: {message}")
        self.line = line


@dataclass(frozen=True, slots=True)
class Sample:
    name: str
    labels: Mapping[str, str]
    value: float
    timestamp_ms: int | None = None


@dataclass(frozen=True)
class Exposition:
    samples: list[Sample]
    types: dict[str, str]  # metric family name → counter|gauge|histogram|summary|untyped
    helps: dict[str, str] = field(default_factory=dict)  # metric family name → HELP text (escaped)


def _parse_value(text: str, line: int) -> float:
    try:
        return float(text)  # accepts NaN, +Inf, -Inf as Prometheus writes them
    except ValueError:
        raise ExpositionError(line, f"{text!r} is not a number") from None


_PAIR_RE = re.compile(r'[ \t]*([a-zA-Z_][a-zA-Z0-9_]*)[ \t]*=[ \t]*"((?:[^"\\]|\\.)*)"[ \t]*(,?)[ \t]*')
_ESCAPE_RE = re.compile(r"\\(.)")


def _unescape(value: str, name: str, line: int) -> str:
    def one(m: re.Match[str]) -> str:
        if m.group(1) not in _ESCAPES:
            raise ExpositionError(line, f"bad escape \\{m.group(1)} in label {name!r}")
        return _ESCAPES[m.group(1)]

    return _ESCAPE_RE.sub(one, value) if "\\" in value else value


def _parse_labels(text: str, start: int, line: int) -> tuple[dict[str, str], int]:
    """``text[start]`` is ``{``; returns the labels and the index after the closing ``}``."""
    labels: dict[str, str] = {}
    i = start + 1
    while True:
        m = _PAIR_RE.match(text, i)
        if m is None:
            rest = text[i:].lstrip(" \t")
            if rest.startswith("}"):
                return labels, len(text) - len(rest) + 1
            raise ExpositionError(line, f'expected name="value" or }} at column {i + 1}')
        name = m.group(1)
        if name in labels:
            raise ExpositionError(line, f"label {name!r} appears twice")
        labels[name] = _unescape(m.group(2), name, line)
        i = m.end()
        if not m.group(3):  # no comma: the block must end here
            if text[i : i + 1] != "}":
                raise ExpositionError(line, f"expected , or }} after label {name!r}")
            return labels, i + 1


def parse(text: str) -> Exposition:
    samples: list[Sample] = []
    types: dict[str, str] = {}
    helps: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        if len(raw) > MAX_LINE:
            raise ExpositionError(number, f"longer than {MAX_LINE} characters")
        line = raw.strip()
        if not line:
            continue
        if line.startswith("#"):
            parts = line[1:].split(None, 3)
            if len(parts) >= 3 and parts[0] == "TYPE":
                if parts[2] not in METRIC_TYPES:
                    raise ExpositionError(number, f"unknown metric type {parts[2]!r}")
                types[parts[1]] = parts[2]
            elif len(parts) >= 3 and parts[0] == "HELP":
                helps[parts[1]] = line[1:].split(None, 2)[2]
            continue
        m = _NAME_RE.match(line)
        if m is None:
            raise ExpositionError(number, "expected a metric name")
        name = m.group()
        i = m.end()
        labels: dict[str, str] = {}
        if i < len(line) and line[i] == "{":
            labels, i = _parse_labels(line, i, number)
        rest = line[i:].split()
        if not rest or len(rest) > 2 or (i < len(line) and line[i] not in " \t"):
            raise ExpositionError(number, f"expected '<value> [timestamp]' after {name}")
        value = _parse_value(rest[0], number)
        timestamp = None
        if len(rest) == 2:
            try:
                timestamp = int(rest[1])
            except ValueError:
                raise ExpositionError(number, f"timestamp {rest[1]!r} is not an integer") from None
        samples.append(Sample(name, labels, value, timestamp))
    return Exposition(samples, types, helps)


# ---- rendering -------------------------------------------------------------------------------------------
def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def format_value(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


def format_labels(labels: Mapping[str, str]) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(labels.items())) + "}"


_SUFFIXES = ("_bucket", "_sum", "_count", "_total", "_created")


def family_of(name: str, types: Mapping[str, str]) -> str:
    """The family a sample belongs to: ``x_bucket`` → ``x`` when ``x`` is a histogram."""
    if name in types:
        return name
    for suffix in _SUFFIXES:
        if name.endswith(suffix) and name[: -len(suffix)] in types:
            return name[: -len(suffix)]
    return name


def render(
    samples: Iterable[tuple[str, Mapping[str, str], float]],
    types: Mapping[str, str] | None = None,
    help_texts: Mapping[str, str] | None = None,
) -> str:
    """Samples grouped by family (one TYPE line each, families in name order), values without timestamps."""
    types = types or {}
    help_texts = help_texts or {}
    families: dict[str, list[str]] = {}
    for name, labels, value in samples:
        families.setdefault(family_of(name, types), []).append(
            f"{name}{format_labels(labels)} {format_value(value)}"
        )
    out: list[str] = []
    for family in sorted(families):
        if family in help_texts:
            out.append(f"# HELP {family} {help_texts[family]}")
        out.append(f"# TYPE {family} {types.get(family, 'untyped')}")
        out.extend(sorted(families[family]))
    return "\n".join(out) + "\n" if out else ""
