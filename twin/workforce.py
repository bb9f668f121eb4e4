"""Worker pools at run time: a counting pool of identical workers (operators, technicians).

A FIFO counting semaphore on SimPy events instead of ``simpy.Container``: taking workers
that are free is a plain decrement (no event scheduled), which matters because every lot
on a manned station takes and returns its crew; a request that must wait gets an event and
is served strictly in arrival order, as with a Container.
"""

from __future__ import annotations

from collections import deque

import simpy


class Pool:
    """``size`` identical workers; a server takes ``n`` of them while it works."""

    __slots__ = ("env", "size", "level", "waiters")

    def __init__(self, env: simpy.Environment, size: int):
        self.env = env
        self.size = size
        self.level = size  # workers free now
        self.waiters: deque[tuple[int, simpy.Event]] = deque()

    def try_get(self, n: int) -> bool:
        """Take ``n`` workers at once if they are free and nobody is waiting before us."""
        if not self.waiters and self.level >= n:
            self.level -= n
            return True
        return False

    def get_event(self, n: int) -> simpy.Event:
        """An event that fires when ``n`` workers have been taken (call after ``try_get`` failed)."""
        ev = self.env.event()
        self.waiters.append((n, ev))
        return ev

    def put(self, n: int) -> None:
        """Return ``n`` workers; serve waiting requests in arrival order."""
        self.level += n
        waiters = self.waiters
        while waiters and self.level >= waiters[0][0]:
            k, ev = waiters.popleft()
            self.level -= k
            ev.succeed()
