"""Time bounds people type: a duration before now (``90s``, ``10m``, ``1h30m``, ``2d``) or RFC 3339."""

from __future__ import annotations

import re

from yunzhou.domain.errors import invalid
from yunzhou.observe.logs.records import parse_rfc3339

_UNIT_SECONDS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION = re.compile(r"^(?:\d+(?:\.\d+)?[smhd])+$")
_PART = re.compile(r"(\d+(?:\.\d+)?)([smhd])")


def parse_time_bound(value: str, *, now: float, field: str = "since") -> float:
    """``value`` as unix time: a duration counts back from ``now``; RFC 3339 needs ``Z`` or an offset.

    Raises a UserError naming ``field`` otherwise.
    """
    text = value.strip()
    if _DURATION.match(text):
        return now - sum(float(n) * _UNIT_SECONDS[unit] for n, unit in _PART.findall(text))
    unix = parse_rfc3339(text)
    if unix is not None:
        return unix
    raise invalid(
        field,
        f"{value!r} is neither a duration (e.g. 90s, 10m, 1h30m, 2d) "
        "nor an RFC 3339 time with a zone (e.g. 2024-05-01T10:00:00Z)",
    )
