"""What moves and where it waits: lots, buffers, sinks (runtime objects, SimPy-based).

The buffers are a small rendezvous on SimPy events rather than ``simpy.Store``:
capacity 0 (direct hand-off, the upstream server stays blocked until a
downstream server takes the lot) is not expressible with a Store, and the
synchronous ``try_get``/``try_put`` fast path avoids scheduling an event for
every hand-off that can happen at once.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import deque
from typing import Any, Callable, Iterator

import simpy


class Lot:
    """``qty`` units of one product moving along its route."""

    __slots__ = ("id", "product", "qty", "route", "step", "t_release", "defects", "work", "lane", "target",
                 "detour", "rework", "retest", "due", "planned")

    def __init__(self, id: int, product: int, qty: int, route: tuple[Any, ...], t_release: float,
                 lane: int | None = None):
        self.id = id
        self.product = product
        self.qty = qty  # good-so-far units (scrapped units leave the lot)
        self.route = route  # tuple of station inputs (buffers or dispatchers) to visit, then the sink
        self.step = 0
        self.t_release = t_release
        self.defects = 0  # defective units not (yet) found
        self.work = 0.0  # ideal processing seconds per unit done so far (the value scrap destroys)
        self.lane = lane  # the line or cell it was released to (fixed dispatch), None = any
        self.target = 0  # lane chosen by the last dispatcher
        self.detour = False  # at a station off its route (repair bench, rework): comes back to ``step``
        self.rework = 0  # found units on their way to a rework station
        self.retest = 0  # repaired units to test again at the station that found them (-1: on the way)
        self.due = t_release  # due date (s) an earliest-due-date queue orders by (the release sets it)
        self.planned: tuple[int, float] | None = None  # (station index, its time drawn on joining its queue)


class SortedQueue:
    """The lots of a buffer whose queue discipline is not FIFO, kept in the order they will be
    served: by ``key(lot)``, ties in arrival order (a non-preemptive priority queue).

    It has the part of :class:`collections.deque`'s interface a :class:`Buffer` uses, so the
    buffer's hand-off logic is the same for every discipline and FIFO keeps its plain deque.
    ``appendleft`` (a lot put back, a retest in place) goes first among lots of its key."""

    __slots__ = ("key", "_keys", "_lots", "_seq", "_front")

    def __init__(self, key: Callable[[Lot], float]):
        self.key = key
        self._keys: list[tuple[float, int]] = []
        self._lots: list[Lot] = []
        self._seq = 0
        self._front = 0

    def _insert(self, k: tuple[float, int], lot: Lot) -> None:
        i = bisect_right(self._keys, k)
        self._keys.insert(i, k)
        self._lots.insert(i, lot)

    def append(self, lot: Lot) -> None:
        self._seq += 1
        self._insert((self.key(lot), self._seq), lot)

    def appendleft(self, lot: Lot) -> None:
        self._front -= 1
        self._insert((self.key(lot), self._front), lot)

    def popleft(self) -> Lot:
        del self._keys[0]
        return self._lots.pop(0)

    def remove(self, lot: Lot) -> None:
        i = self._lots.index(lot)
        del self._keys[i]
        del self._lots[i]

    def __getitem__(self, i: int) -> Lot:
        return self._lots[i]

    def __iter__(self) -> Iterator[Lot]:
        return iter(self._lots)

    def __len__(self) -> int:
        return len(self._lots)


class Buffer:
    """Waiting room in front of a station: ``capacity`` places (``None`` = unlimited, 0 = hand-off).

    Lots wait in FIFO order, or in the order of a queue discipline (:meth:`order_by`). A put
    that finds the room full waits (the putter is *blocked*); a get that finds it empty waits
    (the getter is *starved*).
    """

    __slots__ = ("env", "capacity", "items", "getters", "putters", "on_put", "reserved", "on_space")

    def __init__(self, env: simpy.Environment, capacity: int | None):
        self.env = env
        self.capacity = float("inf") if capacity is None else capacity
        self.items: deque[Lot] = deque()
        self.getters: deque[simpy.Event] = deque()
        self.putters: deque[tuple[simpy.Event, Lot]] = deque()
        self.on_put: Callable[[Lot], None] | None = None
        self.reserved = 0  # places promised to lots on their way (a vehicle loads only with a place)
        self.on_space: list[Callable[[], None]] = []  # told when a lot leaves (fleets wait for room)

    def order_by(self, key: Callable[[Lot], float]) -> None:
        """Serve the waiting lots by ``key(lot)`` (smallest first, ties first come first served)
        instead of FIFO; call before any lot arrives."""
        assert not self.items, "a queue discipline is set before the run"
        self.items = SortedQueue(key)  # type: ignore[assignment]

    def put_back(self, lot: Lot) -> None:
        """Return ``lot``, taken but not started, to the head of its place in the queue."""
        self.items.appendleft(lot)

    def __len__(self) -> int:
        return len(self.items) + len(self.putters)

    def try_put(self, lot: Lot) -> bool:
        """Put at once if possible (hand to a waiting getter or into a free place)."""
        if self.getters:
            self.getters.popleft().succeed(lot)
            return True
        if len(self.items) + self.reserved < self.capacity:
            self.items.append(lot)
            return True
        return False

    def has_room(self) -> bool:
        """Whether a lot could be put now (a free place not promised, or a waiting getter)."""
        return len(self.items) + self.reserved < self.capacity + len(self.getters)

    def put_event(self, lot: Lot) -> simpy.Event:
        """An event that fires when ``lot`` has been accepted (call after ``try_put`` failed)."""
        ev = self.env.event()
        self.putters.append((ev, lot))
        return ev

    def try_get(self) -> Lot | None:
        """Take the next lot at once if there is one (a place or a blocked upstream lot)."""
        if self.items:
            lot = self.items.popleft()
            if self.putters and len(self.items) + self.reserved < self.capacity:  # (a retested lot may fill it beyond)
                ev, waiting = self.putters.popleft()
                self.items.append(waiting)
                ev.succeed()
            elif self.on_space:
                for tell in self.on_space:
                    tell()
            return lot
        if self.putters:  # capacity 0: take straight from the blocked upstream server
            ev, waiting = self.putters.popleft()
            ev.succeed()
            return waiting
        return None

    def peek(self) -> Lot | None:
        """The lot ``try_get`` would take, left in place (None when there is none)."""
        if self.items:
            return self.items[0]
        return self.putters[0][1] if self.putters else None

    def get_event(self, first: bool = False) -> simpy.Event:
        """An event whose value is the next lot (call after ``try_get`` returned None);
        ``first``: ahead of the getters already waiting."""
        ev = self.env.event()
        if first:
            self.getters.appendleft(ev)
        else:
            self.getters.append(ev)
        return ev

    def put_beyond_capacity(self, lot: Lot, front: bool) -> None:
        """Hand ``lot`` to a waiting getter, or queue it (at the front or the back) even when the
        room is full: a lot that never left its station (a retest) or has a rack of its own."""
        if self.getters:
            self.getters.popleft().succeed(lot)
        elif front:
            self.items.appendleft(lot)
        else:
            self.items.append(lot)


class SaturatedBuffer(Buffer):
    """The first station's buffer under a saturated source: never empty.

    Lots put back into it (routes that revisit the station) go first; otherwise a
    fresh lot is released on demand by ``make_lot``.
    """

    __slots__ = ("make_lot",)

    def __init__(self, env: simpy.Environment, capacity: int | None, make_lot: Callable[[], Lot]):
        super().__init__(env, capacity)
        self.make_lot = make_lot

    def try_get(self) -> Lot:  # type: ignore[override]
        lot = super().try_get()
        return lot if lot is not None else self.make_lot()

    def peek(self) -> Lot:  # type: ignore[override]
        lot = super().peek()
        if lot is None:  # released now, first in the queue
            lot = self.make_lot()
            self.items.appendleft(lot)
        return lot


class Sink:
    """End of every route: records the finished lot (good or scrapped) and frees it."""

    __slots__ = ("finish",)

    def __init__(self, finish: Callable[[Lot], None]):
        self.finish = finish

    def try_put(self, lot: Lot) -> bool:
        self.finish(lot)
        return True
