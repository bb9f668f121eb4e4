"""Recorder tuples → DataFrames → KPIs (ISO 22400-2 names where they exist).

KPIs are computed over the observation window ``[warmup, horizon]`` (seconds):

- ``throughput_per_hour``: good units finished in the window per hour;
- ``lead_time_mean_s`` / ``lead_time_p95_s``: release→finish of good units finished in
  the window (unit-weighted);
- ``wip_mean``: time-average units released and not yet finished;
- per station, the fraction of server time in each :class:`~twin.model.State`;
- ``availability`` = APT/PBT (actual production time over planned busy time, ISO 22400-2),
  ``effectiveness`` = ideal processing time of the units produced / APT,
  ``quality_ratio`` = good / produced units, ``oee`` = A × E × Q;
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
    """Tables of one run (or several replications stacked with a ``replication`` column)."""

    lots: pd.DataFrame
    states: pd.DataFrame
    timeseries: pd.DataFrame
    kpis: pd.DataFrame
    stations: pd.DataFrame
    extra: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """Means and 95 % Student-t half-widths of every KPI across replications."""
        from .experiment import summarize

        return summarize(self)


def lots_frame(model: Model, horizon: float) -> pd.DataFrame:
    rec = model.rec
    rel = np.array(rec.releases, dtype=float).reshape(-1, 4)
    fin = np.array(rec.finishes, dtype=float).reshape(-1, 3)
    n = len(rel)
    t_done = np.full(n, np.nan)
    status = np.full(n, "wip", dtype=object)
    if len(fin):
        ids = fin[:, 0].astype(np.int64)
        t_done[ids] = fin[:, 1]
        codes = fin[:, 2].astype(np.int64)
        status[ids] = np.where(codes == 1, "good", np.where(codes == 0, "scrap", "lost"))
    products = np.array(rec.products, dtype=object)
    df = pd.DataFrame(
        {
            "lot": rel[:, 0].astype(np.int64),
            "product": products[rel[:, 1].astype(np.int64)] if n else np.array([], dtype=object),
            "qty": rel[:, 2].astype(np.int64),
            "t_release": rel[:, 3],
            "t_done": t_done,
            "status": status,
        }
    )
    df["lead_time_s"] = df["t_done"] - df["t_release"]
    return df


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


def station_table(model: Model, states: pd.DataFrame, warmup: float, horizon: float,
                  scrap_units: dict[str, int] | None = None) -> pd.DataFrame:
    """Per station: state fractions, utilisation, availability, effectiveness, OEE."""
    window = horizon - warmup
    s = states.copy()
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


def timeseries_frame(lots: pd.DataFrame, horizon: float, step: float = 3600.0) -> pd.DataFrame:
    """Per time bin of ``step`` s: units released, good units out, scrap, WIP at bin end."""
    edges = np.append(np.arange(0.0, horizon, step), horizon)
    qty = lots["qty"].to_numpy(dtype=float)
    rel = lots["t_release"].to_numpy()
    done = lots["t_done"].to_numpy()
    good = (lots["status"] == "good").to_numpy()
    scrap = (lots["status"] == "scrap").to_numpy()
    lost = (lots["status"] == "lost").to_numpy()
    nb = len(edges) - 1
    released = np.histogram(rel[~lost], bins=edges, weights=qty[~lost])[0]
    out_good = np.histogram(done[good], bins=edges, weights=qty[good])[0]
    out_scrap = np.histogram(done[scrap], bins=edges, weights=qty[scrap])[0]
    finished_any = np.histogram(done[good | scrap], bins=edges, weights=qty[good | scrap])[0]
    wip = np.cumsum(released) - np.cumsum(finished_any)
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


def line_kpis(lots: pd.DataFrame, stations: pd.DataFrame, warmup: float, horizon: float) -> dict[str, Any]:
    window = horizon - warmup
    qty = lots["qty"].to_numpy(dtype=float)
    done = lots["t_done"].to_numpy()
    rel = lots["t_release"].to_numpy()
    status = lots["status"].to_numpy()
    in_win = (done >= warmup) & (done <= horizon)
    good = in_win & (status == "good")
    scrap = in_win & (status == "scrap")
    good_units = float(qty[good].sum())
    scrap_units = float(qty[scrap].sum())
    lt = (done - rel)[good]
    w = qty[good]
    lt_mean = float(np.average(lt, weights=w)) if len(lt) else float("nan")
    not_lost = status != "lost"
    end = np.where(np.isnan(done), horizon, done)
    overlap = np.clip(np.minimum(end, horizon) - np.maximum(rel, warmup), 0.0, None)
    wip_mean = float((overlap[not_lost] * qty[not_lost]).sum() / window)
    wip_end = float(qty[(status == "wip")].sum())
    produced = good_units + scrap_units
    q_line = good_units / produced if produced > 0 else 1.0
    bn = str(stations["active"].idxmax()) if len(stations) else ""
    a = float(stations.loc[bn, "availability"]) if bn else float("nan")
    e = float(stations.loc[bn, "effectiveness"]) if bn else float("nan")
    released_units = float(qty[not_lost].sum())
    finished_units = float(qty[(status == "good") | (status == "scrap")].sum())
    return {
        "throughput_per_hour": good_units / window * 3600.0,
        "good_units": good_units,
        "scrap_units": scrap_units,
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


def build(model: Model, warmup: float, horizon: float, scrap_by_station: dict[str, int] | None = None) -> Results:
    """Turn a finished model's recorder into :class:`Results` (one replication)."""
    lots = lots_frame(model, horizon)
    states = states_frame(model, horizon)
    stations = station_table(model, states, warmup, horizon, scrap_by_station)
    kpis = line_kpis(lots, stations, warmup, horizon)
    ts = timeseries_frame(lots, horizon)
    return Results(lots=lots, states=states, timeseries=ts, kpis=pd.DataFrame([kpis]), stations=stations)
