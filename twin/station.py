"""A station at run time: its lanes, buffers and servers, and the one server loop (DESIGN §6).

Each server is one SimPy process running :meth:`StationRuntime.serve`: take a lot, set up
if the product changed, work, inspect, hand the lot on. Failures and maintenance are in
:mod:`twin.reliability`, defects in :mod:`twin.quality`; both are steps of this loop.

The loop is :meth:`StationRuntime._serve`. It takes three shortcuts, each doing exactly
what the full steps would do there: work that nothing can pause or interrupt (no calendar,
no failures) is one timeout instead of a call to :meth:`StationRuntime.work`; the steps
that only matter to stations with operators, policies, quality, lanes, disruptions or a
trace are skipped as a group on stations without them; and a station with none of these
runs :meth:`StationRuntime._serve_plain`, the same loop with those steps left out (the hot
path of big models). ``Model(..., general=True)`` turns all three off, and a test requires
identical results both ways.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import simpy

from . import policies, quality, reliability
from .dists import Sampler
from .flow import Buffer, Lot
from .state import State, TraceEvent
from .workforce import Calendar, Pool

if TYPE_CHECKING:  # the model builds stations; stations only call back into it
    from .model import Model

INF = float("inf")
_IDLE, _SETUP, _BUSY, _BLOCKED, _DOWN, _MAINT, _OFF, _MODULE_OFF = (int(s) for s in State)
_T_START, _T_END, _T_SETUP_START, _T_SETUP_END, _T_BLOCKED, _T_UNBLOCKED, _T_LEAVE = (int(e) for e in TraceEvent)
_IN_PROCESS = (_BUSY, _SETUP, _DOWN, _MAINT)


class Server:
    """One machine of a station; :meth:`StationRuntime.serve` is its SimPy process."""

    __slots__ = ("station", "lane", "index", "sid", "last_product", "ttf_left", "next_fail", "pm_left",
                 "units", "ideal", "state", "busy_until", "down_until", "lot")

    def __init__(self, station: "StationRuntime", lane: "Lane", index: int, sid: int):
        self.station = station
        self.lane = lane
        self.index = index  # number within the station (over all lanes)
        self.sid = sid  # index over the whole model (the record's server index)
        self.last_product: int | None = None
        self.ttf_left = INF  # operating seconds to the next failure
        self.next_fail = INF  # calendar-basis failure time (s)
        self.pm_left = INF  # operating seconds to planned maintenance
        self.units = 0  # units processed
        self.ideal = 0.0  # their ideal (mean) processing time, s, for ISO 22400 effectiveness
        self.state = -1
        self.busy_until = 0.0  # expected end of the work in hand (for dispatching)
        self.down_until = 0.0
        self.lot: Lot | None = None  # the lot in hand, from taking it until it is handed on


class Lane:
    """One of a station's parallel copies (a line's or cell's machine group): a buffer and servers."""

    __slots__ = ("station", "index", "buffer", "servers", "speed", "active")

    def __init__(self, station: "StationRuntime", index: int, buffer: Buffer, speed: float):
        self.station = station
        self.index = index
        self.buffer = buffer
        self.servers: list[Server] = []
        self.speed = speed
        self.active = True

    def in_process(self) -> int:
        """Servers holding work now (busy, setting up, down or in maintenance)."""
        return sum(1 for s in self.servers if s.state in _IN_PROCESS)

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
        for _, q in self.buffer.putters:
            work += means[q.product] * q.qty
            last = q.product
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


def _setup_tables(spec_station: Any, product_names: list[str], rng: Any
                  ) -> tuple[list[list[Sampler | None]], list[list[float]]]:
    """Setup samplers and mean setup times (s) by (from product, to product)."""
    st = spec_station.setup
    default = Sampler(st.default, rng) if st.default.mean > 0 else None
    table, means = [], []
    for a in product_names:
        row, mrow = [], []
        for b in product_names:
            d = st.matrix.get(a, {}).get(b)
            if a == b:
                row.append(None)
                mrow.append(0.0)
            elif d is not None:
                row.append(Sampler(d, rng) if d.mean > 0 else None)
                mrow.append(d.mean)
            else:
                row.append(default)
                mrow.append(st.default.mean)
        table.append(row)
        means.append(mrow)
    return table, means


class StationRuntime:
    """Runtime of one station: lanes (buffers and servers), samplers, policies."""

    def __init__(self, model: "Model", spec_station: Any, index: int):
        self.model = model
        self.spec = spec_station
        self.name = spec_station.name
        self.index = index
        env = model.env
        product_names = model.product_names
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
            self.setup, self.setup_means = _setup_tables(spec_station, product_names,
                                                         model.streams.get(f"setup:{self.name}"))
        # an operator's calendar is the station's calendar: nothing is done without the operator
        spec_all = model.spec
        self.pool: Pool | None = None
        self.crew = spec_station.crew
        cal_name = spec_station.calendar
        if spec_station.operators is not None:
            self.pool = model.pools[spec_station.operators]
            cal_name = cal_name or spec_all.pool(spec_station.operators).calendar
        self.calendar: Calendar | None = model.calendars.get(cal_name) if cal_name else None
        self.reliability = reliability.Reliability(self, model)
        self.quality = quality.Inspection.build(self, model)
        self.stop_until = 0.0  # disruption: no lot starts before this time (s)
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
        self.reliability.start(self.servers)

    @property
    def buffer(self) -> Any:
        """The input of the station (a buffer, or a dispatcher over the lanes' buffers)."""
        return self.input

    @buffer.setter
    def buffer(self, b: Any) -> None:
        self.input = b
        self.lanes[0].buffer = b

    def set_state(self, srv: Server, state: int) -> None:
        """Record ``srv`` entering ``state`` now (nothing when it is in it already)."""
        if srv.state != state:
            self.model.rec.states.append((self.model.env.now, srv.sid, state))
            srv.state = state

    def has_extras(self) -> bool:
        """Whether the loop's optional steps can do anything here (see the module doc)."""
        m = self.model
        return bool(self.pool is not None or self.calendar is not None or self.reliability.active
                    or self.quality is not None or len(self.lanes) > 1 or self.spec.speeds
                    or m.disrupted(self.name) or m.lane_structured or m.rec.trace is not None or m.general)

    # ------------------------------------------------------------------ the server loop
    def serve(self, srv: Server):
        """The server's process: take a lot, set up, work, inspect, hand it on; forever."""
        if not self.has_extras() and self.reliability.failures is None:
            return self._serve_plain(srv)
        return self._serve(srv)

    def _serve_plain(self, srv: Server):
        """:meth:`_serve` for a station with nothing optional (no failures, calendar, operators,
        quality, lanes, speeds, disruption or trace), its no-op steps left out: the hot path of
        big models. It records exactly what :meth:`_serve` would (``Model(general=True)``
        runs every station through :meth:`_serve`; a test compares the two)."""
        env = self.model.env
        timeout = env.timeout
        states = self.model.rec.states.append
        buf = srv.lane.buffer  # bound now: a saturated source has replaced it by the time the process starts
        try_get = buf.try_get
        get_event = buf.get_event
        sid = srv.sid
        lot_time = self.lot_time
        means = self.means
        setup = self.setup
        state = srv.state  # only this loop changes a plain server's state: a local copy is exact
        while True:
            lot = try_get()
            if lot is None:
                if state != _IDLE:
                    states((env.now, sid, _IDLE))
                    state = srv.state = _IDLE
                lot = yield get_event()
            srv.lot = lot
            p = lot.product
            d = lot_time[p](lot.qty)  # type: ignore[misc]
            if setup is not None and srv.last_product is not None and srv.last_product != p:
                s = setup[srv.last_product][p]
                if s is not None:
                    su = s.lot(1)
                    if su > 0.0:
                        if state != _SETUP:
                            states((env.now, sid, _SETUP))
                            state = srv.state = _SETUP
                        yield timeout(su)
            srv.last_product = p
            if state != _BUSY:
                states((env.now, sid, _BUSY))
                state = srv.state = _BUSY
            yield timeout(d)
            srv.units += lot.qty
            srv.ideal += means[p] * lot.qty
            lot.work += means[p]
            lot.step += 1
            nxt = lot.route[lot.step]
            if not nxt.try_put(lot):
                if state != _BLOCKED:
                    states((env.now, sid, _BLOCKED))
                    state = srv.state = _BLOCKED
                yield nxt.put_event(lot)
            srv.lot = None

    def _serve(self, srv: Server):
        """The full server loop (see the module doc)."""
        model = self.model
        env = model.env
        timeout = env.timeout
        states = model.rec.states.append
        lane = srv.lane
        sid = srv.sid
        lot_time = self.lot_time
        means = self.means
        setup = self.setup
        pool = self.pool
        crew = self.crew
        cal = self.calendar
        rel = self.reliability
        inspect = self.quality.inspect if self.quality is not None else None
        tr = model.rec.trace.append if model.rec.trace is not None else None
        # waits that a calendar-time failure can strike during (it must be recorded when it happens)
        watch = rel.calendar_basis
        extras = self.has_extras()
        plain = not (model.general or cal is not None or rel.failures is not None or tr is not None)
        buf = lane.buffer  # bound now: a saturated source has replaced it by the time the process starts
        try_get = buf.try_get
        while True:
            lot = try_get()
            if lot is None:
                w = _IDLE if lane.active else _MODULE_OFF
                if watch:
                    lot = yield from rel.wait(srv, buf.get_event(), w)
                else:
                    if srv.state != w:
                        states((env.now, sid, w))
                        srv.state = w
                    lot = yield buf.get_event()
            srv.lot = lot
            if extras:
                if watch and srv.next_fail <= env.now:  # struck during a wait that could not watch it
                    yield from rel.repair(srv)
                if srv.pm_left <= 0.0:
                    yield from rel.planned_maintenance(srv)
                if self.stop_until > env.now:  # a disruption stops the station
                    srv.down_until = self.stop_until
                    yield from rel.wait(srv, timeout(self.stop_until - env.now), _DOWN)
            p = lot.product
            d = lot_time[p](lot.qty)  # type: ignore[misc]
            su = 0.0
            if setup is not None and srv.last_product is not None and srv.last_product != p:
                s = setup[srv.last_product][p]
                if s is not None:
                    su = s.lot(1)
            if extras:
                d /= lane.speed
                srv.busy_until = env.now + su + d
                if pool is not None:
                    if cal is not None and cal.open_until(env.now) is None:
                        yield from rel.wait_open(srv, cal)
                    if not pool.try_get(crew):
                        yield from rel.wait(srv, pool.get_event(crew), _IDLE)
            if su > 0.0:
                if tr:
                    tr((env.now, sid, lot.id, p, lot.qty, _T_SETUP_START))
                if plain:
                    if srv.state != _SETUP:
                        states((env.now, sid, _SETUP))
                        srv.state = _SETUP
                    yield timeout(su)
                else:
                    yield from self.work(srv, su, _SETUP, ages=False)
                if tr:
                    tr((env.now, sid, lot.id, p, lot.qty, _T_SETUP_END))
            srv.last_product = p
            if plain:
                if srv.state != _BUSY:
                    states((env.now, sid, _BUSY))
                    srv.state = _BUSY
                yield timeout(d)
            else:
                if tr:
                    tr((env.now, sid, lot.id, p, lot.qty, _T_START))
                yield from self.work(srv, d, _BUSY, ages=True)
            srv.units += lot.qty
            srv.ideal += means[p] * lot.qty
            lot.work += means[p]
            if extras:
                if tr:
                    tr((env.now, sid, lot.id, p, lot.qty, _T_END))
                if inspect is not None:
                    reworked = inspect(lot)
                    if reworked and self.quality.rework_time > 0.0:  # type: ignore[union-attr]
                        # the crew (or machine) repairs the found units before the lot moves on
                        yield from self.work(srv, reworked * self.quality.rework_time, _BUSY, ages=False)  # type: ignore[union-attr]
                if pool is not None:
                    pool.put(crew)
                if lot.qty == 0:  # every unit found defective and scrapped: the lot leaves the line
                    srv.lot = None
                    model.scrapped_lot(lot)
                    if tr:
                        tr((env.now, sid, lot.id, p, 0, _T_LEAVE))
                    continue
            lot.step += 1
            nxt = lot.route[lot.step]
            if not nxt.try_put(lot):
                if tr:
                    tr((env.now, sid, lot.id, p, lot.qty, _T_BLOCKED))
                if watch:
                    yield from rel.wait(srv, nxt.put_event(lot), _BLOCKED)
                else:
                    if srv.state != _BLOCKED:
                        states((env.now, sid, _BLOCKED))
                        srv.state = _BLOCKED
                    yield nxt.put_event(lot)
                if tr:
                    tr((env.now, sid, lot.id, p, lot.qty, _T_UNBLOCKED))
            srv.lot = None
            if tr:
                tr((env.now, sid, lot.id, p, lot.qty, _T_LEAVE))

    def work(self, srv: Server, d: float, state: int, ages: bool):
        """Spend ``d`` seconds of work in ``state``: paused off shift, interrupted by failures.

        ``ages``: the work wears the machine (operating-basis failures and maintenance
        count it). Always yields at least once, as the plain loop's single timeout does."""
        env = self.model.env
        cal = self.calendar
        rel = self.reliability
        operating = ages and rel.operating_basis
        calendar_failures = rel.calendar_basis
        self.set_state(srv, state)
        while True:
            chunk = d
            if cal is not None:
                until = cal.open_until(env.now)
                if until is None:
                    yield from rel.wait_open(srv, cal)
                    self.set_state(srv, state)
                    continue
                chunk = min(chunk, until - env.now)
            if operating and srv.ttf_left <= chunk:
                yield env.timeout(srv.ttf_left)
                d -= srv.ttf_left
                srv.pm_left -= srv.ttf_left
                yield from rel.repair(srv)
                self.set_state(srv, state)
                continue
            if calendar_failures and env.now + chunk >= srv.next_fail:
                worked = max(0.0, srv.next_fail - env.now)
                yield env.timeout(worked)
                d -= worked
                yield from rel.repair(srv)
                self.set_state(srv, state)
                continue
            yield env.timeout(chunk)
            d -= chunk
            if operating:
                srv.ttf_left -= chunk
                srv.pm_left -= chunk
            if d <= 1e-9:
                return
