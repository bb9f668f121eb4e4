"""Planning/release policies: what to make next, for which line or cell (DESIGN §7).

A planner keeps queues of lots to release (product indices). The model's feeders
``take`` from it and release each lot into the line as its first buffer accepts it,
so released work never exceeds what the line can hold. ``need(p)`` — units ordered
and neither delivered, in stock nor in process — is the order book the planners see.
"""

from __future__ import annotations

import math
from collections import deque
from typing import TYPE_CHECKING, Any

import numpy as np

from ..units import DAY, WEEK
from ..layouts import ORDER_PRODUCT, ORDER_QTY, ORDER_T
from ..demand import known_factor
from ..learn import DemandForecaster
from ..units import HOUR
from .registry import register

if TYPE_CHECKING:
    from ..contracts import PlantView

PREBUILD_CAP_DAYS = 56  # the furthest an announced event pulls a pre-build plan ahead, days


def known_days(demand: Any, start: float, days: int, now: float) -> np.ndarray:
    """The known-event factor (:func:`~twin.demand.known_factor`, as known at ``now``) of each of
    ``days`` days from ``start`` (s): the mean over each day's hours."""
    if days <= 0:
        return np.zeros(0)
    hours = start + (np.arange(days * 24) + 0.5) * HOUR
    return known_factor(demand, hours, now).reshape(days, 24).mean(axis=1)


def announced_days(demand: Any, now: float, at_least: int) -> int:
    """Days to plan ahead at ``now``: ``at_least``, or to the end of the last announced event
    known by then and not yet over (at most :data:`PREBUILD_CAP_DAYS`)."""
    ends = [sh.at + sh.duration for sh in demand.shifts
            if sh.announced is not None and sh.at - sh.announced <= now < sh.at + max(sh.duration, DAY)]
    if not ends:
        return at_least
    return int(min(PREBUILD_CAP_DAYS, max(at_least, math.ceil((max(ends) - now) / DAY))))


def _recent_units(model: Any, window: float) -> float:
    """Units ordered over the trailing ``window`` s."""
    now = model.env.now
    total = 0.0
    for o in reversed(model.rec.orders):
        if o[ORDER_T] < now - window:
            break
        total += o[ORDER_QTY]
    return total


def prebuild_units(daily_demand: np.ndarray, daily_capacity: float) -> float:
    """Finished units to hold now so that the days ahead are met at ``daily_capacity``: the
    largest cumulative shortfall (built as late as capacity allows, not as soon as it is known)."""
    if not len(daily_demand):
        return 0.0
    return max(0.0, float(np.max(np.cumsum(np.asarray(daily_demand) - daily_capacity))))


class QueuePlanner:
    """Shared FIFO of lots to release; subclasses decide what goes in it."""

    def __init__(self, model: "PlantView"):
        self.model = model
        self.env = model.env
        self.spec = model.spec.planning
        self.queue: deque[int] = deque()
        self.queued = [0] * len(model.product_names)  # units queued, per product
        self._wake = self.env.event()

    def start(self) -> None:
        self.env.process(self._loop())

    def _loop(self):
        while True:
            self.replan()
            yield self.env.timeout(self.spec.period)

    def replan(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def available(self, p: int) -> bool:
        return self.env.now >= self.model.available_from[p]

    def push(self, p: int, lots: int) -> None:
        q = self.model.lot_sizes[p]
        for _ in range(lots):
            self.queue.append(p)
        self.queued[p] += lots * q
        if lots:
            self._notify()

    def clear(self) -> None:
        self.queue.clear()
        self.queued = [0] * len(self.queued)

    def _notify(self) -> None:
        ev, self._wake = self._wake, self.env.event()
        ev.succeed()

    def take(self, lane: int | None):
        """SimPy generator: the product of the next lot to release on ``lane``."""
        while not self.queue:
            yield self._wake
        p = self.queue.popleft()
        self.queued[p] -= self.model.lot_sizes[p]
        return p

    def lots_needed(self, p: int, units: float) -> int:
        return max(0, math.ceil(units / self.model.lot_sizes[p] - 1e-9))


@register("planning", "campaign")
class Campaign(QueuePlanner):
    """Weekly plan from the forecast: next period's forecast (a moving average of the
    orders of the last ``forecast_window``, each order divided by the known-event factor on
    it, times the factors the calendar of known events shows for the period) plus the net
    backlog, plus the pre-build an announced event needs above the line's capacity, made in
    long runs of one variant (largest first) to save changeovers. Orders beyond the forecast
    wait for the next plan; a forecast that is too high builds finished stock."""

    def __init__(self, model: "PlantView"):
        super().__init__(model)
        d = model.spec.demand
        assert d is not None  # a plan from orders: validation requires a demand
        self.forecast = self.spec.forecast_per_week or d.base_per_week
        shares = model.spec.product_shares()
        self.shares = [shares[n] for n in model.product_names]

    def forecast_units(self) -> list[float]:
        """Units of each product expected in the next period: the trailing ``forecast_window``
        of actual orders (moving average), or the base forecast before there is a week of history."""
        m = self.model
        now = self.env.now
        window = min(now, self.spec.forecast_window)
        n = len(m.product_names)
        d = m.spec.demand
        assert d is not None
        ahead = float(known_days(d, now, max(1, round(self.spec.period / DAY)), now).mean())
        if window < WEEK:
            return [self.forecast * self.shares[p] * self.spec.period / WEEK * ahead for p in range(n)]
        units = [0.0] * n
        known = any(sh.announced is not None for sh in d.shifts)
        for o in reversed(m.rec.orders):
            if o[ORDER_T] < now - window:
                break
            f = float(known_factor(d, np.array([o[ORDER_T]]), now)[0]) if known else 1.0
            units[int(o[ORDER_PRODUCT])] += o[ORDER_QTY] / f if f > 0 else o[ORDER_QTY]
        return [u / window * self.spec.period * ahead for u in units]

    def prebuild(self) -> float:
        """Units to build ahead of an announced event beyond the line's capacity (0 without one)."""
        m = self.model
        d = m.spec.demand
        now = self.env.now
        days = announced_days(d, now, 0)
        if days <= 0:
            return 0.0
        rate = sum(self.forecast_units()) / self.spec.period * DAY  # the moving average per day, this period's factor in
        base = rate / max(float(known_days(d, now, max(1, round(self.spec.period / DAY)), now).mean()), 1e-9)
        return prebuild_units(base * known_days(d, now, days, now), m.capacity.rate_per_hour() * 24.0)

    def replan(self) -> None:
        m = self.model
        self.clear()
        plan = []
        fc_all = self.forecast_units()
        m.rec.forecasts.append((self.env.now, self.spec.period, float(sum(fc_all))))
        ahead = self.prebuild()
        total = sum(fc_all)
        for p in range(len(m.product_names)):
            if not self.available(p):
                continue
            fc = fc_all[p]
            extra = ahead * fc / total if total > 0 else 0.0
            plan.append((self.lots_needed(p, fc + m.need(p) + extra), p))
        for lots, p in sorted(plan, key=lambda x: (-x[0], x[1])):
            self.push(p, lots)


@register("planning", "hourly")
class Hourly(QueuePlanner):
    """Re-plan every period from the actual order book: release what is ordered and
    not yet covered (plus any finished-stock target), earliest due date first."""

    def stock_target(self, p: int) -> float:
        """Finished units of product ``p`` to hold beyond the orders (none here)."""
        return 0.0

    def replan(self) -> None:
        m = self.model
        todo = []
        for p in range(len(m.product_names)):
            if not self.available(p):
                continue
            lots = self.lots_needed(p, m.need(p) + self.stock_target(p) - self.queued[p])
            if lots:
                due = m.book[p][0][2] if m.book[p] else float("inf")
                todo.append((due, p, lots))
        for _, p, lots in sorted(todo):
            self.push(p, lots)


@register("planning", "forecast")
class Forecast(Hourly):
    """Release from the order book every period (as ``hourly``) plus a finished-goods
    target set by a forecast learned from the orders seen so far.

    At each day's end the day's orders feed a :class:`~twin.learn.DemandForecaster`
    (exponential smoothing with a damped trend and a weekly season where the data support
    them, fitted by statsmodels on up to 16 weeks of days and re-fitted weekly), each day's
    orders divided by the factor the calendar of known events put on it; its forecast is
    multiplied by the factors known for the days ahead. The stock target is the largest
    cumulative shortfall of the forecast demand against the factory's current capacity over
    the next ``prebuild_horizon`` (or to the end of an announced event, if later): built
    ahead as late as capacity allows, in the recent product mix. The forecast (and its measured error) also drives the
    ``orchestrated`` capacity levers; every day the forecast of the next week is
    recorded, so the run measures its error (``forecast_mape``)."""

    def __init__(self, model: "PlantView"):
        super().__init__(model)
        d = model.spec.demand
        assert d is not None  # a plan from orders: validation requires a demand
        self.forecaster = DemandForecaster(prior=(self.spec.forecast_per_week or d.base_per_week) / 7.0, season=7)
        self.next_day = DAY
        self.target = [0.0] * len(model.product_names)

    def daily_forecast(self, days: int) -> list[float]:
        """Forecast orders (units) of each of the next ``days`` days (from the current day on)."""
        d = self.model.spec.demand
        start = self.next_day - DAY
        return (self.forecaster.forecast(days) * known_days(d, start, days, self.env.now)).tolist()

    def _observe_days(self) -> None:
        m = self.model
        while self.env.now >= self.next_day:
            t0 = self.next_day - DAY
            units = sum(o[ORDER_QTY] for o in _orders_in(m.rec.orders, t0, self.next_day))
            d = m.spec.demand
            self.forecaster.observe(units, float(known_days(d, t0, 1, self.env.now)[0]))
            week = self.forecaster.forecast(7) * known_days(d, self.next_day, 7, self.env.now)
            m.rec.forecasts.append((self.next_day, WEEK, float(week.sum())))
            self.next_day += DAY
            self._set_target()

    def _set_target(self) -> None:
        m = self.model
        days = announced_days(m.spec.demand, self.env.now, max(1, round(self.spec.prebuild_horizon / DAY)))
        fc = np.asarray(self.daily_forecast(days))
        excess = prebuild_units(fc, m.capacity.rate_per_hour() * 24.0)
        mix = [0.0] * len(m.product_names)
        for o in _orders_in(m.rec.orders, self.env.now - 4 * WEEK, self.env.now):
            mix[o[ORDER_PRODUCT]] += o[ORDER_QTY]
        total = sum(mix)
        self.target = [excess * x / total if total > 0 else 0.0 for x in mix]

    def stock_target(self, p: int) -> float:
        return self.target[p]

    def replan(self) -> None:
        self._observe_days()
        super().replan()


def _orders_in(orders: list[tuple[Any, ...]], t0: float, t1: float):
    """Orders placed in ``[t0, t1)`` (the list is in time order; read from its end)."""
    for o in reversed(orders):
        t = o[ORDER_T]
        if t < t0:
            break
        if t < t1:
            yield o


@register("planning", "backlog")
class Backlog(QueuePlanner):
    """Cells are allocated to variants by backlog: each lane works its variant's
    queue; a lane whose queue runs dry moves to the variant with the most queued
    work per lane already assigned to it (a reconfiguration when the variant changes)."""

    def __init__(self, model: "PlantView"):
        super().__init__(model)
        n = len(model.product_names)
        self.queues: list[deque[int]] = [deque() for _ in range(n)]
        self.assigned: dict[int | None, int] = {}

    def push(self, p: int, lots: int) -> None:
        for _ in range(lots):
            self.queues[p].append(p)
        self.queued[p] += lots * self.model.lot_sizes[p]
        if lots:
            self._notify()

    def prebuild(self) -> float:
        """Units to hold ahead of an announced event beyond the deployed capacity (0 without
        one): what this kind plans with is the measured order rate of the last week (with the
        known-event factor of that week divided out) and the same calendar of announced
        events as every planner."""
        m = self.model
        d = m.spec.demand
        if d is None or not any(sh.announced is not None for sh in d.shifts):
            return 0.0
        now = self.env.now
        days = announced_days(d, now, 0)
        if days <= 0 or now < DAY:
            return 0.0
        w = min(now, WEEK)
        seen = float(known_factor(d, now - w + HOUR * (np.arange(int(w // HOUR)) + 0.5), now).mean())
        base = _recent_units(m, w) / w * DAY / max(seen, 1e-9)
        return prebuild_units(base * known_days(d, now, days, now), m.capacity.rate_per_hour() * 24.0)

    def replan(self) -> None:
        m = self.model
        ahead = self.prebuild()
        shares = self._shares if ahead > 0 else None
        for p in range(len(m.product_names)):
            if self.available(p):
                extra = ahead * shares[p] if shares is not None else 0.0
                self.push(p, self.lots_needed(p, m.need(p) + extra - self.queued[p]))

    @property
    def _shares(self) -> list[float]:
        """The spec's product mix (an announced event scales the volume, not the mix)."""
        shares = self.model.spec.product_shares()
        return [shares[n] for n in self.model.product_names]

    def _pick(self, lane: int | None) -> int | None:
        cur = self.assigned.get(lane)
        if cur is not None and self.queues[cur]:
            return cur
        counts: dict[int, int] = {}
        for ln, p in self.assigned.items():
            if ln != lane:
                counts[p] = counts.get(p, 0) + 1
        best, best_v = None, 0.0
        for p, q in enumerate(self.queues):
            if q:
                v = len(q) / (counts.get(p, 0) + 1)
                if v > best_v:
                    best, best_v = p, v
        if best is not None:
            self.assigned[lane] = best
        return best

    def take(self, lane: int | None):
        while True:
            p = self._pick(lane)
            if p is not None:
                break
            yield self._wake
        self.queues[p].popleft()
        self.queued[p] -= self.model.lot_sizes[p]
        return p
