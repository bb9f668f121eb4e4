"""The one vocabulary of server states and lot-trace events (DESIGN §2).

Every state name in tables, reports, spec keys (``power_kw``) and event logs is
``State.X.key``; the engine records the integer value, tables show the key.
"""

from __future__ import annotations

from enum import IntEnum


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


_KEYS = {s: s.name.lower() for s in State}
LABELS = {State.MODULE_OFF.key: "idle (module off)", State.OFF_SHIFT.key: "off shift",
          State.STARVED_MATERIAL.key: "starved (material)"}
"""How reports name states where the key does not read well."""
STATE_KEYS: tuple[str, ...] = tuple(s.key for s in State)
"""State names in enum order (the columns of state tables)."""

PLANNED_STOPS: tuple[str, ...] = (State.OFF_SHIFT.key, State.MODULE_OFF.key, State.MAINTENANCE.key)
"""States outside planned busy time (ISO 22400 PBT excludes them)."""
ACTIVE: tuple[str, ...] = (State.BUSY.key, State.SETUP.key, State.DOWN.key)
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
