"""Unit cost (DESIGN §9): every term over an observation window, per good unit and in total.

Money is in ``costs.currency``; time in seconds; a year is 365 days. Terms:

- ``capex``: (plant capex + capex per owned lane) / depreciation years, pro rata: every
  installed lane is owned from the start, deployed or idle, except lines the ``orchestrated``
  policy buys (owned from when they work); plus ``module_deploy_cost`` per module
  deployment. Leased lanes (``lanes_leased``) pay ``lease_per_lane_hour`` while deployed instead;
- ``labour``: per worker pool, crew size × paid hours × wage (overtime hours × (1 + premium));
  a pool without a calendar is paid around the clock; plus ``labour_per_lane_hour`` per
  deployed lane;
- ``workforce``: workers hired by the capacity policy × ``hiring_per_worker`` (recruiting,
  training) plus workers let go × ``severance_per_worker``;
- ``energy``: kW per server and state × time in that state × price per kWh, plus what
  overdriven lines draw above nominal (busy kW × (factor ** ``overdrive_power`` − 1));
- ``maintenance``: cost per repair and per planned maintenance started in the window;
- ``material``: material of the good units delivered out of the line;
- ``scrap``: material plus the value added (ideal work × conversion rate) of scrapped
  units, and the warranty cost of escaped defects;
- ``rework``: parts per reworked unit (the rework's station time is in labour and energy);
- ``holding``: carrying cost of the mean WIP plus finished stock, and of the mean stock of
  each component (its ``holding_per_unit_year``);
- ``overhead``: fixed cost per year, pro rata.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .record import Fate, MaintKind, Record
from .state import State
from .tables import names_of, reclassify_closed

YEAR = 365 * 86400.0
TERMS = ["capex", "labour", "workforce", "energy", "maintenance", "material", "scrap", "rework", "holding", "overhead"]


def _steps(changes: list[tuple[float, float]], t0: float, t1: float) -> float:
    """Integral over ``[t0, t1]`` of a step function given as sorted (from time, value) pairs."""
    total = 0.0
    for k, (t, n) in enumerate(changes):
        end = changes[k + 1][0] if k + 1 < len(changes) else float("inf")
        a, b = max(t, t0), min(end, t1)
        if b > a:
            total += n * (b - a)
    return total


def _lane_seconds(rec: Record, t0: float, t1: float) -> tuple[float, float, int]:
    """(owned lane-seconds, deployed lane-seconds) in ``[t0, t1]`` and module deployments started there."""
    lanes = float(rec.spec.planning.lanes)
    if not rec.orders_mode:
        return lanes * (t1 - t0), lanes * (t1 - t0), 0
    deployed = [(0.0, float(rec.spec.capacity.initial_lanes or lanes))]
    owned = [(0.0, lanes)]
    deploys = 0
    for t, kind, detail in rec.events:
        if kind == "lanes":
            deployed.append((t, float(detail)))
        elif kind == "owned":
            owned.append((t, float(detail)))
        elif kind == "deploy" and t0 <= t < t1:
            deploys += 1
    return _steps(owned, t0, t1), _steps(deployed, t0, t1), deploys


def _crew_changes(rec: Record, t0: float, t1: float) -> tuple[float, float]:
    """Workers hired and workers let go by the capacity policy in ``[t0, t1]``."""
    hired = shed = 0.0
    for t, kind, detail in rec.events:
        if t0 <= t < t1:
            if kind == "hire":
                hired += float(detail)
            elif kind == "shed":
                shed += float(detail)
    return hired, shed


def _overdrive_extra_kwh(rec: Record, s: pd.DataFrame, t0: float, t1: float) -> float:
    """Busy energy overdriven lines draw above their nominal power in ``[t0, t1]``, kWh: busy kW ×
    (factor ** ``overdrive_power`` − 1) × busy time of the line stations while overdriven."""
    windows = [(t, float(d)) for t, kind, d in rec.events if kind == "overdrive"]
    if not windows:
        return 0.0
    expo = rec.spec.capacity.overdrive_power
    lanes = rec.spec.planning.lanes
    busy = s[(s["state"] == State.BUSY.key).to_numpy()]
    start, end = busy["start"].to_numpy(), busy["end"].to_numpy()
    extra = 0.0
    for k, (a, f) in enumerate(windows):
        b = windows[k + 1][0] if k + 1 < len(windows) else t1
        lo, hi = max(a, t0), min(b, t1)
        if hi <= lo or f == 1.0:
            continue
        ov = np.clip(np.minimum(end, hi) - np.maximum(start, lo), 0.0, None)
        for st in rec.spec.stations:
            if st.lanes == lanes > 1 and st.power_kw.get(State.BUSY.key):
                m = (busy["station"] == st.name).to_numpy()
                extra += st.power_kw[State.BUSY.key] * (f ** expo - 1.0) * float(ov[m].sum()) / 3600.0
    return extra


def stock_mean(rec: Record, t0: float, t1: float) -> float:
    """Time-average finished units waiting for their order (good units out − units delivered)."""
    if not rec.orders_mode:
        return 0.0
    fin = rec.array("finishes")
    fin = fin[fin["fate"] == int(Fate.GOOD)]
    orders = rec.array("orders")
    dl = rec.array("deliveries")
    qty = np.zeros(len(orders))
    qty[orders["order"]] = orders["qty"]
    times = np.concatenate([fin["t"], dl["t"]])
    delta = np.concatenate([fin["units"].astype(float), -qty[dl["order"]]])
    order = np.argsort(times, kind="stable")
    return step_mean(times[order], np.maximum(np.cumsum(delta[order]), 0.0), t0, t1, before=0.0)


def step_mean(times: np.ndarray, level: np.ndarray, t0: float, t1: float, before: float) -> float:
    """Time-average over ``[t0, t1]`` of a step function that is ``level[i]`` from ``times[i]``
    (sorted) on and ``before`` until the first time."""
    edges = np.concatenate([[t0], np.clip(times, t0, t1), [t1]])
    values = np.concatenate([[level[times < t0][-1] if (times < t0).any() else before], level])
    return float((np.diff(edges) * values).sum() / (t1 - t0))


def component_stock_means(rec: Record, t0: float, t1: float) -> list[float]:
    """Time-average units on hand of each component over ``[t0, t1]`` (s)."""
    st = rec.array("stock")
    out = []
    for i in range(len(rec.components)):
        rows = st[st["component"] == i]
        level = rows["level"].astype(float)
        out.append(step_mean(rows["t"], level, t0, t1, before=level[0]) if len(rows) else 0.0)
    return out


def _power(kw: dict[str, float], state: str) -> float:
    """kW of a server in ``state``: its own figure, an idled module drawing what it draws off shift,
    otherwise the idle figure."""
    if state in kw:
        return kw[state]
    if state == State.MODULE_OFF.key and State.OFF_SHIFT.key in kw:
        return kw[State.OFF_SHIFT.key]
    return kw.get(State.IDLE.key, 0.0)


def costs(rec: Record, states: pd.DataFrame, lots: pd.DataFrame, scraps: pd.DataFrame, t0: float, t1: float,
          wip_mean: float | None = None, closed: pd.DataFrame | None = None
          ) -> tuple[pd.DataFrame, dict[str, float]]:
    """Cost terms over ``[t0, t1]`` (s): a table (term, total, per_unit) and flat KPIs ``cost_<term>``.
    ``closed``: ``reclassify_closed(rec, states)`` when the caller has it already."""
    c = rec.spec.costs
    span = t1 - t0
    # capex
    owned_s, lane_s, deploys = _lane_seconds(rec, t0, t1)
    lane_capex = c.lease_per_lane_hour * lane_s / 3600.0 if c.lanes_leased else (
        c.capex_per_lane * owned_s / (c.depreciation_years * YEAR))
    capex = c.capex * span / (c.depreciation_years * YEAR) + lane_capex + deploys * c.module_deploy_cost
    # labour
    labour = c.labour_per_lane_hour * lane_s / 3600.0
    hired, shed = _crew_changes(rec, t0, t1)
    workforce = hired * c.hiring_per_worker + shed * c.severance_per_worker
    for w in rec.spec.workers:
        wage = c.wage_per_hour.get(w.name, 0.0)
        if w.calendar is None:
            reg, ot = span, 0.0
        else:
            reg, ot = rec.calendars[w.calendar].paid_seconds(t0, t1)
        labour += w.size * wage * (reg + ot * (1.0 + c.overtime_premium)) / 3600.0
    # energy
    s = reclassify_closed(rec, states) if closed is None else closed
    dur = (np.clip(s["end"].to_numpy(), t0, t1) - np.clip(s["start"].to_numpy(), t0, t1))
    state_names = names_of(s["state"])
    kwh = 0.0
    for st in rec.spec.stations:
        name, kw = st.name, st.power_kw
        if not kw:
            continue
        m = (s["station"] == name).to_numpy()
        by_state = pd.Series(dur[m]).groupby(state_names[m]).sum()
        for state, secs in by_state.items():
            kwh += _power(kw, str(state)) * secs / 3600.0
        # servers with no recorded state at all are idle
    kwh += _overdrive_extra_kwh(rec, s, t0, t1)
    energy = kwh * c.energy_per_kwh
    # maintenance
    mt = rec.array("maint")
    inwin = (mt["t"] >= t0) & (mt["t"] < t1)
    repairs = int(((mt["kind"] == int(MaintKind.REPAIR)) & inwin).sum())
    planned = int(((mt["kind"] == int(MaintKind.PLANNED)) & inwin).sum())
    maintenance = repairs * c.repair_cost + planned * c.planned_maintenance_cost
    # units
    done = lots["t_done"].to_numpy()
    ok = (lots["status"] == "good").to_numpy() & (done >= t0) & (done < t1)
    good = float(lots["good"].to_numpy(dtype=float)[ok].sum())
    escaped = float(lots["escaped"].to_numpy(dtype=float)[ok].sum())
    material = good * c.material_per_unit
    sin = (scraps["t"].to_numpy() >= t0) & (scraps["t"].to_numpy() < t1)
    su = scraps["units"].to_numpy(dtype=float)[sin]
    sw = scraps["work_s"].to_numpy()[sin]
    scrap_units = float(su.sum())
    scrap = float((su * (c.material_per_unit + sw / 3600.0 * c.conversion_per_hour)).sum()) + escaped * c.escape_cost
    rw = rec.array("reworks")
    rework = float(rw["units"][(rw["t"] >= t0) & (rw["t"] < t1)].sum()) * c.rework_per_unit
    # holding
    if wip_mean is None:
        rel = lots["t_release"].to_numpy()
        end = np.where(np.isnan(done), t1, done)
        alive = (lots["status"] != "lost").to_numpy()
        units = np.where(lots["status"].to_numpy() == "wip", lots["qty"].to_numpy() - lots["scrap"].to_numpy(),
                         lots["good"].to_numpy())
        ov = np.clip(np.minimum(end, t1) - np.maximum(rel, t0), 0.0, None)
        wip_mean = float((ov[alive] * units[alive]).sum() / span)
    fg = stock_mean(rec, t0, t1)
    holding = (wip_mean + fg) * c.holding_per_unit_year * span / YEAR
    comp_stock = component_stock_means(rec, t0, t1)
    for comp, mean in zip(rec.spec.components, comp_stock):
        holding += mean * comp.holding_per_unit_year * span / YEAR
    overhead = c.overhead_per_year * span / YEAR
    totals = dict(capex=capex, labour=labour, workforce=workforce, energy=energy, maintenance=maintenance, material=material,
                  scrap=scrap, rework=rework, holding=holding, overhead=overhead)
    total = sum(totals.values())
    per = {k: (v / good if good > 0 else float("nan")) for k, v in totals.items()}
    table = pd.DataFrame({"term": list(totals), "total": list(totals.values()), "per_unit": list(per.values())})
    table.loc[len(table)] = ["total", total, total / good if good > 0 else float("nan")]
    kpis = {f"cost_{k}": per[k] for k in TERMS}
    kpis["unit_cost"] = total / good if good > 0 else float("nan")
    kpis["cost_total"] = total
    kpis["energy_kwh"] = kwh
    kpis["repairs"] = float(repairs)
    kpis["planned_maintenances"] = float(planned)
    kpis["scrap_units_cost_window"] = scrap_units
    kpis["fg_stock_mean"] = fg
    kpis["workers_hired"] = hired
    kpis["workers_shed"] = shed
    if rec.components:
        kpis["component_stock_mean"] = float(sum(comp_stock))
    return table, kpis
