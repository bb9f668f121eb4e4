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
from typing import Any, Callable, Iterator

import numpy as np

from .dists import Sampler
from .layouts import LAYOUTS
from .record import Fate, Record
from .release import memory_budget
from .results import Results, build
from .runs import check_run_times, map_jobs
from .shards import JobStore
from .spec import Spec, SpecError
from .state import State
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
        means = [t.mean for t in map(lambda name: _time(spec, name), route) if t is not None]
        if means and max(means) <= 0:
            why.append(f"products.{spec.products[0].name}.route takes no time at any station")
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


def _time(spec: Spec, station: str) -> Any:
    """The processing time of the spec's one product at ``station`` (None: none given)."""
    st = spec.station(station)
    return st.process_time_by_product.get(spec.products[0].name, st.process_time)


def _samplers(spec: Spec, route: list[str], seed: int) -> list[Sampler]:
    streams = Streams(seed)
    out = []
    for name in route:
        d = _time(spec, name)
        assert d is not None  # ineligible() has checked every station has a time
        out.append(Sampler(d, streams.get(f"process:{name}")))
    return out


_NEVER = 1 << 62  # the lag of a station with an unlimited buffer (or the sink): it never blocks
NUMPY_FROM = 32
"""Runs computed together as numpy columns from this many on; fewer run one by one on Python
floats, which is faster for them (numpy's per-call cost outweighs a handful of columns). Both
give the same bits: a sum and a maximum of two doubles are exact operations either way."""


@dataclass
class _Column:
    """One run of the recursion: a spec's route, lot size, lags and time samplers for one seed."""

    spec: Spec
    seed: int
    route: list[str]
    qty: int
    lag: list[int]  # D[j][n] waits for D[j+1][n - lag[j]] (blocking after service)
    samplers: list[Sampler]


def _column(spec: Spec, seed: int) -> _Column:
    why = ineligible(spec)
    if why:
        raise ValueError("not a saturated serial line: " + "; ".join(why))
    route = list(spec.products[0].route)
    # places in front of each station after the first (None: unlimited, never blocks)
    cap = [spec.station(name).buffer for name in route]
    lag = [_NEVER if c is None else int(c) + 1 for c in cap[1:]] + [_NEVER]
    return _Column(spec, seed, route, spec.products[0].lot_size, lag, _samplers(spec, route, seed))


def _chunk(cols: list[_Column], n: int, reached: float, horizon: float) -> int:
    """Lots to draw next: first half the lots the slowest station's mean time lets through by
    the horizon, then what the pace so far (``n`` lots sent on by ``reached`` s) needs to get
    there, 5 % over. The sizes change how much is computed past the horizon, never a result:
    a station's times come from its stream in the same order whatever the chunks."""
    if n == 0:
        slowest = max(smp.mean * c.qty for c in cols for smp in c.samplers)
        want = 0.5 * horizon / max(slowest, 1e-9)
    else:
        want = 1.05 * (horizon - reached) * n / max(reached, 1e-9)
    return int(min(max(want, 0.0), float(1 << 16))) + 64


def _one(col: _Column, horizon: float) -> tuple[np.ndarray, np.ndarray]:
    """``(C, D)`` of one column, ``[station, lot]``, on Python floats."""
    m, lag, qty = len(col.route), col.lag, col.qty
    comps: list[list[float]] = [[] for _ in range(m)]
    deps: list[list[float]] = [[] for _ in range(m + 1)]
    last = [0.0] * m
    i = 0
    while True:
        chunk = _chunk([col], i, last[0], horizon)
        times = [smp.lots(qty, chunk).tolist() for smp in col.samplers]
        for k in range(chunk):
            ready = last[0]  # the first station is never starved: it starts when the last lot left
            for j in range(m):
                prev = last[j]
                done = (ready if ready > prev else prev) + times[j][k]
                comps[j].append(done)
                g = lag[j]
                if i >= g:
                    free = deps[j + 1][i - g]
                    if free > done:
                        done = free
                deps[j].append(done)
                last[j] = done
                ready = done
            i += 1
        if last[0] >= horizon:
            return np.array(comps), np.array(deps[:m])


def _batch(cols: list[_Column], horizon: float) -> tuple[np.ndarray, np.ndarray]:
    """``(C, D)`` of columns with routes of one length, ``[station, lot, column]``, in numpy."""
    m, reps = len(cols[0].route), len(cols)
    finite = [g for c in cols for g in c.lag if g < _NEVER]
    # D is stored ``pad`` rows late behind zero rows, with one more plane of zeros: lot i - lag is
    # row i + pad - lag, never negative, and an unlimited buffer reads the zero plane (times are
    # >= 0, so the maximum ignores it); the reads go by flat index, numpy's cheapest gather
    pad = max(finite, default=0) + 1
    plane = [np.array([j + 1 if c.lag[j] < _NEVER else m for c in cols]) for j in range(m)]
    back = [np.array([pad - c.lag[j] if c.lag[j] < _NEVER else pad for c in cols]) for j in range(m)]
    cols_ix = np.arange(reps)
    size = 0
    comp = np.zeros((m, size, reps))
    dep = np.zeros((m + 1, pad + size, reps))
    n = 0
    while True:
        chunk = _chunk(cols, n, float(dep[0, pad + n - 1].min()) if n else 0.0, horizon)
        if n + chunk > size:
            size = max(2 * size, n + chunk)
            comp = np.concatenate([comp, np.zeros((m, size - comp.shape[1], reps))], axis=1)
            dep = np.concatenate([dep, np.zeros((m + 1, pad + size - dep.shape[1], reps))], axis=1)
            rows = pad + size
            base = [(plane[j] * rows + back[j]) * reps + cols_ix for j in range(m)]
            flat = dep.reshape(-1)
        times = np.stack([np.stack([c.samplers[j].lots(c.qty, chunk) for c in cols], axis=1) for j in range(m)])
        last = m - 1
        for k in range(chunk):
            i = n + k
            row = pad + i
            step = i * reps
            tk = times[:, k]
            # the first station is never starved: it starts when its last lot left
            done = dep[0, row - 1] + tk[0]
            for j in range(m):
                if j:
                    done = np.maximum(done, dep[j, row - 1])
                    done += tk[j]
                comp[j, i] = done
                if j < last:
                    np.maximum(done, flat.take(base[j] + step), out=done)
                dep[j, row] = done
        n += chunk
        if float(dep[0, pad + n - 1].min()) >= horizon:
            return comp[:, :n], dep[:m, pad:pad + n]


def _recursion(cols: list[_Column], horizon: float) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per column, ``(C, D)``: completion and departure times (s) of lots ``0..n-1`` at every
    station (``[station, lot]``), computed until the first station has sent a lot on at or
    after ``horizon`` (so every lot that starts anywhere before the horizon is in them)."""
    out: list[tuple[np.ndarray, np.ndarray] | None] = [None] * len(cols)
    by_length: dict[int, list[int]] = {}
    for i, c in enumerate(cols):
        by_length.setdefault(len(c.route), []).append(i)
    for idx in by_length.values():
        if len(idx) < NUMPY_FROM:
            for i in idx:
                out[i] = _one(cols[i], horizon)
            continue
        for group in _groups([cols[i] for i in idx], idx, horizon):
            comp, dep = _batch([cols[i] for i in group], horizon)
            for r, i in enumerate(group):
                out[i] = (comp[:, :, r], dep[:, :, r])
    return out  # type: ignore[return-value]


def _groups(cols: list[_Column], idx: list[int], horizon: float) -> list[list[int]]:
    """``idx`` split so that one group's arrays (two floats per station, lot and column, for
    about the lots the first station's mean time lets it send on by the horizon, 10 % over and
    doubled for the growth by chunks) stay within a quarter of the memory budget."""
    per = []
    for c in cols:
        pace = c.samplers[0].mean or max(smp.mean for smp in c.samplers)  # a zero-time first station waits on the rest
        lots = 1.1 * horizon / max(pace * c.qty, 1e-9) + sum(g for g in c.lag if g < _NEVER) + 8192
        per.append(2 * 2 * 8 * len(c.route) * lots)
    size = max(1, int(memory_budget() / 4 // max(per)))
    return [idx[i:i + size] for i in range(0, len(idx), size)]


def departures(spec: Spec, horizon: float, seeds: list[int]) -> Departures:
    """Departure times (s) of every lot from every station of the saturated serial line
    ``spec`` that leaves it before ``horizon`` (s), one replication per seed, by the max-plus
    recursion (on numpy columns for many seeds). ``ValueError`` when the spec is not eligible
    (:func:`ineligible` says why)."""
    cols = [_column(spec, s) for s in seeds]
    out = [[d[j][d[j] < horizon] for j in range(len(cols[0].route))] for _, d in _recursion(cols, horizon)]
    return Departures(cols[0].route, cols[0].qty, out)


_IDLE, _BUSY, _BLOCKED = int(State.IDLE), int(State.BUSY), int(State.BLOCKED)


def _table(name: str, **fields: Any) -> np.ndarray:
    """A record list as the structured array :meth:`Record.array` gives, from its columns."""
    n = len(next(iter(fields.values())))
    out = np.zeros(n, dtype=np.dtype(LAYOUTS[name]))
    for k, v in fields.items():
        out[k] = v
    return out


def _record(col: _Column, comp: np.ndarray, dep: np.ndarray, horizon: float, warmup: float) -> Record:
    """The record the SimPy engine writes for this run (``comp``/``dep``: its ``[station, lot]``
    completion and departure times, s), row for row: the state changes each server logs (only
    changes: idle when it finds its buffer empty, busy when it starts after idling or
    blocking, blocked when the next buffer is full), releases, finishes and counters; its
    lists are structured arrays, as :meth:`Record.array` would give them."""
    spec, qty = col.spec, col.qty
    rec = Record(spec, col.seed)
    names = [s.name for s in spec.stations]
    rec.servers = [(name, 0) for name in names]
    on_route = {name: j for j, name in enumerate(col.route)}
    m, n = comp.shape
    release = np.empty(n)
    release[0] = 0.0
    release[1:] = dep[0, :-1]  # the saturated source releases a lot as the first station takes it
    code = np.array([_IDLE, _BUSY, _BLOCKED])
    tables, w0, w1 = [], [], []
    for sid, name in enumerate(names):
        if name not in on_route:  # a station no lot visits waits from the start
            tables.append(_table("states", t=[0.0], server=[sid], state=[_IDLE]))
            w0.append((0, 0.0))
            w1.append((0, 0.0))
            continue
        j = on_route[name]
        d, c = dep[j], comp[j]
        prev = np.empty(n)
        prev[0] = 0.0
        prev[1:] = d[:-1]
        arrive = release if j == 0 else dep[j - 1]
        start = np.maximum(arrive, prev)
        # it finds its buffer empty (and logs idle) unless the lot was there before, or was
        # handed over as it left: an upstream server blocked on this one moves its lot in as
        # this one's departure frees the place
        if j == 0:
            empty = np.zeros(n, dtype=bool)
        else:
            empty = (arrive > prev) | ((arrive == prev) & (dep[j - 1] == comp[j - 1]))
            empty[0] = True
        # (a place that frees at the very instant the server finishes, which only constant
        # times make happen, is a zero-length blocked spell in the engine or none here, as
        # SimPy orders the two events: the tables' sums can then differ in the last bit)
        blocked = d > c
        busy_row = empty.copy()
        busy_row[1:] |= blocked[:-1]
        busy_row[0] = True
        keep = np.stack([empty & (prev < horizon), busy_row & (start < horizon), blocked & (c < horizon)], axis=1)
        t = np.stack([prev, start, c], axis=1)[keep]
        tables.append(_table("states", t=t, server=np.full(len(t), sid), state=np.broadcast_to(code, keep.shape)[keep]))
        # counters: units and ideal seconds summed lot by lot, as the engine adds them
        ideal = np.cumsum(np.full(n, col.samplers[j].mean * qty))
        for when, into in ((warmup, w0), (horizon, w1)):
            k = int(np.count_nonzero(c < when))
            into.append((k * qty, float(ideal[k - 1]) if k else 0.0))
    rec.states = np.concatenate(tables)  # type: ignore[assignment]
    released = int(np.count_nonzero(release < horizon))
    rec.releases = _table("releases", lot=np.arange(released), product=0, qty=qty,  # type: ignore[assignment]
                          t=release[:released])
    out = np.flatnonzero(dep[-1] < horizon)
    rec.finishes = _table("finishes", lot=out, t=dep[-1, out], units=qty, escaped=0,  # type: ignore[assignment]
                          fate=int(Fate.GOOD))
    rec.counters_at_warmup = w0 if warmup > 0 else [(0, 0.0)] * len(names)
    rec.counters_at_end = w1
    rec.horizon = float(horizon)
    rec.warmup = float(warmup)
    rec.end_time = float(horizon)
    return rec


def run_many(runs: list[tuple[Spec, int]], horizon: float, warmup: float) -> list[Results]:
    """Per ``(spec, seed)``, the :class:`~twin.results.Results` that :func:`twin.run_once` gives,
    from the recursion instead of events: the same record, read by the same tables (tests hold
    the two to identical KPIs), observed over ``[warmup, horizon)`` (s). Runs whose routes
    have the same length are computed together as numpy columns when there are many of them
    (:data:`NUMPY_FROM`), in as few groups as memory allows. ``ValueError`` names what rules a
    spec out (:func:`ineligible`)."""
    check_run_times(horizon, warmup)
    cols = [_column(spec, seed) for spec, seed in runs]
    return [build(_record(c, comp, dep, horizon, warmup)) for c, (comp, dep) in zip(cols, _recursion(cols, horizon))]


def run(spec: Spec, horizon: float, warmup: float, seeds: list[int]) -> list[Results]:
    """:func:`run_many` for one spec: its Results per seed."""
    return run_many([(spec, s) for s in seeds], horizon, warmup)


ENGINES = ("auto", "simpy", "serial")
"""``--engine`` of ``twin sweep`` and ``twin optimize``: ``auto`` takes this recursion when every
spec is eligible, ``simpy`` forces the event engine, ``serial`` refuses a spec that is not."""


def choose(specs: list[Spec], engine: str = "auto", source: str = "--engine") -> tuple[str, list[str]]:
    """``(engine, why_not)``: ``"serial"`` when ``engine`` allows it and every spec is eligible,
    else ``"simpy"`` with what rules the first ineligible spec out (empty when ``simpy`` was
    asked for). ``engine="serial"`` with an ineligible spec is a :class:`SpecError` naming it."""
    if engine not in ENGINES:
        raise SpecError([f"{source}: {engine!r} is not one of {', '.join(ENGINES)}"])
    if engine == "simpy":
        return "simpy", []
    for sp in specs:
        why = ineligible(sp)
        if why:
            if engine == "serial":
                raise SpecError([f"{source} serial: {sp.name}: {w} (the recursion takes saturated serial lines "
                                 "only; --engine auto runs such a spec by events)" for w in why])
            return "simpy", why
    return "serial", []


def describe(engine: str, why_not: list[str]) -> str:
    """One line for a command's output: which engine ran, and why not the fast one."""
    if engine == "serial":
        return ("engine: the exact serial-line recursion (twin.serial: the event engine's results to the bit "
                "on these lines; --engine simpy runs events)")
    if why_not:
        more = f" and {len(why_not) - 1} more" if len(why_not) > 1 else ""
        return f"engine: SimPy events (not the serial-line fast path: {why_not[0]}{more})"
    return "engine: SimPy events (--engine simpy)"


def _job(fn: Callable[[Results], Any], runs: list[tuple[Spec, int]], horizon: float, warmup: float) -> list[Any]:
    return [fn(r) for r in run_many(runs, horizon, warmup)]


def map_runs(fn: Callable[[Results], Any], runs: list[tuple[Spec, int]], horizon: float, warmup: float,
             jobs: int = 1, executor: str = "local", scheduler: str | None = None,
             store: JobStore | None = None, stage: str = "") -> Iterator[tuple[int, Any]]:
    """``(index, fn(results))`` for every ``(spec, seed)`` of ``runs``, by :func:`run_many`: the
    runs split into one contiguous group per job (each group computed as numpy columns when
    it is big enough), the groups spread as :func:`twin.runs.map_jobs` spreads jobs. ``fn``
    must pickle (a module-level function) for processes; ``store``/``stage`` as for
    :func:`twin.runs.map_jobs` (a shard computes its share of the runs)."""
    if not runs:
        return
    if store is not None:
        todo, known, keys = store.plan(stage, fn, [(sp, seed, horizon, warmup) for sp, seed in runs])
        yield from known.items()
        for k, value in map_runs(fn, [runs[i] for i in todo], horizon, warmup, jobs, executor, scheduler):
            store.put(stage, todo[k], keys[todo[k]], value)
            yield todo[k], value
        return
    per = -(-len(runs) // max(1, jobs))
    groups = [runs[i:i + per] for i in range(0, len(runs), per)]
    for g, part in map_jobs(_job, [(fn, grp, horizon, warmup) for grp in groups], jobs=jobs, executor=executor,
                            scheduler=scheduler):
        for k, value in enumerate(part):
            yield g * per + k, value


def throughput(spec: Spec, horizon: float, warmup: float, seeds: list[int]) -> np.ndarray:
    """Units per hour finished in ``[warmup, horizon)`` (s) by each replication of the
    saturated serial line ``spec``: the ``throughput_per_hour`` KPI of the SimPy engine's
    run on the same seeds, from the exact departure times."""
    d = departures(spec, horizon, seeds)
    hours = (horizon - warmup) / HOUR
    return np.array([np.count_nonzero(d.finished(r) >= warmup) * d.lot_size / hours for r in range(len(seeds))])


__all__ = ["ENGINES", "Departures", "NUMPY_FROM", "choose", "departures", "describe", "ineligible", "map_runs", "run",
           "run_many", "throughput"]
