"""Time units: model time is seconds everywhere; this is the one place that says so.

Specs and options take durations with a unit (``"90s"``, ``"20min"``, ``"2.5h"``, ``"3d"``,
``"1w"``); :func:`parse_duration` turns them into seconds and :func:`format_duration` back into
what a person writes. Code that needs an hour or a week in seconds uses the constants here
(tests/test_imports.py finds any bare ``3600`` or ``86400`` left elsewhere in ``twin/``).
Nothing here imports more than the standard library, so the command-line parser can use it.
"""

from __future__ import annotations

import re
from typing import Any

SECOND = 1.0
MINUTE = 60.0 * SECOND
HOUR = 60.0 * MINUTE
DAY = 24.0 * HOUR
WEEK = 7.0 * DAY
YEAR = 365.0 * DAY  # a calendar year of 365 days (cost annualisation)

WORK_EPS = 1e-9
"""Seconds of work below which a job counts as done (float residue of splitting it at shift
ends and failures)."""

UNITS: dict[str, float] = {
    "ms": 1e-3 * SECOND,
    "s": SECOND,
    "sec": SECOND,
    "min": MINUTE,
    "m": MINUTE,
    "h": HOUR,
    "hr": HOUR,
    "d": DAY,
    "w": WEEK,
    "wk": WEEK,
}
# the same units spelled out ("5 minutes", "2 hours"), as people write them
UNITS.update({name: UNITS[short] for short, names in (
    ("ms", ("msec", "millisecond", "milliseconds")), ("s", ("secs", "second", "seconds")),
    ("min", ("mins", "minute", "minutes")), ("h", ("hrs", "hour", "hours")), ("d", ("day", "days")),
    ("w", ("wks", "week", "weeks"))) for name in names})
_DURATION_RE = re.compile(r"^\s*([-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*([a-zA-Z]*)\s*$")


def parse_duration(value: Any) -> float:
    """Return ``value`` in seconds; accepts numbers (seconds) and strings such as ``"2.5h"``."""
    if isinstance(value, bool):
        raise ValueError("expected a duration (number of seconds or a string like '90s'), got a boolean")
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        m = _DURATION_RE.match(value)
        if not m:
            raise ValueError(f"malformed duration {value!r} (use e.g. '90s', '20min', '2.5h', '3d', '1w')")
        number, unit = m.groups()
        unit = unit.lower() or "s"
        if unit not in UNITS:
            raise ValueError(f"unknown time unit {unit!r} in {value!r} (known: {', '.join(UNITS)})")
        return float(number) * UNITS[unit]
    raise ValueError(f"expected a duration (number of seconds or a string like '90s'), got {type(value).__name__}")


def format_duration(seconds: float, with_seconds: bool = False) -> str:
    """A duration (s) as a person writes it: ``2 w``, ``36 h``, ``90 min``, ``45 s``; the largest
    unit it is a whole number of, else hours to three digits (or seconds below an hour).
    ``with_seconds``: followed by the exact seconds, as messages about an input give them."""
    text = f"{seconds:g} s"
    for unit, size in (("w", WEEK), ("d", DAY), ("h", HOUR), ("min", MINUTE)):
        if seconds >= size and abs(seconds / size - round(seconds / size)) < 1e-9:
            text = f"{seconds / size:g} {unit}"
            break
    else:
        if seconds >= HOUR:
            text = f"{seconds / HOUR:.3g} h"
    return f"{text} ({seconds:g} s)" if with_seconds and not text.endswith(" s") else text


def reading_unit(seconds: float) -> tuple[float, str]:
    """The unit a duration of about ``seconds`` reads best in: (factor from seconds, unit name):
    hours from two hours up, minutes from two minutes, else seconds."""
    return (1 / HOUR, "h") if seconds >= 2 * HOUR else (1 / MINUTE, "min") if seconds >= 2 * MINUTE else (1.0, "s")
