"""A station at run time: its lanes, buffers and servers, and the one server loop (DESIGN §6).

Each server is one SimPy process running :meth:`StationRuntime.serve`: take a lot, set up
if the product changed, work, inspect, hand the lot on. Failures and maintenance are in
:mod:`twin.reliability`, defects in :mod:`twin.quality`; both are steps of this loop.

The loop is :meth:`StationRuntime._serve`. It takes three shortcuts, each doing exactly
what the full steps would do there: work that nothing can pause or interrupt (no calendar,
no failures) is one timeout instead of a call to :meth:`StationRuntime.work`; the steps
that only matter to stations with operators, policies, quality, lanes, disruptions or a
trace are skipped as a group on stations that build none of them; and a station that builds
none runs :meth:`StationRuntime._serve_plain`, the same loop with those steps left out (the hot
path of big models). Which steps a station builds is derived from one table, :data:`STEPS`;
another process changes a waiting server's state only through
:meth:`StationRuntime.mark_waiting`, which refuses a server on the plain loop.
``Model(..., general=True)`` turns all three shortcuts off, and tests require identical
results both ways (hand-built lines and the three reference factories).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, NamedTuple

import simpy

from . import policies, quality, reliability
from .dists import Sampler
from .flow import Buffer, Lot
from .learn import MeasuredTimes
from .state import State, TraceEvent
from .units import WORK_EPS
from .workforce import Calendar, Pool

if TYPE_CHECKING:  # the model builds stations; stations only call back into it
    from .model import Model

INF = float("inf")
# the states as plain ints: the record stores ints, and the loop compares them on every lot
_IDLE, _SETUP, _BUSY, _BLOCKED = int(State.IDLE), int(State.SETUP), int(State.BUSY), int(State.BLOCKED)
_DOWN, _MAINT, _STARVED = int(State.DOWN), int(State.MAINTENANCE), int(State.STARVED_MATERIAL)
_MODULE_OFF = int(State.MODULE_OFF)
_T_START, _T_END, _T_SETUP_START, _T_SETUP_END, _T_BLOCKED, _T_UNBLOCKED, _T_LEAVE = (int(e) for e in TraceEvent)
_IN_PROCESS = (_BUSY, _SETUP, _DOWN, _MAINT)


class Server:
    """One machine of a station; :meth:`StationRuntime.serve` is its SimPy process."""

    __slots__ = ("station", "lane", "index", "sid", "last_product", "ttf_left", "next_fail", "pm_left",
                 "units", "ideal", "state", "life0", "view", "est_end", "est_left", "stop_since", "stop_kind",
                 "down_until", "lot",
                 "held", "ms_left", "t_job", "renewed", "resume", "carried", "waiting")

    def __init__(self, station: "StationRuntime", lane: "Lane", index: int, sid: int):
        self.station = station
        self.lane = lane
        self.index = index  # number within the station (over all lanes)
        self.sid = sid  # index over the whole model (the record's server index)
        self.last_product: int | None = None
        self.ttf_left = INF  # operating seconds to the next failure
        self.life0 = INF  # the life drawn at the last renewal (its age is life0 - ttf_left)
        self.view: Any = None  # what maintenance policies see of this life (twin.wear.MachineView)
        self.next_fail = INF  # calendar-basis failure time (s)
        self.pm_left = INF  # operating seconds to planned maintenance
        self.units = 0  # units processed
        self.ideal = 0.0  # their ideal (mean) processing time, s, for ISO 22400 effectiveness
        self.state = -1
        # what dispatching may know: the expected end of the work in hand, from measured means
        # (est_end), the expected work it had left when a stop began (est_left), and when and
        # which stop (repair, planned) is under way (stop_since < 0: none); never a sampled time
        self.est_end = 0.0
        self.est_left = 0.0
        self.stop_since = -1.0
        self.stop_kind = 0
        self.down_until = 0.0  # the engine's own: when a drawn stop ends
        self.lot: Lot | None = None  # the lot in hand, from taking it until it is handed on
        self.held: list[Lot] = []  # a batch station's other lots in hand
        self.ms_left = INF  # operating seconds to the next minor stop
        self.t_job = -1.0  # when the work of the job in hand began (after its changeover), s; -1: none yet
        self.renewed = 0.0  # when the machine was last renewed (calendar-basis failure clock), s
        self.resume: Any = None  # a state start's job in hand (twin.snapshot), done before the loop
        self.carried = (-1.0, 0.0)  # (t_job, s): work done before a state start on the job begun then
        self.waiting: Any = None  # the event a failure interrupted a wait for (a lot may arrive meanwhile)


class Resume(NamedTuple):
    """What a server does first after a state start (see :meth:`StationRuntime._resume`)."""

    state: int
    """Its state at the snapshot (a :class:`~twin.state.State` value)."""
    lot: Lot | None
    """The lot it holds."""
    job: float
    """Work left on the lot, s at the lane's nominal speed (0 when blocked)."""
    stop: float = 0.0
    """Repair or maintenance left, s."""
    setup: float = 0.0
    """Changeover left, s."""
    worked: float = 0.0
    """Busy time already spent on the job before the start, s (a later snapshot counts it)."""


class Lane:
    """One of a station's parallel copies (a line's or cell's machine group): a buffer and servers."""

    __slots__ = ("station", "index", "buffer", "servers", "speed", "wear", "active")

    def __init__(self, station: "StationRuntime", index: int, buffer: Buffer, speed: float):
        self.station = station
        self.index = index
        self.buffer = buffer
        self.servers: list[Server] = []
        self.speed = speed
        self.wear = 1.0  # operating age gained per second of work (above 1 when overdriven)
        self.active = True

    def in_process(self) -> int:
        """Servers holding work now (busy, setting up, down or in maintenance)."""
        return sum(1 for s in self.servers if s.state in _IN_PROCESS)


class Dispatcher:
    """A station's input when it has several lanes: a rule picks the lane for each lot."""

    __slots__ = ("lanes", "rule")

    def __init__(self, lanes: list[Lane], rule: Any):
        self.lanes = lanes
        self.rule = rule

    def __len__(self) -> int:
        return sum(len(ln.buffer) for ln in self.lanes)

    def route(self, lot: Lot) -> Buffer:
        """The buffer of the lane the rule picks for ``lot`` (kept in ``lot.target``)."""
        lot.target = self.rule.choose(lot)
        return self.lanes[lot.target].buffer

    def try_put(self, lot: Lot) -> bool:
        return self.route(lot).try_put(lot)

    def put_event(self, lot: Lot) -> simpy.Event:
        return self.lanes[lot.target].buffer.put_event(lot)


def _setup_tables(spec_station: Any, product_names: list[str], rng: Any
                  ) -> tuple[list[list[Sampler | None]], list[list[float]]]:
    """Setup samplers and mean setup times (s) by (from product, to product)."""
    st = spec_station.setup
    default = Sampler(st.default, rng) if st.default.mean > 0 else None
    table, means = [], []
    for a in product_names:
        row: list[Sampler | None] = []
        mrow: list[float] = []
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
        self.minor: tuple[Sampler, Sampler] | None = None
        if spec_station.minor_stops is not None:
            mrng = model.streams.get(f"minor:{self.name}")
            self.minor = (Sampler(spec_station.minor_stops.every, mrng), Sampler(spec_station.minor_stops.duration, mrng))
        self.speed_loss = (Sampler(spec_station.speed_loss, model.streams.get(f"speed:{self.name}"))
                           if spec_station.speed_loss is not None else None)
        self.routing_rng = model.streams.get(f"routing:{self.name}") if spec_station.routing else None
        self.batch = spec_station.batch
        self.takes = model.takes[index]  # components consumed here, per product
        self.needs_material = any(self.takes)
        # where the lot goes next is more than "the next step of its route"
        self.flow_extras = bool(model.detours or model.spec.transport)
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
        # the order its servers take waiting lots (non-FIFO disciplines sort each lane's buffer)
        rule = policies.get("queue", spec_station.queue)(self)
        self.queue_key = rule.key
        self.queue_draws = rule.draws_time  # a lot's time is drawn when it joins the queue
        if self.queue_key is not None:
            for ln in self.lanes:
                ln.buffer.order_by(self.queue_key)
        # what an orchestrator has measured of this station's unit times (its dispatch reads them)
        self.measured: MeasuredTimes | None = None
        if spec_station.dispatch == "least_expected_completion" and len(self.lanes) > 1:
            self.measured = MeasuredTimes(self.means)
        self.input: Any
        if len(self.lanes) == 1:
            self.input = self.lanes[0].buffer
        else:
            self.input = Dispatcher(self.lanes, policies.get("dispatch", spec_station.dispatch)(self))
        self.reliability.start(self.servers)
        if self.minor is not None:
            for srv in self.servers:
                srv.ms_left = self.minor[0].one()

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

    def planned_time(self, lot: Lot) -> float:
        """A draw of ``lot``'s processing time here (s, before speed and losses) for the units it
        brings: those to rework at a rework station, those to test again on a retest, else all."""
        return self.lot_time[lot.product](lot.rework or lot.retest or lot.qty)  # type: ignore[misc]

    def has_extras(self) -> bool:
        """Whether the loop's optional steps can do anything here (see the module doc): any step
        of :data:`STEPS` built for this station."""
        return bool(self.steps)

    @property
    def steps(self) -> tuple[str, ...]:
        """The optional steps of the server loop this station builds (names of :data:`STEPS`)."""
        return tuple(name for name, built in STEPS.items() if built(self))

    def mark_waiting(self, srv: Server, state: int) -> None:
        """Another process (a lane switched off, a disruption) changes the state of ``srv`` while
        it waits for work. Only the full loop reads ``srv.state`` afresh; the plain loop keeps a
        local copy, so a station on it must not be written from outside (its gate names the step
        that writes it: ``lane_release``, ``lanes``, ``disruption``)."""
        if not self.has_extras():
            raise RuntimeError(f"station {self.name}: a server on the plain loop had its state changed "
                               "from outside; the step that does it is missing from twin.station.STEPS")
        self.set_state(srv, state)

    # ------------------------------------------------------------------ the server loop
    def serve(self, srv: Server):
        """The server's process: take a lot, set up, work, inspect, hand it on; forever."""
        if not self.has_extras() and self.reliability.failures is None and srv.resume is None:
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
            srv.t_job = env.now
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
            srv.t_job = -1.0  # no job begun

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
        plain = not (model.general or cal is not None or rel.failures is not None or tr is not None
                     or self.minor is not None)
        flow = self.flow_extras
        batch = self.batch
        takes = self.takes if self.needs_material else None
        speed_loss = self.speed_loss
        pace = model.pace  # a newly hired crew's learning curve (capacity policy), or None
        measured = self.measured
        dispatched = len(self.lanes) > 1  # only a dispatcher over lanes reads est_end
        buf = lane.buffer  # bound now: a saturated source has replaced it by the time the process starts
        try_get = buf.try_get
        resume, srv.resume = srv.resume, None
        while True:
            if resume is not None:  # a state start: the job in hand at the snapshot goes first
                got = yield from self._resume(srv, resume)
                resume = None
                if got is None:
                    continue
                lot, d = got
                lots = [lot]
                p = lot.product
                units = lot.qty
                su = 0.0
            else:
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
                lots = [lot]
                if batch is not None:
                    yield from self._fill_batch(srv, buf, lots)
                if extras:
                    if watch and srv.next_fail <= env.now:  # struck during a wait that could not watch it
                        yield from rel.repair(srv)
                    if srv.pm_left <= 0.0:
                        yield from rel.planned_maintenance(srv)
                    if self.stop_until > env.now:  # a disruption stops the station
                        srv.down_until = self.stop_until
                        yield from rel.wait(srv, timeout(self.stop_until - env.now), _DOWN)
                    if takes is not None:
                        for q in lots:
                            for store, per in takes[q.product]:
                                ev = store.take(per * q.qty)
                                if ev is not None:
                                    yield from rel.wait(srv, ev, _STARVED)
                p = lot.product
                units = sum(q.qty for q in lots) if batch is not None else lot.qty
                if batch is not None:
                    d = lot_time[p](1)  # type: ignore[misc]  # one time for the whole batch
                elif lot.planned is not None and lot.planned[0] == self.index:  # drawn by its queue (spt, lpt)
                    d = lot.planned[1]
                    lot.planned = None
                    units = lot.rework or lot.retest or lot.qty
                elif lot.rework:  # at a rework station: only the units to rework are worked on
                    d = lot_time[p](lot.rework)  # type: ignore[misc]
                    units = lot.rework
                elif lot.retest:  # back at its inspecting station: only the repaired units are tested again
                    d = lot_time[p](lot.retest)  # type: ignore[misc]
                    units = lot.retest
                else:
                    d = lot_time[p](lot.qty)  # type: ignore[misc]
                su = 0.0
                if setup is not None and srv.last_product is not None and srv.last_product != p:
                    s = setup[srv.last_product][p]
                    if s is not None:
                        su = s.lot(1)
                if extras:
                    ideal_d = d
                    if speed_loss is not None:
                        d *= speed_loss.one()
                    if self.minor is not None:
                        d = self._with_minor_stops(srv, d, ideal_d)
                    d /= lane.speed
                    if pace is not None and pool is not None:
                        d *= pace(env.now)
                    if dispatched:  # what a dispatcher may know of the job: its expected end
                        est = measured.est[p] if measured is not None else means[p]
                        last = srv.last_product
                        su_est = (self.setup_means[last][p] if self.setup_means is not None and last is not None
                                  and last != p else 0.0)
                        srv.est_end = env.now + (su_est + est * units) / lane.speed
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
            srv.t_job = env.now
            if plain:
                if srv.state != _BUSY:
                    states((env.now, sid, _BUSY))
                    srv.state = _BUSY
                yield timeout(d)
            else:
                if tr:
                    for q in lots:
                        tr((env.now, sid, q.id, q.product, q.qty, _T_START))
                yield from self.work(srv, d, _BUSY, ages=True)
            if measured is not None:  # the lot's busy time as the line reports it when done
                measured.observe(p, d, units)
            srv.units += units
            if batch is not None:
                srv.ideal += means[p]
                for q in lots:
                    q.work += means[p] / units
            else:
                srv.ideal += means[p] * units
                if units == lot.qty:
                    lot.work += means[p]
                if lot.rework:
                    lot.retest = lot.rework if lot.retest < 0 else 0  # -1: it returns to its inspector
                    lot.rework = 0
                else:
                    lot.retest = 0
            if extras:
                for q in lots:
                    if tr:
                        tr((env.now, sid, q.id, q.product, q.qty, _T_END))
                    if inspect is not None:
                        reworked = inspect(q)
                        if reworked:
                            if self.quality.rework_at is not None:  # type: ignore[union-attr]
                                q.rework = reworked  # the lot goes to the rework station
                            elif self.quality.rework_time > 0.0:  # type: ignore[union-attr]
                                # the crew (or machine) repairs the found units before the lot moves on
                                yield from self.work(srv, reworked * self.quality.rework_time, _BUSY, ages=False)  # type: ignore[union-attr]
                if pool is not None:
                    pool.put(crew)
            for k, q in enumerate(lots):
                srv.lot = q
                if batch is not None:
                    srv.held = lots[k + 1:]
                if extras and q.qty == 0:  # every unit found defective and scrapped: the lot leaves the line
                    model.scrapped_lot(q)
                    if tr:
                        tr((env.now, sid, q.id, q.product, 0, _T_LEAVE))
                    continue
                if flow:
                    nxt, fleet = self._destination(srv, q)
                    if fleet is not None:
                        if tr:
                            tr((env.now, sid, q.id, q.product, q.qty, _T_BLOCKED))
                        yield from rel.wait(srv, fleet.request(q, nxt), _BLOCKED)
                        if tr:
                            tr((env.now, sid, q.id, q.product, q.qty, _T_UNBLOCKED))
                            tr((env.now, sid, q.id, q.product, q.qty, _T_LEAVE))
                        continue
                else:
                    q.step += 1
                    nxt = q.route[q.step]
                if not nxt.try_put(q):
                    if tr:
                        tr((env.now, sid, q.id, q.product, q.qty, _T_BLOCKED))
                    if watch:
                        yield from rel.wait(srv, nxt.put_event(q), _BLOCKED)
                    else:
                        if srv.state != _BLOCKED:
                            states((env.now, sid, _BLOCKED))
                            srv.state = _BLOCKED
                        yield nxt.put_event(q)
                    if tr:
                        tr((env.now, sid, q.id, q.product, q.qty, _T_UNBLOCKED))
                if tr:
                    tr((env.now, sid, q.id, q.product, q.qty, _T_LEAVE))
            srv.lot = None
            srv.t_job = -1.0  # no job begun
            srv.held = []

    def _resume(self, srv: Server, r: "Resume"):
        """The first steps of a server started from a snapshot: the stop under way, the
        changeover under way, or the hand-on a blocked server waits for. Returns ``(lot, work
        left s)`` for the loop to work on, or None when the server is then free."""
        lot = r.lot
        srv.lot = lot
        srv.t_job = self.model.env.now
        srv.carried = (srv.t_job, r.worked)  # (a snapshot during the stop counts the work done before)
        if r.state in (_DOWN, _MAINT):
            yield from self.reliability.resume_stop(srv, r.state, r.stop)
        if lot is None:
            return None
        if r.state == _BLOCKED:  # done here: it waits for room downstream
            if self.flow_extras:
                nxt, _ = self._destination(srv, lot)  # (no fleet: a state start refuses transport)
            else:
                lot.step += 1
                nxt = lot.route[lot.step]
            if not nxt.try_put(lot):
                yield from self.reliability.wait(srv, nxt.put_event(lot), _BLOCKED)
            srv.lot = None
            srv.t_job = -1.0  # no job begun
            return None
        if r.state == _SETUP:
            yield from self.work(srv, r.setup, _SETUP, ages=False)
        srv.last_product = lot.product
        srv.carried = (self.model.env.now, r.worked)  # the loop's t_job is this instant
        return lot, r.job / srv.lane.speed

    def _fill_batch(self, srv: Server, buf: Any, lots: list[Lot]):
        """Add lots from ``buf`` to the batch ``lots`` (up to ``batch.size`` units); wait for
        more while it is below ``batch.min``, at most ``batch.max_wait`` from now."""
        b = self.batch
        env = self.model.env
        size = b.size  # type: ignore[union-attr]
        need = b.min if b.min is not None else size  # type: ignore[union-attr]
        units = lots[0].qty
        deadline = env.now + b.max_wait if b.max_wait is not None else None  # type: ignore[union-attr]
        srv.held = lots
        while units < size:
            q = buf.peek()
            if q is not None:
                if units + q.qty > size:
                    break
                lots.append(buf.try_get())
                units += q.qty
                continue
            if units >= need or (deadline is not None and env.now >= deadline):
                break
            # the chamber being loaded gets the next lots before idle ones start batches of their own
            ev = buf.get_event(first=True)
            if deadline is not None:
                yield ev | env.timeout(deadline - env.now)
                if not ev.triggered:
                    buf.getters.remove(ev)
                    break
                q = ev.value
            else:
                q = yield ev
            if units + q.qty > size:  # too big to join: it opens the next batch
                buf.put_back(q)
                break
            lots.append(q)
            units += q.qty

    def _with_minor_stops(self, srv: Server, d: float, ideal: float) -> float:
        """``d`` s of work stretched by the minor stops that fall in it (operating time); each
        stop is recorded as ``(t, server, duration)``."""
        every, length = self.minor  # type: ignore[misc]
        log = self.model.rec.minor
        now = self.model.env.now
        done = 0.0
        total = d
        while srv.ms_left <= d - done:
            done += srv.ms_left
            stop = length.one()
            log.append((now + done, srv.sid, stop))
            now += stop
            total += stop
            srv.ms_left = every.one()
        srv.ms_left -= d - done
        return total

    def _destination(self, srv: Server, lot: Lot) -> tuple[Any, Any]:
        """Where ``lot`` goes from here, and the fleet that moves it (or None): back from a
        detour, to a rework station, where the routing draw sends it, else its next step."""
        model = self.model
        names = model.route_names[lot.product]
        if lot.detour:  # back from a repair bench or rework station to where it left its route
            lot.detour = False
            back = lot.route[lot.step]
            if isinstance(back, Dispatcher):
                back = back.route(lot)
            # it re-enters the station's queue even when that is full (a re-entry rack): a repair
            # bench blocked by the line it serves would starve the loop and deadlock it
            return _InPlace(back, front=False), None
        elif lot.rework and self.quality is not None and self.quality.rework_at is not None:
            q = self.quality
            ret = q.rework_return or self.name
            lot.step = _route_index(names, ret, lot.step)
            lot.detour = True
            if ret == self.name:
                lot.retest = -1  # the rework station sets how many units come back to be tested
            nxt = model.stations[q.rework_at].input  # type: ignore[index]
        else:
            nxt = None
            if self.routing_rng is not None:
                u = self.routing_rng.random()
                acc = 0.0
                for tgt, prob in self.spec.routing.items():
                    acc += prob
                    if u < acc:
                        if tgt == self.name:  # tested again in place: first in this lane's queue, whatever its room
                            buf = srv.lane.buffer
                            nxt = _InPlace(buf)
                        elif tgt in names:
                            lot.step = _route_index(names, tgt, lot.step)
                            nxt = lot.route[lot.step]
                        else:
                            lot.detour = True  # a detour: it comes back here afterwards
                            nxt = model.stations[tgt].input
                        break
            if nxt is None:
                lot.step += 1
                nxt = lot.route[lot.step]
        if not model.fleets:
            return nxt, None
        return model.moved_by(self, srv, lot, nxt)


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
            wear = srv.lane.wear
            if operating and srv.ttf_left <= chunk * wear:
                worked = srv.ttf_left / wear
                yield env.timeout(worked)
                d -= worked
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
                srv.ttf_left -= chunk * wear
                srv.pm_left -= chunk * wear
            if d <= WORK_EPS:
                return


def _route_index(names: list[str], station: str, step: int) -> int:
    """The step of ``station`` on a route: the nearest visit at or before ``step``, else after it."""
    for i in range(min(step, len(names) - 1), -1, -1):
        if names[i] == station:
            return i
    return names.index(station)


class _InPlace:
    """Where a retested lot goes back to (the front of its own lane's queue) or a reworked one
    re-enters its line (the back of the queue), even when the queue is full: the retested lot
    never left the tester, and the reworked one has its own re-entry rack."""

    __slots__ = ("buffer", "front")

    def __init__(self, buffer: Buffer, front: bool = True):
        self.buffer = buffer
        self.front = front

    def try_put(self, lot: Lot) -> bool:
        self.buffer.put_beyond_capacity(lot, self.front)
        return True


# The optional steps of the server loop and when a station builds each: the plain loop
# (:meth:`StationRuntime._serve_plain`) runs exactly when none is built. A feature that adds a
# step to :meth:`StationRuntime._serve`, or writes a server's state from another process, joins
# this table; tests/test_engine.py sets every spec field of a station (and every model-wide
# feature) away from its default and requires a step to be built or the field to be one the plain
# loop reads (PLAIN_FIELDS).
STEPS: dict[str, Callable[[Any], bool]] = {  # each called with the StationRuntime
    "operators": lambda st: st.pool is not None,
    "calendar": lambda st: st.calendar is not None,
    "reliability": lambda st: st.reliability.active,  # failures, maintenance, technicians
    "inspection": lambda st: st.quality is not None,
    "lanes": lambda st: len(st.lanes) > 1 or bool(st.spec.speeds),  # dispatch, speeds, lanes switched off
    "disruption": lambda st: st.model.disrupted(st.name),  # writes the servers' states (mark_waiting)
    "lane_release": lambda st: st.model.lane_structured,  # lanes switched on and off by capacity
    "trace": lambda st: st.model.rec.trace is not None,
    "general": lambda st: st.model.general,  # Model(general=True): no shortcut at all
    "minor_stops": lambda st: st.minor is not None,
    "speed_loss": lambda st: st.speed_loss is not None,
    "flow": lambda st: st.flow_extras,  # detours, retests, rework and vehicles decide where a lot goes
    "batch": lambda st: st.batch is not None,
    "material": lambda st: st.needs_material,
    "detours": lambda st: st.model.detours,
    "queue_time": lambda st: st.queue_draws,  # a discipline that draws a lot's time as it joins the queue
}

PLAIN_FIELDS = frozenset({"name", "servers", "process_time", "process_time_by_product", "buffer", "setup",
                          "power_kw", "queue", "dispatch", "crew"})
"""Station spec fields the plain loop itself handles (or that no loop reads: power is costed
from the record; ``dispatch`` acts only with lanes, ``crew`` only with operators; a queue
discipline that sorts without drawing orders the buffer, which both loops read alike)."""
