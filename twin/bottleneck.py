"""Where the bottleneck is, and when it moves: the active-period method (Roser, Nakano and
Tanaka 2002).

A server's *active period* is an uninterrupted spell of work, setup or repair (it is not
waiting for parts or for room downstream). At each moment the *momentary bottleneck* is the
server whose current active period is the longest. Where one momentary bottleneck hands over
to the next, their active periods overlap: during that overlap both are *shifting*
bottlenecks; the rest of its reign it is the *sole* bottleneck. Read at station level: a
hand-over between two servers of one station leaves the station the bottleneck, and a
station's shifting share is the time covered by its hand-over overlaps. Shares are of the
observation window; the sole shares of all stations add up to at most 1.
"""

from __future__ import annotations

import heapq

import numpy as np
import pandas as pd

from .state import ACTIVE


def active_periods(states: pd.DataFrame, t0: float, t1: float) -> pd.DataFrame:
    """Active periods (station, server, start, end; s) clipped to ``[t0, t1]``: consecutive
    busy, setup or down spells of a server merged into one."""
    s = states[states["state"].isin(ACTIVE)].sort_values(["station", "server", "start"])
    rows = []
    for (station, server), g in s.groupby(["station", "server"], sort=False):
        a: float | None = None
        b = 0.0
        for start, end in zip(g["start"].to_numpy(), g["end"].to_numpy()):
            if a is not None and start <= b + 1e-9:
                b = max(b, end)
                continue
            if a is not None:
                rows.append((station, server, a, b))
            a, b = start, end
        if a is not None:
            rows.append((station, server, a, b))
    df = pd.DataFrame(rows, columns=["station", "server", "start", "end"])
    df["start"] = df["start"].clip(t0, t1)
    df["end"] = df["end"].clip(t0, t1)
    return df[df["end"] > df["start"]].reset_index(drop=True)


def shifting_bottleneck(states: pd.DataFrame, t0: float, t1: float) -> pd.DataFrame:
    """Per station: the share of ``[t0, t1]`` in which one of its servers is the sole bottleneck
    and the share in which it is a shifting bottleneck (the method of the module doc)."""
    per = active_periods(states, t0, t1)
    stations = list(dict.fromkeys(states["station"]))
    out = pd.DataFrame({"sole": 0.0, "shifting": 0.0}, index=pd.Index(stations, name="station"))
    if per.empty or t1 <= t0:
        return out
    # a period's length is that of the whole active period (unclipped would be better; clipping only
    # affects periods cut by the window's ends)
    starts, ends = per["start"].to_numpy(), per["end"].to_numpy()
    length = ends - starts
    order = np.argsort(starts, kind="stable")
    bounds = np.unique(np.concatenate([starts, ends]))
    heap: list[tuple[float, int]] = []
    k = 0
    reigns: list[list[float]] = []  # [start, end, period]
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        while k < len(order) and starts[order[k]] <= lo:
            i = order[k]
            heapq.heappush(heap, (-length[i], int(i)))
            k += 1
        while heap and ends[heap[0][1]] <= lo:
            heapq.heappop(heap)
        if not heap:
            continue
        top = heap[0][1]
        if reigns and reigns[-1][2] == top and reigns[-1][1] == lo:
            reigns[-1][1] = hi
        else:
            reigns.append([lo, hi, top])
    # at station level: a hand-over between two servers of one station leaves the station the bottleneck
    st_of = per["station"].to_numpy()
    merged: list[list] = []  # [start, end, station, first period, last period]
    for lo, hi, p in reigns:
        p = int(p)
        if merged and merged[-1][2] == st_of[p] and merged[-1][1] == lo:
            merged[-1][1], merged[-1][4] = hi, p
        else:
            merged.append([lo, hi, st_of[p], p, p])
    sole = {n: 0.0 for n in stations}
    windows: dict[str, list[tuple[float, float]]] = {n: [] for n in stations}
    cut: list[tuple[float, float] | None] = []
    for r in range(len(merged) - 1):
        p, o = merged[r][4], merged[r + 1][3]  # the periods that hand over
        a, b = max(starts[p], starts[o]), min(ends[p], ends[o])
        if b > a:  # the overlap is a shifting bottleneck for both stations (Roser et al.)
            windows[merged[r][2]].append((a, b))
            windows[merged[r + 1][2]].append((a, b))
            cut.append((a, b))
        else:
            cut.append(None)
    for r, (lo, hi, name, _, _) in enumerate(merged):
        inside = 0.0
        for w in (cut[r - 1] if r > 0 else None, cut[r] if r < len(cut) else None):
            if w is not None:
                inside += max(0.0, min(hi, w[1]) - max(lo, w[0]))
        sole[name] += max(0.0, (hi - lo) - inside)
    span = t1 - t0
    for name in stations:
        out.loc[name, "sole"] = sole[name] / span
        out.loc[name, "shifting"] = _union(windows[name]) / span
    return out


def _union(intervals: list[tuple[float, float]]) -> float:
    """Total length covered by ``intervals``."""
    total, end = 0.0, -np.inf
    for a, b in sorted(intervals):
        if a > end:
            total += b - a
            end = b
        elif b > end:
            total += b - end
            end = b
    return total


def shifting_table(states: pd.DataFrame, t0: float, t1: float) -> pd.DataFrame:
    """:func:`shifting_bottleneck` of every replication (a ``replication`` column, if any),
    averaged: per station the mean sole and shifting shares of ``[t0, t1]``."""
    if "replication" not in states:
        return shifting_bottleneck(states, t0, t1)
    parts = [shifting_bottleneck(g, t0, t1) for _, g in states.groupby("replication", sort=False)]
    return sum(parts[1:], parts[0]) / len(parts) if parts else pd.DataFrame(columns=["sole", "shifting"])
