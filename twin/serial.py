"""Exact departure times of a saturated serial line, without simulating events.

A line of single-server stations in series, fed by a saturated source, with finite (or
unlimited) buffers and blocking after service, obeys the max-plus recursion (Chen and Yao,
*Fundamentals of Queueing Networks*, 2001, ch. 4; Buzacott and Shanthikumar, 1993)::

    C[j][n] = max(D[j-1][n], D[j][n-1]) + S[j][n]      (D[0][n] = D[1][n-1]: never starved)
    D[j][n] = max(C[j][n], D[j+1][n - b[j+1] - 1])      (D[m][n] = C[m][n]: the sink takes all)

with ``S`` the lots' processing times, ``C`` their completions, ``D`` their departures (when
they leave the server, into the next buffer) and ``b[j]`` the places in front of station ``j``.
The times are drawn from the same named streams, in the same order, as the SimPy engine
draws them (``process:{station}``), so the departure times are the engine's, to the last bit:
tests/test_serial.py holds both to it, which makes this an oracle for the engine, and the
recursion runs across replications at once with numpy, which makes it a fast path for
searches over such lines (:func:`throughput`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .dists import Sampler
from .spec import Spec
from .streams import Streams
from .units import HOUR


def ineligible(spec: Spec) -> list[str]:
    """Why ``spec`` is not a saturated serial line this recursion computes exactly (``[]``: it
    is): each entry names the element that rules it out."""
    why: list[str] = []
    if spec.source.kind != "saturated":
        why.append(f"source.kind is {spec.source.kind!r} (the recursion needs a saturated source)")
    if len(spec.products) != 1:
        why.append(f"{len(spec.products)} products (one product only)")
    else:
        route = spec.products[0].route
        if len(set(route)) != len(route):
            why.append(f"products.{spec.products[0].name}.route visits a station twice")
        if spec.products[0].bom:
            why.append(f"products.{spec.products[0].name}.bom consumes components")
    for key in ("calendars", "workers", "components", "transport"):
        if getattr(spec, key):
            why.append(f"{key} are given")
    if spec.demand is not None:
        why.append("demand is given")
    for s in spec.stations:
        at = f"stations.{s.name}"
        for key, ok in (("servers", s.servers == 1), ("lanes", s.lanes == 1), ("queue", s.queue == "fifo"),
                        ("process_time", s.process_time is not None or bool(s.process_time_by_product))):
            if not ok:
                why.append(f"{at}.{key} is {getattr(s, key)!r}")
        for key in ("operators", "calendar", "quality", "setup", "failures", "minor_stops", "speed_loss", "batch",
                    "speeds"):
            if getattr(s, key) is not None:
                why.append(f"{at}.{key} is set")
        if s.routing:
            why.append(f"{at}.routing is set")
        if s.maintenance is not None and s.maintenance.policy != "reactive":
            why.append(f"{at}.maintenance is {s.maintenance.policy!r}")
    return why


@dataclass
class Departures:
    """What :func:`departures` computed: ``times[r][k]`` the departure times (s) of replication
    ``r``'s lots from the route's ``k``-th station, lot by lot, up to the horizon."""

    stations: list[str]
    lot_size: int
    times: list[list[np.ndarray]]

    def finished(self, r: int) -> np.ndarray:
        """Replication ``r``'s times (s) at which lots left the line (the last station)."""
        return self.times[r][-1]


def _samplers(spec: Spec, route: list[str], seed: int) -> list[Sampler]:
    streams = Streams(seed)
    product = spec.products[0].name
    out = []
    for name in route:
        st = spec.station(name)
        d = st.process_time_by_product.get(product, st.process_time)
        out.append(Sampler(d, streams.get(f"process:{name}")))
    return out


def departures(spec: Spec, horizon: float, seeds: list[int], chunk: int = 4096) -> Departures:
    """Departure times (s) of every lot from every station of the saturated serial line
    ``spec`` that leaves it before ``horizon`` (s), one replication per seed, computed by the
    max-plus recursion across all replications at once. ``ValueError`` when the spec is
    not eligible (:func:`ineligible` says why)."""
    why = ineligible(spec)
    if why:
        raise ValueError("not a saturated serial line: " + "; ".join(why))
    route = list(spec.products[0].route)
    m, reps = len(route), len(seeds)
    qty = spec.products[0].lot_size
    # places in front of each station after the first (None: unlimited, never blocks)
    cap = [spec.station(name).buffer for name in route]
    lag = [None if c is None else int(c) + 1 for c in cap[1:]] + [None]
    samplers = [_samplers(spec, route, s) for s in seeds]
    size = chunk
    dep = np.zeros((m, size, reps))
    n = 0
    prev_first = np.zeros(reps)  # D[1][n-1]: when the first station could start lot n
    while True:
        if n + chunk > size:
            size *= 2
            dep = np.concatenate([dep, np.zeros((m, size - dep.shape[1], reps))], axis=1)
        times = np.stack([np.stack([smp[j].lots(qty, chunk) for smp in samplers], axis=1) for j in range(m)])
        for k in range(chunk):
            i = n + k
            ready = prev_first
            for j in range(m):
                start = np.maximum(ready, dep[j, i - 1]) if i else ready
                done = start + times[j, k]
                g = lag[j]
                if g is not None and i >= g:
                    done = np.maximum(done, dep[j + 1, i - g])
                dep[j, i] = done
                ready = done
            prev_first = dep[0, i]
        n += chunk
        # a lot that leaves the last station at or after the horizon is one the run never finishes
        if float(dep[m - 1, n - 1].min()) >= horizon:
            break
    out = []
    for r in range(reps):
        out.append([dep[j, :n, r][dep[j, :n, r] < horizon] for j in range(m)])
    return Departures(route, qty, out)


def throughput(spec: Spec, horizon: float, warmup: float, seeds: list[int]) -> np.ndarray:
    """Units per hour finished in ``[warmup, horizon)`` (s) by each replication of the
    saturated serial line ``spec``: the ``throughput_per_hour`` KPI of the SimPy engine's
    run on the same seeds, from the exact departure times."""
    d = departures(spec, horizon, seeds)
    hours = (horizon - warmup) / HOUR
    return np.array([np.count_nonzero(d.finished(r) >= warmup) * d.lot_size / hours for r in range(len(seeds))])


__all__ = ["Departures", "departures", "ineligible", "throughput"]
