"""Queue disciplines: the order in which a station's servers take the lots waiting in a buffer.

A discipline is ``Rule(station)`` with ``key``: ``None`` for first come, first served (the
buffer keeps its plain deque), or a function ``key(lot) -> float`` that the buffer orders its
waiting lots by, smallest first, ties first come first served. Service is non-preemptive: a lot
in work finishes. ``draws_time`` says the key needs the lot's processing time before it starts,
so the station draws it when the lot joins the queue (from the station's own ``process``
stream) and works exactly that time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from .registry import register

if TYPE_CHECKING:
    from ..contracts import StationView


@register("queue", "fifo")
class Fifo:
    """First come, first served."""

    key: Callable[[Any], float] | None = None
    draws_time = False

    def __init__(self, station: "StationView"):
        pass


@register("queue", "spt")
class ShortestProcessingTime:
    """Shortest processing time first: the lot's own time at this station (s, before speed and
    losses), known when it joins the queue, as the textbook rule assumes (Conway, Maxwell and
    Miller, *Theory of Scheduling*, 1967)."""

    draws_time = True
    sign = 1.0

    def __init__(self, station: "StationView"):
        index = station.index
        planned_time = station.planned_time
        sign = self.sign

        def key(lot: Any) -> float:
            pre = lot.planned
            if pre is None or pre[0] != index:
                pre = lot.planned = (index, planned_time(lot))
            return sign * pre[1]

        self.key = key


@register("queue", "lpt")
class LongestProcessingTime(ShortestProcessingTime):
    """Longest processing time first (the mirror of ``spt``)."""

    sign = -1.0


@register("queue", "edd")
class EarliestDueDate:
    """Earliest due date first: a lot released against the order book carries the due date of the
    order its units will fill (orders served oldest first); a lot released without orders is due
    when it was released (oldest release first)."""

    draws_time = False

    def __init__(self, station: "StationView"):
        self.key = lambda lot: lot.due


@register("queue", "priority")
class Priority:
    """Static priority by product (``products[].priority``, smaller first), ties first come first
    served: the non-preemptive priority queue of Cobham (1954)."""

    draws_time = False

    def __init__(self, station: "StationView"):
        ranks = [float(p.priority) for p in station.model.spec.products]
        self.key = lambda lot: ranks[lot.product]
