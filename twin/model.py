"""Build one run's world from a spec and run it (DESIGN §3, §6).

``Model(spec, seed, horizon).run(horizon, warmup)`` returns a :class:`~twin.record.Record`:
plain data that :func:`twin.results.build` turns into tables. The runtime objects live in
:mod:`twin.station` (stations, servers, the server loop), :mod:`twin.reliability`,
:mod:`twin.quality` and :mod:`twin.release` (sources, orders, delivery).
"""

from __future__ import annotations

from typing import Any, Callable

import simpy
from simpy.core import URGENT, StopSimulation
from simpy.events import Event

from . import policies
from .flow import Sink
from .record import Record
from .release import Release
from .restore import capture, restore
from .snapshot import Snapshot
from .spec import SimulationError, Spec, SpecError
from .station import StationRuntime
from .streams import Streams
from .supply import build_stores
from .transport import build_fleets
from .watch import Watch, Watcher
from .workforce import Calendar, Pool

PROGRESS_STEPS = 100
# The watchdog on simulated time: every STUCK_EVENTS events, time must have advanced by at least
# STUCK_SHARE of the horizon. Slower, the run would need more than STUCK_EVENTS / STUCK_SHARE
# (2e9) events, hours of CPU in pure Python: a zero-time loop or an interval near zero, never a
# real line (the reference factories advance ~1e-7 of their horizon per event, 400 times the
# floor, and a 10-year horizon of the dark factory is ~2e8 events).
STUCK_EVENTS = 500_000
STUCK_SHARE = 2.5e-4


class Model(Release):
    """One run's world: environment, streams, record and runtime objects."""

    def __init__(self, spec: Spec, seed: int, horizon: float | None = None, unit_sampling: bool = False,
                 trace: bool = False, replay: list[tuple[float, int, int]] | None = None, general: bool = False,
                 replay_lossy: bool = False, state: Snapshot | None = None, state_source: str = "<snapshot>",
                 watch: Watch | None = None):
        """``horizon``: s (default the spec's). ``unit_sampling``: draw a lot's processing time
        as the sum of its units' times instead of one moment-matched draw (slower; validates
        lot-level runs). ``trace``: record every lot's start/end/setup/blocking/leave events
        (for event logs). ``replay``: release lots ``(t s, product index, qty)`` at those times
        instead of the spec's source (to replay a real line's releases); a replayed lot that finds the
        first buffer full waits at the entrance, or with ``replay_lossy`` is turned away (a log
        that records its ``lost`` arrivals). ``general``: take
        no shortcut in the server loop (for the test that the shortcuts change nothing).
        ``state``: start from this snapshot of the line (:mod:`twin.snapshot`), the clock at its
        ``time`` (s); ``horizon`` then counts from time 0 of the line's clock, like the snapshot's
        time (run it to ``state.time`` plus the time to look ahead). ``watch``: also record buffer
        levels, vehicle trips and unit flows for a replay (:mod:`twin.watch`; the record is otherwise
        the same).

        The spec is checked as a loaded one is (a spec built or edited in Python too):
        :class:`~twin.spec.SpecError` lists its problems before anything is built."""
        errors = spec.problems()[0]
        if errors:
            raise SpecError([f"<spec {spec.name}>: {p}: {m}" for p, m in errors])
        self.spec = spec
        self.seed = seed
        self.unit_sampling = unit_sampling
        self.replay = replay
        self.replay_lossy = replay_lossy
        self.general = general
        self.horizon = float(horizon if horizon is not None else spec.run.horizon)
        self.t_start = state.time if state is not None else 0.0
        self.env = simpy.Environment(initial_time=self.t_start)
        # time factor of manual work now (a capacity policy's learning curve for new crews), or None
        self.pace: Any = None
        self.streams = Streams(seed)
        self.rec = Record(spec, seed, trace=trace)
        self.product_names = [p.name for p in spec.products]
        self.calendars = {c.name: Calendar(self.env, c) for c in spec.calendars}
        self.rec.calendars = {n: c.history for n, c in self.calendars.items()}
        # a pool counts free workers so a station can hold a crew of several at once
        self.pools = {w.name: Pool(self.env, w.size) for w in spec.workers}
        self._build(state, state_source, watch)

    def _build(self, state: Snapshot | None, state_source: str, watch: Watch | None) -> None:
        """Build the run's parts in the one order they depend on each other: what each step reads
        is made by a step above it. No process runs during the build (SimPy starts them when the run
        advances), but the order processes are created in fixes the order of same-time events, so
        it is part of the results: a reordering here is a change of results, not a refactor."""
        spec = self.spec
        # 1. release state (lot numbers, sizes, WIP counters) and what the stations' steps ask of it
        self._build_release()
        self.rec.orders_mode = self.orders_mode
        self._disrupted = {sh.target for sh in spec.shifts if sh.kind == "disruption" and sh.target}
        self.route_names = [list(p.route) for p in spec.products]
        self.detours = any(s.routing or (s.quality is not None and s.quality.rework_at) for s in spec.stations)
        # 2. component stores (a station's material step reads them)
        self.stores, self.takes = build_stores(self)
        self.in_transit: set = set()  # lots on a vehicle
        self.plant_lots: list[int] = []  # a state start's lots: the line's own number of lot i
        self.plant_shift = 0  # and of later lots: their number here plus this
        # 3. stations: lanes, buffers, servers (server numbers are the record's server order)
        self.stations: dict[str, StationRuntime] = {}
        for i, s in enumerate(spec.stations):
            st = StationRuntime(self, s, i)
            self.stations[s.name] = st
            if st.calendar is not None:
                self.rec.station_calendar[s.name] = st.calendar.name
        # 4. the sink and the source (a saturated source replaces the first station's buffer)
        self.sink = Sink(self._finish)
        self._build_source()
        self.routes = [tuple(self.stations[nm].input for nm in p.route) + (self.sink,) for p in spec.products]
        # 5. fleets (their vehicles follow the stations' servers in the record)
        self.fleets, self._fleet_pairs, self._fleet_every = build_fleets(self)
        self._station_of = {id(st.input): st for st in self.stations.values()}
        self._moves: dict[tuple[int, int], tuple[Any, Any, bool]] = {}  # see moved_by
        # 6. a watch (it swaps the buffers' queues, final since step 4) and a state start's lots
        self.watcher = Watcher(self, watch) if watch is not None else None
        if state is not None:  # before the servers' processes are made: they read what it sets
            restore(self, state, state_source)
        # 7. processes: vehicles, servers, the order book, the capacity policy
        for f in self.fleets:
            f.start()
        for st in self.stations.values():
            for srv in st.servers:
                self.env.process(st.serve(srv))
        if self.orders_mode:
            self._build_orders()
        self.capacity = policies.get("capacity", spec.capacity.policy)(self)
        self.capacity.start()

    def snapshot(self) -> Snapshot:
        """The line's state now (its clock), as :meth:`Model(..., state=...)` starts from it."""
        return capture(self)

    def moved_by(self, st: StationRuntime, srv: Any, lot: Any, nxt: Any) -> tuple[Any, Any]:
        """The input ``lot`` is put into on its way from ``st`` to ``nxt`` (a lane's buffer when
        the lane is chosen now) and the fleet that carries it there (None: no vehicle)."""
        key = (st.index, id(nxt))
        move = self._moves.get(key)
        if move is None:  # what depends only on the two stations, worked out once per pair
            dest = self._station_of.get(id(nxt))
            fleet = None
            if dest is not None:  # None: the sink
                fleet = self._fleet_pairs.get((st.name, dest.name))
                if fleet is None and self._fleet_every:
                    fleet = self._fleet_every[0]
            multi = dest is not None and len(dest.lanes) > 1
            move = self._moves[key] = (fleet, dest.input if dest is not None and multi else None,
                                       fleet is not None and fleet.spec.cross_lane)
        fleet, dispatcher, cross_lane = move
        if fleet is None:
            return nxt, None
        if dispatcher is not None:  # the lane is chosen now: the vehicle needs its destination
            nxt = dispatcher.route(lot)
        if cross_lane:
            here = srv.lane.index if len(st.lanes) > 1 else lot.lane
            if dispatcher is None or here is None or here == lot.target:
                return nxt, None
        return nxt, fleet

    def disrupted(self, station: str) -> bool:
        """Whether a scenario disruption stops ``station`` at some time."""
        return station in self._disrupted

    def counters(self) -> list[tuple[int, float]]:
        """Per server ``(units processed, ideal processing time s)`` so far."""
        return [(s.units, s.ideal) for st in self.stations.values() for s in st.servers]

    def run(self, until: float | None = None, warmup: float = 0.0,
            progress: Callable[[float], None] | None = None) -> Record:
        """Advance the model to ``until`` seconds (default: its horizon) and return its record.

        The per-server counters are snapshotted at ``warmup`` so that KPIs can exclude the
        warm-up period. ``progress(fraction)`` is called as simulated time passes (in 100
        steps; the results are the same with or without it)."""
        until = self.horizon if until is None else until
        if not 0 < warmup < until:
            self.rec.counters_at_warmup = self.counters()
        marks = [warmup] if 0 < warmup < until else []
        start = self.env.now  # 0, or a snapshot's time
        if progress is not None:
            marks = sorted(set(marks + [start + (until - start) * k / PROGRESS_STEPS for k in range(1, PROGRESS_STEPS)]))
        for t in marks:
            self._advance(t)
            if t == warmup and 0 < warmup:
                self.rec.counters_at_warmup = self.counters()
            if progress is not None:
                progress((t - start) / (until - start))
        self._advance(until)
        if progress is not None:
            progress(1.0)
        return self.finish(until, warmup)

    def _advance(self, at: float) -> None:
        """``env.run(until=at)`` with a watchdog: stop with a SimulationError when simulated time
        stops advancing (whether or not the loop that holds it records anything)."""
        env = self.env
        if at <= env.now:
            return
        # the stop event exactly as simpy's own run() schedules it (before every regular event
        # at ``at``), so that the events processed, and the results, are the same
        stop = Event(env)
        stop._ok = True
        stop._value = None
        env.schedule(stop, URGENT, at - env.now)
        stop.callbacks.append(StopSimulation.callback)  # type: ignore[union-attr]
        step = env.step
        floor = STUCK_SHARE * max(self.horizon, at)
        try:
            while True:
                t0 = env.now
                for _ in range(STUCK_EVENTS):
                    step()
                moved = env.now - t0
                if moved < floor:
                    pace = ("stopped advancing" if moved <= 0 else
                            f"advances too slowly to reach t = {at:g} s (at this pace the run needs about "
                            f"{STUCK_EVENTS * (at - t0) / moved:.1e} events)")
                    raise SimulationError([
                        f"<spec {self.spec.name}>: simulated time {pace}: at t = {env.now:g} s, "
                        f"{STUCK_EVENTS:,} events moved it by {moved:.3g} s, and twin stops a run that "
                        f"would need over {STUCK_EVENTS / STUCK_SHARE:.0e} events. Look for a loop of steps "
                        "that take no time (a retest or rework loop at a station with a zero processing time) "
                        "or a repeating interval near zero (failures, minor stops, maintenance, a review)"])
        except StopSimulation:
            return

    def finish(self, horizon: float, warmup: float = 0.0) -> Record:
        """Close the record at ``horizon`` (s): counters and times. ``run`` calls it."""
        rec = self.rec
        if not rec.counters_at_warmup:
            rec.counters_at_warmup = [(0, 0.0)] * len(rec.servers)
        rec.counters_at_end = self.counters()
        rec.horizon = float(horizon)
        rec.warmup = float(warmup)
        rec.end_time = float(self.env.now)
        rec.start = self.t_start
        if self.watcher is not None:
            self.watcher.close()
        return rec

    def lots_in_line(self) -> list:
        """The lots physically in the line now: in work or blocked at a server, or waiting in a
        buffer (or at its entrance). Counted from where they are, not from the record."""
        held = [srv.lot for st in self.stations.values() for srv in st.servers if srv.lot is not None]
        held += [q for st in self.stations.values() for srv in st.servers for q in srv.held if q is not srv.lot]
        held += list(self.in_transit)
        seen = {id(lot) for lot in held}
        out = list(held)
        for st in self.stations.values():
            for ln in st.lanes:
                for lot in list(ln.buffer.items) + [q for _, q in ln.buffer.putters]:
                    if id(lot) not in seen:
                        seen.add(id(lot))
                        out.append(lot)
        return out
