"""Calendars: when a station (and its operators) may work.

A calendar is a weekly pattern of open windows; model time 0 is Monday 00:00.
It has four levels that a capacity policy can switch between at run time:
``base`` shifts (minus breaks), ``base + overtime`` windows,
``base + extra_shift`` (a shift added after a hiring lag, which replaces overtime) and
``base − shed`` (a shift let go in a slump).
Stations without a calendar work around the clock (lights-out, 24/7).
"""

from __future__ import annotations

import re
from bisect import bisect_right

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from .names import Name
from .units import DAY, HOUR, WEEK

LEVELS = (0, 1, 2, 3)  # base, overtime, extra shift, shed
_DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
_HHMM = re.compile(r"^(\d{1,2}):(\d{2})$")


def _parse_days(text: str) -> list[int]:
    out: list[int] = []
    for part in text.lower().replace(" ", "").split(","):
        if part in ("all", "daily", "*"):
            out.extend(range(7))
        elif "-" in part:
            a, b = part.split("-", 1)
            if a not in _DAYS or b not in _DAYS:
                raise ValueError(f"unknown day in {text!r} (use mon..sun, ranges like mon-fri, or all)")
            i, j = _DAYS.index(a), _DAYS.index(b)
            out.extend(range(i, j + 1) if i <= j else list(range(i, 7)) + list(range(0, j + 1)))
        elif part in _DAYS:
            out.append(_DAYS.index(part))
        else:
            raise ValueError(f"unknown day {part!r} in {text!r} (use mon..sun, ranges like mon-fri, or all)")
    return sorted(set(out))


def _parse_clock(text: str) -> float:
    m = _HHMM.match(text.strip())
    if not m:
        raise ValueError(f"malformed time of day {text!r} (use HH:MM)")
    h, mi = int(m.group(1)), int(m.group(2))
    if h > 24 or mi > 59 or (h == 24 and mi):
        raise ValueError(f"time of day out of range: {text!r}")
    return h * HOUR + mi * 60.0


class Window(BaseModel):
    """A daily window on some days of the week, e.g. ``{days = "mon-fri", start = "06:00", end = "14:00"}``.

    ``end`` before ``start`` runs past midnight into the next day.
    """

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)
    days: str = "all"
    """Days: `mon`..`sun`, ranges `mon-fri`, lists `mon,wed`, or `all`."""
    start: str
    """Start time of day, `HH:MM`."""
    end: str
    """End time of day, `HH:MM` (before `start`: runs past midnight)."""

    @field_validator("days")
    @classmethod
    def _days(cls, v: str) -> str:
        _parse_days(v)
        return v

    @field_validator("start", "end")
    @classmethod
    def _clock(cls, v: str) -> str:
        _parse_clock(v)
        return v

    def intervals(self) -> list[tuple[float, float]]:
        """Absolute (s since Monday 00:00) intervals within one week, wrapping at the week's end."""
        a, b = _parse_clock(self.start), _parse_clock(self.end)
        length = b - a if b > a else b + DAY - a
        out = []
        for d in _parse_days(self.days):
            s = d * DAY + a
            e = s + length
            if e <= WEEK:
                out.append((s, e))
            else:
                out.append((s, WEEK))
                out.append((0.0, e - WEEK))
        return out


class CalendarSpec(BaseModel):
    """Named weekly calendar: shifts minus breaks, plus optional overtime and extra-shift windows."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)
    name: Name
    """Unique calendar name."""
    shifts: list[Window] = Field(min_length=1)
    """Open windows of the base pattern."""
    breaks: list[Window] = Field(default_factory=list)
    """Windows cut out of the shifts (meal breaks, planned stops)."""
    overtime: list[Window] = Field(default_factory=list)
    """Windows opened while the capacity policy runs overtime."""
    extra_shift: list[Window] = Field(default_factory=list)
    """Windows of a shift the capacity policy can add after a hiring lag."""
    shed: list[Window] = Field(default_factory=list)
    """Windows of the base the capacity policy can close in a slump (a shift, or its temporary workers, let go)."""

    def pattern(self, level: int) -> np.ndarray:
        """Merged open intervals (n × 2 array, s within the week) at ``level`` 0 base, 1 overtime,
        2 extra shift or 3 shed."""
        ivs = [iv for w in self.shifts for iv in w.intervals()]
        if level == 1:
            ivs += [iv for w in self.overtime for iv in w.intervals()]
        if level == 2:  # the hired shift replaces overtime
            ivs += [iv for w in self.extra_shift for iv in w.intervals()]
        merged = _merge(ivs)
        if level == 3:
            for w in self.shed:
                for b in w.intervals():
                    merged = _subtract(merged, b)
        for w in self.breaks:
            for b in w.intervals():
                merged = _subtract(merged, b)
        return np.array(merged, dtype=float).reshape(-1, 2)


def _merge(ivs: list[tuple[float, float]]) -> list[tuple[float, float]]:
    out: list[list[float]] = []
    for s, e in sorted(ivs):
        if out and s <= out[-1][1]:
            out[-1][1] = max(out[-1][1], e)
        else:
            out.append([s, e])
    return [(s, e) for s, e in out if e > s]


def _subtract(ivs: list[tuple[float, float]], cut: tuple[float, float]) -> list[tuple[float, float]]:
    a, b = cut
    out = []
    for s, e in ivs:
        if e <= a or s >= b:
            out.append((s, e))
            continue
        if s < a:
            out.append((s, a))
        if e > b:
            out.append((b, e))
    return out


def minus(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intervals of pattern ``a`` not in pattern ``b`` (both n × 2 arrays of s within a week)."""
    out = [(float(s), float(e)) for s, e in a]
    for cut in b:
        out = _subtract(out, (float(cut[0]), float(cut[1])))
    return np.array(out, dtype=float).reshape(-1, 2)


class WeeklyPattern:
    """Fast queries on one weekly pattern of open intervals."""

    def __init__(self, ivs: np.ndarray):
        self.starts = ivs[:, 0].copy()
        self.ends = ivs[:, 1].copy()
        # plain lists for the per-event queries: bisect on a short list is ~10x faster than
        # numpy.searchsorted on a scalar
        self._starts = self.starts.tolist()
        self._ends = self.ends.tolist()
        self.always = len(ivs) == 1 and self.starts[0] <= 0 and self.ends[0] >= WEEK
        self.open_per_week = float((self.ends - self.starts).sum())
        # cumulative open seconds at each boundary, for open_seconds()
        self._bp = np.concatenate(([0.0], np.ravel(ivs), [WEEK]))
        cum = [0.0]
        for i in range(1, len(self._bp)):
            seg_open = (i % 2 == 0)  # segments (start_k, end_k) are at odd->even positions
            cum.append(cum[-1] + ((self._bp[i] - self._bp[i - 1]) if seg_open else 0.0))
        self._cum = np.array(cum)

    def open_until(self, t: float) -> float | None:
        """End (absolute) of the open window containing ``t``, or None when closed at ``t``."""
        if self.always:
            return float("inf")
        base = (t // WEEK) * WEEK
        x = t - base
        starts, ends = self._starts, self._ends
        i = bisect_right(ends, x)
        if i < len(starts) and starts[i] <= x < ends[i]:
            end = base + ends[i]
            # a window ending at the week's end may continue at the next week's start
            if ends[i] >= WEEK and starts[0] <= 0.0:
                end = base + WEEK + ends[0]
            return end
        return None

    def next_open(self, t: float) -> float:
        """The first time >= ``t`` at which the calendar is open."""
        if self.always or len(self.starts) == 0:
            return t if self.always else float("inf")
        base = (t // WEEK) * WEEK
        x = t - base
        i = bisect_right(self._ends, x)
        if i < len(self._starts):
            return base + max(self._starts[i], x)
        return base + WEEK + self._starts[0]

    def open_seconds(self, t: np.ndarray) -> np.ndarray:
        """Open seconds in ``[0, t]`` (vectorised)."""
        t = np.asarray(t, dtype=float)
        weeks = np.floor(t / WEEK)
        x = t - weeks * WEEK
        return weeks * self.open_per_week + np.interp(x, self._bp, self._cum)


class CalendarHistory:
    """A calendar's patterns (level 0 base, 1 overtime, 2 extra shift, 3 shed) and the level changes
    of one run: plain data, so results can ask how many seconds were open or paid."""

    __slots__ = ("name", "patterns", "changes")

    def __init__(self, spec: CalendarSpec):
        self.name = spec.name
        self.patterns = [WeeklyPattern(spec.pattern(lv)) for lv in LEVELS]
        self.changes: list[tuple[float, int]] = [(0.0, 0)]  # (from time s, level)

    def open_seconds(self, t0: np.ndarray, t1: np.ndarray) -> np.ndarray:
        """Open seconds within each ``[t0, t1]`` given the recorded level changes (vectorised)."""
        t0 = np.asarray(t0, dtype=float)
        t1 = np.asarray(t1, dtype=float)
        total = np.zeros_like(t0)
        bounds = [c[0] for c in self.changes] + [float("inf")]
        for k, (start, level) in enumerate(self.changes):
            a = np.clip(t0, start, bounds[k + 1])
            b = np.clip(t1, start, bounds[k + 1])
            p = self.patterns[level]
            total += p.open_seconds(b) - p.open_seconds(a)
        return total

    def paid_seconds(self, t0: float, t1: float) -> tuple[float, float]:
        """(regular, overtime) open seconds within ``[t0, t1]``: overtime is what level 1 adds to the base."""
        regular = overtime = 0.0
        bounds = [c[0] for c in self.changes] + [float("inf")]
        base = self.patterns[0]
        for k, (start, level) in enumerate(self.changes):
            a, b = min(max(t0, start), bounds[k + 1]), min(max(t1, start), bounds[k + 1])
            if b <= a:
                continue
            p = self.patterns[level]
            opened = float(p.open_seconds(np.asarray(b)) - p.open_seconds(np.asarray(a)))
            if level == 1:
                reg = float(base.open_seconds(np.asarray(b)) - base.open_seconds(np.asarray(a)))
                regular += reg
                overtime += opened - reg
            else:
                regular += opened
        return regular, overtime
