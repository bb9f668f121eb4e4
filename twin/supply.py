"""Components at run time: stores, reorder policies and suppliers (DESIGN §8).

A :class:`Store` holds one component. The station that consumes it calls :meth:`Store.take`
before it starts a lot; requests are served first come, first served, and a request that
cannot be filled waits (a backorder) while the station's server is ``starved_material``.
The reorder policy watches the inventory position (on hand + on order − backorders):
``sQ`` orders ``Q`` whenever it is at or below ``s``; ``RS`` reviews every ``R`` and orders
up to ``S``. Deliveries come after the supplier's lead time (late by ``delay`` with
probability 1 − ``reliability``), slowed or stopped by ``supply`` scenario shifts.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any

import simpy

from .dists import Sampler

if TYPE_CHECKING:
    from .model import Model


class Store:
    """One component's stock, backorders and open orders."""

    __slots__ = ("env", "index", "spec", "level", "on_order", "backorders", "waiting", "rec", "lead", "delay",
                 "rng", "slow", "stops")

    def __init__(self, model: "Model", index: int, spec: Any):
        self.env = model.env
        self.index = index
        self.spec = spec
        if spec.initial is not None:
            self.level = spec.initial
        else:
            self.level = spec.order_up_to if spec.policy == "RS" else max(spec.reorder_point, 0) + spec.order_qty
        self.on_order = 0
        self.backorders = 0  # units requested and not yet given
        self.waiting: deque[list[Any]] = deque()  # [units, event] in request order
        self.rec = model.rec
        rng = model.streams.get(f"supply:{spec.name}")
        self.rng = rng
        self.lead = Sampler(spec.supplier.lead_time, rng)
        self.delay = Sampler(spec.supplier.delay, rng) if spec.supplier.delay.mean > 0 else None
        # supply shifts: (start, end, lead-time factor) and (start, end) stops, s
        self.slow: list[tuple[float, float, float]] = []
        self.stops: list[tuple[float, float]] = []
        if model.spec.demand is not None:
            for sh in model.spec.demand.shifts:
                if sh.kind == "supply" and sh.target in (spec.name, "*"):
                    if sh.stop:
                        self.stops.append((sh.at, sh.at + sh.duration))
                    else:
                        self.slow.append((sh.at, sh.at + sh.duration, sh.factor))
        self._log()

    def _log(self) -> None:
        self.rec.stock.append((self.env.now, self.index, self.level, self.backorders))

    def position(self) -> int:
        """Inventory position: on hand + on order − backorders, units."""
        return self.level + self.on_order - self.backorders

    def take(self, units: int) -> simpy.Event | None:
        """Take ``units`` now (None) or get an event that fires when they are given."""
        filled = not self.waiting and self.level >= units
        self.rec.demands.append((self.env.now, self.index, units, int(filled)))
        if filled:
            self.level -= units
            ev = None
        else:
            ev = self.env.event()
            self.waiting.append([units, ev])
            self.backorders += units
        self._log()
        if self.spec.policy == "sQ":
            self._reorder_sq()
        return ev

    def _reorder_sq(self) -> None:
        s, q = self.spec.reorder_point, self.spec.order_qty
        while self.position() <= s:
            self._order(q)

    def review(self):
        """The ``RS`` review process: order up to ``S`` every ``R``."""
        env = self.env
        while True:
            short = self.spec.order_up_to - self.position()
            if short > 0:
                self._order(short)
            yield env.timeout(self.spec.review)

    def _order(self, units: int) -> None:
        now = self.env.now
        lead = self.lead.lot(1)
        for a, b, f in self.slow:
            if a <= now < b:
                lead *= f
        if self.delay is not None and self.rng.random() >= self.spec.supplier.reliability:
            lead += self.delay.lot(1)
        due = now + lead
        for a, b in self.stops:
            if a <= due < b:
                due = b
        self.on_order += units
        self.rec.purchases.append((now, self.index, units, due))
        self.env.process(self._deliver(units, due - now))

    def _deliver(self, units: int, after: float):
        yield self.env.timeout(after)
        self.on_order -= units
        self.level += units
        waiting = self.waiting
        while waiting and waiting[0][0] <= self.level:
            n, ev = waiting.popleft()
            self.level -= n
            self.backorders -= n
            ev.succeed()
        self._log()


def build_stores(model: "Model") -> tuple[list[Store], list[list[list[tuple[Store, int]]]]]:
    """The stores, and per station and product the ``(store, units per unit)`` it takes there."""
    spec = model.spec
    stores = [Store(model, i, c) for i, c in enumerate(spec.components)]
    by_name = {s.spec.name: s for s in stores}
    names = [s.name for s in spec.stations]
    takes: list[list[list[tuple[Store, int]]]] = [[[] for _ in spec.products] for _ in names]
    for pi, p in enumerate(spec.products):
        for comp, per in p.bom.items():
            store = by_name[comp]
            at = store.spec.at if store.spec.at is not None else p.route[0]
            if at in p.route:
                takes[names.index(at)][pi].append((store, per))
    for s in stores:
        if s.spec.policy == "RS":
            model.env.process(s.review())
    return stores, takes
