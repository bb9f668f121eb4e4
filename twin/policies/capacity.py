"""Capacity policies: how a factory's capacity follows demand (DESIGN §7)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from ..calendar import WeeklyPattern, minus
from ..units import DAY, HOUR, WEEK
from ..layouts import ORDER_QTY, ORDER_T
from .registry import register

if TYPE_CHECKING:
    from ..contracts import PlantView


class CapacityPolicy:
    """Shared by the capacity policies: the factory's current rated output, which the
    learned planner compares with its forecast."""

    def __init__(self, model: "PlantView"):
        self.model = model
        self.spec = model.spec.capacity
        self.lane_rate = lane_rate_per_hour(model.spec)
        self.open_share = open_share(model.spec)  # the base calendar's; constant over a run
        self.pending = 0  # lanes deployed or bought that are not working yet

    def start(self) -> None:
        pass

    def _deploy(self, lane: int):
        """SimPy process: the lane works ``lead_time`` from now (then :meth:`_deployed`)."""
        m = self.model
        yield m.env.timeout(self.spec.lead_time)
        self.pending -= 1
        m.set_lane_active(lane, True)
        self._deployed()

    def _deployed(self) -> None:
        """Called when a deployed lane starts working."""

    def idle_beyond_initial(self) -> int:
        """Idle the lanes beyond ``initial_lanes`` (a make-to-order run); return how many are deployed."""
        m = self.model
        lanes = m.spec.planning.lanes
        init = self.spec.initial_lanes or lanes
        for ln in range(init, lanes):
            m.set_lane_active(ln, False)
        return init

    def own_at_start(self) -> int:
        """Record the slots owned at t = 0 (``owned_lanes``, default all) when fewer than the
        room (``planning.lanes``); return how many."""
        m = self.model
        owned = self.spec.owned_lanes or m.spec.planning.lanes
        if owned < m.spec.planning.lanes:
            m.rec.events.append((0.0, "owned", str(owned)))
        return owned

    def rate_per_hour(self) -> float:
        """Rated output (units per calendar hour) of the lanes deployed now, at their speed
        (:func:`design_capacity_per_hour` with those lanes)."""
        m = self.model
        n = sum(m.lanes_active) if m.orders_mode else m.spec.planning.lanes
        if m.spec.planning.lanes <= 1:
            n = 1
        return self.lane_rate * n * self.open_share


@register("capacity", "none")
class Fixed(CapacityPolicy):
    """Capacity is what is installed and deployed at the start (``initial_lanes``, default all;
    ``owned_lanes`` of the slots owned, default all)."""

    def start(self) -> None:
        if self.model.orders_mode:
            self.idle_beyond_initial()
            self.own_at_start()


def net_open_units(model: Any) -> float:
    """Units ordered and not yet delivered, less finished stock that could serve them."""
    return sum(model.open_units) - sum(model.stock)


def baseline_per_day(model: Any) -> float:
    """The spec's baseline demand in units a day (what backlogs are measured in days of)."""
    return model.spec.demand.base_per_week / 7.0


def backlog_days(model: Any) -> float:
    """Net open orders (units) in days of baseline demand."""
    return net_open_units(model) / baseline_per_day(model)


def recent_rate_per_hour(model: Any, window: float) -> float:
    """Units ordered per hour over the trailing ``window`` s (shorter at the start)."""
    now = model.env.now
    w = min(now, window)
    if w <= 0:
        return 0.0
    return sum(o[ORDER_QTY] for o in _orders_since(model.rec.orders, now - w)) / w * HOUR


def weekly_rate_error(model: Any, days: int = 28) -> float | None:
    """Relative standard error of a week's mean order rate, measured on the trailing ``days``
    whole days of orders: the daily totals' coefficient of variation / √7 (days taken as
    independent); None before a whole week is known."""
    now = model.env.now
    n = min(days, int(now // DAY))
    if n < 7:
        return None
    t0 = now - n * DAY
    totals = np.zeros(n)
    for o in _orders_since(model.rec.orders, t0):
        totals[min(n - 1, int((o[ORDER_T] - t0) // DAY))] += o[ORDER_QTY]
    mean = totals.mean()
    return float(totals.std(ddof=1) / mean / math.sqrt(7.0)) if mean > 0 else 0.0


BASE, OVERTIME, EXTRA, SHED = 0, 1, 2, 3  # calendar levels (twin.calendar)
WORK_WEEK_H = 40.0  # the standard working week (PRC: 8 h a day, 40 h a week), for turning hours into people


@register("capacity", "shifts")
class Shifts(CapacityPolicy):
    """Overtime while the backlog is above ``overtime_above`` days of demand; an extra
    shift once overtime has run for ``hiring_lag`` (recruiting and training take that
    long); back to the base pattern when the backlog falls below ``release_below`` days.
    In a slump (``shed_below`` > 0) the calendars' ``shed`` windows close once the order
    rate of the last four weeks would load the reduced pattern below ``shed_below``, and
    open again (a crew hired back, kept at least four weeks) when a week's orders exceed the
    reduced pattern's rated output or the backlog passes twice ``overtime_above``. A crew
    hired (extra shift or hired back) works ``learning_factor`` × the normal time at first,
    the excess halving every ``learning_halflife``. Switches every calendar of the factory;
    hires and lay-offs are recorded (``hire``/``shed`` events: each pool's crew × the weekly
    open hours added or removed / a 40-hour week) and charged in the ``workforce`` cost term."""

    def __init__(self, model: "PlantView"):
        super().__init__(model)
        self.level = BASE
        self.overtime_since: float | None = None
        self.hired_at: float | None = None
        self.new_crew_hours: WeeklyPattern | None = None  # when the crew hired last works
        self.shed_rate = 0.0
        if self.spec.shed_below > 0 and model.spec.calendars:
            self.shed_rate = design_capacity_per_hour(model.spec, level=SHED) * self.spec.shed_below
        if self.spec.learning_factor > 1.0:
            model.pace = self.pace

    def start(self) -> None:
        if self.model.orders_mode:
            self.model.env.process(self._loop())

    def pace(self, now: float) -> float:
        """Time factor of work done now: above 1 while a newly hired crew is on shift and learning."""
        if self.new_crew_hours is None or self.new_crew_hours.open_until(now) is None:
            return 1.0
        excess = self.spec.learning_factor - 1.0
        assert self.hired_at is not None  # set with new_crew_hours
        return 1.0 + excess * 0.5 ** ((now - self.hired_at) / self.spec.learning_halflife)

    def _workers(self, more: int, less: int) -> float:
        """Workers a change of calendar level hires or lets go: each pool's crew size × the weekly
        open hours between the two levels / a 40-hour working week (PRC standard week)."""
        m = self.model
        total = 0.0
        for w in m.spec.workers:
            if w.calendar is None:
                continue
            cal = m.spec.calendar(w.calendar)
            hours = (WeeklyPattern(cal.pattern(more)).open_per_week
                     - WeeklyPattern(cal.pattern(less)).open_per_week) / HOUR
            total += w.size * max(hours, 0.0) / WORK_WEEK_H
        return total

    def _set(self, level: int) -> None:
        if level == self.level:
            return
        m = self.model
        now = m.env.now
        hire = level == EXTRA or (self.level == SHED and level != SHED)
        if hire:
            cal = next(iter(m.calendars.values()), None)
            self.hired_at = now
            if cal is not None:
                # the windows the new crew works: what the new level opens beyond the one it leaves
                before, after = cal.spec.pattern(self.level), cal.spec.pattern(level)
                self.new_crew_hours = WeeklyPattern(minus(after, before))
            m.rec.events.append((now, "hire", repr(self._workers(level, BASE if level == EXTRA else SHED))))
        if level == SHED:
            m.rec.events.append((now, "shed", repr(self._workers(BASE, SHED))))
        self.level = level
        for cal in m.calendars.values():
            cal.set_level(level)
        m.rec.events.append((now, "calendar_level", str(level)))

    def _loop(self):
        env = self.model.env
        sp = self.spec
        while True:
            yield env.timeout(sp.review)
            if self.level == SHED:
                # hire back when a week's orders exceed what the reduced pattern makes (rated), or
                # the backlog passes twice the overtime trigger (the reduced pattern falls behind);
                # the overtime trigger alone would call the crew back after every closed weekend
                if (recent_rate_per_hour(self.model, WEEK) > self.shed_rate / sp.shed_below
                        or backlog_days(self.model) > 2.0 * sp.overtime_above):
                    self.overtime_since = None
                    self._set(BASE)
                continue
            days = backlog_days(self.model)
            if days > sp.overtime_above:
                if self.overtime_since is None:
                    self.overtime_since = env.now
                    self._set(max(self.level, OVERTIME))
                elif env.now - self.overtime_since >= sp.hiring_lag:
                    self._set(EXTRA)
            elif days < sp.release_below:
                self.overtime_since = None
                self._set(BASE)
                # a crew hired (back) is kept four weeks at least: no shed-and-rehire on noise
                recent_hire = self.hired_at is not None and env.now - self.hired_at < 4 * WEEK
                if (self.shed_rate > 0 and env.now >= 4 * WEEK and not recent_hire
                        and recent_rate_per_hour(self.model, 4 * WEEK) < self.shed_rate):
                    self._set(SHED)


@register("capacity", "modules")
class Modules(CapacityPolicy):
    """Deploy or idle whole lines/cells. Every ``review``, size the active modules to the
    recent order rate (last week) plus clearing the backlog within ``clear_backlog_in``, at
    ``target_utilisation`` of a module's rated output; added modules start work after
    ``lead_time`` (deployment), idled ones stop taking new lots at once. Every owned slot
    (``owned_lanes``, default all) costs its capex whether deployed or not, unless
    ``costs.lanes_leased``. When the owned modules are all at work or on their way and a
    review asks for more, modules are bought (``buy_lines``, up to ``planning.lanes``) as far as
    last week's order rate less twice its measured noise, and the backlog beyond
    ``overtime_above`` days, need them (:meth:`_justified`): each is owned and works from
    ``buy_lead_time`` after the purchase, and stays owned."""

    def __init__(self, model: "PlantView"):
        super().__init__(model)
        self.owned = model.spec.planning.lanes  # slots owned now (set by start in a make-to-order run)
        self.buying = 0  # modules bought that have not arrived

    def start(self) -> None:
        m = self.model
        if not m.orders_mode:
            return
        self.idle_beyond_initial()
        self.owned = self.own_at_start()
        m.env.process(self._loop())

    def _buy(self, lane: int):
        """SimPy process: a bought module arrives after ``buy_lead_time``, owned and working from then."""
        m = self.model
        yield m.env.timeout(self.spec.buy_lead_time)
        self.buying -= 1
        self.owned += 1
        m.rec.events.append((m.env.now, "owned", str(self.owned)))
        m.rec.events.append((m.env.now, "deploy", str(lane)))
        m.set_lane_active(lane, True)

    def _justified(self, rate: float, backlog: float) -> int:
        """Modules worth buying now, beyond those owned or on order: enough, at
        ``target_utilisation``, for last week's order ``rate`` (units/h) less twice its measured
        noise (:func:`weekly_rate_error`) plus clearing within ``clear_backlog_in`` the ``backlog``
        (units) beyond ``overtime_above`` days (the backlog the other plants' overtime and
        overdrive act on). An irreversible purchase waits for demand that clears the owned
        capacity by more than its own noise, as the orchestrated plant's does; the orders a plant
        always has open are not a reason to buy."""
        m = self.model
        sp = self.spec
        err = weekly_rate_error(m)
        if err is None:  # not a week of orders yet: nothing to measure the rate or its noise on
            return 0
        day = baseline_per_day(m)
        late = max(0.0, backlog / day - sp.overtime_above) * day
        return max(0, math.ceil(self._modules_for(rate * (1.0 - 2.0 * err), late)) - self.owned - self.buying)

    def _modules_for(self, rate: float, backlog: float) -> float:
        """Modules (fractional) that serve ``rate`` units/h and clear ``backlog`` units within
        ``clear_backlog_in``, at ``target_utilisation``."""
        sp = self.spec
        return (rate + backlog / (sp.clear_backlog_in / HOUR)) / (self.lane_rate * sp.target_utilisation)

    def _loop(self):
        m = self.model
        env = m.env
        sp = self.spec
        while True:
            yield env.timeout(sp.review)
            rate = recent_rate_per_hour(m, WEEK)
            backlog = max(0.0, net_open_units(m))
            want = min(len(m.lanes_active), max(sp.min_lanes, math.ceil(self._modules_for(rate, backlog))))
            active = sum(m.lanes_active)
            short = want - active - self.pending - self.buying
            if short > 0:
                idle = [i for i, a in enumerate(m.lanes_active) if not a and i < self.owned]
                for ln in idle[self.pending:self.pending + short]:
                    self.pending += 1
                    short -= 1
                    m.rec.events.append((env.now, "deploy", str(ln)))
                    env.process(self._deploy(ln))
                if sp.buy_lines:
                    room = len(m.lanes_active) - self.owned - self.buying
                    for _ in range(min(short, room, self._justified(rate, backlog))):
                        ln = self.owned + self.buying  # bought slots arrive in order (one lead time)
                        self.buying += 1
                        m.rec.events.append((env.now, "buy", str(ln)))
                        env.process(self._buy(ln))
            elif want < active - 1 and self.pending == 0 and self.buying == 0:
                # hysteresis of one module: do not idle and redeploy on noise
                on = [i for i, a in enumerate(m.lanes_active) if a]
                for ln in reversed(on[want:]):
                    m.set_lane_active(ln, False)


@register("capacity", "orchestrated")
class Orchestrated(CapacityPolicy):
    """The levers of an orchestrated automated plant, pulled by its learned forecast
    (``planning.policy = "forecast"``; without it, by the recent order rate) and its order book:

    - **overdrive**: every ``review`` the lines run at ``overdrive`` × nominal speed while
      the backlog exceeds ``overtime_above`` days or tomorrow's forecast exceeds the rated
      capacity, and at nominal speed once the backlog is under ``release_below`` days.
      Overdriven machines age ``overdrive`` ** ``overdrive_wear`` times as fast (more
      failures) and draw ``overdrive`` ** ``overdrive_power`` times their busy power
      (charged in energy);
    - **an extra line** (``buy_lines``): lines beyond ``initial_lanes`` are not owned at the
      start; when the forecast demand from ``lead_time`` to ``lead_time`` + 4 weeks ahead,
      less twice the forecaster's measured error of a week's mean (its one-day MAPE / √7),
      exceeds the owned lines' rated output at ``target_utilisation``, one is bought; it
      works (and its capex runs) from ``lead_time`` later. An irreversible purchase waits
      for a forecast that clears capacity by more than its own noise.
    Overdrive applies to the stations with one copy per line."""

    def __init__(self, model: "PlantView"):
        super().__init__(model)
        self.speed = 1.0

    def start(self) -> None:
        m = self.model
        if not m.orders_mode:
            return
        m.rec.events.append((0.0, "owned", str(self.idle_beyond_initial())))
        m.env.process(self._loop())

    def rate_per_hour(self) -> float:
        return super().rate_per_hour() * self.speed

    def _forecast(self, first_day: int, days: int) -> tuple[float, float]:
        """Mean forecast demand per hour over days ``first_day`` .. ``first_day + days`` ahead, and
        its relative error as measured (one-day MAPE / √7; without a learned forecast, the last
        week's order rate and the measured noise of a week's rate, :func:`weekly_rate_error`, the
        margin the microfactory's purchase rule keeps too: switching the forecast off must not
        switch the purchase rule's caution off with it)."""
        planner = self.model.planner
        fc = getattr(planner, "daily_forecast", None)
        if fc is None:
            err = weekly_rate_error(self.model)
            return recent_rate_per_hour(self.model, WEEK), (err if err is not None else 0.0)
        err = planner.forecaster.mape
        return float(np.mean(fc(first_day + days)[first_day:])) / 24.0, (err / math.sqrt(7) if err == err else 0.0)

    def _set_speed(self, speed: float) -> None:
        if speed == self.speed:
            return
        self.speed = speed
        m = self.model
        wear = speed ** self.spec.overdrive_wear
        for st in m.stations.values():
            if len(st.lanes) == m.spec.planning.lanes > 1:
                nominal = st.spec.speeds or [1.0] * len(st.lanes)
                for ln, v in zip(st.lanes, nominal):
                    ln.speed = v * speed
                    ln.wear = wear
        m.rec.events.append((m.env.now, "overdrive", repr(speed)))

    def _deployed(self) -> None:
        m = self.model
        m.rec.events.append((m.env.now, "owned", str(sum(m.lanes_active))))

    def _loop(self):
        m = self.model
        env = m.env
        sp = self.spec
        while True:
            yield env.timeout(sp.review)
            if sp.overdrive > 1.0:
                days = backlog_days(m)
                nominal = super().rate_per_hour()
                if days > sp.overtime_above or self._forecast(0, 1)[0] > nominal:
                    self._set_speed(sp.overdrive)
                elif days < sp.release_below:
                    self._set_speed(1.0)
            idle = [i for i, a in enumerate(m.lanes_active) if not a]
            if sp.buy_lines and len(idle) > self.pending:
                lead_days = max(1, math.ceil(sp.lead_time / DAY))
                owned = sum(m.lanes_active) + self.pending
                rate, err = self._forecast(lead_days, 28)
                if rate * (1.0 - 2.0 * err) > self.lane_rate * owned * sp.target_utilisation:
                    ln = idle[self.pending]
                    self.pending += 1
                    m.rec.events.append((env.now, "buy", str(ln)))
                    env.process(self._deploy(ln))


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
            avail = st.failures.mean_ttf / (st.failures.mean_ttf + st.failures.ttr.mean)
        per_lane = st.servers * (1 if st.lanes > 1 else 1.0 / max(1, spec.planning.lanes))
        worst = min(worst, per_lane * HOUR / t * avail)
    return worst


def open_share(spec: Any, level: int = 0) -> float:
    """Open share of the week of the tightest calendar any station works to, at ``level``
    (0 base, 3 shed); 1 without calendars."""
    share = 1.0
    cals = {c.name: c for c in spec.calendars}
    pools = {w.name: w for w in spec.workers}
    for st in spec.stations:
        name = st.calendar or (pools[st.operators].calendar if st.operators else None)
        if name:
            share = min(share, WeeklyPattern(cals[name].pattern(level)).open_per_week / WEEK)
    return share


def design_capacity_per_hour(spec: Any, lanes: int | None = None, level: int = 0) -> float:
    """Rated output of the factory in units per calendar hour: the rated output of a
    lane (see :func:`lane_rate_per_hour`) × lanes in use (``lanes``, default the
    initially deployed ones) × the open share of the tightest calendar at ``level`` (0 base, 3 shed).
    Setups, blocking and scrap come on top, so a run's throughput stays below it."""
    n = lanes if lanes is not None else (spec.capacity.initial_lanes or spec.planning.lanes)
    if spec.planning.lanes <= 1:
        n = 1
    return lane_rate_per_hour(spec) * n * open_share(spec, level)
