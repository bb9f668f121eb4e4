"""Frames of an animated replay, sampled from one watched run (no SimPy; DESIGN §3's results).

A replay shows the line at frame times ``start, start + step, ...`` of a window: each server's
state as the run's state table has it then (the spell with ``start <= t < end``: the table
``states.csv`` holds, where idle time in a closed shift is off shift), the level of each
station's buffer then (the last change at or before ``t``: events at ``t`` have happened),
each vehicle's place on its trip, the good units finished in the window so far and the units in
the line. Only these samples reach the page, never the run's events.

:func:`buffer_table` gives the levels as spells (``buffers.csv``), :func:`flow_table` the units
that moved between stations (the Sankey diagram's links).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from .floorplan import Plan
from .layouts import GOOD, RELEASED, SCRAPPED
from .record import Fate, Record
from .state import LETTERS
from .units import DAY, HOUR, MINUTE

MAX_FRAMES = 400
"""At most this many frames (the step grows to fit the window): the page stays small."""
STEPS = (MINUTE, 2 * MINUTE, 5 * MINUTE, 10 * MINUTE, 15 * MINUTE, 30 * MINUTE, HOUR, 2 * HOUR, 4 * HOUR,
         6 * HOUR, 12 * HOUR, DAY)


def frame_step(span: float) -> float:
    """The shortest of :data:`STEPS` that gives at most :data:`MAX_FRAMES` frames over ``span`` s."""
    for s in STEPS:
        if span / s <= MAX_FRAMES:
            return s
    return math.ceil(span / MAX_FRAMES / DAY) * DAY


def _at(times: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Index of the last of ``times`` (sorted) at or before each ``t`` (-1: none)."""
    return np.searchsorted(times, t, side="right") - 1


def buffer_table(rec: Record) -> pd.DataFrame:
    """A watched run's buffer levels as spells: ``station``, ``lane``, ``start``, ``end`` (s) and
    ``level`` (lots waiting), over its window (zero-length spells left out)."""
    lv = rec.array("levels")
    if rec.window is None or len(lv) == 0:
        return pd.DataFrame(columns=["station", "lane", "start", "end", "level"])
    end = rec.window[1]
    rows: list[pd.DataFrame] = []
    for b, (station, lane) in enumerate(rec.buffers):
        g = lv[lv["buffer"] == b]
        if len(g) == 0:  # the run ended before the window began
            continue
        starts = g["t"]
        ends = np.append(starts[1:], max(end, float(starts[-1])))
        keep = ends > starts
        rows.append(pd.DataFrame({"station": station, "lane": lane, "start": starts[keep], "end": ends[keep],
                                  "level": g["level"][keep]}))
    if not rows:
        return pd.DataFrame(columns=["station", "lane", "start", "end", "level"])
    return pd.concat(rows, ignore_index=True)


def flow_table(rec: Record) -> pd.DataFrame:
    """Units that moved, from ``flows_from`` on: ``source`` → ``target`` with ``units``, where a
    source or target is a station, ``released`` (a lot's first station), ``good`` or ``scrapped``."""
    names = {RELEASED: "released", GOOD: "good", SCRAPPED: "scrapped"}
    stations = [s.name for s in rec.spec.stations]
    rows = [(names.get(a) or stations[a], names.get(b) or stations[b], n)
            for a, b, n in [*rec.flows, *rec.ends]]
    return pd.DataFrame(rows, columns=["source", "target", "units"])


def frames(rec: Record, states: pd.DataFrame, plan: Plan, start: float, end: float,
           step: float | None = None) -> dict[str, Any]:
    """The replay's data for frames over ``[start, end]`` (s) every ``step`` s (default
    :func:`frame_step`): ``t``; per frame ``states`` (one :data:`LETTERS` letter per server, in
    ``servers`` order), ``levels`` (lots waiting per station, its lanes summed, in ``stations``
    order), ``vehicles`` (``[x, y]`` m), ``out`` (good units since ``start``) and ``wip``.
    ``states`` is the run's state table (``Results.states``, one replication)."""
    step = frame_step(end - start) if step is None else step
    n = int(math.floor((end - start) / step + 1e-9)) + 1
    t = start + step * np.arange(n)
    spec = rec.spec
    servers = [(s, k) for s, k in rec.servers]
    codes = np.full((len(servers), n), "a", dtype="<U1")
    idx = {key: i for i, key in enumerate(servers)}
    st = states.sort_values("start", kind="stable")
    for (station, server), g in st.groupby(["station", "server"], observed=True, sort=False):
        i = idx.get((str(station), int(server)))
        if i is None:
            continue
        starts = g["start"].to_numpy(dtype=float)
        k = _at(starts, t)
        inside = (k >= 0) & (t < g["end"].to_numpy(dtype=float)[np.maximum(k, 0)])
        names = g["state"].astype(str).to_numpy()
        row = np.array([LETTERS[x] for x in names], dtype="<U1")
        codes[i] = np.where(inside, row[np.maximum(k, 0)], "a")
    frame_states = ["".join(codes[:, j]) for j in range(n)]
    # buffer levels per station (lanes summed)
    lv = rec.array("levels")
    station_names = [s.name for s in spec.stations]
    levels = np.zeros((len(station_names), n), dtype=np.int64)
    for b, (station, _) in enumerate(rec.buffers):
        g = lv[lv["buffer"] == b]
        if len(g):
            k = _at(g["t"], t)
            levels[station_names.index(station)] += np.where(k >= 0, g["level"][np.maximum(k, 0)], 0)
    vehicles = _vehicles(rec, plan, t)
    fin = rec.array("finishes")
    good = fin[(fin["fate"] == int(Fate.GOOD)) & (fin["t"] > start)]
    order = np.argsort(good["t"], kind="stable")
    cum = np.concatenate([[0], np.cumsum(good["units"][order])])
    out = cum[np.searchsorted(good["t"][order], t, side="right")]
    return {"t": t.tolist(), "step": step, "servers": [f"{s}/{k}" for s, k in servers],
            "stations": station_names, "states": frame_states, "levels": levels.T.tolist(),
            "vehicles": vehicles, "out": out.tolist(), "wip": _wip(rec, t).tolist()}


def _wip(rec: Record, t: np.ndarray) -> np.ndarray:
    """Units in the line at each ``t``: entered and neither finished good nor scrapped."""
    rel = rec.array("releases")
    fin = rec.array("finishes")
    lost = set(fin["lot"][fin["fate"] == int(Fate.LOST)].tolist())
    entered = rel[~np.isin(rel["lot"], list(lost))] if lost else rel
    sc = rec.array("scraps")
    good = fin[fin["fate"] == int(Fate.GOOD)]

    def upto(times: np.ndarray, qty: np.ndarray) -> np.ndarray:
        o = np.argsort(times, kind="stable")
        c = np.concatenate([[0], np.cumsum(qty[o])])
        return c[np.searchsorted(times[o], t, side="right")]

    # a state start's lots carry releases before its time: they count from the first frame
    return upto(entered["t"], entered["qty"]) - upto(good["t"], good["units"]) - upto(sc["t"], sc["units"])


def _route(plan: Plan, fleet: str, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The points a vehicle of ``fleet`` passes from ``a`` to ``b``: along its drawn path between
    the path's points nearest the two stations (and straight from and to the stations themselves),
    or straight when the fleet has no path."""
    path = np.asarray(plan.paths.get(fleet) or [], dtype=float)
    if len(path) < 2:
        return np.array([a, b])
    ia = int(np.argmin(np.abs(path - a).sum(axis=1)))
    ib = int(np.argmin(np.abs(path - b).sum(axis=1)))
    mid = path[ia:ib + 1] if ia <= ib else path[ib:ia + 1][::-1]
    return np.vstack([a, mid, b])


def _along(points: np.ndarray, f: np.ndarray) -> np.ndarray:
    """Positions at shares ``f`` (0-1) of the length of the polyline ``points``."""
    seg = np.sqrt((np.diff(points, axis=0) ** 2).sum(axis=1))
    total = float(seg.sum())
    if total <= 0.0:
        return np.tile(points[0], (len(f), 1))
    cum = np.concatenate([[0.0], np.cumsum(seg)])
    d = np.clip(f, 0.0, 1.0) * total
    return np.column_stack([np.interp(d, cum, points[:, 0]), np.interp(d, cum, points[:, 1])])


def _vehicles(rec: Record, plan: Plan, t: np.ndarray) -> list[list[list[float]]]:
    """Each vehicle's ``[x, y]`` at each frame time, m: at its trip's source while loading, moving
    to the target (along its fleet's drawn path, at an even pace), there while it unloads (or
    waits for room), back again empty; between trips where its last trip began (its path's first
    point before any)."""
    legs = rec.array("legs")
    stations = [s.name for s in rec.spec.stations]
    fleets = set(rec.fleets)
    vids = [i for i, (name, _) in enumerate(rec.servers) if name in fleets]
    out: list[list[list[float]]] = [[] for _ in t]
    for sid in vids:
        fleet = rec.servers[sid][0]
        path = plan.paths.get(fleet) or [next(iter(plan.stations.values()))]
        home = np.array(path[0], dtype=float)
        xy = np.tile(home, (len(t), 1))
        g = np.sort(legs[legs["server"] == sid], order="t_load")
        for leg in g:
            if leg["source"] < 0 or leg["target"] < 0:
                continue
            a = np.array(plan.stations[stations[leg["source"]]], dtype=float)
            b = np.array(plan.stations[stations[leg["target"]]], dtype=float)
            way = _route(plan, fleet, a, b)
            t0, t1, t2, t3, t4 = (float(leg[f]) for f in ("t_load", "t_leave", "t_arrive", "t_unloaded", "t_back"))
            xy[t >= t0] = a
            go = (t >= t1) & (t < t2)
            xy[go] = _along(way, (t[go] - t1) / max(t2 - t1, 1e-9))
            xy[(t >= t2) & (t < t3)] = b
            back = (t >= t3) & (t < t4)
            xy[back] = _along(way[::-1], (t[back] - t3) / max(t4 - t3, 1e-9))
            xy[t >= t4] = a
        for j in range(len(t)):
            out[j].append([round(float(xy[j, 0]), 2), round(float(xy[j, 1]), 2)])
    return out
