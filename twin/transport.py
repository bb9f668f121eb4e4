"""Transport at run time: fleets of vehicles that move lots between stations (DESIGN §2).

Each vehicle is one SimPy process (the servers' rule: one process per resource, never one
per lot). A server that hands a lot to a fleet stays ``blocked`` until a vehicle has loaded
it; the vehicle then travels, waits for room at the destination (``blocked``), unloads and
travels back empty. Vehicles record their states in the run's state list like servers do,
under the fleet's name.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any

import simpy

from .dists import Sampler
from .flow import Lot
from .state import State

if TYPE_CHECKING:
    from .model import Model

_IDLE, _BUSY, _BLOCKED = int(State.IDLE), int(State.BUSY), int(State.BLOCKED)


class Fleet:
    """A transport fleet: its vehicles and the queue of moves waiting for one."""

    __slots__ = ("model", "spec", "name", "queue", "free", "trip", "load", "unload", "sids", "ideal", "moves")

    def __init__(self, model: "Model", spec: Any):
        self.model = model
        self.spec = spec
        self.name = spec.name
        self.queue: deque[tuple[Lot, Any, simpy.Event]] = deque()  # (lot, destination input, loaded)
        self.free: deque[simpy.Event] = deque()  # idle vehicles waiting for a move
        rng = model.streams.get(f"transport:{spec.name}")
        self.trip = Sampler(spec.trip_time(), rng)
        self.load = float(spec.load_time)
        self.unload = float(spec.unload_time)
        self.moves = 0
        self.sids: list[int] = []
        for k in range(spec.vehicles):
            sid = len(model.rec.servers)
            model.rec.servers.append((self.name, k))
            self.sids.append(sid)
        model.rec.fleets.append(self.name)

    def start(self) -> None:
        for sid in self.sids:
            self.model.env.process(self._vehicle(sid))

    def request(self, lot: Lot, dest: Any) -> simpy.Event:
        """Ask for ``lot`` to be moved to ``dest`` (a station input); the event fires once it is loaded."""
        ev = self.model.env.event()
        if self.free:
            self.free.popleft().succeed((lot, dest, ev))
        else:
            self.queue.append((lot, dest, ev))
        return ev

    def _vehicle(self, sid: int):
        env = self.model.env
        states = self.model.rec.states.append
        state = -1
        while True:
            if self.queue:
                lot, dest, loaded = self.queue.popleft()
            else:
                if state != _IDLE:
                    states((env.now, sid, _IDLE))
                    state = _IDLE
                ev = env.event()
                self.free.append(ev)
                lot, dest, loaded = yield ev
            states((env.now, sid, _BUSY))
            state = _BUSY
            if self.load > 0.0:
                yield env.timeout(self.load)
            self.model.in_transit.add(lot)
            loaded.succeed()
            self.moves += 1
            yield env.timeout(self.trip.lot(1))
            if self.unload > 0.0:
                yield env.timeout(self.unload)
            if not dest.try_put(lot):
                states((env.now, sid, _BLOCKED))
                state = _BLOCKED
                yield dest.put_event(lot)
                states((env.now, sid, _BUSY))
                state = _BUSY
            self.model.in_transit.discard(lot)
            yield env.timeout(self.trip.lot(1))  # back empty


def build_fleets(model: "Model") -> tuple[list[Fleet], dict[tuple[str, str], Fleet], list[Fleet]]:
    """The fleets, the one serving each ``(from, to)`` move, and the fleets that serve every move."""
    fleets = [Fleet(model, t) for t in model.spec.transport]
    pairs: dict[tuple[str, str], Fleet] = {}
    every: list[Fleet] = []
    for f in fleets:
        if f.spec.moves:
            for a, b in f.spec.moves:
                pairs.setdefault((a, b), f)
        else:
            every.append(f)
    return fleets, pairs, every
