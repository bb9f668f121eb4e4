"""What a replay needs that a run does not record: buffer levels, vehicle trips, unit flows.

A watched run (``Model(..., watch=Watch(...))``) records, besides its usual record, three things
the animated replay and the material-flow view draw, and nothing else changes (the same events
in the same order, the same draws: its record is the unwatched run's, tested):

- ``levels``: ``(t, buffer, level)`` each time the number of lots waiting in a lane's buffer
  changes within the window, and every buffer's level at the window's start (``buffers`` names
  them ``(station, lane)``). A lot handed straight to a waiting server never waits: no change.
- ``legs``: one row per vehicle trip that overlaps the window (:data:`twin.layouts.LAYOUTS`).
- ``flows``: units that started work at a station, by the station they came from
  (:data:`twin.layouts.RELEASED` for a lot's first station), counted from ``flows_from`` on; and
  ``ends``: units that finished good or were scrapped, by the station they left from.

It is the run's trace (the server loop's lot events) read as it happens instead of stored, so
a long run keeps only counts; buffers log through their queue (:class:`LoggedQueue`), so the
hot path of an unwatched run is untouched.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from simpy.core import URGENT
from simpy.events import Event

from .flow import SortedQueue
from .layouts import GOOD, RELEASED, SCRAPPED
from .record import Fate
from .state import TraceEvent

if TYPE_CHECKING:
    from .model import Model

_START = int(TraceEvent.START)
_GOOD_FATE = int(Fate.GOOD)


@dataclass(frozen=True)
class Watch:
    """What a watched run records: levels and vehicle trips within ``[start, end]`` (s, the
    run's clock) and unit flows from ``flows_from`` (s) on."""

    start: float
    end: float
    flows_from: float = 0.0


class _Logging:
    """The queue methods a buffer mutates its waiting lots with, each also logging the level."""

    w: "Watcher"
    bid: int

    def append(self, lot: Any) -> None:
        super().append(lot)  # type: ignore[misc]
        self.w.level(self.bid, len(self))  # type: ignore[arg-type]

    def appendleft(self, lot: Any) -> None:
        super().appendleft(lot)  # type: ignore[misc]
        self.w.level(self.bid, len(self))  # type: ignore[arg-type]

    def popleft(self) -> Any:
        lot = super().popleft()  # type: ignore[misc]
        self.w.level(self.bid, len(self))  # type: ignore[arg-type]
        return lot

    def remove(self, lot: Any) -> None:
        super().remove(lot)  # type: ignore[misc]
        self.w.level(self.bid, len(self))  # type: ignore[arg-type]


class LoggedQueue(_Logging, deque):
    """A FIFO buffer's queue that logs its level."""


class LoggedSortedQueue(_Logging, SortedQueue):
    """A sorted (queue discipline) buffer's queue that logs its level."""


class _FlowTrace:
    """Stands in for the record's trace list: reads each lot event as the server loop appends it
    and keeps only the flow counts (``append`` is all the loop calls)."""

    __slots__ = ("w",)

    def __init__(self, w: "Watcher"):
        self.w = w

    def append(self, ev: tuple[float, int, int, int, int, int]) -> None:
        if ev[5] == _START:
            w = self.w
            st = w.station_of_server[ev[1]]
            lot = ev[2]
            src = w.last.get(lot, RELEASED)
            w.last[lot] = st
            if ev[0] >= w.window.flows_from:
                key = (src, st)
                w.flows[key] = w.flows.get(key, 0) + ev[4]

    def __len__(self) -> int:  # the memory check counts stored events: none
        return 0


class Watcher:
    """Installs the logging on a built model (before its processes start) and closes it."""

    def __init__(self, model: "Model", window: Watch):
        self.model = model
        self.window = window
        self.env = model.env
        rec = model.rec
        self.levels = rec.levels
        self.flows: dict[tuple[int, int], int] = {}
        self.last: dict[int, int] = {}  # lot id -> index of the station it last started at
        index = {s.name: i for i, s in enumerate(model.spec.stations)}
        self.station_of_server = [index.get(s, -1) for s, _ in rec.servers]  # vehicles: -1
        self.station_of_buffer: dict[int, int] = {}
        self.queues: list[Any] = []
        for st in model.stations.values():
            for k, ln in enumerate(st.lanes):
                buf = ln.buffer
                items = buf.items
                if isinstance(items, SortedQueue):
                    q: Any = LoggedSortedQueue(items.key)
                    for lot in items:
                        SortedQueue.append(q, lot)
                else:
                    q = LoggedQueue(items)
                q.w, q.bid = self, len(self.queues)
                buf.items = q
                self.queues.append(q)
                self.station_of_buffer[id(buf)] = st.index
                rec.buffers.append((st.name, k))
        rec.trace = _FlowTrace(self)  # type: ignore[assignment]
        for f in model.fleets:
            f.legs = rec.legs
            f.watch = self
        rec.window = (window.start, window.end, window.flows_from)
        # every level at the window's start, before anything else happens at that time
        ev = Event(self.env)
        ev._ok = True
        ev._value = None
        ev.callbacks.append(self._opening)  # type: ignore[union-attr]
        self.env.schedule(ev, URGENT, max(0.0, window.start - self.env.now))

    def _opening(self, _: Any) -> None:
        now = self.env.now
        for q in self.queues:
            self.levels.append((now, q.bid, len(q)))

    def level(self, bid: int, n: int) -> None:
        now = self.env.now
        if self.window.start <= now <= self.window.end:
            self.levels.append((now, bid, n))

    def station_at(self, lot: Any) -> int:
        """Index of the station ``lot`` last started work at (-1: none yet)."""
        return self.last.get(lot.id, RELEASED)

    def close(self) -> None:
        """Counts into the record: flows and where finished and scrapped units left from."""
        rec = self.model.rec
        rec.trace = None
        rec.flows = [(a, b, n) for (a, b), n in sorted(self.flows.items())]
        ends: dict[tuple[int, int], int] = {}
        t0 = self.window.flows_from
        for lot, t, units, _, fate in rec.finishes:
            if t >= t0 and fate == _GOOD_FATE and units > 0:
                key = (self.last.get(lot, RELEASED), GOOD)
                ends[key] = ends.get(key, 0) + units
        for _lot, t, station, units, _ in rec.scraps:
            if t >= t0:
                key = (station, SCRAPPED)
                ends[key] = ends.get(key, 0) + units
        rec.ends = [(a, b, n) for (a, b), n in sorted(ends.items())]
