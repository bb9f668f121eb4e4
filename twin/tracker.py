"""Fold a line's events into its current state: the live twin's mirror of the plant.

:class:`StateTracker` reads events in the event-log schema (``timestamp``, ``station``,
``server``, ``lot``, ``product``, ``qty``, ``event``: what ``twin run --event-log`` writes and
``twin calibrate`` reads) one at a time, and :meth:`StateTracker.snapshot` says at any time what
every server is doing and since when, the lot it holds, how much work its job has had, how old
the machine is on its failure clock, and which lots wait where: a
:class:`~twin.snapshot.Snapshot`, which ``twin run --from-state`` and the live forecasts start
from. Folding the log of a run up to time t gives exactly the model's own state at t
(tests/test_tracker.py), for the lines a snapshot carries.

What a log does not say, the tracker cannot know: a server shows off shift only if an event
says so (the log has no shift events), a lot taken before a planned maintenance stays in its
buffer until its job starts, the machines are as good as new at the first event, and the lots of
a station with several lanes wait in the first lane with room.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from .eventlog import EVENTS
from .snapshot import BufferState, LotState, ServerState, Snapshot
from .spec import Spec
from .state import State

_BUSY, _SETUP, _IDLE, _BLOCKED = State.BUSY.key, State.SETUP.key, State.IDLE.key, State.BLOCKED.key
_DOWN, _MAINT = State.DOWN.key, State.MAINTENANCE.key
_STOPS = {"fail": (_DOWN, "repair"), "maint_start": (_MAINT, "maint_end")}
_ENDS = {"repair": _DOWN, "maint_end": _MAINT}


class EventError(ValueError):
    """An event the tracker cannot fold (unknown station or server, out of order, malformed);
    the state is left as it was before it."""


@dataclass
class _Server:
    state: str = _IDLE
    since: float = 0.0
    lot: LotState | None = None
    job: bool = False  # a job's work under way (from its start to its end)
    job_busy: float = 0.0  # busy seconds of that job counted so far (up to ``mark``)
    op_age: float = 0.0  # busy seconds since the last renewal counted so far (up to ``mark``)
    mark: float = 0.0  # the time up to which busy time is counted
    under: str = _IDLE  # the state a stop interrupted (a repair returns to it)
    renewed: float = 0.0  # the last repair or maintenance end
    last_product: str | None = None
    left: tuple[float, str, float] | None = None  # (t, state, since) of a leave at t: a job begun then continues its spell
    idle_from: float = 0.0  # when it last began to wait for a lot


@dataclass
class StateTracker:
    """The state of a line of ``spec`` as its events have told it (see the module doc)."""

    spec: Spec
    now: float = 0.0
    events: int = 0
    last_seen: dict[str, float] = field(default_factory=dict)  # station -> line time of its last event
    _servers: dict[tuple[str, int], _Server] = field(default_factory=dict)
    _buffers: dict[str, dict[int, LotState]] = field(default_factory=dict)
    _released: dict[int, float] = field(default_factory=dict)
    _steps: dict[int, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._stations = {s.name: s for s in self.spec.stations}
        self._routes = {p.name: list(p.route) for p in self.spec.products}
        for s in self.spec.stations:
            self._buffers[s.name] = {}
            for k in range(s.servers * s.lanes):
                self._servers[(s.name, k)] = _Server()
        self._calendar_basis = {s.name for s in self.spec.stations
                                if s.failures is not None and s.failures.basis == "calendar"}

    # ------------------------------------------------------------------ folding
    def apply(self, ev: dict[str, Any]) -> None:
        """Fold one event (a mapping with the event-log columns; ``timestamp`` in seconds of the
        line's clock). :class:`EventError` says what is wrong with a bad one; nothing changes then."""
        srv, station, kind, lot, t = self.check(ev)
        self.now = t
        self.events += 1
        self.last_seen[station] = t
        if srv is None:
            if kind == "arrive":
                self._released.setdefault(lot, t)  # type: ignore[arg-type]
                ls = self._lot(lot, ev["product"], ev["qty"], station)  # type: ignore[arg-type]
                broken = self._waiting_broken(station)
                if broken is not None:  # it waits at the machine that failed while waiting for it
                    broken.lot = ls
                else:
                    self._buffers[station][lot] = ls  # type: ignore[index]
            return
        getattr(self, "_" + kind)(srv, t, ev, station)

    def check(self, ev: dict[str, Any]) -> tuple[Any, str, str, int | None, float]:
        """What :meth:`apply` would fold, or :class:`EventError` saying what is wrong with ``ev``."""
        kind = ev.get("event")
        if kind not in EVENTS:
            raise EventError(f"unknown event {kind!r} (known: {', '.join(EVENTS)})")
        t = ev.get("timestamp")
        if not isinstance(t, (int, float)) or isinstance(t, bool) or not math.isfinite(t):
            raise EventError(f"timestamp {t!r} is not a number of seconds")
        t = float(t)
        if t < self.now:
            raise EventError(f"event at {t:g} s is earlier than the last one ({self.now:g} s): events come in time order")
        station = ev.get("station")
        if station not in self._stations:
            raise EventError(f"unknown station {station!r} (the spec has: {', '.join(self._stations)})")
        srv = None
        if kind not in ("arrive", "lost"):
            k = ev.get("server")
            if not isinstance(k, int) or isinstance(k, bool) or (station, k) not in self._servers:
                n = self._stations[station].servers * self._stations[station].lanes
                raise EventError(f"station {station}: server {k!r} is not one of 0..{n - 1}")
            srv = self._servers[(station, k)]
        lot = None
        if kind in ("arrive", "lost", "setup_start", "start", "end", "blocked", "unblocked", "leave", "setup_end"):
            lot = ev.get("lot")
            if not isinstance(lot, int) or isinstance(lot, bool) or lot < 0:
                raise EventError(f"{kind} at {station}: lot {lot!r} is not a lot number")
            if kind in ("arrive", "setup_start", "start"):
                p = ev.get("product")
                if p not in self._routes:
                    raise EventError(f"{kind} of lot {lot}: unknown product {p!r}")
                if station not in self._routes[p]:
                    raise EventError(f"{kind} of lot {lot} at {station}, which is not on {p}'s route")
                qty = ev.get("qty")
                if not isinstance(qty, int) or isinstance(qty, bool) or qty < 1:
                    raise EventError(f"{kind} of lot {lot}: qty {qty!r} is not a number of units >= 1")
        return srv, station, kind, lot, t  # type: ignore[return-value]

    def _lot(self, lot: int, product: str, qty: int, station: str) -> LotState:
        step = self._steps.get(lot, 0)
        route = self._routes[product]
        return LotState(id=lot, product=product, qty=qty, released=self._released.get(lot),
                        step=step if step < len(route) and route[step] == station else None)

    def _waiting_broken(self, station: str) -> _Server | None:
        """The server a lot arriving at ``station`` is handed to while it is down: one whose failure
        (calendar basis) struck while it waited idle, and waited longest, when no lot waits and no
        server that is idle waited longer (servers take lots in the order they began to wait)."""
        if station not in self._calendar_basis or self._buffers[station]:
            return None
        first: _Server | None = None
        for (name, _), srv in self._servers.items():
            if name != station or srv.lot is not None:
                continue
            waiting = srv.state == _IDLE or (srv.state == _DOWN and srv.under == _IDLE)
            if waiting and (first is None or srv.idle_from < first.idle_from):
                first = srv
        return first if first is not None and first.state == _DOWN else None

    def _count(self, srv: _Server, t: float) -> None:
        """Add the busy time of the job under way since ``mark`` to the job and the machine's age."""
        if srv.job and srv.state == _BUSY:
            srv.job_busy += t - srv.mark
            srv.op_age += t - srv.mark
        srv.mark = t

    def _set(self, srv: _Server, state: str, t: float) -> None:
        self._count(srv, t)
        if srv.state != state:
            if state == _IDLE and srv.state != _DOWN:
                srv.idle_from = t
            srv.state, srv.since = state, t

    def _take(self, srv: _Server, t: float, ev: dict[str, Any], station: str) -> None:
        lot = ev["lot"]
        held = self._buffers[station].pop(lot, None)
        if srv.lot is None or srv.lot.id != lot:
            srv.lot = held or self._lot(lot, ev["product"], ev["qty"], station)
        # the engine records no state change between two lots worked back to back: the spell the
        # last leave seemed to end goes on
        if srv.left is not None and srv.left[0] == t:
            srv.state, srv.since = srv.left[1], srv.left[2]
        srv.left = None

    def _setup_start(self, srv: _Server, t: float, ev: dict[str, Any], station: str) -> None:
        self._take(srv, t, ev, station)
        self._set(srv, _SETUP, t)

    def _setup_end(self, srv: _Server, t: float, ev: dict[str, Any], station: str) -> None:
        if srv.lot is not None:
            srv.last_product = srv.lot.product

    def _start(self, srv: _Server, t: float, ev: dict[str, Any], station: str) -> None:
        self._take(srv, t, ev, station)
        self._set(srv, _BUSY, t)
        srv.job, srv.job_busy, srv.mark = True, 0.0, t
        srv.last_product = ev["product"]

    def _end(self, srv: _Server, t: float, ev: dict[str, Any], station: str) -> None:
        self._count(srv, t)
        srv.job, srv.job_busy = False, 0.0

    def _blocked(self, srv: _Server, t: float, ev: dict[str, Any], station: str) -> None:
        self._set(srv, _BLOCKED, t)

    def _unblocked(self, srv: _Server, t: float, ev: dict[str, Any], station: str) -> None:
        pass  # its leave follows at the same instant

    def _leave(self, srv: _Server, t: float, ev: dict[str, Any], station: str) -> None:
        lot = ev["lot"]
        if ev.get("qty"):
            self._steps[lot] = self._steps.get(lot, 0) + 1
        srv.lot = None
        srv.left = (t, srv.state, srv.since)
        self._set(srv, _IDLE, t)

    def _fail(self, srv: _Server, t: float, ev: dict[str, Any], station: str) -> None:
        self._stop(srv, t, _DOWN)

    def _maint_start(self, srv: _Server, t: float, ev: dict[str, Any], station: str) -> None:
        self._stop(srv, t, _MAINT)

    def _stop(self, srv: _Server, t: float, state: str) -> None:
        srv.under = srv.state
        self._set(srv, state, t)

    def _repair(self, srv: _Server, t: float, ev: dict[str, Any], station: str) -> None:
        self._renew(srv, t)

    def _maint_end(self, srv: _Server, t: float, ev: dict[str, Any], station: str) -> None:
        self._renew(srv, t)

    def _renew(self, srv: _Server, t: float) -> None:
        self._set(srv, srv.under, t)
        srv.renewed, srv.op_age = t, 0.0

    def _minor_start(self, srv: _Server, t: float, ev: dict[str, Any], station: str) -> None:
        pass  # a minor stop is part of the work it interrupts (the state tables count it busy)

    _minor_end = _minor_start

    # ------------------------------------------------------------------ the state
    def snapshot(self, at: float | None = None) -> Snapshot:
        """The line's state at ``at`` (s, default the last event's time; not before it), as
        ``twin run --from-state`` starts from it."""
        t = self.now if at is None else max(float(at), self.now)
        servers = []
        for (name, k), srv in self._servers.items():
            st = self._stations[name]
            running = t - srv.mark if srv.job and srv.state == _BUSY else 0.0
            job = srv.job_busy + running if srv.job and srv.state not in (_SETUP, _BLOCKED) else None
            age = None
            if st.failures is not None:
                age = (t - srv.renewed) if name in self._calendar_basis else srv.op_age + running
            servers.append(ServerState(station=name, server=k, state=srv.state, since=t - srv.since,  # type: ignore[arg-type]
                                       lot=srv.lot, job_elapsed=job, age=age, last_product=srv.last_product))
        buffers = []
        for name, lots in self._buffers.items():
            if not lots:
                continue
            st = self._stations[name]
            if st.lanes == 1:
                buffers.append(BufferState(station=name, lane=0, lots=list(lots.values())))
                continue
            room = st.buffer if st.buffer is not None else len(lots)
            items = list(lots.values())
            for lane in range(st.lanes):
                part, items = items[:room], items[room:]
                if part:
                    buffers.append(BufferState(station=name, lane=lane, lots=part))
            if items:  # more than the lanes hold: the last lane shows them (the check names it)
                buffers[-1].lots.extend(items)
        return Snapshot(time=t, spec=self.spec.name, servers=servers, buffers=buffers)

    def fold(self, events: Any) -> "StateTracker":
        """Apply every event of ``events`` (a DataFrame in the event-log schema, e.g. from
        :func:`twin.eventlog.read_log`, or an iterable of mappings) in order; returns self."""
        rows = events.to_dict("records") if hasattr(events, "to_dict") else events
        for r in rows:
            self.apply(_plain(r))
        return self


def _plain(row: dict[str, Any]) -> dict[str, Any]:
    """An event row with pandas' missing values (and empty text) as None and its integers as Python
    ints; a row of :func:`twin.eventlog.read_log` (its time in ``t``, its source ``line``) as the
    event-log columns."""
    out: dict[str, Any] = {}
    if "t" in row and "timestamp" not in row:
        row = {("timestamp" if k == "t" else k): v for k, v in row.items() if k != "line"}
    for k, v in row.items():
        if v is None or v == "" or (isinstance(v, float) and math.isnan(v)) or type(v).__name__ in ("NAType", "NaTType"):
            out[k] = None
        elif hasattr(v, "item") and not isinstance(v, (str, bytes)):
            out[k] = v.item()
        else:
            out[k] = v
    if isinstance(out.get("timestamp"), int):
        out["timestamp"] = float(out["timestamp"])
    for k in ("server", "lot", "qty"):
        if isinstance(out.get(k), float) and out[k].is_integer():
            out[k] = int(out[k])
    return out
