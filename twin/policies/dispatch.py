"""Dispatch rules: which lane (parallel line or cell) of a station takes a lot."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .registry import register

if TYPE_CHECKING:
    from ..contracts import StationView


@register("dispatch", "fixed")
class Fixed:
    """The lot's own line (``lot.lane``), as on dedicated static lines."""

    def __init__(self, station: "StationView"):
        self.n = len(station.lanes)

    def choose(self, lot: Any) -> int:
        return (lot.lane if lot.lane is not None else lot.id) % self.n


@register("dispatch", "shortest_queue")
class ShortestQueue:
    """The active lane with the fewest lots waiting or in process per machine."""

    def __init__(self, station: "StationView"):
        self.lanes = station.lanes

    def choose(self, lot: Any) -> int:
        best, best_v = 0, float("inf")
        for i, ln in enumerate(self.lanes):
            if not ln.active:
                continue
            v = (len(ln.buffer) + ln.in_process()) / len(ln.servers)
            if v < best_v:
                best, best_v = i, v
        return best


@register("dispatch", "least_expected_completion")
class LeastExpectedCompletion:
    """The active lane where the lot is expected to finish first: queued work, remaining
    work in process, stops under way, the setup the lot would need, and the lane's speed —
    what an orchestrator with a live view of the floor knows, and only that: work is valued
    at measured mean times (:class:`~twin.learn.MeasuredTimes`), work in process by its
    expected end from them, a repair or planned stop by its elapsed time and the stops
    measured so far (:class:`~twin.learn.StopDurations`), never by a sampled end."""

    def __init__(self, station: "StationView"):
        self.lanes = station.lanes
        self.station = station
        self._rows: list[tuple[Any, ...]] | None = None

    def choose(self, lot: Any) -> int:
        # every lane's expected completion in one loop (no call per lane): it runs for every lot at
        # every multi-lane station. The lanes' parts are looked up once, on the first call (after
        # the model is built: a saturated source replaces the first buffer while building)
        rows = self._rows
        if rows is None:
            rows = self._rows = [(i, ln, ln.servers, ln.buffer.items, ln.buffer.putters, len(ln.servers))
                                 for i, ln in enumerate(self.lanes)]
        st = self.station
        now = st.model.env.now
        means = st.measured.est if st.measured is not None else st.means
        setup_means = st.setup_means
        stops = st.reliability.stops
        p = lot.product
        own0 = means[p] * lot.qty
        best, best_t = 0, float("inf")
        for i, ln, servers, items, putters, n in rows:
            if not ln.active:
                continue
            speed = ln.speed
            if own0 / speed >= best_t:  # a lower bound (work and setup only add): this lane cannot win
                continue
            work = 0.0
            last = None
            for s in servers:
                if s.stop_since >= 0.0:  # a repair or planned stop under way: its expected rest, then the job's
                    work += s.est_left + stops.left(s.stop_kind, now - s.stop_since)
                else:
                    t = s.est_end
                    if t > now:
                        work += t - now
                if last is None:
                    last = s.last_product
            if items:
                for q in items:
                    work += means[q.product] * q.qty
                last = items[-1].product
            if putters:
                for _, q in putters:
                    work += means[q.product] * q.qty
                last = putters[-1][1].product
            own = own0
            if setup_means is not None and last is not None and last != p:
                own += setup_means[last][p]
            t = (work / n + own) / speed
            if t < best_t:
                best, best_t = i, t
        return best
