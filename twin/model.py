"""Build a runnable model from a spec and run it (DESIGN §3, §6).

One SimPy process per server. The recorder holds plain tuples; DataFrames are
built afterwards by :mod:`twin.results`.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Any

import simpy

from .dists import Exponential, Sampler
from .flow import Buffer, Lot, SaturatedBuffer, Sink
from .spec import Spec
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
_IDLE, _SETUP, _BUSY, _BLOCKED, _DOWN = (int(State.IDLE), int(State.SETUP), int(State.BUSY),
                                         int(State.BLOCKED), int(State.DOWN))


class Recorder:
    """Plain lists of tuples appended during a run (no pandas in the hot path).

    - ``states``: ``(t, server_index, state)`` at each state change;
    - ``releases``: ``(lot_id, product_index, qty, t)``;
    - ``finishes``: ``(lot_id, t, good)`` with ``good`` 1 or 0 (scrapped).
    """

    __slots__ = ("states", "releases", "finishes", "servers", "products", "events")

    def __init__(self) -> None:
        self.states: list[tuple[float, int, int]] = []
        self.releases: list[tuple[int, int, int, float]] = []
        self.finishes: list[tuple[int, float, int]] = []
        self.servers: list[tuple[str, int]] = []  # (station name, server number)
        self.products: list[str] = []
        self.events: list[tuple[float, str, str]] = []  # rare control events (t, kind, detail)


class Server:
    """One machine of a station; ``run()`` is its SimPy process."""

    __slots__ = ("station", "index", "sid", "last_product", "ttf_left", "next_fail", "units", "ideal")

    def __init__(self, station: "StationRT", index: int, sid: int):
        self.station = station
        self.index = index
        self.sid = sid
        self.last_product: int | None = None
        self.ttf_left = float("inf")
        self.next_fail = float("inf")
        self.units = 0  # units processed
        self.ideal = 0.0  # their ideal (mean) processing time, s, for ISO 22400 effectiveness


class StationRT:
    """Runtime of one station: buffer, samplers, servers."""

    def __init__(self, model: "Model", spec_station: Any, product_names: list[str]):
        self.model = model
        self.spec = spec_station
        self.name = spec_station.name
        env = model.env
        self.buffer: Buffer = Buffer(env, spec_station.buffer)
        rng = model.streams.get(f"process:{self.name}")
        self.samplers: list[Sampler | None] = []
        for p in product_names:
            d = spec_station.process_time_by_product.get(p, spec_station.process_time)
            self.samplers.append(Sampler(d, rng) if d is not None else None)
        self.setup: list[list[Sampler | None]] | None = None
        if spec_station.setup is not None:
            srng = model.streams.get(f"setup:{self.name}")
            st = spec_station.setup
            default = Sampler(st.default, srng) if st.default.mean > 0 else None
            self.setup = []
            for a in product_names:
                row = []
                for b in product_names:
                    d = st.matrix.get(a, {}).get(b)
                    if a == b:
                        row.append(None)
                    elif d is not None:
                        row.append(Sampler(d, srng) if d.mean > 0 else None)
                    else:
                        row.append(default)
                self.setup.append(row)
        self.failures = spec_station.failures
        self.ttf: Sampler | None = None
        self.ttr: Sampler | None = None
        self.servers: list[Server] = []
        for i in range(spec_station.servers):
            sid = len(model.rec.servers)
            model.rec.servers.append((self.name, i))
            self.servers.append(Server(self, i, sid))
        if self.failures is not None:
            frng = model.streams.get(f"failure:{self.name}")
            self.ttf = Sampler(self.failures.ttf, frng)
            self.ttr = Sampler(self.failures.ttr, frng)
            for s in self.servers:
                if self.failures.basis == "operating":
                    s.ttf_left = self.ttf.one()
                else:
                    s.next_fail = self.ttf.one()

    # ------------------------------------------------------------------ process
    def run(self, srv: Server):
        """The server loop: get a lot, set up if the product changed, process, pass it on."""
        env = self.model.env
        rec = self.model.rec.states.append
        buf = self.buffer
        sid = srv.sid
        samplers = self.samplers
        ideal = [x.mean if x is not None else 0.0 for x in samplers]
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
            d = samplers[p].lot(lot.qty)  # type: ignore[union-attr]
            if operating_failures:
                while d >= srv.ttf_left:
                    yield timeout(srv.ttf_left)
                    d -= srv.ttf_left
                    rec((env.now, sid, _DOWN))
                    yield timeout(self.ttr.one())  # type: ignore[union-attr]
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
                    yield timeout(repair)
                    srv.next_fail = env.now + self.ttf.one()  # type: ignore[union-attr]
                    rec((env.now, sid, _BUSY))
                yield timeout(d)
            else:
                yield timeout(d)
            srv.units += lot.qty
            srv.ideal += ideal[p] * lot.qty
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
            repaired = srv.next_fail + self.ttr.one()  # type: ignore[union-attr]
            srv.next_fail = repaired + self.ttf.one()  # type: ignore[union-attr]
            if repaired > env.now:
                yield env.timeout(repaired - env.now)
            else:
                rec((repaired, srv.sid, state if state >= 0 else _IDLE))


class Model:
    """One run's world: environment, streams, recorder and runtime objects."""

    def __init__(self, spec: Spec, seed: int):
        self.spec = spec
        self.seed = seed
        self.env = simpy.Environment()
        self.streams = Streams(seed)
        self.rec = Recorder()
        self.product_names = [p.name for p in spec.products]
        self.rec.products = list(self.product_names)
        self.stations: dict[str, StationRT] = {}
        for s in spec.stations:
            self.stations[s.name] = StationRT(self, s, self.product_names)
        self.sink = Sink(self._finish)
        self._next_id = 0
        self.routes: list[tuple[Any, ...]] = []
        for p in spec.products:
            self.routes.append(tuple(self.stations[n].buffer for n in p.route) + (self.sink,))
        self.lot_sizes = [p.lot_size for p in spec.products]
        shares = [p.share for p in spec.products]
        total = sum(shares)
        self.shares = [s / total for s in shares]
        self._source_rng = self.streams.get("source")
        self.wip_units = 0
        self._build_source()
        for st in self.stations.values():
            for srv in st.servers:
                self.env.process(st.run(srv))

    # ------------------------------------------------------------------ flow
    def release(self, product: int, qty: int | None = None) -> Lot:
        """Create a lot of ``product`` at the current time and record its release."""
        lot_id = self._next_id
        self._next_id += 1
        q = self.lot_sizes[product] if qty is None else qty
        lot = Lot(lot_id, product, q, self.routes[product], self.env.now)
        self.rec.releases.append((lot_id, product, q, self.env.now))
        return lot

    def _finish(self, lot: Lot) -> None:
        self.rec.finishes.append((lot.id, self.env.now, 0 if lot.defective else 1))

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
        if src.kind == "saturated":
            starts: dict[str, list[int]] = {}
            for i, p in enumerate(self.spec.products):
                starts.setdefault(p.route[0], []).append(i)
            for st_name, prods in starts.items():
                st = self.stations[st_name]
                make = self._saturated_maker(prods)
                sat = SaturatedBuffer(self.env, st.spec.buffer, make)
                # routes hold buffer objects: point them at the saturated one
                st.buffer = sat
            self.routes = [tuple(self.stations[n].buffer for n in p.route) + (self.sink,) for p in self.spec.products]
        else:
            self.lost_lots = 0
            self.env.process(self._arrivals())

    def _saturated_maker(self, prods: list[int]):
        if len(prods) == 1:
            only = prods[0]
            return lambda: self.release(only)
        return lambda: self.release(self.pick_product(prods))

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
                self.rec.finishes.append((lot.id, env.now, -1))

    # ------------------------------------------------------------------ run
    def counters(self) -> list[tuple[int, float]]:
        """Per server ``(units processed, ideal processing time)`` so far."""
        return [(s.units, s.ideal) for st in self.stations.values() for s in st.servers]

    def run(self, until: float, warmup: float = 0.0) -> Recorder:
        """Advance the model to ``until`` seconds and return the recorder.

        The per-server counters are snapshotted at ``warmup`` so that KPIs can
        exclude the warm-up period.
        """
        if 0 < warmup < until:
            self.env.run(until=warmup)
        self.counters_at_warmup = self.counters()
        self.env.run(until=until)
        self.counters_at_end = self.counters()
        return self.rec
