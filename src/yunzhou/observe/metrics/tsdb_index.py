"""Label matchers and the inverted index that finds the series a selector names."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache

from yunzhou.domain.errors import FieldProblem, UserError

Labels = tuple[tuple[str, str], ...]  # sorted (name, value) pairs, ``__name__`` included
METRIC_NAME = "__name__"
METRIC_NAME_RE = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
LABEL_NAME_RE = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
MATCH_OPS = ("=", "!=", "=~", "!~")


@lru_cache(maxsize=1024)
def compile_anchored(pattern: str) -> re.Pattern[str]:
    """A label regex as Prometheus reads it: fully anchored; ``.`` does not match a newline (2.x)."""
    try:
        return re.compile(f"(?:{pattern})\\Z")
    except re.error as e:
        raise UserError(
            f"query: invalid regular expression {pattern!r}: {e}",
            problems=[FieldProblem("query", f"invalid regular expression {pattern!r}: {e}")],
        ) from None


@dataclass(frozen=True)
class Matcher:
    """``name op value`` with op one of ``= != =~ !~``; a missing label matches as the empty string."""

    name: str
    op: str
    value: str
    _re: re.Pattern[str] | None = field(default=None, compare=False, repr=False)

    @classmethod
    def make(cls, name: str, op: str, value: str) -> Matcher:
        if op not in MATCH_OPS:
            raise ValueError(f"matcher op must be one of {MATCH_OPS}, not {op!r}")
        rx = compile_anchored(value) if op in ("=~", "!~") else None
        return cls(name, op, value, rx)

    def matches(self, value: str) -> bool:
        if self.op == "=":
            return value == self.value
        if self.op == "!=":
            return value != self.value
        assert self._re is not None
        hit = self._re.match(value) is not None
        return hit if self.op == "=~" else not hit

    def matches_empty(self) -> bool:
        return self.matches("")

    def __str__(self) -> str:
        return f'{self.name}{self.op}"{self.value}"'


def labels_key(name: str, labels: Mapping[str, str]) -> Labels:
    """The canonical key of a series: sorted pairs with ``__name__``; empty values are dropped."""
    pairs = [(k, v) for k, v in labels.items() if v != "" and k != METRIC_NAME]
    pairs.append((METRIC_NAME, name))
    pairs.sort()
    return tuple(pairs)


def validate_series(name: str, labels: Mapping[str, str]) -> None:
    if not METRIC_NAME_RE.fullmatch(name):
        raise UserError(
            f"name: {name!r} is not a metric name",
            problems=[FieldProblem("name", "must match [a-zA-Z_:][a-zA-Z0-9_:]*")],
        )
    for k, v in labels.items():
        if not LABEL_NAME_RE.fullmatch(k) and k != METRIC_NAME:
            raise UserError(
                f"labels: {k!r} is not a label name",
                problems=[FieldProblem(f"labels.{k}", "must match [a-zA-Z_][a-zA-Z0-9_]*")],
            )
        if not isinstance(v, str):
            raise UserError(
                f"labels.{k}: must be a string", problems=[FieldProblem(f"labels.{k}", "must be a string")]
            )


class LabelIndex:
    """Postings: (label, value) → series ids. Not thread-safe; the store guards it."""

    def __init__(self) -> None:
        self._postings: dict[tuple[str, str], set[int]] = {}
        self._labels: dict[int, dict[str, str]] = {}

    def add(self, sid: int, key: Labels) -> None:
        self._labels[sid] = dict(key)
        for pair in key:
            self._postings.setdefault(pair, set()).add(sid)

    def remove(self, sid: int) -> None:
        labels = self._labels.pop(sid, None)
        if labels is None:
            return
        for pair in labels.items():
            ids = self._postings.get(pair)
            if ids is not None:
                ids.discard(sid)
                if not ids:
                    del self._postings[pair]

    def __len__(self) -> int:
        return len(self._labels)

    def match(self, matchers: Iterable[Matcher]) -> list[int]:
        """Ids of the series every matcher accepts, in id order."""
        ms = list(matchers)
        candidates: set[int] | None = None
        for m in ms:
            if m.op == "=" and m.value != "":
                ids = self._postings.get((m.name, m.value), set())
                candidates = set(ids) if candidates is None else candidates & ids
                if not candidates:
                    return []
        if candidates is None:
            candidates = set(self._labels)
        rest = [m for m in ms if not (m.op == "=" and m.value != "")]
        out = []
        for sid in candidates:
            labels = self._labels[sid]
            if all(m.matches(labels.get(m.name, "")) for m in rest):
                out.append(sid)
        out.sort()
        return out

    def label_values(self, name: str) -> list[str]:
        return sorted({v for (k, v) in self._postings if k == name})

    def label_names(self) -> list[str]:
        return sorted({k for (k, _) in self._postings})
