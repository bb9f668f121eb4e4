"""Dispatch rules: which lane (parallel line or cell) of a station takes a lot."""

from __future__ import annotations

from typing import Any

from .registry import register


@register("dispatch", "fixed")
class Fixed:
    """The lot's own line (``lot.lane``), as on dedicated static lines."""

    def __init__(self, station: Any):
        self.n = len(station.lanes)

    def choose(self, lot: Any) -> int:
        return (lot.lane if lot.lane is not None else lot.id) % self.n


@register("dispatch", "shortest_queue")
class ShortestQueue:
    """The active lane with the fewest lots waiting or in process per machine."""

    def __init__(self, station: Any):
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
    work in process, repairs under way, the setup the lot would need, and the lane's
    speed — what an orchestrator with a live view of the floor knows."""

    def __init__(self, station: Any):
        self.lanes = station.lanes
        self.station = station

    def choose(self, lot: Any) -> int:
        # every lane's expected completion in one loop (no call per lane): it runs for every lot at
        # every multi-lane station
        st = self.station
        now = st.model.env.now
        means = st.measured.est if st.measured is not None else st.means
        setup_means = st.setup_means
        p = lot.product
        own0 = means[p] * lot.qty
        best, best_t = 0, float("inf")
        for i, ln in enumerate(self.lanes):
            if not ln.active:
                continue
            work = 0.0
            last = None
            servers = ln.servers
            for s in servers:
                t = s.busy_until
                if t > now:
                    work += t - now
                t = s.down_until
                if t > now:
                    work += t - now
                if last is None:
                    last = s.last_product
            buf = ln.buffer
            items = buf.items
            for q in items:
                work += means[q.product] * q.qty
            if items:
                last = items[-1].product
            putters = buf.putters
            if putters:
                for _, q in putters:
                    work += means[q.product] * q.qty
                last = putters[-1][1].product
            own = own0
            if setup_means is not None and last is not None and last != p:
                own += setup_means[last][p]
            t = (work / len(servers) + own) / ln.speed
            if t < best_t:
                best, best_t = i, t
        return best
