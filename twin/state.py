"""The one vocabulary of server states and lot-trace events (DESIGN §2).

Every state name in tables, reports, spec keys (``power_kw``) and event logs is
``State.X.key``; the engine records the integer value, tables show the key.
"""

from __future__ import annotations

from enum import IntEnum
from typing import NamedTuple


class State(IntEnum):
    """What a server is doing. ``key`` is its name in tables and specs (``"off_shift"``)."""

    IDLE = 0
    """Starved: nothing to work on (or waiting for an operator)."""
    SETUP = 1
    """Changing over to another product."""
    BUSY = 2
    """Processing a lot (or reworking its found defects)."""
    BLOCKED = 3
    """Holding a finished lot that the next buffer has no room for."""
    DOWN = 4
    """Unplanned stop: failure, repair, or a disruption."""
    MAINTENANCE = 5
    """Planned maintenance."""
    OFF_SHIFT = 6
    """Not planned production time: the calendar is closed."""
    MODULE_OFF = 7
    """Not planned production time either: the line or cell (module) is idled by the capacity policy."""
    STARVED_MATERIAL = 8
    """Holding a lot it cannot start: a component it consumes is out of stock."""

    @property
    def key(self) -> str:
        """The state's name in tables, reports and specs."""
        return _KEYS[self]


class StateInfo(NamedTuple):
    """How a state reads everywhere: its table and spec ``key``, the ``label`` in reports, the
    ``colour`` of every chart, the terminal table's short ``heading``, its ``kind`` (``"planned"``:
    outside planned busy time, ISO 22400; ``"unplanned"``: a loss within it; ``"productive"``;
    ``"waiting"``: held up by another part of the line) and whether it ``holds_flow`` (the server
    holds up the line behind it: a bottleneck candidate)."""

    key: str
    label: str
    colour: str
    heading: str
    kind: str
    holds_flow: bool


TABLE: dict[State, StateInfo] = {  # in the order charts stack them
    State.BUSY: StateInfo("busy", "busy", "#2ca02c", "busy", "productive", True),
    State.SETUP: StateInfo("setup", "setup", "#ff7f0e", "setup", "unplanned", True),
    State.IDLE: StateInfo("idle", "idle", "#c7c7c7", "idle", "waiting", False),
    State.BLOCKED: StateInfo("blocked", "blocked", "#9467bd", "blocked", "waiting", False),
    State.DOWN: StateInfo("down", "down", "#d62728", "down", "unplanned", True),
    State.MAINTENANCE: StateInfo("maintenance", "maintenance", "#8c564b", "maint", "planned", False),
    State.OFF_SHIFT: StateInfo("off_shift", "off shift", "#17becf", "off", "planned", False),
    State.MODULE_OFF: StateInfo("module_off", "idle (module off)", "#e8e8e8", "mod.off", "planned", False),
    State.STARVED_MATERIAL: StateInfo("starved_material", "starved (material)", "#bcbd22", "no mat.", "waiting", False),
}
"""Every state's metadata: the one place figures, tables and the engine read it from
(tests/test_state.py: every :class:`State` has an entry, and its key is the enum's name)."""

_KEYS = {s: info.key for s, info in TABLE.items()}
LABELS = {info.key: info.label for info in TABLE.values()}
"""How reports name states (by key)."""
COLOURS = {info.key: info.colour for info in TABLE.values()}
"""Each state's colour in every chart, by key, in stacking order."""
STATE_KEYS: tuple[str, ...] = tuple(s.key for s in State)
"""State names in enum order (the columns of state tables)."""
LETTERS: dict[str, str] = {k: chr(97 + i) for i, k in enumerate(STATE_KEYS)}
"""One letter per state (``a`` idle, ``b`` setup, ...: enum order), a replay frame's string of servers."""

# sums over these run in this order (off shift, module off, maintenance) as they always have, so
# tables stay identical to the last digit
PLANNED_STOPS: tuple[str, ...] = tuple(TABLE[s].key for s in (State.OFF_SHIFT, State.MODULE_OFF, State.MAINTENANCE)
                                       if TABLE[s].kind == "planned")
"""States outside planned busy time (ISO 22400 PBT excludes them)."""
assert set(PLANNED_STOPS) == {i.key for i in TABLE.values() if i.kind == "planned"}, "a planned state is missing"
ACTIVE: tuple[str, ...] = tuple(i.key for i in TABLE.values() if i.holds_flow)
"""States that make a station the bottleneck (busy, setup and down: it holds up the flow)."""


class TraceEvent(IntEnum):
    """Lot-level events a traced run records per server (the event log's ``event`` column)."""

    START = 0
    END = 1
    SETUP_START = 2
    SETUP_END = 3
    BLOCKED = 4
    UNBLOCKED = 5
    LEAVE = 6

    @property
    def key(self) -> str:
        return self.name.lower()


TRACE_KEYS: tuple[str, ...] = tuple(e.key for e in TraceEvent)
