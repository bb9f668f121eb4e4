"""Delivery and adaptation metrics (DESIGN §8), from a run's record and its tables.

Definitions (all times in s; a day is 86 400 s):

- ``fill_rate``: units of the orders due inside the window that were delivered by
  their due date, over the units of those orders;
- ``backlog(t)``: units ordered by ``t`` and not yet delivered;
- ``peak_backlog``: the maximum of the end-of-day backlog in the window;
- ``backlog(t)``: the order backlog — units ordered by ``t`` and not yet delivered
  (orders not yet due included, so a make-to-order plant always has some);
- ``event_prebuild_units`` / ``event_fill_rate`` (a scenario with a shift announced ahead, the
  first such): finished stock on hand at the day's end before the event begins (built ahead
  for it), and the fill rate of the orders due from its start to its end plus the promised
  delivery time;
- ``time_to_recover`` (from a shift at ``t_s``): the start of the first spell of 7
  days in which, every day, the output of the trailing week (counted from ``t_s`` at
  the earliest) is at least 95 % of that week's demand *and* the backlog, in days of
  the trailing week's demand, is at its normal level (110 % of the 95th percentile of
  that cover in the 14 days before ``t_s``, plus one order); 0 when the shift is
  absorbed at once; NaN when no such spell starts before the horizon ("not recovered").
  Measured to the day: recovery is dated at the start of the spell's first day.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from .units import DAY, WEEK
from .cost import basis, prices_of, unit_cost
from .record import Record
from .state import ACTIVE, State
from .tables import names_of, orders_frame


def daily_series(orders: pd.DataFrame, lots: pd.DataFrame, horizon: float, step: float = DAY) -> pd.DataFrame:
    """Per bin of ``step`` s: demand (units ordered), output (good units finished), delivered units,
    and the backlog at the bin's end."""
    edges = np.append(np.arange(0.0, horizon, step), horizon)
    demand = np.histogram(orders["t_order"], bins=edges, weights=orders["qty"].astype(float))[0]
    fin = lots[lots["status"] == "good"]
    output = np.histogram(fin["t_done"], bins=edges, weights=fin["good"].astype(float))[0]
    dl = orders[~np.isnan(orders["t_delivered"])]
    delivered = np.histogram(dl["t_delivered"], bins=edges, weights=dl["qty"].astype(float))[0]
    return pd.DataFrame({"t_start": edges[:-1], "t_end": edges[1:], "demand": demand, "output": output,
                         "delivered": delivered, "backlog": np.cumsum(demand) - np.cumsum(delivered)})


def arrival_series(lots: pd.DataFrame, scraps: pd.DataFrame, horizon: float, step: float = DAY) -> pd.DataFrame:
    """For a line fed by arrivals, per bin of ``step`` s: demand (units that arrived, turned away or
    not), accepted (units let in), output (good units finished; ``delivered`` too: a finished unit
    leaves) and the backlog at the bin's end (units let in and not yet out: the line's WIP)."""
    edges = np.append(np.arange(0.0, horizon, step), horizon)
    qty = lots["qty"].astype(float)
    demand = np.histogram(lots["t_release"], bins=edges, weights=qty)[0]
    inside = (lots["status"] != "lost").to_numpy()
    accepted = np.histogram(lots.loc[inside, "t_release"], bins=edges, weights=qty[inside])[0]
    fin = lots[lots["status"] == "good"]
    output = np.histogram(fin["t_done"], bins=edges, weights=fin["good"].astype(float))[0]
    scrapped = np.histogram(scraps["t"], bins=edges, weights=scraps["units"].astype(float))[0] if len(scraps) else 0.0
    return pd.DataFrame({"t_start": edges[:-1], "t_end": edges[1:], "demand": demand, "accepted": accepted,
                         "output": output, "delivered": output,
                         "backlog": np.cumsum(accepted) - np.cumsum(output) - np.cumsum(scrapped)})


def served_share(lots: pd.DataFrame, t0: float, t1: float) -> float:
    """A line fed by arrivals: the share of the units arriving in ``[t0, t1)`` that were let in
    (not turned away at a full entrance): its fill rate."""
    w = lots[(lots["t_release"] >= t0) & (lots["t_release"] < t1)]
    tot = float(w["qty"].sum())
    if tot == 0:
        return float("nan")
    return float(w.loc[w["status"] != "lost", "qty"].sum()) / tot


def daily(rec: Record, lots: pd.DataFrame, scraps: pd.DataFrame, horizon: float, step: float = DAY,
          orders: pd.DataFrame | None = None) -> pd.DataFrame:
    """The run's daily demand, output, delivered and backlog: of its orders (make-to-order), else
    of its arrivals (:func:`arrival_series`)."""
    if rec.orders_mode:
        return daily_series(orders_frame(rec) if orders is None else orders, lots, horizon, step)
    return arrival_series(lots, scraps, horizon, step)


def fill_rate(orders: pd.DataFrame, t0: float, t1: float) -> float:
    """Share of units due in ``[t0, t1)`` delivered by their due date."""
    due = orders[(orders["due"] >= t0) & (orders["due"] < t1)]
    tot = float(due["qty"].sum())
    if tot == 0:
        return float("nan")
    return float(due.loc[due["on_time"], "qty"].sum()) / tot


def time_to_recover(t_end: np.ndarray, demand: np.ndarray, output: np.ndarray, backlog: np.ndarray,
                    t_shift: float, order_size: float, step: float = DAY, hold: int = 7) -> float:
    """Seconds from ``t_shift`` until output meets demand and the backlog is back to normal, and
    both stay so for ``hold`` bins; NaN when that never happens ("not recovered").

    Arrays are per bin of ``step`` s ending at ``t_end``. Demand and output are summed over
    the trailing week, but never from before the shift, so the old regime cannot vouch
    for the new one.
    """
    t_end = np.asarray(t_end, dtype=float)
    k = max(1, int(round(WEEK / step)))
    after = t_end > t_shift
    d = np.where(after, demand, 0.0)
    o = np.where(after, output, 0.0)
    d7 = np.convolve(d, np.ones(k), mode="full")[: len(d)]
    o7 = np.convolve(o, np.ones(k), mode="full")[: len(o)]
    # backlog in days of current demand, so a plant serving a larger demand may hold a
    # proportionally larger order book (orders not yet due) and still be "normal"
    dall = np.convolve(np.asarray(demand, dtype=float), np.ones(k), mode="full")[: len(demand)]
    span = np.minimum(np.arange(1, len(dall) + 1), k) * step / DAY  # the first week's window is shorter
    per_day = np.maximum(dall / span, 1e-9)
    cover = np.asarray(backlog, dtype=float) / per_day
    before = (t_end <= t_shift) & (t_end > t_shift - 2 * WEEK)
    normal = (1.1 * np.percentile(cover[before], 95) if before.any() else 0.0) + order_size / per_day
    ok = after & (o7 >= 0.95 * d7) & (cover <= normal)
    run = 0
    for i in range(len(ok)):
        run = run + 1 if ok[i] else 0
        if run == hold:
            first = i - hold + 1
            # recovered at the start of the good spell: the end of the bin before it (or the shift)
            start = t_end[first] - step
            return float(max(0.0, start - t_shift))
    return float("nan")


def shift_time(spec: Any) -> float | None:
    """When the scenario's first shift starts (None for a baseline)."""
    return min((sh.at for sh in spec.shifts), default=None)


def adaptation(rec: Record, lots: pd.DataFrame, states: pd.DataFrame, scraps: pd.DataFrame,
               warmup: float, horizon: float, bases: dict[str, Any] | None = None) -> dict[str, float]:
    """Adaptation KPIs of one make-to-order run, or of a line fed by arrivals, whose demand is what
    arrives, its fill rate the share let in (:func:`served_share`), its backlog the units inside and
    its recovery judged against what it let in (see the module doc for definitions).
    ``bases``: when given, receives the cost bases of the ``transition`` and ``after`` windows
    (:func:`twin.cost.basis`; None where a window is empty), so they can be priced again.

    ``states``: the states frame with off-shift waiting already split out
    (:func:`twin.tables.reclassify_closed`), as :func:`twin.results.build` makes it once."""
    if rec.orders_mode:
        orders = orders_frame(rec)
        days = daily_series(orders, lots, horizon)
        demand_units = float(orders.loc[orders["t_order"] >= warmup, "qty"].sum())
        fill = fill_rate(orders, warmup, horizon)
    else:
        days = arrival_series(lots, scraps, horizon)
        demand_units = float(lots.loc[lots["t_release"] >= warmup, "qty"].sum())
        fill = served_share(lots, warmup, horizon)
    win = (days["t_end"] > warmup).to_numpy()
    weeks = (horizon - warmup) / WEEK
    out: dict[str, float] = {
        "demand_units": demand_units,
        "good_units_per_week": float(days.loc[win, "output"].sum()) / weeks,
        "demand_per_week": float(days.loc[win, "demand"].sum()) / weeks,
        "fill_rate": fill,
        "peak_backlog": float(days.loc[win, "backlog"].max()) if win.any() else float("nan"),
        "backlog_end": float(days["backlog"].iloc[-1]) if len(days) else float("nan"),
    }
    nan = float("nan")
    out.update(event_prebuild_units=nan, event_fill_rate=nan)
    known = ([sh for sh in rec.spec.demand.shifts if sh.announced is not None]
             if rec.orders_mode and rec.spec.demand is not None else [])
    if known:
        ev = min(known, key=lambda sh: sh.at)
        if ev.at < horizon:
            before = (days["t_end"] <= ev.at).to_numpy()
            # finished stock on hand as the event begins: what was built ahead for it
            out["event_prebuild_units"] = float(days.loc[before, "output"].sum() - days.loc[before, "delivered"].sum())
            end = ev.at + max(ev.duration, DAY) + rec.spec.demand.due  # type: ignore[union-attr]
            out["event_fill_rate"] = fill_rate(orders, ev.at, min(end, horizon))
    ts = shift_time(rec.spec)
    out.update(time_to_recover_s=nan, recovered=nan, unit_cost_transition=nan, unit_cost_after=nan,
               idle_capacity_after=nan, recover_observed_s=nan)
    if bases is not None:
        bases.update(transition=None, after=None)
    if ts is None or ts >= horizon:
        return out
    # a line fed by arrivals recovers when it makes what it let in and its WIP is normal again
    # (what a full entrance turned away is its fill rate, not a debt to make up)
    inflow = days["demand"] if rec.orders_mode else days["accepted"]
    ttr = time_to_recover(days["t_end"].to_numpy(), inflow.to_numpy(), days["output"].to_numpy(),
                          days["backlog"].to_numpy(), ts,
                          rec.spec.demand.order_size if rec.orders_mode and rec.spec.demand is not None
                          else max(p.lot_size for p in rec.spec.products))
    out["time_to_recover_s"] = ttr
    # the latest recovery this run could have seen (a good spell needs 7 whole days before the
    # horizon): the censoring time of a run that did not recover
    out["recover_observed_s"] = float(max(0.0, horizon - ts - 7 * DAY))
    out["recovered"] = 0.0 if np.isnan(ttr) else 1.0
    t_rec = horizon if np.isnan(ttr) else ts + ttr
    prices = prices_of(rec.spec)
    windows = {"transition": (ts, t_rec), "after": (t_rec, horizon)}
    for name, (a, b) in windows.items():
        bs = basis(rec, states, lots, scraps, a, b, closed=states) if b > a else None
        out[f"unit_cost_{name}"] = unit_cost(bs, prices)
        if bases is not None:
            bases[name] = bs
    # idle capacity after the shift: idle share of the busiest station's paid-for time
    s = states
    dur = np.clip(s["end"].to_numpy(), ts, horizon) - np.clip(s["start"].to_numpy(), ts, horizon)
    tab = pd.DataFrame({"station": names_of(s["station"]), "state": names_of(s["state"]), "dur": dur})
    tab = tab.groupby(["station", "state"])["dur"].sum().unstack(fill_value=0.0)
    if len(tab):
        active = sum(tab.get(c, 0.0) for c in ACTIVE)
        bn = active.idxmax()
        paid = tab.loc[bn].sum() - sum(tab.loc[bn].get(k, 0.0) for k in (State.OFF_SHIFT.key, State.MODULE_OFF.key))
        out["idle_capacity_after"] = float(tab.loc[bn].get(State.IDLE.key, 0.0) / paid) if paid > 0 else nan
    return out
