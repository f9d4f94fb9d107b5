"""The field index: FTS5 tokens for the top-level scalar fields of JSON records.

Each field gives an equality token ``e<hex key>x<s|n><hex value>``, and each number also a bucket token
``b<hex key>x<p|m><digits><first digit>`` (sign, number of digits and first digit of its integer part),
so ``status>=500`` is the OR of the buckets at or above 500's (``p35``, ``p36`` … ``p4*`` …). Tokens are
letters and digits only, so the plain ``unicode61`` tokenizer keeps each whole. The index only narrows
the candidates: every filter is then checked on the record's own JSON, so a bucket's coarseness or a
value the index left out (long text) never changes an answer.
"""

from __future__ import annotations

from yunzhou.observe.logs.where import FieldFilter

MAX_INDEXED_TEXT = 128  # longer string values are not put in the index (still filterable)
UNINDEXED_KEYS = ("time", "app")  # answered by since/until and the app itself: not worth their entries
# An access record's backend and release are its instance and release columns, its host follows from the
# app, and its request id is in the line (so --grep finds it through the trigram index).
UNINDEXED_ACCESS_KEYS = ("backend", "release", "host", "request_id")
_MAX_DIGITS = 19  # int64

_NUMBER_TEXT = (
    "CASE WHEN j.type = 'real' AND j.value = CAST(j.value AS INTEGER)"
    " THEN CAST(CAST(j.value AS INTEGER) AS TEXT) ELSE CAST(j.value AS TEXT) END"
)
_MAGNITUDE = "CAST(CAST(abs(CAST(j.value AS REAL)) AS INTEGER) AS TEXT)"
_TOKENS = (
    "'e' || hex(j.key) || 'x' || CASE WHEN j.type = 'text' THEN 's' || hex(j.value)"
    f" ELSE 'n' || hex({_NUMBER_TEXT}) || ' b' || hex(j.key) || 'x'"
    f" || CASE WHEN j.value < 0 THEN 'm' ELSE 'p' END || length({_MAGNITUDE}) || substr({_MAGNITUDE}, 1, 1)"
    " END"
)


def insert_sql(fields_json: str) -> str:
    """Index the fields of the records with ``id > ?`` (one statement per batch; a subquery per record
    rather than a GROUP BY, which would sort)."""
    unindexed = ", ".join(f"'{key}'" for key in UNINDEXED_KEYS)
    access = ", ".join(f"'{key}'" for key in UNINDEXED_ACCESS_KEYS)
    tokens = (
        f"SELECT group_concat({_TOKENS}, ' ') FROM json_each({fields_json}) AS j"  # noqa: S608 - fixed
        " WHERE j.type IN ('integer', 'real', 'text', 'true', 'false')"
        f" AND (j.type != 'text' OR length(j.value) <= {MAX_INDEXED_TEXT}) AND j.key NOT IN ({unindexed})"
        f" AND NOT (l.stream = 'access' AND j.key IN ({access}))"
    )
    return (
        "INSERT INTO fields_fts (rowid, tokens)"  # noqa: S608 - fixed fragments only
        f" SELECT l.id, ({tokens}) FROM logs AS l WHERE l.id > ? AND l.fields IS NOT NULL"
    )


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
    """How SQLite writes ``value`` as text, for an integer and for an integral real (42 and 42.0 index
    alike, as ``42``)."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**63:
        return [str(int(value))]
    if isinstance(value, float):
        return [repr(value), f"{value:.15g}"]  # SQLite prints reals with 15 significant digits
    return [str(value)]


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
