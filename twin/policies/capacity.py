"""Capacity policies: how a factory's capacity follows demand (DESIGN §7)."""

from __future__ import annotations

import math
from typing import Any

from ..calendar import WEEK, WeeklyPattern
from ..layouts import ORDER_QTY, ORDER_T
from .registry import register

DAY = 86400.0


@register("capacity", "none")
class Fixed:
    """Capacity is what is installed (the dark factory)."""

    def __init__(self, model: Any):
        self.model = model

    def start(self) -> None:
        pass


def backlog_days(model: Any) -> float:
    """Net open orders (units) in days of baseline demand."""
    units = sum(model.open_units) - sum(model.stock)
    return units / (model.spec.demand.base_per_week / 7.0)


@register("capacity", "shifts")
class Shifts:
    """Overtime while the backlog is above ``overtime_above`` days of demand; an extra
    shift once overtime has run for ``hiring_lag`` (recruiting and training take that
    long); back to the base pattern when the backlog falls below ``release_below`` days.
    Switches every calendar of the factory (level 0 base, 1 overtime, 2 extra shift)."""

    def __init__(self, model: Any):
        self.model = model
        self.spec = model.spec.capacity
        self.level = 0
        self.overtime_since: float | None = None

    def start(self) -> None:
        if self.model.orders_mode:
            self.model.env.process(self._loop())

    def _set(self, level: int) -> None:
        if level != self.level:
            self.level = level
            for cal in self.model.calendars.values():
                cal.set_level(level)
            self.model.rec.events.append((self.model.env.now, "calendar_level", str(level)))

    def _loop(self):
        env = self.model.env
        while True:
            yield env.timeout(self.spec.review)
            days = backlog_days(self.model)
            if days < self.spec.release_below:
                self.overtime_since = None
                self._set(0)
            elif days > self.spec.overtime_above:
                if self.overtime_since is None:
                    self.overtime_since = env.now
                    self._set(max(self.level, 1))
                elif env.now - self.overtime_since >= self.spec.hiring_lag:
                    self._set(2)


@register("capacity", "modules")
class Modules:
    """Deploy or idle whole lines/cells. Every ``review``, size the active modules to the
    recent order rate plus clearing the backlog within ``clear_backlog_in``, at
    ``target_utilisation`` of a module's rated output; added modules start work after
    ``lead_time`` (deployment), idled ones stop taking new lots at once."""

    def __init__(self, model: Any):
        self.model = model
        self.spec = model.spec.capacity
        self.pending = 0

    def start(self) -> None:
        m = self.model
        if not m.orders_mode:
            return
        lanes = m.spec.planning.lanes
        init = self.spec.initial_lanes or lanes
        for ln in range(init, lanes):
            m.set_lane_active(ln, False)
        self.rate = lane_rate_per_hour(m.spec)
        m.env.process(self._loop())

    def _deploy(self, lane: int):
        yield self.model.env.timeout(self.spec.lead_time)
        self.pending -= 1
        self.model.set_lane_active(lane, True)

    def _loop(self):
        m = self.model
        env = m.env
        sp = self.spec
        while True:
            yield env.timeout(sp.review)
            window = min(env.now, WEEK)
            recent = sum(o[ORDER_QTY] for o in _orders_since(m.rec.orders, env.now - window))
            rate = recent / window * 3600.0 if window > 0 else 0.0
            backlog = max(0.0, sum(m.open_units) - sum(m.stock))
            need = (rate + backlog / (sp.clear_backlog_in / 3600.0)) / (self.rate * sp.target_utilisation)
            want = min(len(m.lanes_active), max(sp.min_lanes, math.ceil(need)))
            active = sum(m.lanes_active)
            if want > active + self.pending:
                idle = [i for i, a in enumerate(m.lanes_active) if not a]
                for ln in idle[self.pending:self.pending + want - active - self.pending]:
                    self.pending += 1
                    m.rec.events.append((env.now, "deploy", str(ln)))
                    env.process(self._deploy(ln))
            elif want < active - 1 and self.pending == 0:
                # hysteresis of one module: do not idle and redeploy on noise
                on = [i for i, a in enumerate(m.lanes_active) if a]
                for ln in reversed(on[want:]):
                    m.set_lane_active(ln, False)


def _orders_since(orders: list[tuple[Any, ...]], t0: float):
    for o in reversed(orders):
        if o[ORDER_T] < t0:
            break
        yield o


def lane_rate_per_hour(spec: Any) -> float:
    """Rated output of one lane (line or cell), units/hour: the slowest station's
    servers per lane over the share-weighted mean unit time, derated by the
    machines' availability MTBF/(MTBF+MTTR) when failures are modelled, and with
    the time that speed losses, minor stops and retests add (a batch station's
    time is per batch of ``batch.size`` units)."""
    shares = spec.product_shares()
    worst = float("inf")
    for st in spec.stations:
        t = 0.0
        for p in spec.products:
            if st.name in p.route:
                d = st.process_time_by_product.get(p.name, st.process_time)
                t += shares[p.name] * (d.mean if d is not None else 0.0) * p.route.count(st.name)
        if t <= 0:
            continue
        if st.batch is not None:
            t /= st.batch.size
        if st.speed_loss is not None:
            t *= st.speed_loss.mean
        if st.minor_stops is not None:
            t *= 1.0 + st.minor_stops.duration.mean / st.minor_stops.every.mean
        t /= 1.0 - st.routing.get(st.name, 0.0)  # a retest share p: 1/(1 - p) passes a unit
        avail = 1.0
        if st.failures is not None:
            avail = st.failures.ttf.mean / (st.failures.ttf.mean + st.failures.ttr.mean)
        per_lane = st.servers * (1 if st.lanes > 1 else 1.0 / max(1, spec.planning.lanes))
        worst = min(worst, per_lane * 3600.0 / t * avail)
    return worst


def design_capacity_per_hour(spec: Any, lanes: int | None = None) -> float:
    """Rated output of the factory in units per calendar hour: the rated output of a
    lane (see :func:`lane_rate_per_hour`) × lanes in use (``lanes``, default the
    initially deployed ones) × the open share of the tightest base calendar.
    Setups, blocking and scrap come on top, so a run's throughput stays below it."""
    n = lanes if lanes is not None else (spec.capacity.initial_lanes or spec.planning.lanes)
    if spec.planning.lanes <= 1:
        n = 1
    open_share = 1.0
    cals = {c.name: c for c in spec.calendars}
    pools = {w.name: w for w in spec.workers}
    for st in spec.stations:
        name = st.calendar or (pools[st.operators].calendar if st.operators else None)
        if name:
            open_share = min(open_share, WeeklyPattern(cals[name].pattern(0)).open_per_week / WEEK)
    return lane_rate_per_hour(spec) * n * open_share
