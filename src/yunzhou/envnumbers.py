"""Numbers from ``YUNZHOU_*`` environment variables, one rule for every background loop: empty means
the default; anything else must parse and lie within bounds, or start-up stops with a message that
names the variable, what it holds and what is allowed."""

from __future__ import annotations

import os
from collections.abc import Mapping


def number_from_env(
    name: str,
    default: float,
    low: float,
    high: float,
    *,
    unit: str = "",
    environ: Mapping[str, str] | None = None,
) -> float:
    raw = (os.environ if environ is None else environ).get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not low <= value <= high:  # NaN fails too
        what = f"a number of {unit}" if unit else "a number"
        raise ValueError(f"{name}={raw!r}: must be {what} from {low:g} to {high:g}")
    return value


def seconds_from_env(name: str, default: float, environ: Mapping[str, str] | None = None) -> float:
    """An interval for a loop: 0.05 to 3600 seconds."""
    return number_from_env(name, default, 0.05, 3600, unit="seconds", environ=environ)
