"""Transport at run time: fleets of vehicles that move lots between stations (DESIGN §2).

Each vehicle is one SimPy process (the servers' rule: one process per resource, never one
per lot). A server that hands a lot to a fleet stays ``blocked`` until a vehicle has loaded
it. A vehicle takes the oldest waiting move whose destination has a free place, reserves
that place (so that it never holds a lot it cannot unload, which would deadlock a line whose
servers wait for vehicles), travels, unloads and travels back empty. Vehicles record their states in the run's state list like servers do,
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

    __slots__ = ("model", "spec", "name", "queue", "free", "trip", "load", "unload", "sids", "legs", "watch")

    def __init__(self, model: "Model", spec: Any):
        self.model = model
        self.spec = spec
        self.name = spec.name
        self.queue: deque[tuple[Lot, Any, simpy.Event]] = deque()  # (lot, destination buffer, loaded)
        self.free: deque[simpy.Event] = deque()  # idle vehicles waiting for a move they can make
        rng = model.streams.get(f"transport:{spec.name}")
        self.trip = Sampler(spec.trip_time(), rng)
        self.load = float(spec.load_time)
        self.unload = float(spec.unload_time)
        self.sids: list[int] = []
        self.legs: list[tuple[float, float, float, float, float, int, int, int]] | None = None  # a watched run's
        self.watch: Any = None  # the watcher of a watched run (it knows where a lot was and buffers are)
        for k in range(spec.vehicles):
            sid = len(model.rec.servers)
            model.rec.servers.append((self.name, k))
            self.sids.append(sid)
        model.rec.fleets.append(self.name)

    def start(self) -> None:
        for sid in self.sids:
            self.model.env.process(self._vehicle(sid))

    def request(self, lot: Lot, dest: Any) -> simpy.Event:
        """Ask for ``lot`` to be moved to ``dest`` (a buffer); the event fires once it is loaded."""
        ev = self.model.env.event()
        self.queue.append((lot, dest, ev))
        if self.wake not in dest.on_space:
            dest.on_space.append(self.wake)
        self.wake()
        return ev

    def wake(self) -> None:
        """Send idle vehicles to the moves they can make now (a move came, or room at a
        destination): one vehicle per feasible move, not the whole fleet."""
        free = self.free
        if not (free and self.queue):
            return
        # count feasible moves only up to the idle vehicles they could take (called on every
        # request and every freed place)
        k = len(free)
        n = 0
        for _, dest, _ in self.queue:
            if dest.has_room():
                n += 1
                if n == k:
                    break
        while free and n > 0:
            free.popleft().succeed()
            n -= 1

    def _next_move(self) -> tuple[Lot, Any, simpy.Event] | None:
        """The oldest move whose destination has room now, its place reserved (a vehicle never
        loads a lot it could not unload: vehicles holding lots for full buffers whose servers
        wait for vehicles would deadlock)."""
        for i, (lot, dest, ev) in enumerate(self.queue):
            if dest.has_room():
                del self.queue[i]
                if dest.capacity > 0:
                    dest.reserved += 1
                return lot, dest, ev
        return None

    def _vehicle(self, sid: int):
        env = self.model.env
        states = self.model.rec.states.append
        in_transit = self.model.in_transit
        legs = self.legs  # a watched run's trip log, else None: bound once, not looked up per trip
        state = -1
        while True:
            move = self._next_move()
            if move is None:
                if state != _IDLE:
                    states((env.now, sid, _IDLE))
                    state = _IDLE
                ev = env.event()
                self.free.append(ev)
                yield ev
                continue
            lot, dest, loaded = move
            if state != _BUSY:
                states((env.now, sid, _BUSY))
                state = _BUSY
            t_load = env.now
            if self.load > 0.0:
                yield env.timeout(self.load)
            in_transit.add(lot)
            loaded.succeed()
            t_leave = env.now
            trip = self.trip.lot(1)
            yield env.timeout(trip + self.unload)
            if dest.capacity > 0:
                dest.reserved -= 1
            if not dest.try_put(lot):  # only a hand-off (capacity 0) whose taker has gone waits
                states((env.now, sid, _BLOCKED))
                state = _BLOCKED
                yield dest.put_event(lot)
                states((env.now, sid, _BUSY))
                state = _BUSY
            in_transit.discard(lot)
            back = self.trip.lot(1)
            if legs is not None:
                self._leg(t_load, t_leave, trip, back, sid, lot, dest)
            yield env.timeout(back)  # back empty

    def _leg(self, t_load: float, t_leave: float, trip: float, back: float, sid: int, lot: Lot, dest: Any) -> None:
        """Log a trip of a watched run that overlaps its window."""
        now = self.model.env.now
        w = self.watch
        if t_load <= w.window.end and now + back >= w.window.start:
            self.legs.append((t_load, t_leave, t_leave + trip, now, now + back, sid,  # type: ignore[union-attr]
                              w.station_at(lot), w.station_of_buffer.get(id(dest), -1)))


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
