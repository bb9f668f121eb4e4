"""Recorder tuples → DataFrames → KPIs (ISO 22400-2 names where they exist).

KPIs are computed over the observation window ``[warmup, horizon]`` (seconds):

- ``throughput_per_hour``: good units finished in the window per hour;
- ``lead_time_mean_s`` / ``lead_time_p95_s``: release→finish of good units finished in
  the window (unit-weighted);
- ``wip_mean``: time-average units released and not yet finished;
- per station, the fraction of server time in each :class:`~twin.state.State`;
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

from .adapt import adaptation
from .cost import costs
from .record import MaintKind, Record
from .state import ACTIVE, LABELS, PLANNED_STOPS, STATE_KEYS, TABLE, State
from .stats import summarize
from .tables import lots_frame, orders_frame, reclassify_closed, scraps_frame, states_frame
from .units import HOUR, format_duration


@dataclass
class Results:
    """Tables of one run (or several replications stacked with a ``replication`` column).

    ``lots`` (one row per released lot), ``states`` (state spells per server), ``timeseries``
    (hourly releases, output, scrap, WIP), ``kpis`` (one row per replication), ``stations``
    (state fractions and OEE), ``costs`` (cost terms), ``orders`` (make-to-order runs: one row
    per order with its due date and delivery; empty otherwise) and ``scraps`` (one row per
    scrapping). Times in seconds. ``record``: the plain data of a single run (None once
    replications are stacked)."""

    lots: pd.DataFrame
    states: pd.DataFrame
    timeseries: pd.DataFrame
    kpis: pd.DataFrame
    stations: pd.DataFrame
    costs: pd.DataFrame = field(default_factory=pd.DataFrame)
    orders: pd.DataFrame = field(default_factory=pd.DataFrame)
    scraps: pd.DataFrame = field(default_factory=pd.DataFrame)
    extra: dict[str, Any] = field(default_factory=dict)
    record: Record | None = None
    cost_basis: dict[str, Any] = field(default_factory=dict)
    """What the run counted that prices multiply (:func:`twin.cost.basis`), per cost window:
    ``window`` (the observation window) and, after a shift, ``transition`` and ``after``
    (None where that window is empty): :func:`twin.cost.reprice` prices them again."""

    def summary(self) -> dict[str, Any]:
        """Means and 95 % Student-t half-widths of every KPI across replications."""
        return summarize(self)


def station_table(rec: Record, states: pd.DataFrame, warmup: float, horizon: float,
                  scrap_units: dict[str, float] | None = None, closed: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per station (and transport fleet): state fractions, utilisation, availability,
    effectiveness, OEE.

    ``scrap_units``: units found defective at each station (scrapped or reworked) in the
    window; the quality ratio counts them as not good first time. A fleet's rows count
    moves as units, with effectiveness 1 (a trip has no ideal time apart from itself).
    ``closed``: ``reclassify_closed(rec, states)`` when the caller has it already."""
    window = horizon - warmup
    s = reclassify_closed(rec, states) if closed is None else closed
    dur = pd.Series(np.clip(s["end"].to_numpy(), warmup, horizon) - np.clip(s["start"].to_numpy(), warmup, horizon),
                    index=s.index)
    tot = dur.groupby([s["station"], s["state"]], sort=False).sum().unstack(fill_value=0.0)
    names = list(rec.stations) + list(rec.fleets)
    tot = tot.reindex(index=names, columns=list(STATE_KEYS), fill_value=0.0)
    servers = np.array([rec.servers_of(n) for n in names], dtype=float)
    frac = tot.div(servers * window, axis=0)
    # servers that never recorded a state (never started) count as idle
    idle = State.IDLE.key
    frac[idle] = (frac[idle] + 1.0 - frac.sum(axis=1)).clip(lower=0.0)
    out = frac.copy()
    w0, w1 = rec.counters_at_warmup, rec.counters_at_end
    by_station: dict[str, list[float]] = {n: [0.0, 0.0] for n in names}
    for (name, _), a, b in zip(rec.servers, w0, w1):
        by_station[name][0] += b[0] - a[0]
        by_station[name][1] += b[1] - a[1]
    fleet = np.array([n in rec.fleets for n in names])
    units = [by_station[n][0] for n in names]
    ideal = [by_station[n][1] for n in names]
    out["units"] = units
    busy, down = State.BUSY.key, State.DOWN.key
    pbt = (1.0 - sum(frac[k] for k in PLANNED_STOPS)).clip(lower=1e-12)
    apt = frac[busy]
    out["utilisation"] = frac[busy]
    out["availability"] = apt / pbt
    out["technical_availability"] = (pbt - frac[down]) / pbt
    busy_s = (frac[busy] * servers * window).to_numpy()
    ideal_s = np.where(fleet, busy_s, np.array(ideal))
    out["effectiveness"] = np.where(busy_s > 0, ideal_s / np.maximum(busy_s, 1e-12), 0.0)
    scrap = np.array([float((scrap_units or {}).get(n, 0)) for n in names])
    u_arr = np.array(units)
    out["quality_ratio"] = np.where(u_arr > 0, 1.0 - scrap / np.maximum(u_arr, 1), 1.0)
    out["oee"] = out["availability"] * out["effectiveness"] * out["quality_ratio"]
    out["active"] = sum(frac[k] for k in ACTIVE)
    out.index.name = "station"
    return out


def timeseries_frame(lots: pd.DataFrame, scraps: pd.DataFrame, horizon: float, step: float = HOUR,
                     start: float = 0.0) -> pd.DataFrame:
    """Per time bin of ``step`` s from ``start`` (a run from a snapshot begins there): units
    released, good units out, units scrapped, WIP at bin end (the lots in the line at the start
    included)."""
    edges = np.append(np.arange(start, horizon, step), horizon)
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
    if start > 0.0:  # the units in the line at the start (released before it, not out by then)
        before = rel[~lost] < start
        gone = fin & (done < start)
        sc_t = scraps["t"].to_numpy()
        wip = wip + (qty[~lost][before].sum() - good_units[gone].sum()
                     - scraps["units"].to_numpy(dtype=float)[sc_t < start].sum())
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
    # arrivals turned away at a full first buffer, counted like every KPI over the window: by
    # when they arrived (a lost lot's release time is its arrival)
    arrived_in = (rel >= warmup) & (rel <= horizon)
    lost_units = float(qty[arrived_in & (status == "lost")].sum())
    arrived_units = float(qty[arrived_in].sum())
    finished_units = float(gu[status == "good"].sum())
    return {
        "throughput_per_hour": good_units / window * HOUR,
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
        "lost_units": lost_units,
        "lost_share": lost_units / arrived_units if arrived_units > 0 else 0.0,
        "availability": a,
        "effectiveness": e,
        "quality_ratio": q_line,
        "oee": a * e * q_line,
        "bottleneck": bn,
    }


def supply_kpis(rec: Record, t0: float, t1: float) -> dict[str, float]:
    """``material_fill_rate`` (share of component units requested in ``[t0, t1]`` that were
    served from stock at once) and ``minor_stop_share`` (minor-stop time over server time of
    the stations that have them); none without components or minor stops. (The components'
    mean stock, ``component_stock_mean``, comes with their holding cost from :func:`costs`.)"""
    out: dict[str, float] = {}
    if rec.components:
        d = rec.array("demands")
        d = d[(d["t"] >= t0) & (d["t"] < t1)]
        units = float(d["units"].sum())
        out["material_fill_rate"] = float(d["units"][d["filled"] == 1].sum()) / units if units > 0 else 1.0
    if rec.minor:
        m = rec.array("minor")
        m = m[(m["t"] >= t0) & (m["t"] < t1)]
        have = {n for n in rec.stations if rec.spec.station(n).minor_stops is not None}
        servers = sum(rec.servers_of(n) for n in have)
        out["minor_stop_share"] = float(m["duration"].sum()) / (servers * (t1 - t0)) if servers else 0.0
    return out


CONDITION_POLICIES = ("predictive", "oracle")


def maintenance_outcomes(rec: Record, t0: float, t1: float) -> dict[str, dict[str, float]]:
    """Per station with condition-based maintenance, what its alarms did in ``[t0, t1]``:
    ``pdm_true`` (planned maintenances at most ``horizon`` of operating life before the failure
    they prevented), ``pdm_false`` (earlier ones), ``pdm_missed`` (failures), ``pdm_recall`` =
    true / (true + missed), ``pdm_precision`` = true / (true + false), ``pdm_lead_h`` (mean
    remaining life at a true alarm, operating hours), ``pdm_lives_learned`` (the machine lives
    the alarm threshold had learned from by ``t1``: the station's own history and every stop
    of the run). NaN where a ratio has no cases."""
    every = rec.array("maint")
    mt = every[(every["t"] >= t0) & (every["t"] < t1)]
    station_of = np.array([rec.stations.index(n) if n in rec.stations else -1 for n, _ in rec.servers], dtype=int)
    out: dict[str, dict[str, float]] = {}
    for st in rec.spec.stations:
        if st.maintenance is None or st.failures is None or st.maintenance.policy not in CONDITION_POLICIES:
            continue
        rows = mt[station_of[mt["server"]] == rec.stations.index(st.name)] if len(mt) else mt
        planned = rows[rows["kind"] == int(MaintKind.PLANNED)]
        true = planned["remaining"] <= st.maintenance.horizon
        tp, fp = float(true.sum()), float((~true).sum())
        fn = float((rows["kind"] == int(MaintKind.REPAIR)).sum())
        out[st.name] = {
            "pdm_true": tp, "pdm_false": fp, "pdm_missed": fn,
            "pdm_recall": tp / (tp + fn) if tp + fn else float("nan"),
            "pdm_precision": tp / (tp + fp) if tp + fp else float("nan"),
            "pdm_lead_h": float(planned["remaining"][true].mean() / HOUR) if tp else float("nan"),
            "pdm_lives_learned": float(rec.history_lives.get(st.name, 0) + int(np.sum(
                (station_of[every["server"]] == rec.stations.index(st.name)) & (every["t"] < t1)))) if len(every)
            else float(rec.history_lives.get(st.name, 0)),
        }
    return out


def pdm_kpis(outcomes: dict[str, dict[str, float]]) -> dict[str, float]:
    """Line KPIs ``pdm_recall`` and ``pdm_precision`` pooled over the stations' alarms."""
    if not outcomes:
        return {}
    tp = sum(o["pdm_true"] for o in outcomes.values())
    fp = sum(o["pdm_false"] for o in outcomes.values())
    fn = sum(o["pdm_missed"] for o in outcomes.values())
    return {"pdm_recall": tp / (tp + fn) if tp + fn else float("nan"),
            "pdm_precision": tp / (tp + fp) if tp + fp else float("nan")}


def forecast_kpis(rec: Record, t0: float, t1: float) -> dict[str, float]:
    """``forecast_mape``: mean absolute percentage error of the planner's recorded forecasts
    (made in ``[t0, t1]`` for a span ending by ``t1``) against the units then ordered; none
    without forecasts."""
    fc = rec.array("forecasts")
    if not len(fc):
        return {}
    ok = (fc["t"] >= t0) & (fc["t"] + fc["span"] <= t1)
    fc = fc[ok]
    if not len(fc):
        return {"forecast_mape": float("nan")}
    orders = rec.array("orders")
    cum = np.concatenate([[0.0], np.cumsum(orders["qty"].astype(float))])
    ts = orders["t"]
    actual = cum[np.searchsorted(ts, fc["t"] + fc["span"], side="left")] - cum[np.searchsorted(ts, fc["t"], side="left")]
    good = actual > 0
    mape = float(np.mean(np.abs(fc["units"][good] - actual[good]) / actual[good])) if good.any() else float("nan")
    return {"forecast_mape": mape}


def build(rec: Record, warmup: float | None = None, horizon: float | None = None) -> Results:
    """Turn one run's :class:`~twin.record.Record` into :class:`Results` over ``[warmup, horizon]``
    (s; default the run's own)."""
    warmup = rec.warmup if warmup is None else warmup
    horizon = rec.horizon if horizon is None else horizon
    states = states_frame(rec, horizon)
    lots = lots_frame(rec)
    scraps = scraps_frame(rec)
    s_in = scraps[(scraps["t"] >= warmup) & (scraps["t"] <= horizon)]
    not_first_time = s_in.groupby("station")["units"].sum().to_dict()  # scrapped or reworked, per station
    rw = rec.array("reworks")
    rw = rw[(rw["t"] >= warmup) & (rw["t"] <= horizon)]
    names = rec.stations
    for i, units in zip(rw["station"], rw["units"]):
        not_first_time[names[i]] = not_first_time.get(names[i], 0) + units
    closed = reclassify_closed(rec, states)  # off-shift waiting split once for every table below
    stations = station_table(rec, states, warmup, horizon, not_first_time, closed)
    outcomes = maintenance_outcomes(rec, warmup, horizon)
    if outcomes:
        for col in ("pdm_recall", "pdm_precision", "pdm_lead_h", "pdm_lives_learned"):
            stations[col] = [outcomes.get(n, {}).get(col, np.nan) for n in stations.index]
    rework_units = float(rw["units"].sum())
    kpis = line_kpis(lots, scraps, stations, warmup, horizon, rework_units)
    ts = timeseries_frame(lots, scraps, horizon, start=rec.start)
    extra: dict[str, Any] = {"scraps": scraps}
    cost_table, cost_kpis = costs(rec, states, lots, scraps, warmup, horizon, kpis["wip_mean"], closed)
    bases: dict[str, Any] = {"window": cost_kpis.pop("cost_basis")}
    kpis.update(cost_kpis)
    kpis.update(supply_kpis(rec, warmup, horizon))
    kpis.update(pdm_kpis(outcomes))
    kpis.update(forecast_kpis(rec, warmup, horizon))
    orders = pd.DataFrame()
    if rec.orders_mode:
        orders = orders_frame(rec)
        extra["orders"] = orders
        kpis.update(adaptation(rec, lots, closed, scraps, warmup, horizon, bases))
    elif rec.spec.source.kind in ("poisson", "renewal"):
        # a line fed by arrivals gets the same delivery and adaptation measures, of its arrivals
        kpis.update(adaptation(rec, lots, closed, scraps, warmup, horizon, bases))
    return Results(lots=lots, states=states, timeseries=ts, kpis=pd.DataFrame([kpis]), stations=stations,
                   costs=cost_table, orders=orders, scraps=scraps, extra=extra, record=rec, cost_basis=bases)


NOTHING_STOPPED = 0.99
"""A station stopped (down, maintenance, off shift, idled, waiting for material) this share of its
time or more is named as the reason a line made nothing."""


def why_nothing(spec: Any, summary: dict[str, Any]) -> str | None:
    """Why a run made no good unit in its window, in one sentence, or ``None`` when it made some.

    ``spec`` is the run's :class:`~twin.spec.Spec`, ``summary`` what :func:`~twin.stats.summarize`
    returns with ``horizon`` and ``warmup`` (s) added. The reasons are tried from the most
    specific: nothing released; everything scrapped; routes longer than the window on mean
    processing times; a station on every route stopped nearly all the time; else the lots still
    in the line at the end."""
    k = summary["kpis"]

    def mean(key: str) -> float:
        v = k.get(key, {}).get("mean")
        return float(v) if v is not None and np.isfinite(v) else 0.0

    if mean("good_units") > 0:
        return None
    horizon, warmup = float(summary["horizon"]), float(summary["warmup"])
    window = horizon - warmup
    if mean("released_units") == 0:
        return ("the source released nothing: no lot entered the line (check [source], the demand "
                "and the release calendar)")
    if mean("scrap_units") > 0:
        return (f"every unit that left the line was scrapped ({mean('scrap_units'):,.0f} units): "
                "look at the stations' quality settings")
    fastest: tuple[float, str] | None = None
    for p in spec.products:
        t = 0.0
        for name in p.route:
            s = spec.station(name)
            d = s.process_time_by_product.get(p.name, s.process_time)
            if d is None:
                continue
            t += d.mean * (1 if s.batch is not None else p.lot_size)
        if fastest is None or t < fastest[0]:
            fastest = (t, p.name)
    if fastest is not None and fastest[0] >= horizon:
        return (f"a lot takes {format_duration(fastest[0])} on mean processing times to pass "
                f"its shortest route (product {fastest[1]!r}), and the run lasts {format_duration(horizon)}: "
                "lengthen the horizon")
    stopped_keys = [TABLE[s].key for s in (State.DOWN, State.MAINTENANCE, State.OFF_SHIFT, State.MODULE_OFF,
                                           State.STARVED_MATERIAL)]
    on_every_route = set.intersection(*(set(p.route) for p in spec.products)) if spec.products else set()
    for name in (n for n in summary["stations"] if n in on_every_route):
        st = summary["stations"][name]
        shares = {key: float(st[key]["mean"]) for key in stopped_keys if key in st}
        if shares and sum(shares.values()) >= NOTHING_STOPPED:
            worst = max(shares, key=lambda x: shares[x])
            return (f"station {name!r}, on every route, was stopped {sum(shares.values()):.1%} of the time "
                    f"(mostly {LABELS[worst]})")
    return (f"{mean('released_units'):,.0f} units entered the line and none finished in the "
            f"{format_duration(window)} window ({mean('wip_end'):,.0f} still in it at the end): the line "
            "is slower than the window is long, or a loop keeps lots in it")
