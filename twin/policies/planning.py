"""Planning/release policies: what to make next, for which line or cell (DESIGN §7).

A planner keeps queues of lots to release (product indices). The model's feeders
``take`` from it and release each lot into the line as its first buffer accepts it,
so released work never exceeds what the line can hold. ``need(p)`` — units ordered
and neither delivered, in stock nor in process — is the order book the planners see.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any

import numpy as np

from ..units import DAY, WEEK
from ..layouts import ORDER_PRODUCT, ORDER_QTY, ORDER_T
from ..learn import DemandForecaster
from .registry import register


class QueuePlanner:
    """Shared FIFO of lots to release; subclasses decide what goes in it."""

    def __init__(self, model: Any):
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
    orders of the last ``forecast_window``) plus the net backlog, made in long runs of
    one variant (largest first) to save changeovers. Orders beyond the forecast wait
    for the next plan; a forecast that is too high builds finished stock."""

    def __init__(self, model: Any):
        super().__init__(model)
        d = model.spec.demand
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
        if window < WEEK:
            return [self.forecast * self.shares[p] * self.spec.period / WEEK for p in range(n)]
        units = [0.0] * n
        for o in reversed(m.rec.orders):
            if o[ORDER_T] < now - window:
                break
            units[o[ORDER_PRODUCT]] += o[ORDER_QTY]
        return [u / window * self.spec.period for u in units]

    def replan(self) -> None:
        m = self.model
        self.clear()
        plan = []
        fc_all = self.forecast_units()
        m.rec.forecasts.append((self.env.now, self.spec.period, float(sum(fc_all))))
        for p in range(len(m.product_names)):
            if not self.available(p):
                continue
            fc = fc_all[p]
            plan.append((self.lots_needed(p, fc + m.need(p)), p))
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
    (Holt's damped trend, fitted by statsmodels on up to 16 weeks of days and re-fitted
    weekly). The stock target is the forecast demand above the factory's current
    capacity over the next ``prebuild_horizon``: built ahead, in the recent product mix,
    while there is room. The forecast (and its measured error) also drives the
    ``orchestrated`` capacity levers; every day the forecast of the next week is
    recorded, so the run measures its error (``forecast_mape``)."""

    def __init__(self, model: Any):
        super().__init__(model)
        d = model.spec.demand
        self.forecaster = DemandForecaster(prior=(self.spec.forecast_per_week or d.base_per_week) / 7.0)
        self.next_day = DAY
        self.target = [0.0] * len(model.product_names)

    def daily_forecast(self, days: int) -> list[float]:
        """Forecast orders (units) of each of the next ``days`` days."""
        return self.forecaster.forecast(days).tolist()

    def _observe_days(self) -> None:
        m = self.model
        while self.env.now >= self.next_day:
            t0 = self.next_day - DAY
            units = sum(o[ORDER_QTY] for o in _orders_in(m.rec.orders, t0, self.next_day))
            self.forecaster.observe(units)
            week = self.forecaster.forecast(7)
            m.rec.forecasts.append((self.next_day, WEEK, float(week.sum())))
            self._set_target()
            self.next_day += DAY

    def _set_target(self) -> None:
        m = self.model
        days = max(1, round(self.spec.prebuild_horizon / DAY))
        fc = self.forecaster.forecast(days)
        cap = m.capacity.rate_per_hour() * 24.0
        excess = float(np.maximum(fc - cap, 0.0).sum())
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

    def __init__(self, model: Any):
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

    def replan(self) -> None:
        m = self.model
        for p in range(len(m.product_names)):
            if self.available(p):
                self.push(p, self.lots_needed(p, m.need(p) - self.queued[p]))

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
