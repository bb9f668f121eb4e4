"""Who may work when, at run time: worker pools and calendars (SimPy objects).

A worker pool is a counting pool of identical workers (operators, technicians).

A FIFO counting semaphore on SimPy events instead of ``simpy.Container``: taking workers
that are free is a plain decrement (no event scheduled), which matters because every lot
on a manned station takes and returns its crew; a request that must wait gets an event and
is served strictly in arrival order, as with a Container.
"""

from __future__ import annotations

from collections import deque

import simpy

from .calendar import CalendarHistory, CalendarSpec, WeeklyPattern


class Pool:
    """``size`` identical workers; a server takes ``n`` of them while it works."""

    __slots__ = ("env", "size", "level", "waiters")

    def __init__(self, env: simpy.Environment, size: int):
        self.env = env
        self.size = size
        self.level = size  # workers free now
        self.waiters: deque[tuple[int, simpy.Event]] = deque()

    def try_get(self, n: int) -> bool:
        """Take ``n`` workers at once if they are free and nobody is waiting before us."""
        if not self.waiters and self.level >= n:
            self.level -= n
            return True
        return False

    def get_event(self, n: int) -> simpy.Event:
        """An event that fires when ``n`` workers have been taken (call after ``try_get`` failed)."""
        ev = self.env.event()
        self.waiters.append((n, ev))
        return ev

    def put(self, n: int) -> None:
        """Return ``n`` workers; serve waiting requests in arrival order."""
        self.level += n
        waiters = self.waiters
        while waiters and self.level >= waiters[0][0]:
            k, ev = waiters.popleft()
            self.level -= k
            ev.succeed()


class Calendar:
    """Runtime calendar with a switchable level (0 base, 1 overtime, 2 extra shift, 3 shed); its
    :class:`~twin.calendar.CalendarHistory` is what the run's record keeps."""

    __slots__ = ("env", "spec", "name", "history", "patterns", "level", "changed")

    def __init__(self, env: simpy.Environment, spec: CalendarSpec):
        self.env = env
        self.spec = spec
        self.name = spec.name
        self.history = CalendarHistory(spec)
        self.patterns = self.history.patterns
        self.level = 0
        self.changed = env.event()

    @property
    def pattern(self) -> WeeklyPattern:
        return self.patterns[self.level]

    def open_until(self, t: float) -> float | None:
        """End of the open window containing ``t`` (s), or None when closed."""
        return self.patterns[self.level].open_until(t)

    def next_open(self, t: float) -> float:
        """The first time >= ``t`` (s) at which the calendar is open."""
        return self.patterns[self.level].next_open(t)

    def set_level(self, level: int) -> None:
        """Switch pattern (capacity policy); wakes servers waiting for the next opening."""
        if level == self.level:
            return
        self.level = level
        self.history.changes.append((self.env.now, level))
        ev, self.changed = self.changed, self.env.event()
        ev.succeed()

    def wait_open(self):
        """SimPy generator: wait until open (re-checking when the level changes)."""
        env = self.env
        while self.open_until(env.now) is None:
            t = self.next_open(env.now)
            if t == float("inf"):
                yield self.changed
            else:
                yield env.timeout(t - env.now) | self.changed
