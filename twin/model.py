"""Build a runnable model from a spec and run it (DESIGN §3, §6).

One SimPy process per server. The recorder holds plain tuples; DataFrames are
built afterwards by :mod:`twin.results`.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Any

from collections import deque

import simpy

from . import policies
from .calendar import Calendar
from .dists import Exponential, Sampler
from .flow import Buffer, Lot, SaturatedBuffer, Sink
from .spec import Spec
from .workforce import Pool
from .streams import Streams


class State(IntEnum):
    """Station (server) states; one enum used everywhere."""

    IDLE = 0
    SETUP = 1
    BUSY = 2
    BLOCKED = 3
    DOWN = 4
    MAINTENANCE = 5
    OFF_SHIFT = 6


STATE_NAMES = [s.name.lower() for s in State]
_IDLE, _SETUP, _BUSY, _BLOCKED, _DOWN, _MAINT, _OFF = (int(s) for s in State)
INF = float("inf")
TRACE_EVENTS = ["start", "end", "setup_start", "setup_end", "blocked", "unblocked", "leave"]
_T_START, _T_END, _T_SETUP_START, _T_SETUP_END, _T_BLOCKED, _T_UNBLOCKED, _T_LEAVE = range(7)


class Recorder:
    """Plain lists of tuples appended during a run (no pandas in the hot path).

    - ``states``: ``(t, server_index, state)`` at each state change;
    - ``releases``: ``(lot_id, product_index, qty, t)``;
    - ``finishes``: ``(lot_id, t, units, escaped_defects, code)``; code 1 finished,
      0 wholly scrapped, -1 turned away at a full first buffer;
    - ``scraps``: ``(lot_id, t, station_index, units, work_s_per_unit)``;
    - ``reworks``: ``(lot_id, t, station_index, units)``: found defects repaired, the units go on;
    - ``maint``: ``(t, server_index, kind, duration)``, kind 0 repair, 1 planned;
    - ``orders``: ``(order_id, product_index, qty, t, due)``; ``deliveries``: ``(order_id, t)``;
    - ``events``: rare control events ``(t, kind, detail)``.
    """

    __slots__ = ("states", "releases", "finishes", "scraps", "reworks", "maint", "orders", "deliveries",
                 "servers", "products", "events", "trace")

    def __init__(self) -> None:
        self.states: list[tuple[float, int, int]] = []
        self.releases: list[tuple[int, int, int, float]] = []
        self.finishes: list[tuple[int, float, int, int, int]] = []
        self.scraps: list[tuple[int, float, int, int, float]] = []
        self.reworks: list[tuple[int, float, int, int]] = []
        self.maint: list[tuple[float, int, int, float]] = []
        self.orders: list[tuple[int, int, int, float, float]] = []
        self.deliveries: list[tuple[int, float]] = []
        self.servers: list[tuple[str, int]] = []  # (station name, server number)
        self.products: list[str] = []
        self.events: list[tuple[float, str, str]] = []
        # lot-level event trace ``(t, server_index, lot_id, product, qty, code)`` for event logs
        # (codes in :data:`TRACE_EVENTS`); None unless the model was built with ``trace=True``
        self.trace: list[tuple[float, int, int, int, int, int]] | None = None


class Server:
    """One machine of a station; the station's ``run*()`` is its SimPy process."""

    __slots__ = ("station", "lane", "index", "sid", "last_product", "ttf_left", "next_fail", "pm_left",
                 "units", "ideal", "state", "busy_until", "down_until")

    def __init__(self, station: "StationRT", lane: "Lane", index: int, sid: int):
        self.station = station
        self.lane = lane
        self.index = index
        self.sid = sid
        self.last_product: int | None = None
        self.ttf_left = INF  # operating seconds to the next failure
        self.next_fail = INF  # calendar-basis failure time
        self.pm_left = INF  # operating seconds to planned maintenance
        self.units = 0  # units processed
        self.ideal = 0.0  # their ideal (mean) processing time, s, for ISO 22400 effectiveness
        self.state = -1
        self.busy_until = 0.0  # expected end of the work in hand (for dispatching)
        self.down_until = 0.0


class Lane:
    """One of a station's parallel copies (a line's or cell's machine group): a buffer and servers."""

    __slots__ = ("station", "index", "buffer", "servers", "speed", "active")

    def __init__(self, station: "StationRT", index: int, buffer: Buffer, speed: float):
        self.station = station
        self.index = index
        self.buffer = buffer
        self.servers: list[Server] = []
        self.speed = speed
        self.active = True

    def in_process(self) -> int:
        return sum(1 for s in self.servers if s.state in (_BUSY, _SETUP, _DOWN, _MAINT))

    def expected_completion(self, lot: Lot, now: float) -> float:
        """Expected time (s from now) at which ``lot`` would finish here."""
        st = self.station
        means = st.means
        work = 0.0
        last = None
        for s in self.servers:
            if s.busy_until > now:
                work += s.busy_until - now
            if s.down_until > now:
                work += s.down_until - now
            last = s.last_product if last is None else last
        for q in self.buffer.items:
            work += means[q.product] * q.qty
            last = q.product
        for q in self.buffer.putters:
            work += means[q[1].product] * q[1].qty
            last = q[1].product
        own = means[lot.product] * lot.qty
        if st.setup_means is not None and last is not None and last != lot.product:
            own += st.setup_means[last][lot.product]
        return (work / len(self.servers) + own) / self.speed


class Dispatcher:
    """A station's input when it has several lanes: a rule picks the lane for each lot."""

    __slots__ = ("lanes", "rule")

    def __init__(self, lanes: list[Lane], rule: Any):
        self.lanes = lanes
        self.rule = rule

    def __len__(self) -> int:
        return sum(len(ln.buffer) for ln in self.lanes)

    def try_put(self, lot: Lot) -> bool:
        lot.target = self.rule.choose(lot)
        return self.lanes[lot.target].buffer.try_put(lot)

    def put_event(self, lot: Lot) -> simpy.Event:
        return self.lanes[lot.target].buffer.put_event(lot)


class StationRT:
    """Runtime of one station: lanes (buffers and servers), samplers, policies."""

    def __init__(self, model: "Model", spec_station: Any, product_names: list[str], index: int):
        self.model = model
        self.spec = spec_station
        self.name = spec_station.name
        self.index = index
        env = model.env
        rng = model.streams.get(f"process:{self.name}")
        self.samplers: list[Sampler | None] = []
        self.means: list[float] = []
        for p in product_names:
            d = spec_station.process_time_by_product.get(p, spec_station.process_time)
            self.samplers.append(Sampler(d, rng) if d is not None else None)
            self.means.append(d.mean if d is not None else 0.0)
        # a lot's processing time: one moment-matched draw, or (validation) the sum of its units
        self.lot_time = [None if smp is None else (smp.lot_by_units if model.unit_sampling else smp.lot)
                         for smp in self.samplers]
        self.setup: list[list[Sampler | None]] | None = None
        self.setup_means: list[list[float]] | None = None
        if spec_station.setup is not None:
            srng = model.streams.get(f"setup:{self.name}")
            st = spec_station.setup
            default = Sampler(st.default, srng) if st.default.mean > 0 else None
            self.setup = []
            self.setup_means = []
            for a in product_names:
                row, mrow = [], []
                for b in product_names:
                    d = st.matrix.get(a, {}).get(b)
                    if a == b:
                        row.append(None)
                        mrow.append(0.0)
                    elif d is not None:
                        row.append(Sampler(d, srng) if d.mean > 0 else None)
                        mrow.append(d.mean)
                    else:
                        row.append(default)
                        mrow.append(st.default.mean)
                self.setup.append(row)
                self.setup_means.append(mrow)
        self.failures = spec_station.failures
        self.ttf: Sampler | None = None
        self.ttr: Sampler | None = None
        self.ttr_mean = 0.0
        spec_all = model.spec
        # an operator's calendar is the station's calendar: nothing is done without the operator
        self.pool: Pool | None = None
        self.crew = spec_station.crew
        cal_name = spec_station.calendar
        if spec_station.operators is not None:
            self.pool = model.pools[spec_station.operators]
            cal_name = cal_name or spec_all.pool(spec_station.operators).calendar
        self.calendar: Calendar | None = model.calendars.get(cal_name) if cal_name else None
        self.technicians: Pool | None = (model.pools[spec_station.technicians]
                                         if spec_station.technicians else None)
        # technicians repair only while their pool is on shift: a failure late in the
        # last shift waits for the morning (run-to-failure lines feel this most)
        tcal = spec_all.pool(spec_station.technicians).calendar if spec_station.technicians else None
        self.tech_calendar: Calendar | None = model.calendars.get(tcal) if tcal else None
        self.maint_spec = spec_station.maintenance
        self.maint_policy = None
        if self.maint_spec is not None and self.failures is not None:
            self.maint_policy = policies.get("maintenance", self.maint_spec.policy)(
                self.maint_spec, model.streams.get(f"maintenance:{self.name}"))
            self.pm_time = Sampler(self.maint_spec.duration, model.streams.get(f"pm:{self.name}"))
        self.quality = spec_station.quality if (spec_station.quality is not None and (
            spec_station.quality.defect_rate > 0 or spec_station.quality.inspect == "end_of_line")) else None
        self.qrng = model.streams.get(f"quality:{self.name}") if self.quality is not None else None
        self.rework_time = self.quality.rework_time if self.quality is not None else 0.0
        self.stop_until = 0.0  # disruption: no lot starts before this time
        speeds = spec_station.speeds or [1.0] * spec_station.lanes
        self.lanes: list[Lane] = []
        self.servers: list[Server] = []
        for j in range(spec_station.lanes):
            lane = Lane(self, j, Buffer(env, spec_station.buffer), speeds[j])
            self.lanes.append(lane)
            for k in range(spec_station.servers):
                sid = len(model.rec.servers)
                number = j * spec_station.servers + k
                model.rec.servers.append((self.name, number))
                srv = Server(self, lane, number, sid)
                lane.servers.append(srv)
                self.servers.append(srv)
        self.input: Any
        if len(self.lanes) == 1:
            self.input = self.lanes[0].buffer
        else:
            self.input = Dispatcher(self.lanes, policies.get("dispatch", spec_station.dispatch)(self))
        if self.failures is not None:
            frng = model.streams.get(f"failure:{self.name}")
            self.ttf = Sampler(self.failures.ttf, frng)
            self.ttr = Sampler(self.failures.ttr, frng)
            self.ttr_mean = self.failures.ttr.mean
            for s in self.servers:
                if self.failures.basis == "operating":
                    s.ttf_left = self.ttf.one()
                    if self.maint_policy is not None:
                        s.pm_left = self.maint_policy.plan(s.ttf_left)
                else:
                    s.next_fail = self.ttf.one()

    @property
    def buffer(self) -> Any:
        """The input of the station (a buffer, or a dispatcher over the lanes' buffers)."""
        return self.input

    @buffer.setter
    def buffer(self, b: Any) -> None:
        self.input = b
        self.lanes[0].buffer = b

    def needs_general_loop(self) -> bool:
        sp = self.spec
        return bool(self.calendar is not None or self.pool is not None or self.technicians is not None
                    or self.maint_policy is not None or self.quality is not None or len(self.lanes) > 1
                    or sp.speeds or self.model.disrupted(self.name) or self.model.lane_structured
                    or self.model.rec.trace is not None)

    def process(self, srv: Server):
        return self.run_general(srv) if self.needs_general_loop() else self.run(srv)

    # ------------------------------------------------------------------ fast loop
    def run(self, srv: Server):
        """The plain server loop: get a lot, set up if the product changed, process, pass it on.

        Used by stations without calendars, workers, policies or quality checks (the
        hot path of big models; the general loop below does everything).
        """
        env = self.model.env
        rec = self.model.rec.states.append
        buf = srv.lane.buffer
        sid = srv.sid
        lot_time = self.lot_time
        ideal = self.means
        setup = self.setup
        operating_failures = self.failures is not None and self.failures.basis == "operating"
        calendar_failures = self.failures is not None and self.failures.basis == "calendar"
        timeout = env.timeout
        state = -1
        while True:
            lot = buf.try_get()
            if lot is None:
                if state != _IDLE:
                    rec((env.now, sid, _IDLE))
                    state = _IDLE
                lot = yield buf.get_event()
            if calendar_failures and srv.next_fail <= env.now:
                yield from self._catch_up_calendar(srv, state)
            p = lot.product
            if setup is not None and srv.last_product is not None and srv.last_product != p:
                s = setup[srv.last_product][p]
                if s is not None:
                    rec((env.now, sid, _SETUP))
                    state = _SETUP
                    yield timeout(s.lot(1))
            srv.last_product = p
            if state != _BUSY:
                rec((env.now, sid, _BUSY))
                state = _BUSY
            d = lot_time[p](lot.qty)  # type: ignore[misc]
            if operating_failures:
                while d >= srv.ttf_left:
                    yield timeout(srv.ttf_left)
                    d -= srv.ttf_left
                    rec((env.now, sid, _DOWN))
                    r = self.ttr.one()  # type: ignore[union-attr]
                    self.model.rec.maint.append((env.now, sid, 0, r))
                    yield timeout(r)
                    rec((env.now, sid, _BUSY))
                    srv.ttf_left = self.ttf.one()  # type: ignore[union-attr]
                srv.ttf_left -= d
                yield timeout(d)
            elif calendar_failures:
                while env.now + d >= srv.next_fail:
                    worked = srv.next_fail - env.now
                    yield timeout(worked)
                    d -= worked
                    rec((env.now, sid, _DOWN))
                    repair = self.ttr.one()  # type: ignore[union-attr]
                    self.model.rec.maint.append((env.now, sid, 0, repair))
                    yield timeout(repair)
                    srv.next_fail = env.now + self.ttf.one()  # type: ignore[union-attr]
                    rec((env.now, sid, _BUSY))
                yield timeout(d)
            else:
                yield timeout(d)
            srv.units += lot.qty
            srv.ideal += ideal[p] * lot.qty
            lot.work += ideal[p]
            lot.step += 1
            nxt = lot.route[lot.step]
            if not nxt.try_put(lot):
                rec((env.now, sid, _BLOCKED))
                state = _BLOCKED
                yield nxt.put_event(lot)

    def _catch_up_calendar(self, srv: Server, state: int):
        """Calendar-basis failures that fell while the server was idle or blocked."""
        env = self.model.env
        rec = self.model.rec.states.append
        while srv.next_fail <= env.now:
            rec((srv.next_fail, srv.sid, _DOWN))
            r = self.ttr.one()  # type: ignore[union-attr]
            self.model.rec.maint.append((srv.next_fail, srv.sid, 0, r))
            repaired = srv.next_fail + r
            srv.next_fail = repaired + self.ttf.one()  # type: ignore[union-attr]
            if repaired > env.now:
                yield env.timeout(repaired - env.now)
            else:
                rec((repaired, srv.sid, state if state >= 0 else _IDLE))

    # ------------------------------------------------------------------ general loop
    def _set(self, srv: Server, state: int) -> None:
        if srv.state != state:
            self.model.rec.states.append((self.model.env.now, srv.sid, state))
            srv.state = state

    def run_general(self, srv: Server):
        """Server loop with calendars, operators, technicians, maintenance policies,
        quality checks, lanes and disruptions."""
        model = self.model
        env = model.env
        lane = srv.lane
        buf = lane.buffer
        lot_time = self.lot_time
        means = self.means
        setup = self.setup
        cal = self.calendar
        pool = self.pool
        quality = self.quality
        crew = self.crew
        calendar_failures = self.failures is not None and self.failures.basis == "calendar"
        tr = model.rec.trace.append if model.rec.trace is not None else None
        sid = srv.sid
        while True:
            lot = buf.try_get()
            if lot is None:
                self._set(srv, _IDLE if lane.active else _OFF)
                lot = yield buf.get_event()
            if calendar_failures and srv.next_fail <= env.now:
                yield from self._catch_up_calendar(srv, max(srv.state, 0))
            if srv.pm_left <= 0.0:
                yield from self._planned_maintenance(srv)
            if self.stop_until > env.now:
                self._set(srv, _DOWN)
                srv.down_until = self.stop_until
                yield env.timeout(self.stop_until - env.now)
            p = lot.product
            speed = lane.speed
            d = lot_time[p](lot.qty) / speed  # type: ignore[misc]
            su = 0.0
            if setup is not None and srv.last_product is not None and srv.last_product != p:
                s = setup[srv.last_product][p]
                if s is not None:
                    su = s.lot(1)
            srv.busy_until = env.now + su + d
            if pool is not None:
                if cal is not None and cal.open_until(env.now) is None:
                    self._set(srv, _OFF)
                    yield from cal.wait_open()
                if not pool.try_get(crew):
                    self._set(srv, _IDLE)
                    yield pool.get_event(crew)
            if su > 0.0:
                if tr:
                    tr((env.now, sid, lot.id, p, lot.qty, _T_SETUP_START))
                yield from self._work(srv, su, _SETUP, ages=False)
                if tr:
                    tr((env.now, sid, lot.id, p, lot.qty, _T_SETUP_END))
            srv.last_product = p
            if tr:
                tr((env.now, sid, lot.id, p, lot.qty, _T_START))
            yield from self._work(srv, d, _BUSY, ages=True)
            if tr:
                tr((env.now, sid, lot.id, p, lot.qty, _T_END))
            srv.units += lot.qty
            srv.ideal += means[p] * lot.qty
            lot.work += means[p]
            reworked = self._inspect(lot) if quality is not None else 0
            if reworked and self.rework_time > 0.0:
                # the crew (or machine) repairs the found units before the lot moves on
                yield from self._work(srv, reworked * self.rework_time, _BUSY, ages=False)
            if pool is not None:
                pool.put(crew)
            if quality is not None and lot.qty == 0:  # every unit found defective and scrapped
                model.scrapped_lot(lot)
                if tr:
                    tr((env.now, sid, lot.id, p, 0, _T_LEAVE))
                continue
            lot.step += 1
            nxt = lot.route[lot.step]
            if not nxt.try_put(lot):
                self._set(srv, _BLOCKED)
                if tr:
                    tr((env.now, sid, lot.id, p, lot.qty, _T_BLOCKED))
                yield nxt.put_event(lot)
                if tr:
                    tr((env.now, sid, lot.id, p, lot.qty, _T_UNBLOCKED))
            if tr:
                tr((env.now, sid, lot.id, p, lot.qty, _T_LEAVE))

    def _work(self, srv: Server, d: float, state: int, ages: bool):
        """Spend ``d`` seconds of work in ``state``: paused off shift, interrupted by failures."""
        env = self.model.env
        cal = self.calendar
        operating = ages and self.failures is not None and self.failures.basis == "operating"
        calendar_failures = self.failures is not None and self.failures.basis == "calendar"
        self._set(srv, state)
        while d > 1e-9:
            chunk = d
            if cal is not None:
                until = cal.open_until(env.now)
                if until is None:
                    self._set(srv, _OFF)
                    yield from cal.wait_open()
                    self._set(srv, state)
                    continue
                chunk = min(chunk, until - env.now)
            if operating and srv.ttf_left <= chunk:
                yield env.timeout(srv.ttf_left)
                d -= srv.ttf_left
                srv.pm_left -= srv.ttf_left
                yield from self._repair(srv)
                self._set(srv, state)
                continue
            if calendar_failures and env.now + chunk >= srv.next_fail:
                worked = max(0.0, srv.next_fail - env.now)
                yield env.timeout(worked)
                d -= worked
                yield from self._repair(srv)
                srv.next_fail = env.now + self.ttf.one()  # type: ignore[union-attr]
                self._set(srv, state)
                continue
            yield env.timeout(chunk)
            d -= chunk
            if operating:
                srv.ttf_left -= chunk
                srv.pm_left -= chunk

    def _repair(self, srv: Server):
        env = self.model.env
        self._set(srv, _DOWN)
        t0 = env.now
        r = self.ttr.one()  # type: ignore[union-attr]
        srv.down_until = t0 + r
        yield from self._service(srv, r, _DOWN)
        self.model.rec.maint.append((t0, srv.sid, 0, env.now - t0))
        self._renew(srv)

    def _service(self, srv: Server, d: float, state: int):
        """A repair or planned maintenance taking ``d`` s of work: by a technician from the
        station's pool when it has one (waiting until one is free), else at once. The work
        pauses while the technicians are off shift; the machine then shows ``off_shift`` if
        its own station is off shift too (not planned production time), else ``state``."""
        env = self.model.env
        tech = self.technicians
        if tech is None:
            yield env.timeout(d)
            return
        if not tech.try_get(1):
            yield tech.get_event(1)
        srv.down_until = env.now + d
        tcal = self.tech_calendar
        own = self.calendar
        while d > 1e-9:
            until = tcal.open_until(env.now) if tcal is not None else INF
            if until is None:
                if own is not None and own.open_until(env.now) is None:
                    self._set(srv, _OFF)
                srv.down_until = max(srv.down_until, tcal.next_open(env.now) + d)
                yield from tcal.wait_open()
                self._set(srv, state)
                continue
            chunk = min(d, until - env.now)
            yield env.timeout(chunk)
            d -= chunk
        tech.put(1)

    def _planned_maintenance(self, srv: Server):
        env = self.model.env
        self._set(srv, _MAINT)
        t0 = env.now
        dur = self.pm_time.one()
        srv.down_until = t0 + dur
        yield from self._service(srv, dur, _MAINT)
        self.model.rec.maint.append((t0, srv.sid, 1, env.now - t0))
        self._renew(srv)

    def _renew(self, srv: Server) -> None:
        """Repair and planned maintenance both leave the machine as good as new."""
        if self.failures is not None and self.failures.basis == "operating":
            srv.ttf_left = self.ttf.one()  # type: ignore[union-attr]
            srv.pm_left = self.maint_policy.plan(srv.ttf_left) if self.maint_policy is not None else INF

    def _inspect(self, lot: Lot) -> int:
        """Make and find defects in ``lot``; scrap the found units not reworked. Returns
        the number of units to rework."""
        q = self.quality
        rng = self.qrng
        new = int(rng.binomial(lot.qty - lot.defects, q.defect_rate)) if q.defect_rate > 0 else 0  # type: ignore[union-attr]
        caught = 0
        if q.inspect == "inline":  # type: ignore[union-attr]
            caught = int(rng.binomial(new, q.detection)) if new else 0  # type: ignore[union-attr]
            lot.defects += new - caught
        elif q.inspect == "end_of_line":  # type: ignore[union-attr]
            total = lot.defects + new
            caught = int(rng.binomial(total, q.detection)) if total else 0  # type: ignore[union-attr]
            lot.defects = total - caught
        else:
            lot.defects += new
        if not caught:
            return 0
        reworked = int(rng.binomial(caught, q.rework)) if q.rework > 0 else 0  # type: ignore[union-attr]
        if reworked:
            self.model.rec.reworks.append((lot.id, self.model.env.now, self.index, reworked))
        if caught > reworked:
            lot.qty -= caught - reworked
            self.model.scrap(lot, self.index, caught - reworked)
        return reworked


class Model:
    """One run's world: environment, streams, recorder and runtime objects."""

    def __init__(self, spec: Spec, seed: int, horizon: float | None = None, unit_sampling: bool = False,
                 trace: bool = False, replay: list[tuple[float, int, int]] | None = None):
        """``unit_sampling``: draw a lot's processing time as the sum of its units' times
        instead of one moment-matched draw (slower; used to validate lot-level runs).
        ``trace``: record every lot's start/end/setup/blocking/leave events (for event logs).
        ``replay``: release lots ``(t, product_index, qty)`` at those times instead of the
        spec's source (to replay a real line's releases)."""
        self.spec = spec
        self.seed = seed
        self.unit_sampling = unit_sampling
        self.replay = replay
        self.horizon = float(horizon if horizon is not None else spec.run.horizon)
        self.env = simpy.Environment()
        self.streams = Streams(seed)
        self.rec = Recorder()
        if trace:
            self.rec.trace = []
        self.product_names = [p.name for p in spec.products]
        self.rec.products = list(self.product_names)
        self.calendars = {c.name: Calendar(self.env, c) for c in spec.calendars}
        # a pool counts free workers so a station can hold a crew of several at once
        self.pools = {w.name: Pool(self.env, w.size) for w in spec.workers}
        self.orders_mode = spec.source.kind == "orders" and replay is None
        self.lane_structured = self.orders_mode and spec.planning.lanes > 1
        self._disrupted = set()
        if spec.demand is not None:
            self._disrupted = {sh.target for sh in spec.demand.shifts if sh.kind == "disruption"}
        self.stations: dict[str, StationRT] = {}
        for i, s in enumerate(spec.stations):
            self.stations[s.name] = StationRT(self, s, self.product_names, i)
        self.sink = Sink(self._finish)
        self._next_id = 0
        self.lot_sizes = [p.lot_size for p in spec.products]
        shares = [p.share for p in spec.products]
        total = sum(shares)
        self.shares = [s / total for s in shares]
        self._source_rng = self.streams.get("source")
        n = len(self.product_names)
        self.wip = [0] * n  # units released and not finished or scrapped, per product
        self._build_source()
        self.routes = [tuple(self.stations[nm].input for nm in p.route) + (self.sink,) for p in spec.products]
        for st in self.stations.values():
            for srv in st.servers:
                self.env.process(st.process(srv))
        if self.orders_mode:
            self._build_orders()
        self.capacity = policies.get("capacity", spec.capacity.policy)(self)
        self.capacity.start()

    def disrupted(self, station: str) -> bool:
        return station in self._disrupted

    # ------------------------------------------------------------------ flow
    def release(self, product: int, qty: int | None = None, lane: int | None = None) -> Lot:
        """Create a lot of ``product`` at the current time and record its release."""
        lot_id = self._next_id
        self._next_id += 1
        q = self.lot_sizes[product] if qty is None else qty
        lot = Lot(lot_id, product, q, self.routes[product], self.env.now, lane)
        self.rec.releases.append((lot_id, product, q, self.env.now))
        self.wip[product] += q
        return lot

    def _finish(self, lot: Lot) -> None:
        self.rec.finishes.append((lot.id, self.env.now, lot.qty, lot.defects, 1))
        self.wip[lot.product] -= lot.qty
        if self.orders_mode:
            self.stock[lot.product] += lot.qty
            self._fill(lot.product)

    def scrap(self, lot: Lot, station_index: int, units: int) -> None:
        """``units`` of ``lot`` were found defective at a station and scrapped."""
        self.rec.scraps.append((lot.id, self.env.now, station_index, units, lot.work))
        self.wip[lot.product] -= units

    def scrapped_lot(self, lot: Lot) -> None:
        """Every unit of ``lot`` was scrapped: it leaves the line."""
        self.rec.finishes.append((lot.id, self.env.now, 0, 0, 0))

    def pick_product(self, products: list[int] | None = None) -> int:
        """Draw a product by share from the ``source`` stream (restricted to ``products``)."""
        if len(self.shares) == 1:
            return 0
        cand = range(len(self.shares)) if products is None else products
        weights = [self.shares[i] for i in cand]
        u = self._source_rng.random() * sum(weights)
        acc = 0.0
        for i, w in zip(cand, weights):
            acc += w
            if u < acc:
                return i
        return list(cand)[-1]

    def _build_source(self) -> None:
        src = self.spec.source
        self.lost_lots = 0
        if self.replay is not None:
            self.env.process(self._replay())
        elif src.kind == "saturated":
            starts: dict[str, list[int]] = {}
            for i, p in enumerate(self.spec.products):
                starts.setdefault(p.route[0], []).append(i)
            for st_name, prods in starts.items():
                st = self.stations[st_name]
                make = self._saturated_maker(prods)
                if len(st.lanes) > 1:
                    for ln in st.lanes:
                        ln.buffer = SaturatedBuffer(self.env, st.spec.buffer, make)
                else:
                    st.buffer = SaturatedBuffer(self.env, st.spec.buffer, make)
        elif src.kind in ("poisson", "renewal"):
            self.env.process(self._arrivals())

    def _saturated_maker(self, prods: list[int]):
        if len(prods) == 1:
            only = prods[0]
            return lambda: self.release(only)
        return lambda: self.release(self.pick_product(prods))

    def _replay(self):
        env = self.env
        for t, p, qty in self.replay:  # type: ignore[union-attr]
            if t > env.now:
                yield env.timeout(t - env.now)
            lot = self.release(p, qty)
            first = lot.route[0]
            if not first.try_put(lot):
                # the log says it arrived: it waits at the entrance without holding up later arrivals
                first.put_event(lot)

    def _arrivals(self):
        src = self.spec.source
        rng = self.streams.get("arrivals")
        if src.kind == "poisson":
            dist = Exponential(dist="exponential", mean=3600.0 / src.rate_per_hour)  # type: ignore[operator]
        else:
            dist = src.interarrival
        draw = Sampler(dist, rng).one  # type: ignore[arg-type]
        env = self.env
        while True:
            yield env.timeout(draw())
            lot = self.release(self.pick_product())
            if not lot.route[0].try_put(lot):
                # a full first buffer turns the arrival away (M/M/1/K semantics)
                self.lost_lots += 1
                self.wip[lot.product] -= lot.qty
                self.rec.finishes.append((lot.id, env.now, 0, 0, -1))

    # ------------------------------------------------------------------ orders (make-to-order)
    def _build_orders(self) -> None:
        from .demand import order_stream

        spec = self.spec
        n = len(self.product_names)
        self.stock = [0] * n  # finished units not yet delivered
        self.open_units = [0] * n  # ordered units not yet delivered
        self.book: list[deque[list[Any]]] = [deque() for _ in range(n)]
        self.supply_stop_until = 0.0
        self.order_list = order_stream(spec.demand, self.product_names, self.horizon, self.streams.get("demand"))  # type: ignore[arg-type]
        self.available_from = [0.0] * n
        for sh in spec.demand.shifts:  # type: ignore[union-attr]
            if sh.kind == "new_product" and sh.product in self.product_names:
                i = self.product_names.index(sh.product)
                self.available_from[i] = sh.at + spec.planning.npi_lead_time
            elif sh.kind == "disruption":
                self.env.process(self._disruption(sh))
        self.env.process(self._order_arrivals())
        self.planner = policies.get("planning", spec.planning.policy)(self)
        self.lanes_active = [True] * spec.planning.lanes
        self.lane_wakeup = [self.env.event() for _ in range(spec.planning.lanes)]
        self.planner.start()
        if spec.planning.lanes > 1:
            for lane in range(spec.planning.lanes):
                self.env.process(self._feeder(lane))
        else:
            self.env.process(self._feeder(None))

    def _order_arrivals(self):
        env = self.env
        rec = self.rec.orders
        for oid, (t, p, qty, due) in enumerate(self.order_list):
            if t > env.now:
                yield env.timeout(t - env.now)
            rec.append((oid, p, qty, t, due))
            self.book[p].append([oid, qty, due])
            self.open_units[p] += qty
            if self.stock[p]:
                self._fill(p)

    def _fill(self, p: int) -> None:
        """Deliver finished stock to the oldest open orders of product ``p``."""
        book = self.book[p]
        while book and self.stock[p] > 0:
            o = book[0]
            take = min(o[1], self.stock[p])
            o[1] -= take
            self.stock[p] -= take
            self.open_units[p] -= take
            if o[1] == 0:
                self.rec.deliveries.append((o[0], self.env.now))
                book.popleft()

    def need(self, p: int) -> int:
        """Units of ``p`` ordered and neither delivered, in stock nor in process."""
        return self.open_units[p] - self.stock[p] - self.wip[p]

    def _feeder(self, lane: int | None):
        """Release the planner's lots into the line (or line/cell ``lane``) as the first buffer takes them."""
        env = self.env
        planner = self.planner
        while True:
            if lane is not None and not self.lanes_active[lane]:
                yield self.lane_wakeup[lane]
                continue
            p = yield from planner.take(lane)
            if self.supply_stop_until > env.now:
                yield env.timeout(self.supply_stop_until - env.now)
            lot = self.release(p, lane=lane)
            first = lot.route[0]
            if not first.try_put(lot):
                yield first.put_event(lot)

    def set_lane_active(self, lane: int, active: bool) -> None:
        """Capacity policy: deploy (``True``) or idle a line/cell; idle ones get no new lots."""
        if self.lanes_active[lane] == active:
            return
        self.lanes_active[lane] = active
        for st in self.stations.values():
            if len(st.lanes) == len(self.lanes_active):
                ln = st.lanes[lane]
                ln.active = active
                for srv in ln.servers:
                    if srv.state in (_IDLE, _OFF):
                        st._set(srv, _IDLE if active else _OFF)
        if active:
            ev, self.lane_wakeup[lane] = self.lane_wakeup[lane], self.env.event()
            ev.succeed()
        self.rec.events.append((self.env.now, "lanes", str(sum(self.lanes_active))))

    def _disruption(self, sh: Any):
        env = self.env
        if sh.at > 0:
            yield env.timeout(sh.at)
        end = sh.at + sh.duration
        self.rec.events.append((env.now, "disruption", f"{sh.target} until {end:g}"))
        if sh.target == "supply":
            self.supply_stop_until = max(self.supply_stop_until, end)
        else:
            st = self.stations[sh.target]
            st.stop_until = max(st.stop_until, end)
            for srv in st.servers:
                if srv.state in (_IDLE, _OFF):
                    st._set(srv, _DOWN)
            yield env.timeout(sh.duration)
            for srv in st.servers:
                if srv.state == _DOWN and srv.down_until <= env.now:
                    st._set(srv, _IDLE if srv.lane.active else _OFF)

    # ------------------------------------------------------------------ run
    def counters(self) -> list[tuple[int, float]]:
        """Per server ``(units processed, ideal processing time)`` so far."""
        return [(s.units, s.ideal) for st in self.stations.values() for s in st.servers]

    def run(self, until: float | None = None, warmup: float = 0.0) -> Recorder:
        """Advance the model to ``until`` seconds (default: its horizon) and return the recorder.

        The per-server counters are snapshotted at ``warmup`` so that KPIs can
        exclude the warm-up period.
        """
        until = self.horizon if until is None else until
        if 0 < warmup < until:
            self.env.run(until=warmup)
        self.counters_at_warmup = self.counters()
        self.env.run(until=until)
        self.counters_at_end = self.counters()
        return self.rec
