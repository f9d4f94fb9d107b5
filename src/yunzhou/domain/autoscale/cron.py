"""Five-field cron expressions evaluated in an IANA time zone (pure; no clock of its own).

``minute hour day-of-month month day-of-week`` with ``*``, lists, ranges, steps (``*/15``, ``1-5/2``),
month and weekday names (``jan``, ``mon``), 0 or 7 for Sunday, and the macros ``@hourly @daily
@weekly @monthly @yearly``. As in Vixie cron, when both day-of-month and day-of-week are restricted
a day matching either fires.

Daylight-saving time follows Vixie cron too: a wall time that is skipped (spring forward, e.g.
02:30 in Europe/Berlin on the last Sunday of March) fires once at the moment of the jump; a wall time
that happens twice (fall back) fires once, at its first occurrence.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

_MACROS = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
}
_MONTH_NAMES = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_DAY_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_MONTHS = {m: i + 1 for i, m in enumerate(_MONTH_NAMES)}
_DAYS = {d: i for i, d in enumerate(_DAY_NAMES)}
_NONE: dict[str, int] = {}
_FIELDS: tuple[tuple[str, int, int, dict[str, int]], ...] = (
    ("minute", 0, 59, _NONE),
    ("hour", 0, 23, _NONE),
    ("day-of-month", 1, 31, _NONE),
    ("month", 1, 12, _MONTHS),
    ("day-of-week", 0, 7, _DAYS),
)
_ITEM_RE = re.compile(r"^(\*|[a-z0-9]+(?:-[a-z0-9]+)?)(?:/(\d+))?$")


class CronError(ValueError):
    pass


@dataclass(frozen=True)
class Cron:
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday
    any_day: bool
    any_weekday: bool

    def matches_day(self, d: date) -> bool:
        if d.month not in self.months:
            return False
        dom = d.day in self.days
        dow = (d.isoweekday() % 7) in self.weekdays
        if self.any_day and self.any_weekday:
            return True
        if self.any_day:
            return dow
        if self.any_weekday:
            return dom
        return dom or dow


def parse_cron(expr: str) -> Cron:
    text = _MACROS.get(expr.strip().lower(), expr.strip().lower())
    parts = text.split()
    if len(parts) != 5:
        raise CronError("must have 5 fields: minute hour day-of-month month day-of-week (or @daily …)")
    sets = [_parse_field(p, *spec) for p, spec in zip(parts, _FIELDS, strict=True)]
    weekdays = frozenset(d % 7 for d in sets[4])
    return Cron(sets[0], sets[1], sets[2], sets[3], weekdays, parts[2] == "*", parts[4] == "*")


def cron_problem(expr: object) -> str | None:
    """None when ``expr`` is a valid cron expression, else what is wrong (for a FieldProblem)."""
    if not isinstance(expr, str):
        return "required: a 5-field cron expression such as '0 8 * * 1-5'"
    try:
        parse_cron(expr)
    except CronError as exc:
        return str(exc)
    return None


def _value(token: str, name: str, low: int, high: int, names: dict[str, int]) -> int:
    if token in names:
        return names[token]
    if not token.isdigit() or not low <= int(token) <= high:
        raise CronError(f"{name}: {token!r} is not a value {low}-{high}")
    return int(token)


def _parse_field(text: str, name: str, low: int, high: int, names: dict[str, int]) -> frozenset[int]:
    out: set[int] = set()
    for item in text.split(","):
        m = _ITEM_RE.match(item)
        if not m:
            raise CronError(f"{name}: cannot read {item!r}")
        base, step_text = m.group(1), m.group(2)
        step = int(step_text) if step_text else 1
        if step < 1:
            raise CronError(f"{name}: step must be at least 1")
        if base == "*":
            start, end = low, high
        elif "-" in base:
            a, b = base.split("-", 1)
            start, end = _value(a, name, low, high, names), _value(b, name, low, high, names)
            if start > end:
                raise CronError(f"{name}: range {base!r} runs backwards")
        else:
            start = _value(base, name, low, high, names)
            end = high if step_text else start
        out.update(range(start, end + 1, step))
    return frozenset(out)


def _fire_instant(d: date, hour: int, minute: int, zone: ZoneInfo) -> datetime:
    """The UTC instant a wall time fires at, with Vixie cron's DST rules (see the module docstring)."""
    wall = datetime(d.year, d.month, d.day, hour, minute)
    first = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    if first.astimezone(zone).replace(tzinfo=None) == wall:
        return first  # exists (for a repeated time, fold=0 is the first occurrence)
    # Skipped wall time: the earliest instant whose local wall time is past it is the jump itself.
    lo = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
    hi = first
    while (hi - lo) > timedelta(seconds=1):
        mid = lo + (hi - lo) / 2
        if mid.astimezone(zone).replace(tzinfo=None) >= wall:
            hi = mid
        else:
            lo = mid
    return hi.replace(microsecond=0)


def last_fire(cron: Cron, tz: str, at: datetime, not_before: datetime) -> datetime | None:
    """The latest firing instant in ``[not_before, at]`` (aware datetimes), or None."""
    zone = ZoneInfo(tz)
    day = at.astimezone(zone).date() + timedelta(days=1)  # a skipped time may fire on the day before
    stop = not_before.astimezone(zone).date() - timedelta(days=1)
    times = sorted(((h, m) for h in cron.hours for m in cron.minutes), reverse=True)
    while day >= stop:
        if cron.matches_day(day):
            for hour, minute in times:
                fire = _fire_instant(day, hour, minute, zone)
                if fire <= at:
                    return fire if fire >= not_before else None
        day -= timedelta(days=1)
    return None
