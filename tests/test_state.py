"""One state table: every server state has its key, label, colour, heading and kind there, and
the figures, tables and the engine read them from it."""

from __future__ import annotations

import re

from twin import report, results
from twin.commands import _STATION_COLUMNS
from twin.state import ACTIVE, COLOURS, LABELS, PLANNED_STOPS, STATE_KEYS, TABLE, State


def test_every_state_has_one_entry_named_as_the_enum():
    assert set(TABLE) == set(State)
    for s, info in TABLE.items():
        assert info.key == s.name.lower() == s.key
        assert info.label and info.heading and re.fullmatch(r"#[0-9a-f]{6}", info.colour)
        assert info.kind in ("productive", "unplanned", "waiting", "planned")
    assert len({i.colour for i in TABLE.values()}) == len(TABLE), "two states share a colour"
    assert len({i.heading for i in TABLE.values()}) == len(TABLE)


def test_derived_views_are_the_table():
    assert tuple(STATE_KEYS) == tuple(s.key for s in State)
    assert set(PLANNED_STOPS) == {i.key for i in TABLE.values() if i.kind == "planned"}
    # ISO 22400: planned busy time leaves out shifts off, idled modules and planned maintenance only
    assert set(PLANNED_STOPS) == {"off_shift", "module_off", "maintenance"}
    assert set(ACTIVE) == {"busy", "setup", "down"}
    assert report.STATE_COLOURS == COLOURS and list(report.STACK_ORDER) == [i.key for i in TABLE.values()]
    assert LABELS[State.MODULE_OFF.key] == "idle (module off)"
    assert [c[0] for c in _STATION_COLUMNS[: len(TABLE)]] == [i.key for i in TABLE.values()]
    assert results.PLANNED_STOPS is PLANNED_STOPS
