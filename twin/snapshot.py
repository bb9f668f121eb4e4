"""A line's state at one instant: what a live twin starts a forecast from (``twin run --from-state``).

A snapshot says, at the line's clock ``time`` (s), what every server is doing and for how long,
the lot it holds, how far its job, changeover or repair has got and how old the machine is on
its failure clock, and which lots wait in which buffer. :meth:`twin.model.Model` starts from it
with no warm-up; the remaining job, repair and life are drawn from their laws conditional on the
elapsed time (:func:`twin.dists.residual`). :meth:`twin.model.Model.snapshot` writes one from a
run, and :class:`twin.live.StateTracker` folds an event log (or an MQTT stream) into one.

The JSON schema is :meth:`Snapshot.model_json_schema`; docs/snapshot.md is generated from the
docstrings here (``python -m twin.docs``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .spec import SpecError
from .state import STATE_KEYS, State

SCHEMA: Literal["twin.snapshot/1"] = "twin.snapshot/1"
"""The ``schema`` value of the snapshots this version reads and writes."""

StateKey = Literal["idle", "setup", "busy", "blocked", "down", "maintenance", "off_shift", "module_off",
                   "starved_material"]
assert set(StateKey.__args__) == set(STATE_KEYS), "StateKey must list every State"  # type: ignore[attr-defined]

HOLDS_LOT = frozenset({State.SETUP.key, State.BUSY.key, State.BLOCKED.key})
"""States in which a server always holds a lot (down, maintenance and off shift may or may not)."""
NO_LOT = frozenset({State.IDLE.key, State.MODULE_OFF.key})
"""States in which a server holds no lot."""


class _Strict(BaseModel):
    # attribute docstrings become field descriptions (docs/snapshot.md and its JSON Schema)
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True, allow_inf_nan=False)


class LotState(_Strict):
    """A lot in the line."""

    id: int = Field(ge=0)
    """The lot's number (the event log's ``lot``)."""
    product: str
    """Its product (a name from the spec's ``[[products]]``)."""
    qty: int = Field(ge=1)
    """Units in it."""
    released: float | None = Field(default=None, ge=0)
    """When it entered the line (s, the line's clock); unknown: the snapshot's time (its lead time
    then counts from there)."""
    step: int | None = Field(default=None, ge=0)
    """Where it is on its product's route (0 = the first station); unknown: the first visit of the
    station it is at."""


class ServerState(_Strict):
    """One server (machine) of a station."""

    station: str
    """The station's name."""
    server: int = Field(ge=0)
    """Its number within the station, over all lanes (the event log's ``server``)."""
    state: StateKey
    """What it is doing (the names of every state table)."""
    since: float = Field(default=0.0, ge=0)
    """How long it has been in ``state``, s. For ``setup`` this is the changeover's elapsed time,
    for ``down`` and ``maintenance`` the elapsed repair or maintenance."""
    lot: LotState | None = None
    """The lot it holds: always in ``setup``, ``busy`` and ``blocked``; in ``down``,
    ``maintenance`` and ``off_shift`` when a job was under way; never when ``idle``."""
    job_elapsed: float | None = Field(default=None, ge=0)
    """Seconds of work already done on the job in hand (``busy``, or a job paused by a stop or
    a shift end); unknown: ``since`` when busy, else 0."""
    age: float | None = Field(default=None, ge=0)
    """The machine's age on its failure clock, s: operating seconds since the last repair or
    maintenance (operating-basis failures), calendar seconds since then (calendar basis); unknown:
    as good as new now."""
    last_product: str | None = None
    """The product it last worked on (a changeover is due when the next lot is another);
    unknown: none (no changeover before the first lot)."""


class BufferState(_Strict):
    """The lots waiting in front of a station (in one lane's buffer)."""

    station: str
    """The station's name."""
    lane: int = Field(default=0, ge=0)
    """Which of its lanes (0 for a station with one)."""
    lots: list[LotState] = Field(default_factory=list)
    """The lots in the order they will be served (FIFO: first come first)."""


class Snapshot(_Strict):
    """A line's state at one instant (the ``--from-state`` file)."""

    schema_: Literal["twin.snapshot/1"] = Field(default=SCHEMA, alias="schema")
    """The snapshot format: ``twin.snapshot/1``."""
    time: float = Field(default=0.0, ge=0)
    """The line's clock at the snapshot, s: a forecast from it runs from ``time`` to ``time``
    plus the horizon, so shift calendars and the spec's timed shifts keep their place."""
    spec: str | None = None
    """The spec's ``name`` it was taken from (checked against the spec when given)."""
    servers: list[ServerState] = Field(default_factory=list)
    """Every server whose state is known; one not listed is idle and as good as new."""
    buffers: list[BufferState] = Field(default_factory=list)
    """Every buffer that holds lots (an empty buffer may be left out)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, use_attribute_docstrings=True,
                              allow_inf_nan=False)

    def to_json(self) -> str:
        """The snapshot as JSON text (the schema's field names)."""
        return json.dumps(self.model_dump(by_alias=True, exclude_none=True), indent=1) + "\n"

    def lots(self) -> list[LotState]:
        """Every lot in the snapshot (held by a server or waiting in a buffer)."""
        out = [s.lot for s in self.servers if s.lot is not None]
        for b in self.buffers:
            out.extend(b.lots)
        return out


class SnapshotError(SpecError):
    """A snapshot that is malformed or does not fit its spec: ``problems`` lists each one
    (``file: field: message``), like a spec's; the commands exit with 2."""


def parse(data: Any, source: str = "<snapshot>") -> Snapshot:
    """A :class:`Snapshot` from parsed JSON; :class:`SnapshotError` names each bad field."""
    try:
        return Snapshot.model_validate(data)
    except ValidationError as e:
        raise SnapshotError([f"{source}: {'.'.join(str(p) for p in err['loc']) or '(top)'}: {err['msg']}"
                             for err in e.errors()]) from None


def load(path: str | Path) -> Snapshot:
    """Read a snapshot file (JSON); :class:`SnapshotError` says what is wrong and where."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise SnapshotError([f"{p}: cannot read the snapshot: {e}"]) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise SnapshotError([f"{p}: not JSON: {e.msg} (line {e.lineno}, column {e.colno})"]) from None
    return parse(data, str(p))


UNSUPPORTED = {
    "orders": "a line fed by an order book ([demand]): the order book's state is not in a snapshot yet",
    "transport": "transport fleets: vehicles and the lots on them are not in a snapshot yet",
    "batch": "batch stations: a batch in hand is not in a snapshot yet",
    "components": "component stores: stock levels are not in a snapshot yet",
    "degradation": "failures driven by a condition signal (degradation): the wear path behind an age "
                   "is not in a snapshot",
}
"""Spec features a state start refuses, and why (each named in the error)."""


def problems(snap: Snapshot, spec: Any, source: str = "<snapshot>") -> list[str]:
    """Everything that keeps ``snap`` from being the state of a line of ``spec``: unknown stations,
    servers, lanes and products, lots in impossible places, a buffer over its capacity, a lot in two
    places, and spec features a state start does not carry (:data:`UNSUPPORTED`)."""
    out: list[str] = []
    where = source

    def bad(path: str, msg: str) -> None:
        out.append(f"{where}: {path}: {msg}")

    if spec.source.kind == "orders":
        bad("(spec)", UNSUPPORTED["orders"])
    if spec.transport:
        bad("(spec)", UNSUPPORTED["transport"])
    if spec.components:
        bad("(spec)", UNSUPPORTED["components"])
    for s in spec.stations:
        if s.batch is not None:
            bad(f"(spec) station {s.name}", UNSUPPORTED["batch"])
        if s.failures is not None and s.failures.degradation is not None:
            bad(f"(spec) station {s.name}", UNSUPPORTED["degradation"])
    if snap.spec is not None and snap.spec != spec.name:
        bad("spec", f"the snapshot is of {snap.spec!r}, the spec is {spec.name!r}")
    stations = {s.name: s for s in spec.stations}
    products = {p.name: p for p in spec.products}
    seen: dict[int, str] = {}

    def check_lot(path: str, lot: LotState, station: str) -> None:
        p = products.get(lot.product)
        if p is None:
            bad(f"{path}.product", f"unknown product {lot.product!r} (the spec has: {', '.join(products)})")
        elif station not in p.route:
            bad(path, f"lot {lot.id} of {lot.product} is at {station}, which is not on its route "
                      f"({' → '.join(p.route)}); a lot on a detour is not in a snapshot yet")
        elif lot.step is not None and (lot.step >= len(p.route) or p.route[lot.step] != station):
            bad(f"{path}.step", f"step {lot.step} of {lot.product}'s route is not {station}")
        if lot.id in seen:
            bad(f"{path}.id", f"lot {lot.id} is also at {seen[lot.id]}")
        seen[lot.id] = path
        if lot.released is not None and lot.released > snap.time:
            bad(f"{path}.released", f"{lot.released:g} s is after the snapshot's time {snap.time:g} s")

    pairs: set[tuple[str, int]] = set()
    for i, s in enumerate(snap.servers):
        path = f"servers[{i}]"
        st = stations.get(s.station)
        if st is None:
            bad(f"{path}.station", f"unknown station {s.station!r} (the spec has: {', '.join(stations)})")
            continue
        n = st.servers * st.lanes
        if s.server >= n:
            bad(f"{path}.server", f"station {s.station} has servers 0..{n - 1}, not {s.server}")
        if (s.station, s.server) in pairs:
            bad(path, f"server {s.server} of {s.station} is listed twice")
        pairs.add((s.station, s.server))
        if s.state in HOLDS_LOT and s.lot is None:
            bad(f"{path}.lot", f"a server in state {s.state} holds a lot: give it")
        if s.state in NO_LOT and s.lot is not None:
            bad(f"{path}.lot", f"a server in state {s.state} holds no lot")
        if s.state == State.STARVED_MATERIAL.key:
            bad(f"{path}.state", "starved_material needs component stores, which a snapshot does not carry yet")
        if s.state == State.SETUP.key and st.setup is None:
            bad(f"{path}.state", f"station {s.station} has no changeovers ([stations.setup])")
        if s.state == State.MAINTENANCE.key and st.maintenance is None:
            bad(f"{path}.state", f"station {s.station} has no planned maintenance")
        if s.state == State.DOWN.key and st.failures is None:
            bad(f"{path}.state", f"station {s.station} has no failures: it cannot be down (a disruption is a "
                                 "scenario's, not a state)")
        if s.state == State.OFF_SHIFT.key and st.calendar is None and st.operators is None:
            bad(f"{path}.state", f"station {s.station} has no calendar: it cannot be off shift")
        if s.state == State.MODULE_OFF.key:
            bad(f"{path}.state", "module_off is set by a capacity policy, which a snapshot does not carry")
        for f in ("last_product",):
            v = getattr(s, f)
            if v is not None and v not in products:
                bad(f"{path}.{f}", f"unknown product {v!r}")
        if s.lot is not None:
            check_lot(f"{path}.lot", s.lot, s.station)
    for i, b in enumerate(snap.buffers):
        path = f"buffers[{i}]"
        st = stations.get(b.station)
        if st is None:
            bad(f"{path}.station", f"unknown station {b.station!r} (the spec has: {', '.join(stations)})")
            continue
        if b.lane >= st.lanes:
            bad(f"{path}.lane", f"station {b.station} has lanes 0..{st.lanes - 1}, not {b.lane}")
        if st.buffer is not None and len(b.lots) > st.buffer:
            bad(f"{path}.lots", f"{len(b.lots)} lots in a buffer of {st.buffer} places")
        for j, lot in enumerate(b.lots):
            check_lot(f"{path}.lots[{j}]", lot, b.station)
    return out
