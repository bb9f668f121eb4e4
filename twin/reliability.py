"""Failures, repairs and planned maintenance of a station's servers (DESIGN §2, §6).

Operating-basis failures age only while a server works, so the work step meets them.
Calendar-basis failures come a time to failure after the last repair, whatever the
server is doing: every wait of a server on such a station (starved, blocked, off shift,
waiting for an operator, disrupted) watches the failure clock, so a failure is recorded
when it happens and the long-run down share is E[ttr] / (E[ttf] + E[ttr]) (renewal-reward).
State records only ever move forward in time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import simpy

from . import policies
from .dists import Sampler, residual
from .learn import StopDurations
from .record import MaintKind
from .state import State
from .units import WEEK
from .wear import FutureReading, MachineView, ObservedLife, WearLaw, plant_history

if TYPE_CHECKING:
    from .model import Model
    from .station import Server, StationRuntime
    from .workforce import Calendar

INF = float("inf")
_DOWN, _MAINT, _OFF = int(State.DOWN), int(State.MAINTENANCE), int(State.OFF_SHIFT)
_REPAIR, _PLANNED = int(MaintKind.REPAIR), int(MaintKind.PLANNED)


def _no_signal(ttf: Sampler):
    """A life law without a condition signal, as :func:`~twin.wear.plant_history` draws lives."""
    empty = np.zeros(0)
    return lambda rng: (ttf.one(), empty)


class Reliability:
    """A station's failure law, maintenance policy and technicians."""

    def __init__(self, station: "StationRuntime", model: "Model"):
        spec = station.spec
        self.station = station
        self.env = model.env
        self.maint_log = model.rec.maint
        self.failures = spec.failures
        self.operating_basis = self.failures is not None and self.failures.basis == "operating"
        self.calendar_basis = self.failures is not None and self.failures.basis == "calendar"
        self.ttf: Sampler | None = None
        self.ttr: Sampler | None = None
        self.wear: WearLaw | None = None
        self._frng: np.random.Generator | None = None
        if self.failures is not None:
            frng = self._frng = model.streams.get(f"failure:{station.name}")
            if self.failures.degradation is not None:
                self.wear = WearLaw.from_spec(self.failures.degradation)
            else:
                self.ttf = Sampler(self.failures.ttf, frng)
            self.ttr = Sampler(self.failures.ttr, frng)
        self.policy: Any = None
        self.pm_time: Sampler | None = None
        self._truth = False
        if spec.maintenance is not None and self.failures is not None:
            m = spec.maintenance
            self.policy = policies.get("maintenance", m.policy)(m, model.streams.get(f"maintenance:{station.name}"))
            self._truth = bool(getattr(self.policy, "reads_truth", False))
            self.pm_time = Sampler(m.duration, model.streams.get(f"pm:{station.name}"))
            learn = getattr(self.policy, "learn", None)
            if learn is not None and m.history_weeks > 0 and self.operating_basis:
                # the station's own run-to-failure past, on a stream of its own: what a learning policy starts from
                hrng = model.streams.get(f"pm-history:{station.name}")
                draw = self.wear.life if self.wear is not None else _no_signal(Sampler(self.failures.ttf, hrng))
                self.history = plant_history(draw, spec.servers * spec.lanes, m.history_weeks * WEEK, hrng,
                                             self.wear.reading_every if self.wear is not None else 0.0)
                model.rec.history_lives[station.name] = len(self.history)
                learn(self.history, self.failures.ttr.mean, m.duration.mean,
                      self.wear.reading_every if self.wear is not None else 0.0)
        # the stops' durations as the plant measures them (MaintKind order: repair, planned)
        self.stops = StopDurations([self.failures.ttr.mean if self.failures is not None else 0.0,
                                    spec.maintenance.duration.mean if spec.maintenance is not None else 0.0])
        self.technicians = model.pools[spec.technicians] if spec.technicians else None
        # technicians repair only while their pool is on shift: a failure late in the
        # last shift waits for the morning (run-to-failure lines feel this most)
        tcal = model.spec.pool(spec.technicians).calendar if spec.technicians else None
        self.tech_calendar: "Calendar | None" = model.calendars.get(tcal) if tcal else None
        self.active = self.failures is not None or self.technicians is not None

    history: list[ObservedLife] = []  # the station's logged past a learning policy started from

    def _new_life(self, srv: "Server") -> None:
        """A new operating life for ``srv`` (first, or after a renewal) and its maintenance plan."""
        if self.wear is not None:
            life, readings = self.wear.life(self._frng)  # type: ignore[arg-type]
            view = MachineView(readings, self.wear.reading_every, life if self._truth else None)
        else:
            life = self.ttf.one()  # type: ignore[union-attr]
            view = MachineView(None, 0.0, life if self._truth else None)
        srv.ttf_left = srv.life0 = life
        srv.view = view
        if self.policy is None:
            srv.pm_left = INF
            return
        plan = srv.pm_left = self.policy.plan(view)
        if not plan >= 0.0:  # also NaN
            from .spec import SimulationError

            raise SimulationError([f"station {self.station.name}: maintenance policy {type(self.policy).__name__} "
                                   f"planned maintenance at operating age {plan!r}; an age is a number of "
                                   "seconds >= 0 (inf: never)"])
        if view.read_to > plan + 1e-6:
            raise FutureReading(f"station {self.station.name}: maintenance policy {type(self.policy).__name__} "
                                f"planned maintenance at operating age {plan:.0f} s after reading the condition "
                                f"at age {view.read_to:.0f} s: a policy may not read what the plant has not logged yet")

    def start(self, servers: list["Server"]) -> None:
        """Draw each server's first life."""
        if self.failures is None:
            return
        for s in servers:
            if self.operating_basis:
                self._new_life(s)
            else:
                s.next_fail = self.ttf.one()  # type: ignore[union-attr]

    def wait(self, srv: "Server", ev: simpy.Event, state: int):
        """Wait for ``ev`` in ``state`` (idle, blocked, off shift, down); return its value.

        On a calendar-basis station the failure clock runs on: a failure during the wait
        is repaired then and there (the event may fire meanwhile: a lot that arrives waits
        at the broken machine), and the server goes back to ``state`` if still waiting."""
        self.station.set_state(srv, state)
        if not self.calendar_basis:
            return (yield ev)
        env = self.env
        while not ev.triggered:
            dt = srv.next_fail - env.now
            if dt > 0.0:
                yield ev | env.timeout(dt)
                if ev.triggered:
                    break
            srv.waiting = ev  # (a snapshot during the repair finds a lot it brought)
            yield from self.repair(srv)
            srv.waiting = None
            if not ev.triggered:
                self.station.set_state(srv, state)
        if not ev.processed:
            yield ev
        return ev.value

    def wait_open(self, srv: "Server", cal: "Calendar"):
        """Wait off shift until ``cal`` opens (watching calendar-basis failures)."""
        if self.calendar_basis:
            yield from self.wait(srv, self.env.process(cal.wait_open()), _OFF)
        else:
            self.station.set_state(srv, _OFF)
            yield from cal.wait_open()

    def repair(self, srv: "Server"):
        """The server has failed now: down until a technician (if any) has repaired it."""
        yield from self._stop(srv, self.ttr, _DOWN, _REPAIR)  # type: ignore[arg-type]

    def planned_maintenance(self, srv: "Server"):
        """Planned maintenance now (its policy said so)."""
        yield from self._stop(srv, self.pm_time, _MAINT, _PLANNED)  # type: ignore[arg-type]

    def resume_stop(self, srv: "Server", state: int, left: float):
        """A repair (``state`` down) or planned maintenance under way at a state start, with
        ``left`` s of it to go (drawn by the caller from its law given the elapsed time)."""
        if state == _DOWN:
            yield from self._stop(srv, self.ttr, _DOWN, _REPAIR, left)  # type: ignore[arg-type]
        else:
            yield from self._stop(srv, self.pm_time, _MAINT, _PLANNED, left)  # type: ignore[arg-type]

    def resume_life(self, srv: "Server", age: float, rng: np.random.Generator) -> None:
        """Set ``srv``'s failure clock at a state start for a machine ``age`` s old (operating or
        calendar seconds since its last renewal, as the station's basis counts): the life left is
        drawn from the life law given that it has lasted ``age``, and a maintenance plan counts
        from the renewal. Nothing changes on a station without failures."""
        if self.failures is None:
            return
        left = residual(self.failures.ttf, age, rng)
        now = self.env.now
        if self.operating_basis:
            srv.life0 = age + left
            srv.ttf_left = left
            srv.view = MachineView(None, 0.0, srv.life0 if self._truth else None)
            if self.policy is not None:
                srv.pm_left = self.policy.plan(srv.view) - age
        else:
            srv.next_fail = now + left
            srv.renewed = now - age

    def _stop(self, srv: "Server", duration: Sampler, state: int, kind: int, d: float | None = None):
        """A stop of a drawn duration (or of ``d`` s) in ``state``, logged as ``kind``; the machine
        is renewed after it."""
        env = self.env
        self.station.set_state(srv, state)
        t0 = env.now
        # the life the stop cut short (operating s; 0 for a failure): what a warning's lead was
        left = 0.0 if kind == _REPAIR else (srv.ttf_left if self.operating_basis else srv.next_fail - t0)
        if d is None:
            d = duration.one()
        srv.down_until = t0 + d
        srv.est_left = max(srv.est_end - t0, 0.0)  # the work in hand waits out the stop
        srv.stop_since, srv.stop_kind = t0, kind
        yield from self._service(srv, d, state)
        self.stops.observe(kind, env.now - t0)
        srv.stop_since = -1.0
        observe = getattr(self.policy, "observe", None)
        if observe is not None and self.operating_basis:
            # what the plant logged: the machine's age at the stop and whether it had failed
            observe(srv.life0 - max(srv.ttf_left, 0.0), kind == _REPAIR, self.stops.mean(_REPAIR),
                    self.stops.mean(_PLANNED), srv.view)
        srv.est_end = env.now + srv.est_left
        self.maint_log.append((t0, srv.sid, kind, env.now - t0, left))
        self._renew(srv)

    def _service(self, srv: "Server", d: float, state: int):
        """A repair or planned maintenance taking ``d`` s of work: by a technician from the
        station's pool when it has one (waiting until one is free), else at once. The work
        pauses while the technicians are off shift; the machine then shows ``off_shift`` if
        its own station is off shift too (not planned production time), else ``state``."""
        env = self.env
        tech = self.technicians
        if tech is None:
            yield env.timeout(d)
            return
        if not tech.try_get(1):
            yield tech.get_event(1)
        srv.down_until = env.now + d
        tcal = self.tech_calendar
        own = self.station.calendar
        while d > 1e-9:
            until = tcal.open_until(env.now) if tcal is not None else INF
            if until is None:
                if own is not None and own.open_until(env.now) is None:
                    self.station.set_state(srv, _OFF)
                srv.down_until = max(srv.down_until, tcal.next_open(env.now) + d)  # type: ignore[union-attr]
                yield from tcal.wait_open()  # type: ignore[union-attr]
                self.station.set_state(srv, state)
                continue
            chunk = min(d, until - env.now)
            yield env.timeout(chunk)
            d -= chunk
        tech.put(1)

    def _renew(self, srv: "Server") -> None:
        """Repair and planned maintenance both leave the machine as good as new."""
        if self.operating_basis:
            self._new_life(srv)
        elif self.calendar_basis:
            srv.renewed = self.env.now
            srv.next_fail = self.env.now + self.ttf.one()  # type: ignore[union-attr]
