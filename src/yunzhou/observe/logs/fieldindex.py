"""The field index: FTS5 tokens for the top-level scalar fields of JSON records.

Each field gives an equality token ``e<hex key>x<s|n><hex value>``, and each number also a bucket token
``b<hex key>x<p|m><digits><first digit>`` (sign, number of digits and first digit of its integer part),
so ``status>=500`` is the OR of the buckets at or above 500's (``p35``, ``p36`` … ``p4*`` …). Tokens are
letters and digits only, so the plain ``unicode61`` tokenizer keeps each whole (folding the hex digits'
case). The index only narrows the candidates: every filter is then checked on the record's own JSON,
so a bucket's coarseness or a value the index left out (long text) never changes an answer.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from yunzhou.observe.logs.where import FieldFilter

MAX_INDEXED_TEXT = 128  # longer string values are not put in the index (still filterable)
UNINDEXED_KEYS = ("time", "app")  # answered by since/until and the app itself: not worth their entries
# An access record's backend and release are its instance and release columns, its host follows from the
# app, and its request id is in the line (so --grep finds it through the trigram index).
UNINDEXED_ACCESS_KEYS = ("backend", "release", "host", "request_id")
_MAX_DIGITS = 19  # int64

_INT64_MAX = 2**63 - 1
_SKIP = frozenset(UNINDEXED_KEYS)
_SKIP_ACCESS = frozenset(UNINDEXED_KEYS + UNINDEXED_ACCESS_KEYS)
_NUMBERS = frozenset((int, float, bool))
_hex_keys: dict[str, str] = {}
_cache: dict[tuple[str, object, type], str] = {}  # (key, value, type) → its tokens: values repeat a lot
_CACHE_SIZE = 100_000


def field_tokens(fields: Mapping[str, object], *, access: bool) -> str | None:
    """The index tokens of a record's fields (its top-level scalars), or None when there are none.

    Built from the fields the producer already parsed (the supervisor and the tailer parse JSON lines
    anyway), so indexing costs no JSON parsing of its own. Text tokens are made directly (a hex encoding:
    cheaper than a cache lookup, and most text values — ids — never repeat); numbers and booleans are
    cached by (key, value), as their bucket tokens take more work and their values repeat a lot.
    """
    skip = _SKIP_ACCESS if access else _SKIP
    tokens = []
    for key, value in fields.items():
        if key in skip:
            continue
        kind = type(value)
        if kind is str:
            if len(value) > MAX_INDEXED_TEXT:  # type: ignore[arg-type]
                continue
            hex_key = _hex_keys.get(key)
            if hex_key is None:
                hex_key = _hex_key(key)
            if hex_key:
                tokens.append(f"e{hex_key}xs{value.encode('utf-8', 'replace').hex()}")  # type: ignore[attr-defined]
            continue
        if kind not in _NUMBERS:
            continue
        cached = (key, value, kind)
        token = _cache.get(cached)
        if token is None:
            token = _tokens(key, value) if isinstance(key, str) else ""
            if len(_cache) >= _CACHE_SIZE:
                _cache.clear()
            _cache[cached] = token
        if token:
            tokens.append(token)
    return " ".join(tokens) or None


def _hex_key(key: object) -> str:
    """A key's hex spelling in tokens, remembered (keys repeat); "" for what is not a text key."""
    hex_key = key.encode("utf-8", "replace").hex() if isinstance(key, str) else ""
    if len(_hex_keys) < _CACHE_SIZE and isinstance(key, str):
        _hex_keys[key] = hex_key
    return hex_key


def _tokens(key: str, value: object) -> str:
    hex_key = key.encode("utf-8", "replace").hex()
    if isinstance(value, str):
        if len(value) > MAX_INDEXED_TEXT:
            return ""
        return f"e{hex_key}xs{value.encode('utf-8', 'replace').hex()}"
    number = float(value) if isinstance(value, float) else int(value)  # type: ignore[call-overload]
    if isinstance(number, float) and not math.isfinite(number):
        return ""
    text = repr(number) if isinstance(number, float) and not number.is_integer() else str(int(number))
    magnitude = str(min(int(abs(number)), _INT64_MAX))
    bucket = f"{'m' if number < 0 else 'p'}{len(magnitude)}{magnitude[0]}"
    return f"e{hex_key}xn{text.encode().hex()} b{hex_key}x{bucket}"


def indexable(check: FieldFilter) -> bool:
    """Whether the index can narrow ``check``: equalities (text no longer than the index keeps) and
    number comparisons; not ``!=`` or text ranges."""
    if check.key in UNINDEXED_KEYS or check.key in UNINDEXED_ACCESS_KEYS or check.op == "!=":
        return False
    if isinstance(check.value, str):
        return check.op == "=" and len(check.value) <= MAX_INDEXED_TEXT
    return True


def match_expression(checks: list[FieldFilter]) -> str | None:
    """An FTS5 query for the records that may satisfy every indexable check; None when none is."""
    parts = [_check_expression(check) for check in checks if indexable(check)]
    return " AND ".join(parts) if parts else None


def _check_expression(check: FieldFilter) -> str:
    key = _hex(check.key)
    if isinstance(check.value, str):
        return f"e{key}xs{_hex(check.value)}"
    if check.op == "=":
        return " OR ".join(f"e{key}xn{_hex(text)}" for text in _number_texts(check.value))
    buckets = _buckets_for_range(check.value, upward=check.op in (">", ">="))
    return "(" + " OR ".join(f"b{key}x{bucket}" for bucket in buckets) + ")"


def _hex(text: str) -> str:
    return text.encode("utf-8").hex().upper()


def _number_texts(value: int | float) -> list[str]:
    """How ``field_tokens`` writes ``value`` (42 and 42.0 index alike, as ``42``)."""
    if isinstance(value, float) and not value.is_integer():
        return [repr(value)]
    return [str(int(value))]


def _all_magnitudes() -> list[tuple[int, str]]:
    """(digits, first digit) of every integer part, in increasing order."""
    one_digit = [(1, str(f)) for f in range(10)]
    return one_digit + [(d, str(f)) for d in range(2, _MAX_DIGITS + 1) for f in range(1, 10)]


def _buckets_for_range(bound: int | float, *, upward: bool) -> list[str]:
    """The buckets that can hold a number above (``upward``) or below ``bound``, its own included."""
    text = str(min(int(abs(float(bound))), 2**63 - 1))
    own = (len(text), text[0])
    magnitudes = _all_magnitudes()
    smaller = [f"{d}{f}" for d, f in magnitudes if (d, f) <= own]
    larger = [f"{d}{f}" for d, f in magnitudes if (d, f) >= own]
    every = [f"{d}{f}" for d, f in magnitudes]
    if upward == (bound >= 0):  # away from zero on the bound's side: larger magnitudes of its sign
        return [("p" if bound >= 0 else "m") + m for m in larger]
    # towards zero and past it: smaller magnitudes of the bound's sign, every number of the other sign
    own_sign, other_sign = ("p", "m") if bound >= 0 else ("m", "p")
    return [own_sign + m for m in smaller] + [other_sign + m for m in every]
