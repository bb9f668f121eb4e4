"""What happened in one run, as plain data (DESIGN §3: model → record → results).

The engine appends plain tuples to the lists below (the hot path never builds
objects or DataFrames); :meth:`Record.array` gives any of them back as a numpy
structured array with named fields, which is how everything downstream reads
them. A record holds no SimPy object, so it pickles and outlives its model.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Any

import numpy as np

from .calendar import CalendarHistory
from .layouts import LAYOUTS
from .spec import Spec


class Fate(IntEnum):
    """How a lot left the line (``finishes.code``)."""

    LOST = -1
    """Turned away at a full first buffer (never entered)."""
    SCRAPPED = 0
    """Every unit found defective and scrapped."""
    GOOD = 1
    """Reached the end of its route."""


class MaintKind(IntEnum):
    """``maint.kind``: what stopped the machine."""

    REPAIR = 0
    PLANNED = 1


class Record:
    """Plain lists of tuples appended during a run, plus what the tables need to read them.

    Lists (fields in :data:`LAYOUTS`): ``states`` (a server's state from ``t`` on, a
    :class:`~twin.state.State` value), ``releases``, ``finishes`` (``fate`` a :class:`Fate`),
    ``scraps``, ``reworks`` (found defects repaired; the units go on), ``maint`` (``kind`` a
    :class:`MaintKind`), ``orders`` and ``deliveries`` (make-to-order runs), ``events`` (rare
    control events: capacity changes, disruptions), ``minor`` (minor stops), ``stock`` (a
    component store's level and backorders from ``t`` on), ``demands`` (requests on a store,
    ``filled`` 1 when served from stock at once), ``purchases`` (orders placed with suppliers,
    with the delivery time), ``forecasts`` (a planner's forecast, made at ``t``, of the units
    ordered in the next ``span`` s) and ``trace`` (lot events per server, a
    :class:`~twin.state.TraceEvent`; ``None`` unless the run was traced). A watched run
    (:mod:`twin.watch`) also fills ``levels``, ``legs``, ``flows`` and ``ends``, names its lanes'
    buffers in ``buffers`` (``(station, lane)``) and its window in ``window``
    (``(start, end, flows_from)`` s; ``None`` for a run not watched).

    Set when the run ends: ``horizon``/``warmup`` (s), per-server counters at the warm-up
    and at the end (``(units, ideal seconds)``), and the calendars' histories.
    """

    __slots__ = ("states", "releases", "finishes", "scraps", "reworks", "maint", "orders", "deliveries", "events",
                 "minor", "stock", "demands", "purchases", "forecasts", "fleets", "history_lives", "components", "trace", "spec", "seed", "servers", "products", "stations", "station_calendar", "calendars",
                 "orders_mode", "horizon", "warmup", "counters_at_warmup", "counters_at_end", "end_time",
                 "start", "levels", "legs", "flows", "ends", "buffers", "window")

    def __init__(self, spec: Spec, seed: int, trace: bool = False):
        self.states: list[tuple[float, int, int]] = []
        self.releases: list[tuple[int, int, int, float]] = []
        self.finishes: list[tuple[int, float, int, int, int]] = []
        self.scraps: list[tuple[int, float, int, int, float]] = []
        self.reworks: list[tuple[int, float, int, int]] = []
        self.maint: list[tuple[float, int, int, float, float]] = []
        self.orders: list[tuple[int, int, int, float, float]] = []
        self.deliveries: list[tuple[int, float]] = []
        self.events: list[tuple[float, str, str]] = []
        self.minor: list[tuple[float, int, float]] = []
        self.stock: list[tuple[float, int, int, int]] = []
        self.demands: list[tuple[float, int, int, int]] = []
        self.purchases: list[tuple[float, int, int, float]] = []
        self.forecasts: list[tuple[float, float, float]] = []
        self.fleets: list[str] = []  # transport fleets; their vehicles are servers named after them
        # per station with a learning maintenance policy: the machine lives of its own history it started from
        self.history_lives: dict[str, int] = {}
        self.components: list[str] = [c.name for c in spec.components]
        self.trace: list[tuple[float, int, int, int, int, int]] | None = [] if trace else None
        self.spec = spec
        self.seed = seed
        self.servers: list[tuple[str, int]] = []  # (station name, server number) by server index
        self.products: list[str] = [p.name for p in spec.products]
        self.stations: list[str] = [s.name for s in spec.stations]
        self.station_calendar: dict[str, str] = {}  # station -> name of the calendar it works to
        self.calendars: dict[str, CalendarHistory] = {}
        self.orders_mode = False
        self.horizon = 0.0
        self.warmup = 0.0
        self.counters_at_warmup: list[tuple[int, float]] = []
        self.counters_at_end: list[tuple[int, float]] = []
        self.end_time = 0.0  # the simulated time the run reached (s)
        self.start = 0.0  # the simulated time the run began at (s): 0, or a snapshot's time
        self.levels: list[tuple[float, int, int]] = []
        self.legs: list[tuple[float, float, float, float, float, int, int, int]] = []
        self.flows: list[tuple[int, int, int]] = []
        self.ends: list[tuple[int, int, int]] = []
        self.buffers: list[tuple[str, int]] = []
        self.window: tuple[float, float, float] | None = None

    def array(self, name: str) -> np.ndarray:
        """One list as a structured array with the named fields of :data:`LAYOUTS`."""
        rows: Any = getattr(self, name)
        dtype = np.dtype(LAYOUTS[name])
        if isinstance(rows, np.ndarray):  # written whole, as the serial-line fast path does
            return rows
        if not rows:
            return np.zeros(0, dtype=dtype)
        return np.array(rows, dtype=dtype)

    def servers_of(self, station: str) -> int:
        """Number of servers (all lanes) of ``station``."""
        return sum(1 for s, _ in self.servers if s == station)

    def calendar_of(self, station: str) -> CalendarHistory | None:
        """The calendar history ``station`` works to, or None (24/7)."""
        name = self.station_calendar.get(station)
        return self.calendars.get(name) if name else None
