"""Recorder tuples → DataFrames → KPIs (ISO 22400-2 names where they exist).

KPIs are computed over the observation window ``[warmup, horizon]`` (seconds):

- ``throughput_per_hour``: good units finished in the window per hour;
- ``lead_time_mean_s`` / ``lead_time_p95_s``: release→finish of good units finished in
  the window (unit-weighted);
- ``wip_mean``: time-average units released and not yet finished;
- per station, the fraction of server time in each :class:`~twin.model.State`;
- ``availability`` = APT/PBT (actual production time over planned busy time, ISO 22400-2),
  ``effectiveness`` = ideal processing time of the units produced / APT,
  ``quality_ratio`` = good first time / produced units (reworked units are produced, not
  good first time), ``oee`` = A × E × Q;
  ``technical_availability`` = (PBT − down)/PBT, the machine-reliability view
  (MTBF/(MTBF+MTTR) for calendar-time failures);
- ``bottleneck``: the station with the highest active share (busy + setup + down).
The line's ``oee`` is the bottleneck's availability × effectiveness times the line's
quality ratio.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from .model import STATE_NAMES, Model, State

_PLANNED_OFF = (int(State.OFF_SHIFT), int(State.MAINTENANCE))


@dataclass
class Results:
    """Tables of one run (or several replications stacked with a ``replication`` column).

    ``lots`` (one row per released lot), ``states`` (state spells per server), ``timeseries``
    (hourly releases, output, scrap, WIP), ``kpis`` (one row per replication), ``stations``
    (state fractions and OEE), ``costs`` (cost terms), ``orders`` (make-to-order runs: one row
    per order with its due date and delivery; empty otherwise) and ``scraps`` (one row per
    scrapping). Times in seconds."""

    lots: pd.DataFrame
    states: pd.DataFrame
    timeseries: pd.DataFrame
    kpis: pd.DataFrame
    stations: pd.DataFrame
    costs: pd.DataFrame = field(default_factory=pd.DataFrame)
    orders: pd.DataFrame = field(default_factory=pd.DataFrame)
    scraps: pd.DataFrame = field(default_factory=pd.DataFrame)
    extra: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """Means and 95 % Student-t half-widths of every KPI across replications."""
        from .experiment import summarize

        return summarize(self)


def lots_frame(model: Model, horizon: float) -> pd.DataFrame:
    """One row per released lot: units released, finished good, scrapped, escaped defects, times (s)."""
    rec = model.rec
    rel = np.array(rec.releases, dtype=float).reshape(-1, 4)
    fin = np.array(rec.finishes, dtype=float).reshape(-1, 5)
    sc = np.array(rec.scraps, dtype=float).reshape(-1, 5)
    n = len(rel)
    t_done = np.full(n, np.nan)
    good = np.zeros(n)
    escaped = np.zeros(n)
    scrap = np.zeros(n)
    status = np.full(n, "wip", dtype=object)
    if len(fin):
        ids = fin[:, 0].astype(np.int64)
        t_done[ids] = fin[:, 1]
        good[ids] = fin[:, 2]
        escaped[ids] = fin[:, 3]
        codes = fin[:, 4].astype(np.int64)
        status[ids] = np.where(codes == 1, "good", np.where(codes == 0, "scrap", "lost"))
    if len(sc):
        np.add.at(scrap, sc[:, 0].astype(np.int64), sc[:, 3])
    products = np.array(rec.products, dtype=object)
    df = pd.DataFrame(
        {
            "lot": rel[:, 0].astype(np.int64),
            "product": products[rel[:, 1].astype(np.int64)] if n else np.array([], dtype=object),
            "qty": rel[:, 2].astype(np.int64),
            "t_release": rel[:, 3],
            "t_done": t_done,
            "status": status,
            "good": good.astype(np.int64),
            "scrap": scrap.astype(np.int64),
            "escaped": escaped.astype(np.int64),
        }
    )
    df["lead_time_s"] = df["t_done"] - df["t_release"]
    return df


def scraps_frame(model: Model) -> pd.DataFrame:
    """One row per scrapping: lot, time (s), station, units, ideal work per unit lost (s)."""
    sc = np.array(model.rec.scraps, dtype=float).reshape(-1, 5)
    names = np.array(list(model.stations), dtype=object)
    return pd.DataFrame({
        "lot": sc[:, 0].astype(np.int64),
        "t": sc[:, 1],
        "station": names[sc[:, 2].astype(np.int64)] if len(sc) else np.array([], dtype=object),
        "units": sc[:, 3].astype(np.int64),
        "work_s": sc[:, 4],
    })


def states_frame(model: Model, horizon: float) -> pd.DataFrame:
    """State intervals per server: station, server, state, start, end (s)."""
    rec = model.rec
    arr = np.array(rec.states, dtype=float).reshape(-1, 3)
    if len(arr) == 0:
        return pd.DataFrame(columns=["station", "server", "state", "start", "end"])
    sid = arr[:, 1].astype(np.int64)
    order = np.lexsort((arr[:, 0], sid))  # stable by time within each server
    arr, sid = arr[order], sid[order]
    start = arr[:, 0]
    end = np.empty_like(start)
    end[:-1] = start[1:]
    last = np.ones(len(sid), dtype=bool)
    last[:-1] = sid[1:] != sid[:-1]
    end[last] = horizon
    keep = end > start
    names = np.array([s for s, _ in rec.servers], dtype=object)
    nums = np.array([i for _, i in rec.servers], dtype=np.int64)
    states = np.array(STATE_NAMES, dtype=object)
    return pd.DataFrame(
        {
            "station": names[sid[keep]],
            "server": nums[sid[keep]],
            "state": states[arr[keep, 2].astype(np.int64)],
            "start": start[keep],
            "end": end[keep],
        }
    )


def reclassify_closed(model: Model, states: pd.DataFrame) -> pd.DataFrame:
    """Idle or blocked time while a station's calendar is closed is ``off_shift``.

    Servers record idle/blocked when they wait; whether the plant was open then
    is known from the calendar, so the split is made here, once, vectorised.
    """
    cal_of = {n: st.calendar for n, st in model.stations.items() if st.calendar is not None}
    if not cal_of or states.empty:
        return states.copy()
    parts = []
    keep = np.ones(len(states), dtype=bool)
    for name, cal in cal_of.items():
        m = ((states["station"] == name) & states["state"].isin(["idle", "blocked"])).to_numpy()
        if not m.any():
            continue
        sub = states[m]
        opened = cal.open_seconds(sub["start"].to_numpy(), sub["end"].to_numpy())
        closed = (sub["end"].to_numpy() - sub["start"].to_numpy()) - opened
        # keep the interval's open share under its state, move the closed share to off_shift
        a = sub.copy()
        a["end"] = a["start"] + opened
        b = sub.copy()
        b["state"] = "off_shift"
        b["start"] = b["end"] - closed
        parts += [a, b]
        keep &= ~m
    return pd.concat([states[keep]] + parts, ignore_index=True)


def station_table(model: Model, states: pd.DataFrame, warmup: float, horizon: float,
                  scrap_units: dict[str, float] | None = None) -> pd.DataFrame:
    """Per station: state fractions, utilisation, availability, effectiveness, OEE.

    ``scrap_units``: units found defective at each station (scrapped or reworked) in the
    window; the quality ratio counts them as not good first time."""
    window = horizon - warmup
    s = reclassify_closed(model, states)
    s["dur"] = np.clip(s["end"], warmup, horizon) - np.clip(s["start"], warmup, horizon)
    tot = s.groupby(["station", "state"], sort=False)["dur"].sum().unstack(fill_value=0.0)
    names = list(model.stations)
    tot = tot.reindex(index=names, columns=STATE_NAMES, fill_value=0.0)
    servers = np.array([len(model.stations[n].servers) for n in names], dtype=float)
    frac = tot.div(servers * window, axis=0)
    # servers that never recorded a state (never started) count as idle
    frac["idle"] = (frac["idle"] + 1.0 - frac.sum(axis=1)).clip(lower=0.0)
    out = frac.copy()
    w0, w1 = model.counters_at_warmup, model.counters_at_end
    units, ideal, k = [], [], 0
    for n in names:
        u = i = 0.0
        for _ in model.stations[n].servers:
            u += w1[k][0] - w0[k][0]
            i += w1[k][1] - w0[k][1]
            k += 1
        units.append(u)
        ideal.append(i)
    out["units"] = units
    pbt = (1.0 - frac["off_shift"] - frac["maintenance"]).clip(lower=1e-12)
    apt = frac["busy"]
    out["utilisation"] = frac["busy"]
    out["availability"] = apt / pbt
    out["technical_availability"] = (pbt - frac["down"]) / pbt
    busy_s = (frac["busy"] * servers * window).to_numpy()
    out["effectiveness"] = np.where(busy_s > 0, np.array(ideal) / np.maximum(busy_s, 1e-12), 0.0)
    scrap = np.array([float((scrap_units or {}).get(n, 0)) for n in names])
    u_arr = np.array(units)
    out["quality_ratio"] = np.where(u_arr > 0, 1.0 - scrap / np.maximum(u_arr, 1), 1.0)
    out["oee"] = out["availability"] * out["effectiveness"] * out["quality_ratio"]
    out["active"] = frac["busy"] + frac["setup"] + frac["down"]
    out.index.name = "station"
    return out


def timeseries_frame(lots: pd.DataFrame, scraps: pd.DataFrame, horizon: float, step: float = 3600.0) -> pd.DataFrame:
    """Per time bin of ``step`` s: units released, good units out, units scrapped, WIP at bin end."""
    edges = np.append(np.arange(0.0, horizon, step), horizon)
    qty = lots["qty"].to_numpy(dtype=float)
    rel = lots["t_release"].to_numpy()
    done = lots["t_done"].to_numpy()
    good_units = lots["good"].to_numpy(dtype=float)
    lost = (lots["status"] == "lost").to_numpy()
    fin = ~np.isnan(done) & ~lost
    nb = len(edges) - 1
    released = np.histogram(rel[~lost], bins=edges, weights=qty[~lost])[0]
    out_good = np.histogram(done[fin], bins=edges, weights=good_units[fin])[0]
    out_scrap = np.histogram(scraps["t"].to_numpy(), bins=edges, weights=scraps["units"].to_numpy(dtype=float))[0]
    wip = np.cumsum(released) - np.cumsum(out_good) - np.cumsum(out_scrap)
    return pd.DataFrame(
        {
            "t_start": edges[:-1][:nb],
            "t_end": edges[1:][:nb],
            "released": released,
            "good": out_good,
            "scrap": out_scrap,
            "wip": wip,
        }
    )


def _weighted_quantile(x: np.ndarray, w: np.ndarray, q: float) -> float:
    if len(x) == 0:
        return float("nan")
    order = np.argsort(x, kind="stable")
    x, w = x[order], w[order]
    cw = np.cumsum(w)
    idx = int(np.searchsorted(cw, q * cw[-1], side="left"))
    return float(x[min(idx, len(x) - 1)])


def line_kpis(lots: pd.DataFrame, scraps: pd.DataFrame, stations: pd.DataFrame, warmup: float,
              horizon: float, rework_units: float = 0.0) -> dict[str, Any]:
    """Line KPIs over ``[warmup, horizon]``; ``rework_units``: units reworked in that window."""
    window = horizon - warmup
    qty = lots["qty"].to_numpy(dtype=float)
    done = lots["t_done"].to_numpy()
    rel = lots["t_release"].to_numpy()
    status = lots["status"].to_numpy()
    gu = lots["good"].to_numpy(dtype=float)
    in_win = (done >= warmup) & (done <= horizon)
    good = in_win & (status == "good")
    good_units = float(gu[good].sum())
    escaped = float(lots["escaped"].to_numpy(dtype=float)[good].sum())
    st = scraps["t"].to_numpy()
    s_in = (st >= warmup) & (st <= horizon)
    scrap_units = float(scraps["units"].to_numpy(dtype=float)[s_in].sum())
    lt = (done - rel)[good]
    w = gu[good]
    lt_mean = float(np.average(lt, weights=w)) if len(lt) and w.sum() > 0 else float("nan")
    not_lost = status != "lost"
    end = np.where(np.isnan(done), horizon, done)
    overlap = np.clip(np.minimum(end, horizon) - np.maximum(rel, warmup), 0.0, None)
    # units in the system: a lot's surviving units until it finishes, scrapped units until scrapped
    wip_units = np.where(status == "wip", qty - lots["scrap"].to_numpy(dtype=float), gu)
    integral = float((overlap[not_lost] * wip_units[not_lost]).sum())
    if len(scraps):
        r = rel[scraps["lot"].to_numpy()]
        o = np.clip(np.minimum(st, horizon) - np.maximum(r, warmup), 0.0, None)
        integral += float((o * scraps["units"].to_numpy(dtype=float)).sum())
    wip_mean = integral / window
    wip_end = float(wip_units[status == "wip"].sum())
    produced = good_units + scrap_units
    # ISO 22400-2 quality ratio: good quantity over produced quantity, where a reworked unit
    # is produced but not good first time (first-pass yield)
    q_line = max(good_units - rework_units, 0.0) / produced if produced > 0 else 1.0
    bn = str(stations["active"].idxmax()) if len(stations) else ""
    a = float(stations.loc[bn, "availability"]) if bn else float("nan")
    e = float(stations.loc[bn, "effectiveness"]) if bn else float("nan")
    released_units = float(qty[not_lost].sum())
    finished_units = float(gu[status == "good"].sum())
    return {
        "throughput_per_hour": good_units / window * 3600.0,
        "good_units": good_units,
        "scrap_units": scrap_units,
        "rework_units": rework_units,
        "escaped_units": escaped,
        "lead_time_mean_s": lt_mean,
        "lead_time_p95_s": _weighted_quantile(lt, w, 0.95),
        "wip_mean": wip_mean,
        "wip_end": wip_end,
        "released_units": released_units,
        "finished_units": finished_units,
        "lost_units": float(qty[status == "lost"].sum()),
        "availability": a,
        "effectiveness": e,
        "quality_ratio": q_line,
        "oee": a * e * q_line,
        "bottleneck": bn,
    }


def build(model: Model, warmup: float, horizon: float) -> Results:
    """Turn a finished model's recorder into :class:`Results` (one replication)."""
    lots = lots_frame(model, horizon)
    scraps = scraps_frame(model)
    states = states_frame(model, horizon)
    s_in = scraps[(scraps["t"] >= warmup) & (scraps["t"] <= horizon)]
    not_first_time = s_in.groupby("station")["units"].sum().to_dict()  # scrapped or reworked, per station
    rw = np.array(model.rec.reworks, dtype=float).reshape(-1, 4)
    rw = rw[(rw[:, 1] >= warmup) & (rw[:, 1] <= horizon)]
    names = list(model.stations)
    for i, units in zip(rw[:, 2].astype(np.int64), rw[:, 3]):
        not_first_time[names[i]] = not_first_time.get(names[i], 0) + units
    stations = station_table(model, states, warmup, horizon, not_first_time)
    rework_units = float(rw[:, 3].sum())
    kpis = line_kpis(lots, scraps, stations, warmup, horizon, rework_units)
    ts = timeseries_frame(lots, scraps, horizon)
    extra: dict[str, Any] = {"scraps": scraps}
    from .cost import costs

    cost_table, cost_kpis = costs(model, states, lots, scraps, warmup, horizon, kpis["wip_mean"])
    kpis.update(cost_kpis)
    if model.orders_mode:
        from .adapt import adaptation, orders_frame

        states_cls = reclassify_closed(model, states)
        extra["orders"] = orders_frame(model)
        kpis.update(adaptation(model, lots, states_cls, scraps, warmup, horizon))
    return Results(lots=lots, states=states, timeseries=ts, kpis=pd.DataFrame([kpis]), stations=stations,
                   costs=cost_table, orders=extra.get("orders", pd.DataFrame()), scraps=scraps, extra=extra)
