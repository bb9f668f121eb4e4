"""How lots enter the line and leave it: sources, the order book, release and delivery.

:class:`Release` is the part of :class:`~twin.model.Model` that planners and capacity
policies talk to (``need``, ``book``, ``stock``, ``open_units``, ``lanes_active``,
``set_lane_active``); it is a mixin so that their interface stays the model itself.
"""

from __future__ import annotations

import math
import os
from collections import deque
from typing import Any

import numpy as np
import simpy

from . import policies
from .demand import ArrivalClock, expected_units, order_stream
from .dists import Exponential, Sampler
from .flow import Lot, SaturatedBuffer
from .record import Fate, Record
from .spec import SimulationError, Spec
from .state import State
from .units import HOUR

_IDLE, _DOWN, _OFF, _MODULE_OFF = int(State.IDLE), int(State.DOWN), int(State.OFF_SHIFT), int(State.MODULE_OFF)
MAX_LOTS_AT_ONE_INSTANT = 200_000  # no real release comes close; a zero-time loop reaches it in a second
_CHECK_EVERY = (1 << 16) - 1  # the memory projection runs every 65,536 lots
BYTES_PER_RECORD = 160  # a recorded tuple of 3-6 numbers and its list slot, measured with tracemalloc


def memory_budget() -> float:
    """Bytes a run's record may take: half the physical memory (the tables built from it at
    the end need about as much again), or ``TWIN_MAX_MEMORY_GB`` when set."""
    env = os.environ.get("TWIN_MAX_MEMORY_GB")
    if env:
        try:
            return float(env) * 2**30
        except ValueError:
            pass
    try:
        return 0.5 * os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - not a POSIX system
        return 8 * 2**30
_GOOD, _SCRAPPED, _LOST = int(Fate.GOOD), int(Fate.SCRAPPED), int(Fate.LOST)


class Release:
    """Sources, make-to-order demand and delivery (mixed into the model)."""

    env: simpy.Environment
    spec: Spec
    rec: Record
    stations: dict[str, Any]
    streams: Any
    horizon: float
    replay: list[tuple[float, int, int]] | None
    replay_lossy: bool
    product_names: list[str]
    routes: list[tuple[Any, ...]]

    def _build_release(self) -> None:
        spec = self.spec
        self._next_id = 0
        self.lot_sizes = [p.lot_size for p in spec.products]
        shares = [p.share for p in spec.products]
        total = sum(shares)
        self.shares = [s / total for s in shares]
        self._source_rng = self.streams.get("source")
        self.wip = [0] * len(self.product_names)  # units released and not finished or scrapped, per product
        self.lost_lots = 0
        self._t_last_release = -1.0
        self._same_instant = 0  # lots released at the current instant (a zero-time loop never leaves it)
        self.orders_mode = spec.source.kind == "orders" and self.replay is None
        self.lane_structured = self.orders_mode and spec.planning.lanes > 1
        # a lot takes its order's due date only where a queue orders by it (it costs a walk of the book)
        self.dues_from_orders = self.orders_mode and any(s.queue != "fifo" for s in spec.stations)

    # ------------------------------------------------------------------ flow
    def release(self, product: int, qty: int | None = None, lane: int | None = None) -> Lot:
        """Create a lot of ``product`` at the current time and record its release."""
        lot_id = self._next_id
        self._next_id += 1
        now = self.env.now
        if now != self._t_last_release:
            self._t_last_release = now
            self._same_instant = 0
        else:
            self._same_instant += 1
            if self._same_instant >= MAX_LOTS_AT_ONE_INSTANT:
                raise SimulationError([
                    f"<spec {self.spec.name}>: simulated time stopped advancing at t = {now:g} s: "
                    f"{self._same_instant:,} lots released at that instant (a loop of stations that take "
                    "no time, or arrivals at no interval?); give the first station a processing time > 0 "
                    "or a finite buffer"])
        if not lot_id & _CHECK_EVERY:
            self.check_memory()
        q = self.lot_sizes[product] if qty is None else qty
        lot = Lot(lot_id, product, q, self.routes[product], now, lane)
        if self.dues_from_orders:
            lot.due = self._due_of_next(product)
        self.rec.releases.append((lot_id, product, q, now))
        self.wip[product] += q
        return lot

    def _due_of_next(self, p: int) -> float:
        """The due date (s) of the open order of ``p`` that the next lot's units will fill (orders
        are filled oldest first, after the stock and the units already in process); none left to
        fill (a lot built ahead of orders): never due."""
        ahead = self.stock[p] + self.wip[p]
        for _, open_qty, due in self.book[p]:
            if ahead < open_qty:
                return due
            ahead -= open_qty
        return float("inf")

    def _finish(self, lot: Lot) -> None:
        self.rec.finishes.append((lot.id, self.env.now, lot.qty, lot.defects, _GOOD))
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
        self.rec.finishes.append((lot.id, self.env.now, 0, 0, _SCRAPPED))

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

    def check_memory(self) -> None:
        """Stop with a clear error when the run's record, projected to the horizon, would not
        fit in memory (checked every 65,536 lots: early enough to refuse a year that will not fit)."""
        rec = self.rec
        now = self.env.now
        # every server's first state is recorded at t = 0: it does not grow with time
        n = (len(rec.states) - len(rec.servers) + len(rec.releases) + len(rec.finishes) + len(rec.orders)
             + len(rec.deliveries) + len(rec.demands) + len(rec.stock))
        if rec.trace is not None:
            n += len(rec.trace)
        if n == 0 or now <= 0:
            return
        projected = n * BYTES_PER_RECORD * max(1.0, self.horizon / now)
        if projected > memory_budget():
            raise SimulationError([
                f"<spec {self.spec.name}>: this run would need about {projected / 2**30:.1f} GiB for its record "
                f"({n:,} records by t = {now:g} s of a {self.horizon:g} s horizon), more than this machine can "
                f"give it ({memory_budget() / 2**30:.1f} GiB); shorten the horizon or use larger lots"])

    def _project_orders(self) -> None:
        """Refuse, before the order stream is drawn, a demand whose expected orders and lots alone
        would need more memory than :func:`memory_budget` (``base_per_week = 1e9`` would fill it
        while drawing). A lower bound: each order is drawn, recorded and delivered (3 records),
        each lot released and finished (2), whatever the stations record besides."""
        d = self.spec.demand
        units = expected_units(d, self.product_names, np.array([0.0, self.horizon]))[0]
        orders = float(units.sum()) / d.order_size  # type: ignore[union-attr]
        lots = sum(float(u) / self.lot_sizes[i] for i, u in enumerate(units))
        need = (3 * orders + 2 * lots) * BYTES_PER_RECORD
        if need > memory_budget():
            raise SimulationError([
                f"<spec {self.spec.name}>: demand: this run would draw about {orders:,.0f} orders and release "
                f"{lots:,.0f} lots over {self.horizon / HOUR:,.0f} h, which alone need about {need / 2**30:,.1f} GiB, "
                f"more than this machine can give it ({memory_budget() / 2**30:.1f} GiB); lower "
                "demand.base_per_week, raise demand.order_size or the products' lot_size, or shorten the horizon"])

    # ------------------------------------------------------------------ sources
    def _build_source(self) -> None:
        src = self.spec.source
        if self.replay is not None:
            self.env.process(self._replay())
        elif src.kind == "saturated":
            starts: dict[str, list[int]] = {}
            for i, p in enumerate(self.spec.products):
                starts.setdefault(p.route[0], []).append(i)
            for st_name, prods in starts.items():
                st = self.stations[st_name]
                make = self._saturated_maker(prods)
                for ln in st.lanes:
                    buf = SaturatedBuffer(self.env, st.spec.buffer, make)
                    if st.queue_key is not None:
                        buf.order_by(st.queue_key)
                    if len(st.lanes) > 1:
                        ln.buffer = buf
                    else:
                        st.buffer = buf
        elif src.kind in ("poisson", "renewal"):
            self.env.process(self._arrivals())
        for sh in src.shifts:  # a line fed by arrivals (an orders source has its shifts in [demand])
            if sh.kind == "disruption" and sh.target != "supply":  # a supply stop is in the arrival clock
                self.env.process(self._disruption(sh))

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
                if self.replay_lossy:
                    # the log records arrivals turned away (``lost``): a full entrance turns them away here too
                    self._turn_away(lot)
                else:
                    # the log says it arrived: it waits at the entrance without holding up later arrivals
                    first.put_event(lot)

    def _turn_away(self, lot: Any) -> None:
        """A full first buffer turns the arrival away (M/M/1/K semantics)."""
        self.lost_lots += 1
        self.wip[lot.product] -= lot.qty
        self.rec.finishes.append((lot.id, self.env.now, 0, 0, _LOST))

    def _arrivals(self):
        src = self.spec.source
        rng = self.streams.get("arrivals")
        dist: Any
        if src.kind == "poisson":
            dist = Exponential(mean=HOUR / src.rate_per_hour)  # type: ignore[operator]
        else:
            dist = src.interarrival
        draw = Sampler(dist, rng).one  # type: ignore[arg-type]
        env = self.env
        clock = ArrivalClock(src.shifts)
        if clock.trivial:  # the gap itself as the timeout: the same floats as before shifts existed
            while True:
                yield env.timeout(draw())
                self._arrive()
        # under rate shifts the gaps are drawn as without them, in operational time (from the
        # clock's own time: a state start begins later than 0)
        s_op = clock.op_at(env.now) if env.now > 0.0 else 0.0
        while True:
            s_op += draw()
            t = clock.time_at(s_op)
            if t == math.inf:
                return  # the arrivals stopped for good (a step to factor 0)
            yield env.timeout(max(0.0, t - env.now))
            self._arrive()

    def _arrive(self) -> None:
        lot = self.release(self.pick_product())
        if not lot.route[0].try_put(lot):
            self._turn_away(lot)

    # ------------------------------------------------------------------ orders (make-to-order)
    def _build_orders(self) -> None:
        spec = self.spec
        n = len(self.product_names)
        self.stock = [0] * n  # finished units not yet delivered
        self.open_units = [0] * n  # ordered units not yet delivered
        self.book: list[deque[list[Any]]] = [deque() for _ in range(n)]
        self.supply_stop_until = 0.0
        self._project_orders()
        self.order_list = order_stream(spec.demand, self.product_names, self.horizon, self.streams.get("demand"))  # type: ignore[arg-type]
        self.available_from = [0.0] * n
        for sh in spec.demand.shifts:  # type: ignore[union-attr]
            if sh.kind == "new_product" and sh.product in self.product_names:
                i = self.product_names.index(sh.product)
                # a launch announced ahead is prepared from its announcement (tooling, programs)
                ready = sh.at - (sh.announced or 0.0) + spec.planning.npi_lead_time
                self.available_from[i] = max(sh.at, ready)
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
                    if srv.state in (_IDLE, _OFF, _MODULE_OFF):
                        st.mark_waiting(srv, _IDLE if active else _MODULE_OFF)
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
                if srv.state in (_IDLE, _OFF, _MODULE_OFF):
                    st.mark_waiting(srv, _DOWN)
            yield env.timeout(sh.duration)
            for srv in st.servers:
                if srv.state == _DOWN and srv.down_until <= env.now:
                    st.mark_waiting(srv, _IDLE if srv.lane.active else _MODULE_OFF)
