"""Field filters on JSON log lines: ``level=error``, ``user_id=42``, ``status>=500``, ``msg!="ok"``.

A filter is ``KEY OP VALUE``. ``KEY`` names a top-level key of the record's fields. ``OP`` is one of
``= != > >= < <=``. ``VALUE`` is a number (compared with JSON numbers), ``true``/``false``, or text
(compared with JSON strings); quote it (``"42"``) to compare a number-looking value as text.
``!=`` also matches records that lack the key.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from yunzhou.domain.errors import invalid

OPERATORS = ("!=", ">=", "<=", "=", ">", "<")
_KEY = re.compile(r"^[A-Za-z_@$][\w.@$-]{0,99}$")
_ITEM = re.compile(r'\s*([^\s=<>!"]+)\s*(!=|>=|<=|=|>|<)\s*("(?:[^"\\]|\\.)*"(?=\s|$)|\S*)\s*')
_NUMBER = re.compile(r"^-?\d+(\.\d+)?([eE][+-]?\d+)?$")
MAX_VALUE = 1000

FieldValue = int | float | str


@dataclass(frozen=True, slots=True)
class FieldFilter:
    key: str
    op: str  # one of OPERATORS
    value: FieldValue

    @property
    def numeric(self) -> bool:
        return not isinstance(self.value, str)

    def matches(self, fields: Mapping[str, object]) -> bool:
        """The same comparison the store makes, on fields already parsed (e.g. pod log lines)."""
        found = fields.get(self.key)
        if isinstance(found, bool):
            found = int(found)
        if found is None or isinstance(found, dict | list):
            return self.op == "!="
        if isinstance(found, str) == self.numeric:  # a number never equals text, nor compares with it
            return self.op == "!="
        if self.numeric and isinstance(found, float) and not math.isfinite(found):
            return self.op == "!="
        a, b = found, self.value
        return {
            "=": a == b,
            "!=": a != b,
            ">": a > b,  # type: ignore[operator]
            ">=": a >= b,  # type: ignore[operator]
            "<": a < b,  # type: ignore[operator]
            "<=": a <= b,  # type: ignore[operator]
        }[self.op]

    def __str__(self) -> str:
        value = json.dumps(self.value, ensure_ascii=False) if isinstance(self.value, str) else self.value
        return f"{self.key}{self.op}{value}"


def parse_filter(text: str, *, field: str = "where") -> FieldFilter:
    """``level=error`` → FieldFilter; a UserError naming ``field`` when it cannot be read."""
    filters = parse_filters([text], field=field)
    if len(filters) != 1:
        raise invalid(field, f"{text!r} is not one filter")
    return filters[0]


def parse_filters(texts: Iterable[str], *, field: str = "where") -> tuple[FieldFilter, ...]:
    """Every ``where`` given; several are ANDed. ``level=error user_id=42`` in one string is two."""
    filters: list[FieldFilter] = []
    for text in texts:
        pos, end = 0, len(text.rstrip())
        if end == 0:
            raise _unreadable(text, field)
        while pos < end:
            match = _ITEM.match(text, pos)
            if match is None or not _KEY.match(match.group(1)):
                raise _unreadable(text, field)
            key, op, raw = match.groups()
            if len(raw) > MAX_VALUE:
                raise invalid(field, f"the value of {key} is longer than {MAX_VALUE} characters")
            filters.append(FieldFilter(key, op, _value(raw, field=field)))
            pos = match.end()
    return tuple(filters)


def _unreadable(text: str, field: str) -> Exception:
    return invalid(
        field,
        f"{text!r} is not KEY OP VALUE: KEY is a field name (letters, digits, _ . - @ $), OP one of "
        f'{" ".join(OPERATORS)}; e.g. level=error, user_id=42, status>=500, msg="two words"',
    )


def _value(raw: str, *, field: str) -> FieldValue:
    if len(raw) >= 2 and raw[0] == raw[-1] == '"':
        try:
            decoded = json.loads(raw)
        except ValueError:
            raise invalid(field, f"{raw} is not a valid quoted string (JSON escapes)") from None
        return str(decoded)
    if raw in ("true", "false"):
        return 1 if raw == "true" else 0  # SQLite's JSON functions give booleans as 1/0
    if _NUMBER.match(raw):
        number = float(raw)
        if not math.isfinite(number):
            raise invalid(field, f"{raw} is not a finite number")
        return int(raw) if re.fullmatch(r"-?\d+", raw) else number
    return raw


def sql_condition(expr: str, flt: FieldFilter) -> tuple[str, list[object]]:
    """The SQL that compares ``expr`` (a value of the record's field) the way ``flt.matches`` does.

    SQLite orders numbers before all text and text before blobs, so ``< ''`` keeps numbers only and
    ``>= '' AND < X''`` keeps text only.
    """
    if flt.op == "=":  # values keep their type (no column affinity): 42 never equals '42'
        return f"{expr} = ?", [flt.value]
    if flt.op == "!=":
        guard = f"{expr} < ''" if flt.numeric else f"({expr} >= '' AND {expr} < X'')"
        return f"({expr} IS NULL OR NOT ({guard}) OR {expr} != ?)", [flt.value]
    guard = f"{expr} < ''" if flt.numeric else f"{expr} >= '' AND {expr} < X''"
    return f"({expr} {flt.op} ? AND {guard})", [flt.value]
