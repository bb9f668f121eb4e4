"""A run's :class:`~twin.record.Record` as DataFrames: lots, scrappings, state spells, orders.

These are the raw tables; KPIs, station shares and costs are built on them in
:mod:`twin.results`, :mod:`twin.cost` and :mod:`twin.adapt`. Times in seconds.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .record import Fate, Record
from .state import STATE_KEYS, State

LOT_STATUS = {int(Fate.GOOD): "good", int(Fate.SCRAPPED): "scrap", int(Fate.LOST): "lost"}
"""``lots.status`` of a lot that left the line, by its :class:`~twin.record.Fate`; ``"wip"`` otherwise."""
_STATUS_BY_FATE = np.array([LOT_STATUS[f] for f in range(int(Fate.LOST), int(Fate.GOOD) + 1)], dtype=object)
_WAITING = [State.IDLE.key, State.BLOCKED.key]


_STATE_NAMES = sorted(STATE_KEYS)
_STATE_CODE = np.array([_STATE_NAMES.index(k) for k in STATE_KEYS], dtype=np.int64)


def names_of(column: pd.Series) -> np.ndarray:
    """A column of names as an object array of ``str``; cheap for a categorical column (the
    categories are converted, not every row)."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        return np.asarray(column.cat.categories, dtype=object)[column.cat.codes.to_numpy()]
    return column.to_numpy(dtype=object)


def _labels(a: np.ndarray) -> pd.Series:
    """A column of names kept as plain Python strings: pandas' default Arrow strings cost more to
    build and to read back than every table built on the record spends on its numbers."""
    return pd.Series(a, dtype=object, copy=False)


def lots_frame(rec: Record) -> pd.DataFrame:
    """One row per released lot: units released, finished good, scrapped, escaped defects, times (s)."""
    rel = rec.array("releases")
    fin = rec.array("finishes")
    sc = rec.array("scraps")
    n = len(rel)
    t_done = np.full(n, np.nan)
    good = np.zeros(n, dtype=np.int64)
    escaped = np.zeros(n, dtype=np.int64)
    scrap = np.zeros(n, dtype=np.int64)
    status = np.full(n, "wip", dtype=object)
    if len(fin):
        ids = fin["lot"]
        t_done[ids] = fin["t"]
        good[ids] = fin["units"]
        escaped[ids] = fin["escaped"]
        status[ids] = _STATUS_BY_FATE[fin["fate"] - int(Fate.LOST)]
    if len(sc):
        np.add.at(scrap, sc["lot"], sc["units"])
    products = np.array(rec.products, dtype=object)
    df = pd.DataFrame(
        {
            "lot": rel["lot"],
            "product": _labels(products[rel["product"]] if n else np.array([], dtype=object)),
            "qty": rel["qty"],
            "t_release": rel["t"],
            "t_done": t_done,
            "status": _labels(status),
            "good": good,
            "scrap": scrap,
            "escaped": escaped,
        }
    )
    df["lead_time_s"] = df["t_done"] - df["t_release"]
    return df


def scraps_frame(rec: Record) -> pd.DataFrame:
    """One row per scrapping: lot, time (s), station, units, ideal work per unit lost (s)."""
    sc = rec.array("scraps")
    names = np.array(rec.stations, dtype=object)
    return pd.DataFrame({
        "lot": sc["lot"],
        "t": sc["t"],
        "station": _labels(names[sc["station"]] if len(sc) else np.array([], dtype=object)),
        "units": sc["units"],
        "work_s": sc["work_s"],
    })


def spells(rec: Record, horizon: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The record's state spells as arrays (server, state, start, end s), by server then time; each
    server's last spell ends at ``horizon``."""
    arr = rec.array("states")
    sid = arr["server"]
    order = np.lexsort((arr["t"], sid))  # stable by time within each server
    arr, sid = arr[order], sid[order]
    start = arr["t"]
    end = np.empty_like(start)
    end[:-1] = start[1:]
    last = np.ones(len(sid), dtype=bool)
    last[:-1] = sid[1:] != sid[:-1]
    end[last] = horizon
    return sid, arr["state"], start, end


def states_frame(rec: Record, horizon: float | None = None) -> pd.DataFrame:
    """State spells per server: station, server, state, start, end (s), up to ``horizon``
    (default the run's); ``station`` and ``state`` are categorical."""
    if len(rec.states) == 0:
        return pd.DataFrame(columns=["station", "server", "state", "start", "end"])
    sid, state, start, end = spells(rec, rec.horizon if horizon is None else horizon)
    keep = end > start
    # categories (sorted, so that they sort and group as the names do): the tables built on this
    # one select and group by station and state many times
    stations = sorted(set(s for s, _ in rec.servers))
    code = {n: i for i, n in enumerate(stations)}
    station_of = np.array([code[s] for s, _ in rec.servers], dtype=np.int64)
    nums = np.array([i for _, i in rec.servers], dtype=np.int64)
    return pd.DataFrame(
        {
            "station": pd.Categorical.from_codes(station_of[sid[keep]], categories=stations),
            "server": nums[sid[keep]],
            "state": pd.Categorical.from_codes(_STATE_CODE[state[keep]], categories=_STATE_NAMES),
            "start": start[keep],
            "end": end[keep],
        }
    )


def reclassify_closed(rec: Record, states: pd.DataFrame) -> pd.DataFrame:
    """Idle or blocked time while a station's calendar is closed is ``off_shift``.

    Servers record idle/blocked when they wait; whether the plant was open then
    is known from the calendar, so the split is made here, once, vectorised.
    """
    if not rec.station_calendar or states.empty:
        return states.copy()
    parts = []
    keep = np.ones(len(states), dtype=bool)
    for name in rec.station_calendar:
        cal = rec.calendar_of(name)
        m = ((states["station"] == name) & states["state"].isin(_WAITING)).to_numpy()
        if cal is None or not m.any():
            continue
        sub = states[m]
        opened = cal.open_seconds(sub["start"].to_numpy(), sub["end"].to_numpy())
        closed = (sub["end"].to_numpy() - sub["start"].to_numpy()) - opened
        # keep the interval's open share under its state, move the closed share to off_shift
        a = sub.copy()
        a["end"] = a["start"] + opened
        b = sub.copy()
        b.loc[:, "state"] = State.OFF_SHIFT.key  # in place: a categorical column stays one
        b["start"] = b["end"] - closed
        parts += [a, b]
        keep &= ~m
    return pd.concat([states[keep]] + parts, ignore_index=True)


def orders_frame(rec: Record) -> pd.DataFrame:
    """One row per order: id, product, qty, t_order, due, t_delivered (NaN if open), on_time."""
    o = rec.array("orders")
    n = len(o)
    delivered = np.full(n, np.nan)
    d = rec.array("deliveries")
    if len(d):
        delivered[d["order"]] = d["t"]
    names = np.array(rec.products, dtype=object)
    df = pd.DataFrame({
        "order": o["order"],
        "product": _labels(names[o["product"]] if n else np.array([], dtype=object)),
        "qty": o["qty"],
        "t_order": o["t"],
        "due": o["due"],
        "t_delivered": delivered,
    })
    df["on_time"] = df["t_delivered"] <= df["due"]
    return df
