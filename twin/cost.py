"""Unit cost (DESIGN §9): every term over an observation window, per good unit and in total.

Money is in ``costs.currency``; time in seconds; a year is 365 days. Terms:

- ``capex``: the capital charge of the plant's capex over its life (``plant_depreciation_years``,
  else ``depreciation_years``) and of each owned lane's ``capex_per_lane`` over
  ``depreciation_years``, pro rata: the annuity that repays the capex at ``cost_of_capital`` less
  the annuity of the lane's salvage value (``salvage_share``; :func:`capital_charge`; straight-line
  depreciation at a zero rate). Every installed lane is owned from the start, deployed or idle,
  except lanes the capacity policies buy (owned from when they work; with ``bought_capacity =
  "life"`` a lane bought in the window is charged its whole life-cycle capital instead); plus
  ``module_deploy_cost`` per module deployment. Leased lanes (``lanes_leased``) pay
  ``lease_per_lane_hour`` while deployed instead;
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
- ``overhead``: fixed cost per year, pro rata;
- ``lateness``: ``late_per_unit`` per unit of the orders due in the window that were not delivered
  by their due date (make-to-order runs; 0 by default: service unpriced).
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pandas as pd

from .record import Fate, MaintKind, Record
from .spec import Costs, SpecError, _set_path
from .state import State
from .tables import names_of, reclassify_closed
from .units import HOUR, YEAR

TERMS = ["capex", "labour", "workforce", "energy", "maintenance", "material", "scrap", "rework", "holding", "overhead",
         "lateness"]


def _steps(changes: list[tuple[float, float]], t0: float, t1: float) -> float:
    """Integral over ``[t0, t1]`` of a step function given as sorted (from time, value) pairs."""
    total = 0.0
    for k, (t, n) in enumerate(changes):
        end = changes[k + 1][0] if k + 1 < len(changes) else float("inf")
        a, b = max(t, t0), min(end, t1)
        if b > a:
            total += n * (b - a)
    return total


def capital_charge(capex: float, years: float, rate: float, salvage: float = 0.0) -> float:
    """Capital charge of ``capex`` a year (money/year): the annuity that repays it over ``years`` at
    the annual ``rate``, less the annuity of the ``salvage`` share recovered at the end (the
    equivalent annual cost); ``capex × (1 − salvage) / years`` at a zero rate."""
    if rate == 0.0:
        return capex * (1.0 - salvage) / years
    v = (1.0 + rate) ** -years  # the discount factor: underflows to 0 for long lives, never overflows
    return capex * rate * (1.0 - salvage * v) / (1.0 - v)


def life_cycle_capital(capex: float, years: float, rate: float, salvage: float = 0.0) -> float:
    """Present value of owning ``capex`` for its life (money): the price less the discounted salvage."""
    return capex * (1.0 - salvage * (1.0 + rate) ** -years)


def _lane_seconds(rec: Record, t0: float, t1: float) -> tuple[float, float, int, float, float]:
    """(owned lane-seconds, deployed lane-seconds) in ``[t0, t1]``, module deployments started there,
    and the lanes bought in ``[t0, t1)`` with their lane-seconds in the window (part of the owned ones)."""
    lanes = float(rec.spec.planning.lanes)
    if not rec.orders_mode:
        return lanes * (t1 - t0), lanes * (t1 - t0), 0, 0.0, 0.0
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
    # lanes bought in the window: what the owned count rises to above its value at t0
    base = [n for t, n in owned if t <= t0][-1]
    above = [(t, max(n - base, 0.0)) for t, n in owned]
    bought = max([n for t, n in above if t0 <= t < t1] + [0.0])
    return _steps(owned, t0, t1), _steps(deployed, t0, t1), deploys, bought, _steps(above, t0, t1)


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
                extra += st.power_kw[State.BUSY.key] * (f ** expo - 1.0) * float(ov[m].sum()) / HOUR
    return extra


def late_units(rec: Record, t0: float, t1: float) -> float:
    """Units of the orders due in ``[t0, t1)`` not delivered by their due date (0 without orders)."""
    if not rec.orders_mode:
        return 0.0
    o = rec.array("orders")
    delivered = np.full(len(o), np.inf)
    d = rec.array("deliveries")
    if len(d):
        delivered[d["order"]] = d["t"]
    due = (o["due"] >= t0) & (o["due"] < t1) & ~(delivered <= o["due"])
    return float(o["qty"][due].sum())


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


PRICE_ROOTS = ("costs.", "components.")
"""Spec paths under these roots that are prices (money per counted unit); see :func:`is_price_path`."""


def is_price_path(path: str) -> bool:
    """Whether a dotted spec path (as ``--set`` writes it) is a price: a money amount of ``costs`` or a
    component's ``holding_per_unit_year``. Prices only enter :func:`price`; the run never reads them,
    so a finished run can be priced again under other prices (:func:`reprice`) without simulating."""
    if path.startswith("costs."):
        return path.split(".")[1] not in ("currency", "lanes_leased")
    return path.startswith("components.") and path.endswith(".holding_per_unit_year")


def prices_of(spec: Any) -> dict[str, Any]:
    """The spec's prices as plain data with the spec's own paths (``costs``, and ``components`` with
    each one's name and holding rate): an uncertainty draw or a break-even search sets a price path
    on it as on the whole spec, and :func:`price` reads it back."""
    return {"costs": spec.costs.model_dump(mode="python"),
            "components": [{"name": c.name, "holding_per_unit_year": c.holding_per_unit_year}
                           for c in spec.components]}


def basis(rec: Record, states: pd.DataFrame, lots: pd.DataFrame, scraps: pd.DataFrame, t0: float, t1: float,
          wip_mean: float | None = None, closed: pd.DataFrame | None = None) -> dict[str, Any]:
    """What the record counts over ``[t0, t1]`` (s) that prices multiply: lane-seconds owned and deployed,
    module deployments, crew paid seconds per pool, hires and sheds, kWh, repairs and planned stops,
    good, escaped, scrapped and reworked units, scrapped work (unit-s), mean WIP and stock, component
    stocks. Plain data (JSON-able); :func:`price` turns it into money under any prices."""
    span = t1 - t0
    owned_s, lane_s, deploys, bought, bought_s = _lane_seconds(rec, t0, t1)
    hired, shed = _crew_changes(rec, t0, t1)
    pools = []
    for w in rec.spec.workers:
        if w.calendar is None:
            reg, ot = span, 0.0
        else:
            reg, ot = rec.calendars[w.calendar].paid_seconds(t0, t1)
        pools.append([w.name, float(w.size), float(reg), float(ot)])
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
            kwh += _power(kw, str(state)) * secs / HOUR
        # servers with no recorded state at all are idle
    kwh += _overdrive_extra_kwh(rec, s, t0, t1)
    mt = rec.array("maint")
    inwin = (mt["t"] >= t0) & (mt["t"] < t1)
    repairs = int(((mt["kind"] == int(MaintKind.REPAIR)) & inwin).sum())
    planned = int(((mt["kind"] == int(MaintKind.PLANNED)) & inwin).sum())
    done = lots["t_done"].to_numpy()
    ok = (lots["status"] == "good").to_numpy() & (done >= t0) & (done < t1)
    good = float(lots["good"].to_numpy(dtype=float)[ok].sum())
    escaped = float(lots["escaped"].to_numpy(dtype=float)[ok].sum())
    sin = (scraps["t"].to_numpy() >= t0) & (scraps["t"].to_numpy() < t1)
    su = scraps["units"].to_numpy(dtype=float)[sin]
    sw = scraps["work_s"].to_numpy()[sin]
    rw = rec.array("reworks")
    reworked = float(rw["units"][(rw["t"] >= t0) & (rw["t"] < t1)].sum())
    if wip_mean is None:
        rel = lots["t_release"].to_numpy()
        end = np.where(np.isnan(done), t1, done)
        alive = (lots["status"] != "lost").to_numpy()
        units = np.where(lots["status"].to_numpy() == "wip", lots["qty"].to_numpy() - lots["scrap"].to_numpy(),
                         lots["good"].to_numpy())
        ov = np.clip(np.minimum(end, t1) - np.maximum(rel, t0), 0.0, None)
        wip_mean = float((ov[alive] * units[alive]).sum() / span)
    comp = component_stock_means(rec, t0, t1)
    return {"late_units": late_units(rec, t0, t1), "span_s": float(span), "owned_lane_s": float(owned_s), "deployed_lane_s": float(lane_s),
            "bought_lanes": float(bought), "bought_lane_s": float(bought_s),
            "deploys": int(deploys), "hired": float(hired), "shed": float(shed), "pools": pools, "kwh": float(kwh),
            "repairs": repairs, "planned": planned, "good": good, "escaped": escaped,
            "scrap_units": float(su.sum()), "scrap_work_unit_s": float((su * sw).sum()), "reworked": reworked,
            "wip_mean": float(wip_mean), "fg_stock_mean": stock_mean(rec, t0, t1),
            "component_stock_means": [float(x) for x in comp]}


BASIS_KEYS = ("late_units", "span_s", "owned_lane_s", "deployed_lane_s", "bought_lanes", "bought_lane_s", "deploys", "hired", "shed", "pools", "kwh",
              "repairs", "planned", "good", "escaped", "scrap_units", "scrap_work_unit_s", "reworked", "wip_mean",
              "fg_stock_mean", "component_stock_means")
"""The quantities a cost basis holds (:func:`basis`); a stored basis without all of them is stale."""


def price(b: dict[str, Any], prices: dict[str, Any]) -> dict[str, float]:
    """The cost terms (money, :data:`TERMS`) of what :func:`basis` counted, under ``prices`` (as
    :func:`prices_of` gives them; other paths of the same shape are allowed). Exact arithmetic on
    counted quantities: no simulation, so any price can be changed after a run."""
    c = prices["costs"]
    span = b["span_s"]
    years, rate, salvage = c["depreciation_years"], c.get("cost_of_capital", 0.0), c.get("salvage_share", 0.0)
    plant = c.get("plant_depreciation_years") or years
    if c["lanes_leased"]:
        lane_capex = c["lease_per_lane_hour"] * b["deployed_lane_s"] / HOUR
    else:
        per_s = capital_charge(c["capex_per_lane"], years, rate, salvage) / YEAR
        if c.get("bought_capacity", "window") == "life":
            lane_capex = (per_s * (b["owned_lane_s"] - b["bought_lane_s"])
                          + b["bought_lanes"] * life_cycle_capital(c["capex_per_lane"], years, rate, salvage))
        else:
            lane_capex = per_s * b["owned_lane_s"]
    capex = (capital_charge(c["capex"], plant, rate) * span / YEAR + lane_capex
             + b["deploys"] * c["module_deploy_cost"])
    labour = c["labour_per_lane_hour"] * b["deployed_lane_s"] / HOUR
    for name, size, reg, ot in b["pools"]:
        labour += size * c["wage_per_hour"].get(name, 0.0) * (reg + ot * (1.0 + c["overtime_premium"])) / HOUR
    workforce = b["hired"] * c["hiring_per_worker"] + b["shed"] * c["severance_per_worker"]
    mat = c["material_per_unit"]
    scrap = (b["scrap_units"] * mat + b["scrap_work_unit_s"] / HOUR * c["conversion_per_hour"]
             + b["escaped"] * c["escape_cost"])
    holding = (b["wip_mean"] + b["fg_stock_mean"]) * c["holding_per_unit_year"] * span / YEAR
    for comp, mean in zip(prices["components"], b["component_stock_means"]):
        holding += mean * comp["holding_per_unit_year"] * span / YEAR
    return dict(capex=capex, labour=labour, workforce=workforce, energy=b["kwh"] * c["energy_per_kwh"],
                maintenance=b["repairs"] * c["repair_cost"] + b["planned"] * c["planned_maintenance_cost"],
                material=b["good"] * mat, scrap=scrap, rework=b["reworked"] * c["rework_per_unit"],
                holding=holding, overhead=c["overhead_per_year"] * span / YEAR,
                lateness=b["late_units"] * c["late_per_unit"])


def unit_cost(b: dict[str, Any] | None, prices: dict[str, Any]) -> float:
    """Total cost per good unit of a basis under ``prices`` (NaN without good units or basis)."""
    if b is None or not b["good"] > 0:
        return float("nan")
    return sum(price(b, prices).values()) / b["good"]


def costs(rec: Record, states: pd.DataFrame, lots: pd.DataFrame, scraps: pd.DataFrame, t0: float, t1: float,
          wip_mean: float | None = None, closed: pd.DataFrame | None = None
          ) -> tuple[pd.DataFrame, dict[str, float]]:
    """Cost terms over ``[t0, t1]`` (s): a table (term, total, per_unit) and flat KPIs ``cost_<term>``
    (and ``cost_basis``: the counted quantities, so the run can be priced again).
    ``closed``: ``reclassify_closed(rec, states)`` when the caller has it already."""
    b = basis(rec, states, lots, scraps, t0, t1, wip_mean, closed)
    totals = price(b, prices_of(rec.spec))
    good = b["good"]
    total = sum(totals.values())
    per = {k: (v / good if good > 0 else float("nan")) for k, v in totals.items()}
    table = pd.DataFrame({"term": list(totals), "total": list(totals.values()), "per_unit": list(per.values())})
    table.loc[len(table)] = ["total", total, total / good if good > 0 else float("nan")]
    kpis: dict[str, Any] = {f"cost_{k}": per[k] for k in TERMS}
    kpis["unit_cost"] = total / good if good > 0 else float("nan")
    kpis["cost_total"] = total
    kpis["energy_kwh"] = b["kwh"]
    kpis["repairs"] = float(b["repairs"])
    kpis["planned_maintenances"] = float(b["planned"])
    kpis["scrap_units_cost_window"] = b["scrap_units"]
    kpis["fg_stock_mean"] = b["fg_stock_mean"]
    kpis["workers_hired"] = b["hired"]
    kpis["workers_shed"] = b["shed"]
    if rec.components:
        kpis["component_stock_mean"] = float(sum(b["component_stock_means"]))
    kpis["cost_basis"] = b
    return table, kpis


def set_price(prices: dict[str, Any], path: str, value: float, source: str = "<prices>") -> dict[str, Any]:
    """A copy of ``prices`` (:func:`prices_of`) with the price at ``path`` (a spec path as ``--set``
    writes it, ``*`` for every item) set to ``value``, checked as the spec would check it."""
    if not is_price_path(path):
        raise SpecError([f"{source}: {path}: not a price (money under costs, or a component's "
                         "holding_per_unit_year); changing it needs a new run"])
    out = copy.deepcopy(prices)
    err = _set_path(out, path, value)
    if err:
        raise SpecError([f"{source}: {path}: {err}"])
    try:
        Costs.model_validate(out["costs"])
        for c in out["components"]:
            if not (isinstance(c["holding_per_unit_year"], (int, float)) and c["holding_per_unit_year"] >= 0):
                raise ValueError(f"components.{c['name']}.holding_per_unit_year: must be a number >= 0")
    except ValueError as e:
        raise SpecError([f"{source}: {path} = {value!r}: {str(e).splitlines()[0]}"]) from None
    return out


def reprice(kpis: dict[str, Any], bases: dict[str, Any], prices: dict[str, Any]) -> dict[str, Any]:
    """A run's KPIs priced again: ``kpis`` (one run's, or a compare job's) with every money KPI
    (``cost_<term>``, ``unit_cost``, ``cost_total``, ``conversion_cost`` when present,
    ``unit_cost_transition``, ``unit_cost_after``) recomputed from the run's cost ``bases``
    (:attr:`twin.results.Results.cost_basis`) under ``prices``; every other KPI is the run's own."""
    out = dict(kpis)
    b = bases["window"]
    totals = price(b, prices)
    good = b["good"]
    total = sum(totals.values())
    for k in TERMS:
        out[f"cost_{k}"] = totals[k] / good if good > 0 else float("nan")
    out["unit_cost"] = total / good if good > 0 else float("nan")
    out["cost_total"] = total
    if "conversion_cost" in kpis:
        out["conversion_cost"] = out["unit_cost"] - out["cost_material"]
    for name in ("transition", "after"):
        if name in bases:
            out[f"unit_cost_{name}"] = unit_cost(bases[name], prices)
    return out
